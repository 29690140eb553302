package agent

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vizops/viz-operator/internal/sandbox"
	"github.com/vizops/viz-operator/internal/sandbox/codeinterpreter"
	"github.com/vizops/viz-operator/internal/sandbox/sandboxtest"
)

func TestLimitErrorNames(t *testing.T) {
	s := &Server{opts: Options{Resources: sandbox.Resources{MemoryBytes: 256 << 20, Pids: 32, ScratchBytes: 16 << 20}}}
	oom := codeinterpreter.Message{Type: codeinterpreter.TypeError, Name: sandbox.ErrNameMemoryLimitExceeded, Value: "…: " + statusOOMKilled}
	for name, tc := range map[string]struct {
		in                codeinterpreter.Message
		limit             string
		wantName, wantHas string
	}{
		"memory":                  {codeinterpreter.Message{Name: "MemoryError"}, sandbox.ErrNameMemoryLimitExceeded, sandbox.ErrNameMemoryLimitExceeded, "256 MiB"},
		"processes":               {codeinterpreter.Message{Name: "BlockingIOError", Value: "[Errno 11]"}, sandbox.ErrNameProcessLimitExceeded, sandbox.ErrNameProcessLimitExceeded, "(32)"},
		"scratch":                 {codeinterpreter.Message{Name: "OSError", Value: "[Errno 28] No space left on device"}, sandbox.ErrNameScratchLimitExceeded, sandbox.ErrNameScratchLimitExceeded, "No space left"},
		"OOM kill keeps its text": {oom, sandbox.ErrNameMemoryLimitExceeded, sandbox.ErrNameMemoryLimitExceeded, "OOM killer"},
		"CPU time":                {codeinterpreter.Message{Name: "CPUTimeLimitExceeded"}, sandbox.ErrNameCPUTimeLimitExceeded, sandbox.ErrNameCPUTimeLimitExceeded, "CPU time"},
		"no limit":                {codeinterpreter.Message{Name: "ValueError"}, "", "ValueError", ""},
		"a name the code forged":  {codeinterpreter.Message{Name: "ValueError"}, "Success", "ValueError", ""},
	} {
		t.Run(name, func(t *testing.T) {
			got := s.limitError(tc.in, tc.limit)
			if got.Name != tc.wantName || !strings.Contains(got.Value, tc.wantHas) {
				t.Errorf("limitError = %s: %q; want %s containing %q", got.Name, got.Value, tc.wantName, tc.wantHas)
			}
		})
	}
}

// TestLimitsAreNamed: code that hits a kernel's limits fails with the limit's name
// from sandbox.ErrName*, as on every backend, not with the Python exception's.
func TestLimitsAreNamed(t *testing.T) {
	_, c := serve(t, Options{Token: "t", WorkDir: workDir(t, "", "agent-limits-"), WarmKernels: -1,
		Resources: sandbox.Resources{MemoryBytes: 256 << 20, ScratchBytes: 16 << 20}})
	for name, tc := range map[string]struct{ code, want string }{
		"disk fill":   {"with open('fill.bin', 'wb') as f:\n    while True:\n        f.write(b'x' * (1 << 20))", sandbox.ErrNameScratchLimitExceeded},
		"memory bomb": {"chunks = []\nwhile True:\n    chunks.append(b'x' * (32 << 20))", sandbox.ErrNameMemoryLimitExceeded},
		"plain error": {"1/0", "ZeroDivisionError"},
	} {
		t.Run(name, func(t *testing.T) {
			res, err := c.Run(testCtx(t), sandbox.Request{Code: tc.code})
			if err != nil {
				t.Fatal(err)
			}
			if res.Error == nil || res.Error.Name != tc.want {
				t.Errorf("error %+v, want %s", res.Error, tc.want)
			}
		})
	}
}

// TestForkedKernels runs contexts on kernels the zygote forks (Options.ForkKernels):
// each is PID 1 of its own namespaces, with a /proc and /tmp of its own, and a context's
// variables stay its own.
func TestForkedKernels(t *testing.T) {
	// Not below /tmp: kernels mount their own.
	srv, c := serve(t, Options{Token: "t", Isolation: IsolationNone, WorkDir: workDir(t, "/var/tmp", "agent-fork-"), ForkKernels: true, PrivateMounts: true,
		Resources: sandbox.Resources{ScratchBytes: 16 << 20}})
	if err := srv.WaitReady(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	if srv.zygote.Load() == nil {
		t.Fatal("no kernel zygote started")
	}
	for i := range 3 {
		res, err := c.Run(testCtx(t), sandbox.Request{Code: `import os, matplotlib.pyplot as plt
print(os.getpid(), sorted(int(p) for p in os.listdir('/proc') if p.isdigit()), os.listdir('/tmp'), 'x' in globals())
open('/tmp/mine', 'w').write('1')
x = 1
plt.plot([1, 2]); plt.show()`})
		if err != nil {
			t.Fatal(err)
		}
		if !res.Success || res.Stdout != "1 [1] [] False\n" || len(res.Files) != 1 {
			t.Errorf("job %d: stdout %q, error %+v, %d files", i, res.Stdout, res.Error, len(res.Files))
		}
	}
	// The zygote forks each kernel itself (no process between them) and the PID the
	// agent keeps is the kernel's in the agent's namespace (read from the pidfd the
	// zygote sends): PID 1 of its own namespace there, and what the timeout kills a
	// kernel that swallows the interrupt by.
	done := make(chan *sandbox.Result, 1)
	go func() {
		res, err := c.Run(testCtx(t), sandbox.Request{Timeout: 3 * time.Second, Code: "while True:\n    try:\n        while True:\n            pass\n    except BaseException:\n        pass"})
		if err != nil {
			t.Error(err)
		}
		done <- res
	}()
	var pid int
	sandboxtest.WaitFor(t, "the job's kernel", func() bool {
		srv.mu.Lock()
		defer srv.mu.Unlock()
		for _, kc := range srv.contexts {
			kc.mu.Lock()
			if kc.k != nil && kc.k.pid > 0 {
				pid = kc.k.pid
			}
			kc.mu.Unlock()
		}
		return pid > 0
	})
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatalf("the kernel's PID %d is no process here: %v", pid, err)
	}
	nspid, ppid := procField(string(status), "NSpid"), procField(string(status), "PPid")
	zygote := srv.zygote.Load().cmd.Process.Pid
	if f := strings.Fields(nspid); len(f) < 2 || f[0] != strconv.Itoa(pid) || f[len(f)-1] != "1" || ppid != strconv.Itoa(zygote) {
		t.Errorf("process %d: NSpid %q, parent %s; want PID 1 of its own namespace, a child of the zygote (%d)", pid, nspid, ppid, zygote)
	}
	if res := <-done; res == nil || !res.TimedOut || res.Error == nil || res.Error.Name != sandbox.ErrNameTimeout {
		t.Errorf("a forked kernel that swallows the interrupt: %+v, want a Timeout", res)
	}
	if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); err == nil {
		sandboxtest.WaitFor(t, "the killed kernel to be reaped", func() bool {
			_, err := os.Stat(fmt.Sprintf("/proc/%d", pid))
			return err != nil
		})
	}
}

// TestPrestartedZygote: the zygote PrestartZygote starts (the CLI's, before the token
// and the listener) is the one the server forks kernels from; no second one starts.
func TestPrestartedZygote(t *testing.T) {
	o := PrestartZygote(Options{Token: "t", Isolation: IsolationNone, WorkDir: workDir(t, "/var/tmp", "agent-prestart-"), ForkKernels: true, PrivateMounts: true})
	if o.prestarted == nil {
		t.Fatal("no zygote prestarted for fork-ahead kernels")
	}
	srv, c := serve(t, o)
	if err := srv.WaitReady(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	if z := srv.zygote.Load(); z == nil || z != o.prestarted.z {
		t.Fatalf("the server's zygote %p, want the prestarted one %p (%v)", z, o.prestarted.z, o.prestarted.err)
	}
	res, err := c.Run(testCtx(t), sandbox.Request{Code: "import os\nprint(os.getpid())"})
	if err != nil || !res.Success || res.Stdout != "1\n" {
		t.Errorf("a job on the prestarted zygote's kernel: %+v, %v", res, err)
	}
	for _, no := range []Options{{Isolation: IsolationNone}, {Isolation: IsolationBwrap, ForkKernels: true}, {Isolation: IsolationNone, ForkKernels: true, NoPIDNamespace: true}, {Isolation: IsolationNone, ForkKernels: true, WarmKernels: -1}} {
		if PrestartZygote(no).prestarted != nil {
			t.Errorf("a zygote prestarted for %+v, whose kernels are not forked", no)
		}
	}
}
