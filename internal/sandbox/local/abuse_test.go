package local

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vizops/viz-operator/internal/sandbox"
)

// abuseLimits are small so each abuse case hits its limit quickly.
var abuseLimits = sandbox.Resources{MemoryBytes: 512 << 20, Pids: 64, ScratchBytes: 16 << 20, CPUMillis: 1000}

// TestAbuse runs hostile programs through one pool with a single sandbox, so every case
// also proves the next request on the same (recycled) sandbox still works. Each must
// end in a clear error or a harmless result, in bounded time, with the host unaffected.
func TestAbuse(t *testing.T) { testAbuse(t) }

func testAbuse(t *testing.T) {
	p := newTestPool(t, sandbox.PoolConfig{MinReady: 1, MaxSandboxes: 1, Resources: abuseLimits},
		Options{MaxOutputBytes: 64 << 10})

	// Host-side canaries: a process, a listener and a secret file in our working dir.
	canary := exec.Command("sleep", "3600")
	if err := canary.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = canary.Process.Kill(); _ = canary.Wait() })
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan struct{}, 16)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted <- struct{}{}
			c.Close()
		}
	}()
	port := ln.Addr().(*net.TCPAddr).Port
	secretDir := t.TempDir()
	secretFile := filepath.Join(secretDir, "operator-secret.txt")
	if err := os.WriteFile(secretFile, []byte(canaryEnvValue), 0o644); err != nil {
		t.Fatal(err)
	}
	cwd, _ := os.Getwd()
	leftoverMarker := fmt.Sprintf("vizops-leftover-%d", time.Now().UnixNano())

	type outcome struct {
		errName  string // expected Error.Name; "" means success
		anyError bool   // any failure is fine (the attempt must simply not work)
		stdout   string // must appear in stdout
	}
	tests := []struct {
		name    string
		code    string
		timeout time.Duration
		want    outcome
		check   func(t *testing.T, r *sandbox.Result) // more assertions, when set
	}{
		{"read /etc/shadow", "print(open('/etc/shadow').read())", 0, outcome{errName: "FileNotFoundError"}, nil},
		{"read the service account token", "print(open('/var/run/secrets/kubernetes.io/serviceaccount/token').read())", 0, outcome{errName: "FileNotFoundError"}, nil},
		{"read the operator's files", fmt.Sprintf("import os\nprint(os.listdir(%q))\nprint(open(%q).read())", cwd, secretFile), 0, outcome{errName: "FileNotFoundError"}, nil},
		{"read the environment", `import os, glob
print(dict(os.environ))
for f in glob.glob('/proc/*/environ'):
    try: print(f, open(f, 'rb').read())
    except OSError as e: print(f, e)
print('env-done')`, 0, outcome{stdout: "env-done"}, nil},
		{"list host processes", "import os\nprint(sorted(int(p) for p in os.listdir('/proc') if p.isdigit()))", 0, outcome{stdout: "[1]"}, nil},
		{"connect to the host's loopback listener", fmt.Sprintf("import socket\nsocket.create_connection(('127.0.0.1', %d), timeout=3)", port), 0, outcome{anyError: true}, nil},
		{"connect outside", "import socket\nsocket.create_connection(('1.1.1.1', 80), timeout=3)", 0, outcome{anyError: true}, nil},
		{"cloud metadata endpoint", "import socket\nsocket.create_connection(('169.254.169.254', 80), timeout=3)", 0, outcome{anyError: true}, nil},
		{"DNS lookup", "import socket\nsocket.getaddrinfo('example.com', 80)", 0, outcome{errName: "gaierror"}, nil},
		{"fork bomb", "import os\nwhile True:\n    os.fork()", 20 * time.Second, outcome{errName: sandbox.ErrNameProcessLimitExceeded}, nil},
		{"thread bomb", "import threading, time\nwhile True:\n    threading.Thread(target=time.sleep, args=(60,)).start()", 20 * time.Second, outcome{errName: sandbox.ErrNameProcessLimitExceeded}, nil},
		{"memory bomb", "chunks = []\nwhile True:\n    chunks.append(b'x' * (32 << 20))", 30 * time.Second, outcome{errName: sandbox.ErrNameMemoryLimitExceeded}, nil},
		{"infinite loop", "while True:\n    pass", 2 * time.Second, outcome{errName: sandbox.ErrNameTimeout}, nil},
		{"infinite loop that ignores the alarm", "import signal\nsignal.signal(signal.SIGALRM, signal.SIG_IGN)\nwhile True:\n    pass", 2 * time.Second, outcome{errName: sandbox.ErrNameTimeout}, nil},
		{"disk fill", "with open('fill.bin', 'wb') as f:\n    while True:\n        f.write(b'x' * (1 << 20))", 20 * time.Second, outcome{errName: sandbox.ErrNameScratchLimitExceeded}, nil},
		{"write outside scratch", `import os
for path in ['/usr/evil', '/etc/evil', '/evil', '/dev/evil', '/dev/shm/evil', '/opt/vizops/mplcache/evil', '/proc/sys/kernel/hostname']:
    try:
        open(path, 'w').write('x')
        print('WROTE', path)
    except OSError as e:
        print('refused', path, e.errno)
print('writes-done')`, 0, outcome{stdout: "writes-done"}, nil},
		{"kill a host process", fmt.Sprintf("import os\nos.kill(%d, 9)", canary.Process.Pid), 0, outcome{errName: "ProcessLookupError"}, nil},
		{"kill -1", "import os, signal\nos.kill(-1, signal.SIGKILL)\nprint('still here')", 0, outcome{anyError: true}, nil},
		{"megabytes of output", "import sys\nfor _ in range(50):\n    sys.stdout.write('y' * (1 << 20))\nprint('out-done')", 0, outcome{}, nil},
		{"ptrace and process_vm_readv", `import ctypes, os
libc = ctypes.CDLL(None, use_errno=True)
print('ptrace', libc.ptrace(16, 1, 0, 0), ctypes.get_errno())  # PTRACE_ATTACH to pid 1
print('traceme', libc.ptrace(0, 0, 0, 0), ctypes.get_errno())
print('unshare', libc.unshare(0x10000000), ctypes.get_errno())
print('mount', libc.mount(b'none', b'/tmp', b'tmpfs', 0, None), ctypes.get_errno())
print('vmread', libc.process_vm_readv(1, 0, 0, 0, 0, 0), ctypes.get_errno())
print('syscalls-done')`, 0, outcome{stdout: "ptrace -1 1\ntraceme -1 1\nunshare -1 1\nmount -1 1\nvmread -1 1\nsyscalls-done"}, nil},
		// Issue 10, finding 8: the bounding set was left full (CapBnd 000001ffffffffff).
		{"capabilities, bounding set included", `for line in open('/proc/self/status'):
    if line.startswith('Cap'):
        print(line.strip())`, 0, outcome{stdout: "CapInh:\t0000000000000000\nCapPrm:\t0000000000000000\nCapEff:\t0000000000000000\nCapBnd:\t0000000000000000\nCapAmb:\t0000000000000000"}, nil},
		// Issue 10, finding 3: with no network only AF_UNIX sockets may be made
		// (AF_VSOCK reaches the host's hypervisor sockets from any namespace).
		{"sockets other than AF_UNIX", `import socket
for name, fam, typ in [('vsock', 40, socket.SOCK_STREAM), ('packet', 17, socket.SOCK_RAW), ('netlink', 16, socket.SOCK_RAW),
                       ('inet', socket.AF_INET, socket.SOCK_DGRAM), ('inet6', socket.AF_INET6, socket.SOCK_DGRAM)]:
    try:
        socket.socket(fam, typ).close()
        print(name, 'allowed')
    except OSError as e:
        print(name, 'refused', e.errno)
try:
    socket.socketpair(socket.AF_INET, socket.SOCK_STREAM)
    print('inet pair allowed')
except OSError as e:
    print('inet pair refused', e.errno)
a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
a.sendall(b'ok'); print('unix', b.recv(2).decode())`, 0,
			outcome{stdout: "vsock refused 97\npacket refused 97\nnetlink refused 97\ninet refused 97\ninet6 refused 97\ninet pair refused 97\nunix ok"}, nil},
		// Issue 10, finding 4: a deep tree crashed the supervisor (RecursionError in
		// os.walk, reported as a lost sandbox and retried).
		{"1,100 nested directories", `import os
for i in range(1100):
    os.mkdir('d')
    os.chdir('d')
open('deep.txt', 'w').write('x')
print('nested')`, 0, outcome{errName: sandbox.ErrNameOutputLimitExceeded, stdout: "nested"}, func(t *testing.T, r *sandbox.Result) {
			if !strings.Contains(r.Error.Value, "nested deeper than") {
				t.Errorf("error does not say the tree was too deep: %s", r.Error.Value)
			}
		}},
		// Issue 10, finding 4: 400,000 files made a 9.6 MB error listing each one. Fewer
		// files here (the walk's cap is 20,000 entries), the same shape of attack.
		{"tens of thousands of files", `import os
os.makedirs('outputs/many', exist_ok=True)
for i in range(30000):
    open('outputs/many/%05d.txt' % i, 'w').close()
print('many')`, 60 * time.Second, outcome{errName: sandbox.ErrNameOutputLimitExceeded, stdout: "many"}, func(t *testing.T, r *sandbox.Result) {
			if len(r.Error.Value) > 4096 {
				t.Errorf("the error is %d bytes; the list of omitted files is not capped", len(r.Error.Value))
			}
			if len(r.Files) > 32 {
				t.Errorf("%d artifacts kept, more than MaxArtifacts", len(r.Files))
			}
		}},
		// Issue 10, finding 5: an uncapped str(exc) overflowed the report, and a job
		// with no report that exited 0 counted as a success. A job that exits is
		// ProcessExited on both engines, whatever it wrote.
		{"a six-megabyte exception", `raise ValueError("x" * 6_000_000)`, 0, outcome{errName: "ValueError"}, func(t *testing.T, r *sandbox.Result) {
			if len(r.Error.Value) > 64<<10 || len(r.Error.Traceback) > 128<<10 {
				t.Errorf("error not capped: value %d, traceback %d bytes", len(r.Error.Value), len(r.Error.Traceback))
			}
		}},
		{"forge an oversized report and exit 0", `import os, struct
for fd in range(3, 256):
    try:
        if os.readlink('/proc/self/fd/%d' % fd).startswith('pipe:'):
            os.write(fd, struct.pack('>I', 64 << 20))
            for _ in range(4):
                os.write(fd, b'x' * (1 << 20))
    except OSError:
        pass
os._exit(0)`, 0, outcome{errName: sandbox.ErrNameProcessExited}, nil},
		// A job that ends its interpreter is not a success, whatever its status.
		{"os._exit(0)", "print('bye', flush=True)\nimport os\nos._exit(0)", 0, outcome{errName: sandbox.ErrNameProcessExited, stdout: "bye"}, nil},
		{"os._exit(3)", "import os\nos._exit(3)", 0, outcome{errName: sandbox.ErrNameProcessExited}, nil},
		{"plant a FIFO and a symlink as outputs", "import os\nos.mkfifo('plot.png')\nos.symlink('/etc/passwd', 'passwd.txt')\nprint('planted')", 0, outcome{stdout: "planted"}, nil},
		{"leave a process, files and IPC objects behind", fmt.Sprintf(`import subprocess, os, glob, ctypes
subprocess.Popen(['/usr/bin/python3', '-c', 'import time; time.sleep(600)', %q], start_new_session=True)
open('/tmp/left.txt', 'w').write('secret-from-previous-job')
open('left.txt', 'w').write('secret-from-previous-job')
# Anywhere else the job can write: the parents of its directories (the agent's /work),
# the other contexts' and kernels' directories there (the spare kernel's home).
for d in {'/', os.path.dirname(os.getcwd()), os.path.dirname(os.path.dirname(os.getcwd())), os.environ.get('HOME', '/')} | set(glob.glob('/work/*/*')) | set(glob.glob('/work/*')):
    try: open(os.path.join(d, 'left.txt'), 'w').write('secret-from-previous-job')
    except OSError: pass
libc = ctypes.CDLL(None, use_errno=True)
libc.shmget(0x5eed, 4096, 0o1000 | 0o600)  # IPC_CREAT: a SysV segment outlives its creator
libc.msgget(0x5eed, 0o1000 | 0o600)
print('left')`, leftoverMarker), 0, outcome{stdout: "left"}, nil},
		{"find what the previous job left", fmt.Sprintf(`import os, glob, ctypes
found = []
for d in ['/proc/%%s/cmdline' %% p for p in os.listdir('/proc') if p.isdigit()]:
    try:
        if %q in open(d).read(): found.append(d)
    except OSError: pass
for f in ['/tmp/left.txt', '/tmp/work/left.txt', os.path.join(os.environ.get('HOME', '/'), 'left.txt')] + glob.glob('/tmp/**/left.txt', recursive=True) + glob.glob('/work/**/left.txt', recursive=True) + glob.glob('/work/**/.*/left.txt', recursive=True):
    if os.path.exists(f): found.append(f)
libc = ctypes.CDLL(None, use_errno=True)
if libc.shmget(0x5eed, 0, 0) != -1: found.append('SysV shared memory')
if libc.msgget(0x5eed, 0) != -1: found.append('SysV message queue')
print('found', sorted(set(found)))`, leftoverMarker), 0, outcome{stdout: "found []"}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Now()
			r := runJob(t, p, sandbox.Request{Code: tc.code, Timeout: tc.timeout})
			bound := 15 * time.Second
			if tc.timeout > 0 {
				bound = tc.timeout + 15*time.Second
			}
			if took := time.Since(start); took > bound {
				t.Errorf("took %s, more than %s", took, bound)
			}
			all := r.Stdout + r.Stderr + r.Text + fmt.Sprint(r.Error)
			for _, f := range r.Files {
				all += string(f.Data)
			}
			if strings.Contains(all, canaryEnvValue) {
				t.Errorf("the operator's secret leaked into the result:\n%s", all[:min(len(all), 2000)])
			}
			if strings.Contains(r.Stdout, "WROTE") {
				t.Errorf("a write outside scratch succeeded:\n%s", r.Stdout)
			}
			switch {
			case tc.want.anyError:
				if r.Success {
					t.Errorf("succeeded, want a failure; stdout %q", r.Stdout)
				}
			case errName(r) != tc.want.errName:
				t.Errorf("error %q (%+v), want %q\nstdout: %.2000s\nstderr: %.2000s", errName(r), r.Error, tc.want.errName, r.Stdout, r.Stderr)
			}
			if tc.want.errName != "" && r.Error != nil && r.Error.Value == "" {
				t.Errorf("error %s has no message", r.Error.Name)
			}
			if tc.check != nil && r.Error != nil {
				tc.check(t, r)
			} else if tc.check != nil {
				t.Errorf("no error; the extra checks need one")
			}
			if !strings.Contains(r.Stdout, tc.want.stdout) {
				t.Errorf("stdout %.2000q does not contain %q", r.Stdout, tc.want.stdout)
			}
			if len(r.Stdout) > 64<<10+100 || len(r.Stderr) > 64<<10+100 {
				t.Errorf("output not capped: stdout %d, stderr %d bytes", len(r.Stdout), len(r.Stderr))
			}
			for _, f := range r.Files {
				if f.Name == "plot.png" || f.Name == "passwd.txt" {
					t.Errorf("artifact %s is a FIFO or symlink the job planted", f.Name)
				}
			}
			// The host is unaffected and the pool serves the next request.
			if !signalAlive(canary.Process.Pid) {
				t.Fatal("the host canary process was killed")
			}
			if next := runJob(t, p, sandbox.Request{Code: "6 * 7"}); !next.Success || next.Text != "42" {
				t.Errorf("next request on the pool: success %v text %q error %+v", next.Success, next.Text, next.Error)
			}
			// The next job starts only once the previous job's processes are gone.
			if pid := hostProcessWithArg(leftoverMarker); pid != 0 {
				t.Errorf("process %d left by a job survives on the host", pid)
			}
		})
	}
	select {
	case <-accepted:
		t.Error("a sandbox connected to the host's loopback listener")
	default:
	}
	if got := p.Status().Total; got != 1 {
		t.Errorf("pool has %d sandboxes, want 1 (no runaway creation)", got)
	}
}

// TestAbuseWithoutCgroups checks the rlimit fallback: with no cgroup, memory and
// process bombs still end with the limit's error.
func TestAbuseWithoutCgroups(t *testing.T) { testAbuseWithoutCgroups(t) }

func testAbuseWithoutCgroups(t *testing.T) {
	p := newTestPool(t, sandbox.PoolConfig{MinReady: 1, MaxSandboxes: 1, Resources: abuseLimits}, Options{CgroupRoot: "none"})
	tests := map[string]struct {
		code string
		want string
	}{
		"memory bomb": {"chunks = []\nwhile True:\n    chunks.append(b'x' * (32 << 20))", sandbox.ErrNameMemoryLimitExceeded},
		"fork bomb":   {"import os\nwhile True:\n    os.fork()", sandbox.ErrNameProcessLimitExceeded},
		"disk fill":   {"with open('fill.bin', 'wb') as f:\n    while True:\n        f.write(b'x' * (1 << 20))", sandbox.ErrNameScratchLimitExceeded},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			r := runJob(t, p, sandbox.Request{Code: tc.code, Timeout: 20 * time.Second})
			if errName(r) != tc.want {
				t.Errorf("error %q (%+v), want %q", errName(r), r.Error, tc.want)
			}
			if next := runJob(t, p, sandbox.Request{Code: "6 * 7"}); next.Text != "42" {
				t.Errorf("next request: %+v", next.Error)
			}
		})
	}
}

// TestSeccompFailsClosed: issue 10, finding 9. Where the runner has no seccomp filter
// for the machine's architecture, no job runs: sandboxes fail to start with an error
// that names the architecture, instead of running code without a filter.
func TestSeccompFailsClosed(t *testing.T) { testSeccompFailsClosed(t) }

func testSeccompFailsClosed(t *testing.T) {
	p, err := NewPool(sandbox.PoolConfig{MinReady: 1, MaxSandboxes: 1, Resources: abuseLimits}, Options{seccompArch: "riscv64"})
	if err != nil {
		t.Fatalf("NewPool: %v", err)
	}
	t.Cleanup(func() { closeAndCheck(t, p) })
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	r, err := sandbox.Run(ctx, p, t.Name(), sandbox.Request{Code: "print('ran without a filter')"})
	if err == nil {
		t.Fatalf("a job ran with no seccomp filter for the architecture: %+v", r)
	}
	if !errors.Is(err, sandbox.ErrUnavailable) || !strings.Contains(err.Error(), "no seccomp filter for the riscv64 architecture") {
		t.Errorf("error %v, want ErrUnavailable naming the missing riscv64 filter", err)
	}
}
