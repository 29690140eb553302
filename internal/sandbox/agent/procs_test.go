package agent

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vizops/viz-operator/internal/sandbox"
	"github.com/vizops/viz-operator/internal/sandbox/codeinterpreter"
)

// markedProcesses counts the processes of the machine whose command line holds marker.
func markedProcesses(marker string) int {
	n := 0
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err == nil && bytes.Contains(b, []byte(marker)) {
			n++
		}
	}
	return n
}

// waitProcesses waits (at most a minute) until markedProcesses(marker) is want.
func waitProcesses(t *testing.T, marker string, want int, what string) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		got := markedProcesses(marker)
		if got == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %d processes of the context, want %d", what, got, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// leaveBehind is code that leaves a setsid child and a double-forked daemon behind,
// the daemon trying to write into every working directory it can see (the next job's).
func leaveBehind(marker string) string {
	return `import os, subprocess, sys
M = "` + marker + `"
subprocess.Popen([sys.executable, "-c", "import time; time.sleep(1000)", M], start_new_session=True,
                 stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
DAEMON = """
import glob, os, time
while True:
    for d in glob.glob(os.path.join(os.getcwd(), "..", "*")) + glob.glob(os.path.join(os.getcwd(), "*")):
        try:
            open(os.path.join(d, "stolen.txt"), "w").write("forged")
        except OSError:
            pass
    time.sleep(0.02)
"""
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        fd = os.open(os.devnull, os.O_RDWR)
        for i in (0, 1, 2):
            os.dup2(fd, i)
        os.execv(sys.executable, [sys.executable, "-c", DAEMON, M])
    os._exit(0)
os.wait()
print("left")
`
}

// lookAround is what the next job runs: it counts the earlier context's processes it
// can see and the files the daemon forged.
func lookAround(marker string) string {
	return `import glob, os
seen = 0
for p in os.listdir("/proc"):
    if p.isdigit():
        try:
            if b"` + marker + `" in open("/proc/%s/cmdline" % p, "rb").read():
                seen += 1
        except OSError:
            pass
forged = glob.glob(os.path.join(os.getcwd(), "..", "*", "stolen.txt")) + glob.glob("stolen.txt") + glob.glob("outputs/stolen.txt")
print(seen, len(forged))
`
}

func randomMarker(name string) string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return "vizops-orphan-" + strings.ReplaceAll(name, " ", "-") + "-" + hex.EncodeToString(b[:])
}

// A context's end (delete, restart) and the agent's shutdown kill every process the
// context started, setsid children and double-forked daemons included, with every
// isolation: bubblewrap, isolation none with a PID namespace per kernel, and isolation
// none without one (the orphan sweep). The next job sees none of its processes and no
// file it forged.
func TestContextEndKillsEveryProcess(t *testing.T) {
	type agentCase struct {
		opts   Options
		shared bool
	}
	cases := map[string]agentCase{
		"bwrap":                         {shared: true},
		"none with a PID namespace":     {opts: Options{Isolation: IsolationNone, WarmKernels: -1}},
		"none without, orphans sweeped": {opts: Options{Isolation: IsolationNone, WarmKernels: -1, NoPIDNamespace: true, KillOrphans: true}},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			c := client()
			var srv *Server
			if !tc.shared {
				if tc.opts.Isolation == IsolationNone && !tc.opts.NoPIDNamespace && !pidNamespaces(Options{Python: "/usr/bin/python3", UID: 65534, GID: 65534}) {
					t.Skip("no PID namespace can be made here (user namespaces are not allowed)")
				}
				o := tc.opts
				o.Token, o.WorkDir = "t", t.TempDir()
				_ = os.Chmod(filepath.Dir(o.WorkDir), 0o711) // kernels run as nobody when the test is root
				var err error
				if srv, err = NewServer(o); err != nil {
					t.Fatal(err)
				}
				defer srv.Close()
				ts := httptest.NewServer(srv)
				defer ts.Close()
				c = &codeinterpreter.Client{BaseURL: ts.URL, AccessToken: "t"}
			}
			run := func(contextID, code string) string {
				t.Helper()
				var out strings.Builder
				err := c.Execute(testCtx(t), codeinterpreter.ExecuteRequest{Code: code, ContextID: contextID}, func(m codeinterpreter.Message) {
					switch m.Type {
					case codeinterpreter.TypeStdout:
						out.WriteString(m.Text)
					case codeinterpreter.TypeError:
						t.Errorf("%s: %s", m.Name, m.Value)
					}
				})
				if err != nil {
					t.Fatal(err)
				}
				return strings.TrimSpace(out.String())
			}
			newCtx := func() string {
				t.Helper()
				cx, err := c.CreateContext(testCtx(t), codeinterpreter.CreateContextRequest{})
				if err != nil {
					t.Fatal(err)
				}
				return cx.ID
			}

			// Restart: the context's processes end with its kernel.
			marker := randomMarker(name)
			a := newCtx()
			if got := run(a, leaveBehind(marker)); got != "left" {
				t.Fatalf("the code said %q", got)
			}
			waitProcesses(t, marker, 2, "after the code ran")
			if err := c.RestartContext(testCtx(t), a); err != nil {
				t.Fatal(err)
			}
			waitProcesses(t, marker, 0, "after the context was restarted")

			// Delete: the same, and the next job sees nothing of the last.
			run(a, leaveBehind(marker))
			waitProcesses(t, marker, 2, "after the code ran again")
			if err := c.DeleteContext(testCtx(t), a); err != nil {
				t.Fatal(err)
			}
			waitProcesses(t, marker, 0, "after the context was deleted")
			b := newCtx()
			if got := run(b, lookAround(marker)); got != "0 0" {
				t.Errorf("the next job sees %q (processes, forged files), want 0 0", got)
			}
			_ = c.DeleteContext(testCtx(t), b)

			// Shutdown: the agent takes every context's processes with it.
			if srv != nil {
				d := newCtx()
				run(d, leaveBehind(marker))
				waitProcesses(t, marker, 2, "before shutdown")
				if err := srv.Close(); err != nil {
					t.Fatal(err)
				}
				waitProcesses(t, marker, 0, "after the agent shut down")
			}
		})
	}
}

// The pids limit is per context: two agents whose kernels run as the same user (as
// every sandbox Pod runs as uid 65532 on a node), one exhausting its own limit with a
// fork bomb, the other still starting processes. Linux counts RLIMIT_NPROC per user
// namespace and user, and each kernel has a user namespace of its own here.
func TestPidsLimitIsPerContext(t *testing.T) {
	if !pidNamespaces(Options{Python: "/usr/bin/python3", UID: 65534, GID: 65534}) {
		t.Skip("needs user namespaces")
	}
	start := func(pids int64) *codeinterpreter.Client {
		work := t.TempDir()
		_ = os.Chmod(filepath.Dir(work), 0o711) // kernels run as nobody when the test is root
		srv, err := NewServer(Options{Token: "t", Isolation: IsolationNone, WorkDir: work, WarmKernels: -1, Resources: sandbox.Resources{Pids: pids}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = srv.Close() })
		ts := httptest.NewServer(srv)
		t.Cleanup(ts.Close)
		return &codeinterpreter.Client{BaseURL: ts.URL, AccessToken: "t"}
	}
	bomber, other := start(48), start(24)
	bombCtx, err := bomber.CreateContext(testCtx(t), codeinterpreter.CreateContextRequest{})
	if err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	err = bomber.Execute(testCtx(t), codeinterpreter.ExecuteRequest{ContextID: bombCtx.ID, Code: `import os, time
n = 0
try:
    while n < 100000:
        if os.fork() == 0:
            time.sleep(600)
            os._exit(0)
        n += 1
except OSError as e:
    print("stopped", n, e.errno)
`}, func(m codeinterpreter.Message) { out.WriteString(m.Text + m.Value) })
	if err != nil {
		t.Fatal(err)
	}
	f := strings.Fields(out.String())
	if len(f) != 3 || f[0] != "stopped" || f[2] != "11" {
		t.Fatalf("the fork bomb was not stopped by its limit (EAGAIN): %q", out.String())
	}
	if n, _ := strconv.Atoi(f[1]); n >= 48 || n < 1 {
		t.Errorf("the fork bomb forked %d processes under a limit of 48", n)
	}
	// While the bomb's processes live, the other agent's job starts ten at once.
	res, err := other.Run(testCtx(t), sandbox.Request{Code: `import subprocess, sys
procs = [subprocess.Popen([sys.executable, "-c", "import time; time.sleep(0.5)"]) for _ in range(10)]
print(sum(p.wait() == 0 for p in procs))
`})
	if err != nil {
		t.Fatal(err)
	}
	if !res.Success || strings.TrimSpace(res.Stdout) != "10" {
		t.Errorf("the other agent's job: success %v, stdout %q, error %+v", res.Success, res.Stdout, res.Error)
	}
	_ = bomber.DeleteContext(testCtx(t), bombCtx.ID)
}

// Kernels with namespaces of their own cannot read the agent's token: its directory is
// covered by an empty tmpfs the code cannot unmount. Without namespaces (a Pod whose
// seccomp profile refuses user namespaces) it stays readable, as docs/security.md says.
func TestKernelsCannotReadTheToken(t *testing.T) {
	if !pidNamespaces(Options{Python: "/usr/bin/python3", UID: 65534, GID: 65534}) {
		t.Skip("needs user namespaces")
	}
	tokenDir := t.TempDir()
	_ = os.Chmod(filepath.Dir(tokenDir), 0o711)
	_ = os.Chmod(tokenDir, 0o755)
	tokenFile := filepath.Join(tokenDir, "token")
	if err := os.WriteFile(tokenFile, []byte("the-agent-token"), 0o644); err != nil {
		t.Fatal(err)
	}
	code := `import ctypes, os
libc = ctypes.CDLL(None, use_errno=True)
unmounted = libc.umount2(b"` + tokenDir + `", 2) == 0
try:
    got = open("` + tokenFile + `").read()
except OSError as e:
    got = type(e).__name__
print(got, unmounted)
`
	for name, tc := range map[string]struct {
		noNS bool
		want string
	}{
		"own namespaces": {want: "FileNotFoundError False"},
		"no namespaces":  {noNS: true, want: "the-agent-token False"},
	} {
		t.Run(name, func(t *testing.T) {
			work := t.TempDir()
			_ = os.Chmod(filepath.Dir(work), 0o711)
			srv, err := NewServer(Options{Token: "t", Isolation: IsolationNone, WorkDir: work, WarmKernels: -1, NoPIDNamespace: tc.noNS, HidePaths: []string{tokenDir}})
			if err != nil {
				t.Fatal(err)
			}
			defer srv.Close()
			ts := httptest.NewServer(srv)
			defer ts.Close()
			res, err := (&codeinterpreter.Client{BaseURL: ts.URL, AccessToken: "t"}).Run(testCtx(t), sandbox.Request{Code: code})
			if err != nil {
				t.Fatal(err)
			}
			if got := strings.TrimSpace(res.Stdout); got != tc.want {
				t.Errorf("the code read %q, want %q (error %+v)", got, tc.want, res.Error)
			}
		})
	}
}

// The namespaces a kernel is cloned into: an IPC namespace only under bubblewrap
// (PrivateMounts, Local), since a Pod's seccomp profile refuses CLONE_NEWIPC (the
// seccompprofile package's tests), and with it every kernel's namespaces.
func TestKernelCloneFlags(t *testing.T) {
	base := uintptr(syscall.CLONE_NEWPID | syscall.CLONE_NEWUSER | syscall.CLONE_NEWNS)
	for name, tc := range map[string]struct {
		o     Options
		pidNS bool
		want  uintptr
	}{
		"a Pod's kernel":                  {Options{}, true, base},
		"a Local kernel (private mounts)": {Options{PrivateMounts: true}, true, base | syscall.CLONE_NEWIPC},
		"no namespaces":                   {Options{PrivateMounts: true}, false, 0},
	} {
		if got := kernelAttr(tc.o, tc.pidNS).Cloneflags; got != tc.want {
			t.Errorf("%s: clone flags %#x, want %#x", name, got, tc.want)
		}
	}
}
