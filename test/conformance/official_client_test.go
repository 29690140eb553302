package conformance

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// agentAddr is where E2B's SDK in debug mode looks for the code interpreter
// (http://localhost:49999); it cannot be changed.
const agentAddr = "127.0.0.1:49999"

// TestE2BJSClient builds cmd/sandbox-agent, starts it on 127.0.0.1:49999 with a token
// file, and runs e2b-js/conformance.mjs: E2B's official JS client
// (@e2b/code-interpreter, pinned in e2b-js/package-lock.json) through
// Sandbox.create({debug: true}). It needs node and npm; the npm packages are installed
// with npm ci (offline from the npm cache when it has them).
func TestE2BJSClient(t *testing.T) {
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skip("node is not installed, so E2B's official JS client cannot run: install Node.js >= 20.18.1 and npm (make test-conformance does) to run this conformance test")
	}
	if testing.Short() {
		t.Skip("-short: the conformance test starts the agent and the JS client (about a minute)")
	}
	dir, err := filepath.Abs("e2b-js")
	if err != nil {
		t.Fatal(err)
	}
	installClient(t, dir)

	bin := filepath.Join(t.TempDir(), "sandbox-agent")
	build := exec.Command("go", "build", "-o", bin, "../../cmd/sandbox-agent")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build cmd/sandbox-agent: %v\n%s", err, out)
	}
	token := fmt.Sprintf("conformance-%d", time.Now().UnixNano())
	tokenFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tokenFile, []byte(token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if c, err := net.DialTimeout("tcp", agentAddr, time.Second); err == nil {
		c.Close()
		t.Fatalf("%s is already in use; stop what listens there (another sandbox-agent?) and rerun", agentAddr)
	}

	var agentLog bytes.Buffer
	agent := exec.Command(bin, "--listen", agentAddr, "--token-file", tokenFile, "--isolation", "bwrap", "--log-level", "warn")
	agent.Stdout, agent.Stderr = &agentLog, &agentLog
	agent.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := agent.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- agent.Wait() }()
	t.Cleanup(func() {
		_ = agent.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(20 * time.Second):
			_ = agent.Process.Kill()
			<-exited
		}
		if t.Failed() {
			t.Logf("agent log:\n%s", agentLog.String())
		}
	})
	waitHealthy(t, exited)

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	run := exec.CommandContext(ctx, node, "conformance.mjs")
	run.Dir = dir
	run.Env = append(os.Environ(), "VIZOPS_AGENT_TOKEN="+token, "E2B_DEBUG=", "E2B_SANDBOX_URL=")
	out, err := run.CombinedOutput()
	t.Logf("conformance.mjs:\n%s", out)
	if err != nil {
		t.Fatalf("E2B's JS client failed against the agent (%v); see the FAIL lines above%s", err, nodeVersionNote(node))
	}
	passed := 0
	for _, line := range strings.Split(string(out), "\n") {
		if strings.HasPrefix(line, "ok   ") {
			passed++
		}
	}
	if passed != 8 {
		t.Errorf("%d checks passed, want 8", passed)
	}
}

// nodeVersionNote says when node is older than the SDK supports (its engines field:
// >= 20.18.1). The test still runs: npm only warns, and the client may well work.
func nodeVersionNote(node string) string {
	out, err := exec.Command(node, "--version").Output()
	if err != nil {
		return fmt.Sprintf(" (node --version failed: %v)", err)
	}
	v := strings.TrimSpace(string(out))
	m := regexp.MustCompile(`^v(\d+)\.(\d+)`).FindStringSubmatch(v)
	if m == nil {
		return ""
	}
	major, _ := strconv.Atoi(m[1])
	minor, _ := strconv.Atoi(m[2])
	if major < 20 || (major == 20 && minor < 18) || major == 21 {
		return fmt.Sprintf(" (node %s is older than @e2b/code-interpreter supports, >= 20.18.1: install a newer Node.js, for example from NodeSource)", v)
	}
	return ""
}

// installClient runs npm ci unless node_modules already matches the lockfile.
func installClient(t *testing.T, dir string) {
	lock, err := os.ReadFile(filepath.Join(dir, "package-lock.json"))
	if err != nil {
		t.Fatal(err)
	}
	installed, _ := os.ReadFile(filepath.Join(dir, "node_modules", ".package-lock.json"))
	if len(installed) > 0 && sameVersions(lock, installed) {
		return
	}
	npm, err := exec.LookPath("npm")
	if err != nil {
		t.Fatal("node is installed but npm is not: install npm (apt-get install npm) to fetch E2B's JS client")
	}
	ci := exec.Command(npm, "ci", "--prefer-offline", "--no-audit", "--no-fund")
	ci.Dir = dir
	if out, err := ci.CombinedOutput(); err != nil {
		t.Fatalf("npm ci in %s: %v\n%s", dir, err, out)
	}
}

var versionRE = regexp.MustCompile(`"node_modules/[^"]+":\s*\{\s*"version":\s*"[^"]+"`)

// sameVersions compares the packages and versions of the lockfile and of npm's record
// of what node_modules holds.
func sameVersions(lock, installed []byte) bool {
	a, b := versionRE.FindAll(lock, -1), versionRE.FindAll(installed, -1)
	if len(a) == 0 || len(a) != len(b) {
		return false
	}
	for i := range a {
		if !bytes.Equal(a[i], b[i]) {
			return false
		}
	}
	return true
}

func waitHealthy(t *testing.T, exited <-chan error) {
	deadline := time.Now().Add(2 * time.Minute)
	for time.Now().Before(deadline) {
		select {
		case err := <-exited:
			t.Fatalf("the agent exited at start: %v", err)
		default:
		}
		resp, err := http.Get("http://" + agentAddr + "/health")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatal("the agent did not answer /health within 2 minutes")
}
