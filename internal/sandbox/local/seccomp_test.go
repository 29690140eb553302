package local

import (
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"

	"github.com/vizops/viz-operator/internal/sandbox/pyrunner"
)

// TestSeccompPrograms runs the kernels' filters outside a sandbox (issue 10, findings
// 3 and 9). The machine's own filter must refuse AF_VSOCK and allow AF_UNIX; the arm64
// filter must load (the kernel checks the program) and, on a machine of another
// architecture, kill the process at its next syscall: the architecture check works.
func TestSeccompPrograms(t *testing.T) {
	if runtime.GOARCH != "amd64" && runtime.GOARCH != "arm64" {
		t.Skipf("no filter for %s", runtime.GOARCH)
	}
	script := `
import json, os, sys, ctypes, signal
kernel_src, arch, probe = sys.argv[1], sys.argv[2], sys.argv[3]
sys.argv = ["kernel", json.dumps({"network": False, "seccomp_arch": arch})]
exec(compile(open(kernel_src).read().split("# ---- plotting stack")[0], "kernel.py", "exec"))
pid = os.fork()
if pid == 0:
    try:
        install_seccomp()
        exec(probe)
    except BaseException as e:
        os.write(2, ("child: %r\n" % e).encode())
        os._exit(70)
    os._exit(0)
_, status = os.waitpid(pid, 0)
if os.WIFSIGNALED(status):
    print("signal", os.WTERMSIG(status))
else:
    print("exit", os.WEXITSTATUS(status))
`
	native := map[string]string{"amd64": "x86_64", "arm64": "aarch64"}[runtime.GOARCH]
	foreign := map[string]string{"amd64": "aarch64", "arm64": "x86_64"}[runtime.GOARCH]
	probeSockets := `
import socket
for fam in (40, 17, 16, 2, 10):
    try:
        socket.socket(fam, socket.SOCK_DGRAM if fam in (2, 10) else socket.SOCK_RAW if fam in (16, 17) else socket.SOCK_STREAM).close()
        os._exit(10 + fam)
    except OSError as e:
        if e.errno != 97:
            os._exit(100 + fam)
a, b = socket.socketpair(socket.AF_UNIX)
a.close(); b.close()
`
	tests := map[string]struct {
		arch, probe, want string
	}{
		"native filter: only AF_UNIX sockets":        {native, probeSockets, "exit 0"},
		"native filter: unshare refused":             {native, "import ctypes\nlibc = ctypes.CDLL(None, use_errno=True)\nos._exit(0 if libc.unshare(0x10000000) == -1 and ctypes.get_errno() == 1 else 9)", "exit 0"},
		"foreign filter loads and kills on its arch": {foreign, "os.getpid()", "signal 31"},
		"unknown architecture: refused, not skipped": {"riscv64", "pass", "exit 70"},
	}
	dir := t.TempDir()
	kernel := dir + "/kernel.py"
	if err := os.WriteFile(kernel, []byte(pyrunner.KernelSource), 0o644); err != nil {
		t.Fatal(err)
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			out, err := exec.Command("/usr/bin/python3", "-I", "-c", script, kernel, tc.arch, tc.probe).CombinedOutput()
			if err != nil {
				t.Fatalf("harness: %v\n%s", err, out)
			}
			if got := strings.TrimSpace(string(out)); !strings.HasSuffix(got, tc.want) {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}
