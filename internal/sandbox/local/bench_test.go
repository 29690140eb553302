package local

import (
	"bytes"
	"context"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/vizops/viz-operator/internal/sandbox"
	"github.com/vizops/viz-operator/internal/sandbox/agent"
)

// The benchmarks measure what docs/benchmarks.md reports; hack/bench/run.sh runs them
// in one go and prints the ratios. None of them asserts a duration.

// waitArmed waits until every ready sandbox's agent has a started kernel waiting (its
// /health says so in agent.HeaderSpareKernels), so a "warm" iteration measures a warm
// sandbox, not the previous job's next kernel being forked and warmed.
func waitArmed(b *testing.B, p *Pool) {
	b.Helper()
	waitFor(b, 2*time.Minute, "sandboxes with a spare kernel", func() bool {
		ready := readySandboxes(p)
		for _, s := range ready {
			req, _ := http.NewRequest(http.MethodGet, s.proc.client.BaseURL+"/health", nil)
			resp, err := s.proc.client.HTTP.Do(req)
			if err != nil {
				return false
			}
			resp.Body.Close()
			if resp.Header.Get(agent.HeaderSpareKernels) == "0" {
				return false
			}
		}
		return len(ready) > 0
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

// floorInterpreter is the Floor of floor.go, failing the benchmark on error.
type floorInterpreter struct{ f *Floor }

func startFloor(tb testing.TB) *floorInterpreter {
	return startFloorWith(tb, StartFloor)
}

func startForkFloor(tb testing.TB) *floorInterpreter {
	return startFloorWith(tb, StartForkFloor)
}

func startFloorWith(tb testing.TB, start func(Options) (*Floor, error)) *floorInterpreter {
	f, err := start(Options{})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(f.Close)
	return &floorInterpreter{f}
}

func (f *floorInterpreter) render(tb testing.TB) {
	if err := f.f.Render(seedBarChart); err != nil {
		tb.Fatal(err)
	}
}

// BenchmarkFloor is the seed chart rendered by a hot interpreter, no sandbox.
func BenchmarkFloor(b *testing.B) {
	f := startFloor(b)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		f.render(b)
	}
}

// BenchmarkForkFloor is the seed chart rendered in a child forked from a hot
// interpreter, its PNG sent back through a pipe: the floor plus process isolation.
func BenchmarkForkFloor(b *testing.B) {
	f := startForkFloor(b)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		f.render(b)
	}
}

// bareBwrap runs "bwrap ... python3 script.py": a fresh sandboxed interpreter per run,
// with the same isolation flags and a writable, prebuilt font cache.
type bareBwrap struct {
	args, env []string
	opts      Options
}

func newBareBwrap(tb testing.TB) *bareBwrap {
	opts := Options{}.withDefaults()
	if err := preflight(opts); err != nil {
		tb.Fatal(err)
	}
	// Not TempDir: its parent is 0700 and the sandbox user must read the script.
	dir, err := os.MkdirTemp("", "vizops-bare-bwrap-")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { os.RemoveAll(dir) })
	script := seedBarChart + "\nplt.savefig('/tmp/out.png')\n"
	if err := os.WriteFile(filepath.Join(dir, "script.py"), []byte(script), 0o644); err != nil {
		tb.Fatal(err)
	}
	_ = os.Chmod(dir, 0o755)
	mpl := filepath.Join(dir, "mpl")
	if err := os.MkdirAll(mpl, 0o777); err != nil {
		tb.Fatal(err)
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
	return &bareBwrap{args: args, env: envWith("MPLCONFIGDIR", "/mpl"), opts: opts}
}

func (bb *bareBwrap) run(tb testing.TB) {
	cmd := exec.Command("bwrap", bb.args...)
	cmd.Env = bb.env
	if os.Geteuid() == 0 {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(bb.opts.UID), Gid: uint32(bb.opts.GID), Groups: []uint32{}}}
	}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil || strings.TrimSpace(out.String()) != "" {
		tb.Fatalf("bare bwrap python: %v %s", err, out.String())
	}
}

// BenchmarkBareBwrapPython is one fresh "bwrap ... python3 script.py" per iteration.
func BenchmarkBareBwrapPython(b *testing.B) {
	bb := newBareBwrap(b)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		bb.run(b)
	}
}

// BenchmarkRatios measures everything the targets compare in one run, interleaving
// the compared pairs so a CPU shared with other work skews both sides alike, and
// reports medians and ratios (hack/bench/run.sh prints them). Run it with -benchtime 1x.
func BenchmarkRatios(b *testing.B) {
	const pairs, coldPairs, throughputJobs = 21, 5, 30
	ctx := context.Background()
	floor := startFloor(b)
	forkFloor := startForkFloor(b)
	bare := newBareBwrap(b)
	p := benchPool(b, 1, 1)
	timeIt := func(f func()) time.Duration { t := time.Now(); f(); return time.Since(t) }

	var floorT, forkT, warmT, claimT []time.Duration
	for i := 0; i < pairs; i++ {
		floorT = append(floorT, timeIt(func() { floor.render(b) }))
		forkT = append(forkT, timeIt(func() { forkFloor.render(b) }))
		waitArmed(b, p)
		warmT = append(warmT, timeIt(func() {
			r, err := sandbox.Run(ctx, p, "bench", sandbox.Request{Code: seedBarChart})
			if err != nil || !r.Success || len(r.Files) != 1 {
				b.Fatalf("warm run: %v %+v", err, r)
			}
		}))
		waitArmed(b, p)
		claimT = append(claimT, timeIt(func() {
			sb, err := p.Acquire(ctx, "bench")
			if err != nil {
				b.Fatal(err)
			}
			p.Release(sb)
		}))
	}
	closeAndCheck(b, p)

	var coldT, bareT []time.Duration
	for i := 0; i < coldPairs; i++ {
		bareT = append(bareT, timeIt(func() { bare.run(b) }))
		var cp *Pool
		coldT = append(coldT, timeIt(func() {
			var err error
			if cp, err = NewPool(sandbox.PoolConfig{MinReady: 0, MaxSandboxes: 1}, Options{}); err != nil {
				b.Fatal(err)
			}
			r, err := sandbox.Run(ctx, cp, "bench", sandbox.Request{Code: seedBarChart})
			if err != nil || !r.Success || len(r.Files) != 1 {
				b.Fatalf("cold run: %v %+v", err, r)
			}
		}))
		cp.Close()
	}

	// Throughput: two callers, two sandboxes. Its reference is measured, not computed:
	// two hot interpreters rendering concurrently (what "2/floor" means), in rounds that
	// alternate with ours so both see the same competing load.
	tp := benchPool(b, 2, 2)
	floor2 := startFloor(b)
	forkFloor2 := startForkFloor(b)
	var oursPerSec, floorPerSec, forkPerSec float64
	for round := 0; round < 2; round++ {
		floorPerSec += concurrently(throughputJobs, func(w int) {
			if w == 0 {
				floor.render(b)
			} else {
				floor2.render(b)
			}
		})
		forkPerSec += concurrently(throughputJobs, func(w int) {
			if w == 0 {
				forkFloor.render(b)
			} else {
				forkFloor2.render(b)
			}
		})
		oursPerSec += concurrently(throughputJobs, func(int) {
			if r, err := sandbox.Run(ctx, tp, "bench", sandbox.Request{Code: seedBarChart}); err != nil || !r.Success {
				b.Errorf("throughput run: %v %+v", err, r)
			}
		})
		waitArmed(b, tp)
	}
	oursPerSec, floorPerSec, forkPerSec = oursPerSec/2, floorPerSec/2, forkPerSec/2

	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	fl, fk, wm, cl := median(floorT), median(forkT), median(warmT), median(claimT)
	co, ba := median(coldT), median(bareT)
	b.ReportMetric(ms(cl)*1000, "claim-µs")
	b.ReportMetric(ms(fl), "floor-ms")
	b.ReportMetric(ms(wm), "warm-ms")
	b.ReportMetric(float64(wm)/float64(fl), "warm/floor")
	b.ReportMetric(ms(fk), "fork-floor-ms")
	b.ReportMetric(float64(wm)/float64(fk), "warm/fork-floor")
	b.ReportMetric(ms(ba), "bare-bwrap-ms")
	b.ReportMetric(ms(co), "cold-ms")
	b.ReportMetric(float64(co)/float64(ba), "cold/bare")
	b.ReportMetric(oursPerSec, "jobs/s@2")
	b.ReportMetric(floorPerSec, "floor-jobs/s@2")
	b.ReportMetric(oursPerSec/floorPerSec, "throughput/(2/floor)")
	b.ReportMetric(forkPerSec, "fork-floor-jobs/s@2")
	b.ReportMetric(oursPerSec/forkPerSec, "throughput/(2/fork-floor)")
	b.ReportMetric(oursPerSec/(2/fl.Seconds()), "throughput/(2/floor-latency)")
	b.ReportMetric(pageFaultMicros(b), "fault-µs")
}

// pageFaultMicros is the median cost of a first-touch page fault on this machine, in
// µs: every job runs in a freshly forked process, whose first write to each page is a
// fault (a copy-on-write or a new page). On bare metal that is well under a microsecond;
// in a VM that shadows the guest's page tables it can be tens of times more, and it
// then dominates what a job costs beyond the floor.
func pageFaultMicros(tb testing.TB) float64 {
	const size = 32 << 20
	pageSize := os.Getpagesize()
	var runs []time.Duration
	for i := 0; i < 5; i++ {
		mem, err := syscall.Mmap(-1, 0, size, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_PRIVATE|syscall.MAP_ANON)
		if err != nil {
			tb.Fatal(err)
		}
		t := time.Now()
		for off := 0; off < size; off += pageSize {
			mem[off] = 1
		}
		runs = append(runs, time.Since(t)/time.Duration(size/pageSize))
		if err := syscall.Munmap(mem); err != nil {
			tb.Fatal(err)
		}
	}
	return float64(median(runs)) / float64(time.Microsecond)
}

func median(ds []time.Duration) time.Duration {
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[len(s)/2]
}

// concurrently runs n jobs on two workers and returns the jobs per second.
func concurrently(n int, job func(worker int)) float64 {
	jobs := make(chan struct{}, n)
	for i := 0; i < n; i++ {
		jobs <- struct{}{}
	}
	close(jobs)
	var wg sync.WaitGroup
	start := time.Now()
	for w := 0; w < 2; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range jobs {
				job(w)
			}
		}()
	}
	wg.Wait()
	return float64(n) / time.Since(start).Seconds()
}
