package local

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/vizops/viz-operator/internal/sandbox"
)

// The benchmarks measure what docs/benchmarks.md reports; hack/bench/run.sh runs them
// in one go and prints the ratios. None of them asserts a duration.

// waitArmed waits until some ready sandbox has a warm job process, so a "warm"
// iteration measures a warm sandbox and not the previous job's re-arming.
func waitArmed(b *testing.B, p *Pool) {
	b.Helper()
	waitFor(b, 2*time.Minute, "an armed sandbox", func() bool {
		p.mu.Lock()
		defer p.mu.Unlock()
		for _, s := range p.ready {
			if s.z.armed.Load() {
				return true
			}
		}
		return false
	})
}

func benchPool(b *testing.B, minReady, maxSandboxes int) *Pool {
	p := newTestPool(b, sandbox.PoolConfig{MinReady: minReady, MaxSandboxes: maxSandboxes}, Options{})
	waitFor(b, 2*time.Minute, "warm pool", func() bool { return p.Status().Ready == minReady })
	waitArmed(b, p)
	return p
}

// BenchmarkClaim is the time to claim (and hand back) a warm sandbox.
func BenchmarkClaim(b *testing.B) {
	p := benchPool(b, 1, 1)
	ctx := context.Background()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		sb, err := p.Acquire(ctx, "bench")
		if err != nil {
			b.Fatal(err)
		}
		p.Release(sb)
	}
}

// BenchmarkSeedChartWarm is the seed bar chart on a warm sandbox: claim, execute
// (PNG captured and returned), release.
func BenchmarkSeedChartWarm(b *testing.B) {
	p := benchPool(b, 1, 1)
	ctx := context.Background()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		waitArmed(b, p)
		b.StartTimer()
		r, err := sandbox.Run(ctx, p, "bench", sandbox.Request{Code: seedBarChart})
		if err != nil || !r.Success || len(r.Files) != 1 {
			b.Fatalf("run: %v %+v", err, r)
		}
	}
}

// BenchmarkSeedChartCold is a new pool's first job: sandbox start plus the chart.
func BenchmarkSeedChartCold(b *testing.B) {
	ctx := context.Background()
	for i := 0; i < b.N; i++ {
		p, err := NewPool(sandbox.PoolConfig{MinReady: 0, MaxSandboxes: 1}, Options{})
		if err != nil {
			b.Fatal(err)
		}
		r, err := sandbox.Run(ctx, p, "bench", sandbox.Request{Code: seedBarChart})
		if err != nil || !r.Success || len(r.Files) != 1 {
			b.Fatalf("run: %v %+v", err, r)
		}
		b.StopTimer()
		p.Close()
		b.StartTimer()
	}
}

// BenchmarkThroughput2 runs the seed chart from two callers at once on a pool of two
// sandboxes and reports jobs per second.
func BenchmarkThroughput2(b *testing.B) {
	p := benchPool(b, 2, 2)
	ctx := context.Background()
	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	jobs := make(chan struct{}, b.N)
	for i := 0; i < b.N; i++ {
		jobs <- struct{}{}
	}
	close(jobs)
	for w := 0; w < 2; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range jobs {
				r, err := sandbox.Run(ctx, p, "bench", sandbox.Request{Code: seedBarChart})
				if err != nil || !r.Success {
					b.Errorf("run: %v %+v", err, r)
					return
				}
			}
		}()
	}
	wg.Wait()
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "jobs/s")
}

// floorDriver keeps one hot /usr/bin/python3 (no sandbox) that renders each script it
// is sent to PNG in-process: the floor no backend can beat.
const floorDriver = `
import sys, io, struct, matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt, numpy, pandas, seaborn, plotly
def show(*a, **k):
    for n in plt.get_fignums():
        plt.figure(n).savefig(io.BytesIO(), format="png")
    plt.close("all")
plt.show = show
inp, out = sys.stdin.buffer, sys.stdout.buffer
while True:
    hdr = inp.read(4)
    if len(hdr) < 4:
        break
    code = inp.read(struct.unpack(">I", hdr)[0]).decode()
    exec(compile(code, "<cell>", "exec"), {"__name__": "__main__"})
    out.write(b"ok\n"); out.flush()
`

// BenchmarkFloor is the seed chart rendered by a hot interpreter, no sandbox.
func BenchmarkFloor(b *testing.B) {
	cmd := exec.Command("/usr/bin/python3", "-c", floorDriver)
	cmd.Env = envWith("MPLCONFIGDIR", filepath.Join(Options{}.withDefaults().CacheDir, "mpl"))
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() { stdin.Close(); _ = cmd.Wait() }()
	br := bufio.NewReader(stdout)
	send := func() {
		var hdr [4]byte
		binary.BigEndian.PutUint32(hdr[:], uint32(len(seedBarChart)))
		if _, err := stdin.Write(append(hdr[:], seedBarChart...)); err != nil {
			b.Fatal(err)
		}
		if line, err := br.ReadString('\n'); err != nil || line != "ok\n" {
			b.Fatalf("floor driver: %q %v %s", line, err, stderr.String())
		}
	}
	for i := 0; i < 3; i++ { // warm: the floor is a hot interpreter
		send()
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		send()
	}
}

// BenchmarkBareBwrapPython is "bwrap ... python3 script.py": a fresh sandboxed
// interpreter per run, with the same isolation flags and a prebuilt font cache.
func BenchmarkBareBwrapPython(b *testing.B) {
	opts := Options{}.withDefaults()
	if err := preflight(opts); err != nil {
		b.Fatal(err)
	}
	// Not b.TempDir: its parent is 0700 and the sandbox user must read the script.
	dir, err := os.MkdirTemp("", "vizops-bare-bwrap-")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { os.RemoveAll(dir) })
	script := seedBarChart + "\nplt.savefig('/tmp/out.png')\n"
	if err := os.WriteFile(filepath.Join(dir, "script.py"), []byte(script), 0o644); err != nil {
		b.Fatal(err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		b.Fatal(err)
	}
	// A writable copy of the font cache, as a plain bwrap user would have.
	mpl := filepath.Join(dir, "mpl")
	if err := os.MkdirAll(mpl, 0o777); err != nil {
		b.Fatal(err)
	}
	entries, _ := os.ReadDir(filepath.Join(opts.CacheDir, "mpl"))
	for _, e := range entries {
		data, _ := os.ReadFile(filepath.Join(opts.CacheDir, "mpl", e.Name()))
		_ = os.WriteFile(filepath.Join(mpl, e.Name()), data, 0o666)
	}
	_ = os.Chmod(mpl, 0o777)
	args := append(baseBwrapArgs(sandbox.PoolConfig{}, sandbox.Resources{ScratchBytes: 64 << 20}),
		"--ro-bind", filepath.Join(dir, "script.py"), "/script.py",
		"--bind", mpl, "/mpl",
		"--remount-ro", "/",
		"--", opts.Python, "-I", "-B", "/script.py")
	env := envWith("MPLCONFIGDIR", "/mpl")
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		cmd := exec.Command("bwrap", args...)
		cmd.Env = env
		if os.Geteuid() == 0 {
			cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(opts.UID), Gid: uint32(opts.GID), Groups: []uint32{}}}
		}
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Run(); err != nil || strings.TrimSpace(out.String()) != "" {
			b.Fatalf("bare bwrap python: %v %s", err, out.String())
		}
	}
}

// envWith is the sandbox environment with one variable replaced.
func envWith(key, value string) []string {
	env := sandboxEnv()
	for i, kv := range env {
		if strings.HasPrefix(kv, key+"=") {
			env[i] = key + "=" + value
		}
	}
	return env
}
