package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vizops/viz-operator/internal/sandbox"
	"github.com/vizops/viz-operator/internal/sandbox/codeinterpreter"
)

// TestMain lets the test binary be the agent, so a test can start it as a sandbox
// Pod does: as a user that is not root.
func TestMain(m *testing.M) {
	if os.Getenv("VIZOPS_TEST_RUN_AGENT") == "1" {
		main()
		return
	}
	os.Exit(m.Run())
}

// The agent as a sandbox Pod runs it (not root, no capabilities, isolation none)
// gives each kernel its own PID, user and mount namespaces where user namespaces can
// be made, and kernel code still cannot read the agent's memory or its token. Tests
// of the agent package run as root here, which hid that a non-dumpable agent that is
// not root cannot write its kernels' ID maps: on a real node no kernel got its
// namespaces.
func TestNonRootAgentGivesKernelsNamespaces(t *testing.T) {
	const uid = 65532 // a sandbox Pod's user
	dir, err := os.MkdirTemp("", "agent-nonroot-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "sandbox-agent")
	copyFile(t, self, bin, 0o755)
	tokenDir, work := filepath.Join(dir, "token"), filepath.Join(dir, "work")
	for _, d := range []string{tokenDir, work} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	tokenFile := filepath.Join(tokenDir, "token")
	if err := os.WriteFile(tokenFile, []byte("the-agent-token\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{dir, tokenDir} {
		_ = os.Chmod(p, 0o755)
	}
	attr := &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if os.Geteuid() == 0 {
		if err := os.Chown(work, uid, uid); err != nil {
			t.Fatal(err)
		}
		attr.Credential = &syscall.Credential{Uid: uid, Gid: uid, Groups: []uint32{}}
	}
	addr := freeAddr(t)
	cmd := exec.Command(bin, "--listen="+addr, "--isolation=none", "--work-dir="+filepath.Join(work, "sandbox"),
		"--token-file="+tokenFile, "--warm-kernels=-1")
	cmd.Env = append(os.Environ(), "VIZOPS_TEST_RUN_AGENT=1", "HOME="+work, "TMPDIR="+work)
	cmd.SysProcAttr = attr
	var log bytes.Buffer
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("the agent's log:\n%s", log.String())
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	waitHealthy(ctx, t, "http://"+addr)

	code := fmt.Sprintf(`import os
print("pid=%%d" %% os.getpid())
for what, path in (("token", %q), ("environ", "/proc/%d/environ"), ("mem", "/proc/%d/mem")):
    try:
        open(path, "rb").read(1)
        print(what, "read")
    except OSError as e:
        print(what, type(e).__name__)
`, tokenFile, cmd.Process.Pid, cmd.Process.Pid)
	c := &codeinterpreter.Client{BaseURL: "http://" + addr, AccessToken: "the-agent-token"}
	res, err := c.Run(ctx, sandbox.Request{Code: code})
	if err != nil {
		t.Fatal(err)
	}
	want := "pid=1\ntoken FileNotFoundError\nenviron PermissionError\nmem PermissionError"
	if got := strings.TrimSpace(res.Stdout); got != want {
		t.Errorf("the kernel saw\n%s\nwant\n%s\n(error %+v)", got, want, res.Error)
	}
	if !strings.Contains(log.String(), "each kernel runs as PID 1") {
		t.Errorf("the agent's log does not say that kernels get namespaces")
	}
}

func copyFile(t *testing.T, from, to string, mode os.FileMode) {
	t.Helper()
	in, err := os.Open(from)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.OpenFile(to, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, mode)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// waitHealthy waits until the agent answers /health.
func waitHealthy(ctx context.Context, t *testing.T, base string) {
	t.Helper()
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+"/health", nil)
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		select {
		case <-ctx.Done():
			t.Fatalf("the agent never became healthy: %v", ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}
