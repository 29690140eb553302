// Command e2e is the end-to-end half of `make bench`: the operator under load, measured
// from outside. It starts an embedded control plane (envtest's kube-apiserver and etcd),
// runs the real manager binary against it as a subprocess (so its peak RSS is its own,
// read from /proc/<pid>/status VmHWM), creates a Local SandboxPool and measures, in one
// run, each figure against a reference measured in the same run:
//
//   - warm: the seed's bar chart (spec.code), one request at a time, created →
//     Succeeded with its artifact stored (from watch events), p50 and p95, against a hot
//     interpreter rendering the same chart (local.Floor), the two interleaved;
//   - pool/2floor: two concurrent jobs on a Local pool of two against two hot
//     interpreters rendering concurrently (what BenchmarkRatios measures);
//   - drain: N requests created at once on a pool capped at C, against the same pool
//     configuration driven directly by C goroutines, without the controller (before and
//     after the drain, averaged);
//   - scale: charts/s with W requests waiting, kept at W by creating one request for
//     each that finishes, for each W of -waiting;
//   - the manager's peak RSS over all of it.
//
// Every request is a real chart. A fresh manager runs each of warm, drain and each
// scale point, and the phase's requests are deleted while no manager runs, so no phase
// pays for the previous one's leftovers. Phases that the controller cannot finish in
// time are cut at -drain-cap / -scale-cap, and what was measured until then is
// reported (marked "capped"). Nothing here asserts a duration: it reports.
package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	goruntime "runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/apimachinery/pkg/watch"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/go-logr/logr"

	vizv1 "github.com/vizops/viz-operator/api/v1alpha1"
	"github.com/vizops/viz-operator/hack/internal/controlplane"
	"github.com/vizops/viz-operator/internal/sandbox"
	"github.com/vizops/viz-operator/internal/sandbox/agent"
	"github.com/vizops/viz-operator/internal/sandbox/local"
)

const (
	namespace = "vizops-bench"
	poolName  = "bench"
)

type config struct {
	root, manager, assets, logDir, mdOut string
	noBuild, verbose                     bool
	warmN, drainN, poolCap, poolJobs     int
	throughputJobs, window               int
	creators                             int
	waiting                              []int
	phases                               map[string]bool // empty: all
	gap, settle                          time.Duration
	drainCap, scaleCap, timeout          time.Duration
	readyWait, intakeProfile             time.Duration
	managerFlags                         []string // passed to every manager
}

func main() {
	agent.RunIfReexec() // the direct pool's Local sandboxes run this binary as their agent
	var cfg config
	var waiting string
	flag.StringVar(&cfg.root, "root", ".", "the repository's root")
	flag.StringVar(&cfg.manager, "manager", "bin/manager", "manager binary (built from ./cmd, relative to -root)")
	flag.BoolVar(&cfg.noBuild, "no-build", false, "use the manager binary as it is")
	flag.StringVar(&cfg.assets, "assets", "", "envtest binaries (kube-apiserver, etcd); default $KUBEBUILDER_ASSETS, the caches, else hack/envtest-assets.sh")
	flag.StringVar(&cfg.logDir, "logs", "bin/bench", "directory for the managers' logs (relative to -root)")
	flag.StringVar(&cfg.mdOut, "md", "bin/bench/e2e.md", "also write the results as Markdown here (relative to -root); empty: do not")
	flag.IntVar(&cfg.warmN, "warm", 50, "warm requests, sent one at a time (after 3 that are not counted)")
	flag.DurationVar(&cfg.gap, "gap", 300*time.Millisecond, "idle time before and after each warm request")
	flag.IntVar(&cfg.throughputJobs, "throughput-jobs", 30, "jobs per round of pool/2floor (two rounds each side)")
	flag.IntVar(&cfg.drainN, "drain", 500, "requests created at once for the drain")
	flag.IntVar(&cfg.poolCap, "cap", 4, "the pool's maxSandboxes (and minReady for drain and scale)")
	flag.IntVar(&cfg.poolJobs, "pool-jobs", 0, "jobs of the direct-pool reference, half before and half after the drain (0: as many as -drain)")
	flag.StringVar(&waiting, "waiting", "50,2000,10000", "comma-separated numbers of waiting requests for the scale figures; the first is the reference")
	flag.IntVar(&cfg.creators, "creators", 8, "clients creating a burst of requests in parallel (drain and scale)")
	flag.IntVar(&cfg.window, "window", 40, "completions measured at each scale point")
	flag.DurationVar(&cfg.drainCap, "drain-cap", 4*time.Minute, "stop the drain after this long and report the rate so far")
	flag.DurationVar(&cfg.scaleCap, "scale-cap", 3*time.Minute, "stop a scale point this long after its requests were created and report the rate so far")
	flag.DurationVar(&cfg.readyWait, "ready-wait", 3*time.Minute, "bound on the wait for a fresh manager's pool to have its sandboxes ready")
	flag.DurationVar(&cfg.intakeProfile, "intake-profile", 40*time.Second, "length of the CPU profile taken from the first creation of each scale point")
	flag.DurationVar(&cfg.settle, "settle", 5*time.Second, "wait after a pool is ready, for its background imports")
	flag.DurationVar(&cfg.timeout, "timeout", 40*time.Minute, "bound on the whole run")
	flag.BoolVar(&cfg.verbose, "v", false, "print every watch event of the warm requests (where the time goes)")
	var phases string
	flag.StringVar(&phases, "phases", "", "comma-separated phases to run (warm, pool2floor, drain, scale); empty: all. E.g. -phases scale -waiting 2000 for the intake of 2,000 alone")
	var managerFlags string
	flag.StringVar(&managerFlags, "manager-flags", "", "extra flags for every manager, space-separated (e.g. \"--request-workers=16\")")
	flag.Parse()
	cfg.managerFlags = strings.Fields(managerFlags)
	cfg.phases = map[string]bool{}
	for _, p := range strings.Split(phases, ",") {
		if p = strings.TrimSpace(p); p != "" {
			cfg.phases[p] = true
		}
	}
	for _, f := range strings.Split(waiting, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			fmt.Fprintf(os.Stderr, "e2e: -waiting: %q is not a positive number\n", f)
			os.Exit(2)
		}
		cfg.waiting = append(cfg.waiting, n)
	}
	if cfg.poolJobs == 0 {
		cfg.poolJobs = cfg.drainN
	}
	ctrllog.SetLogger(logr.Discard())

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, cfg.timeout)
	defer cancel()
	if err := run(ctx, cfg, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "e2e: error:", err)
		os.Exit(1)
	}
}

// bench is one run: the control plane, the client and what was measured so far.
type bench struct {
	cfg     config
	root    string
	out     io.Writer
	started time.Time
	cp      *controlplane.ControlPlane
	c       client.WithWatch
	rest    *rest.Config
	tr      *tracker
	mgrBin  string
	res     results
	stopped map[*controlplane.Manager]bool
	failMu  sync.Mutex
}

type results struct {
	machine, loads     []string
	startLoad, endLoad string
	floorP50, floorP95 time.Duration
	warmP50, warmP95   time.Duration
	warmN              int
	execP50            time.Duration
	directP50          time.Duration // the same chart on a direct warm pool, in the warm loop
	// pair*: warm minus direct request by request (the two are adjacent in time, so the
	// machine's load drifts less between them); toRun/fromRun: create → Running seen,
	// Running seen → Succeeded seen.
	pairP25, pairP50, pairP75, toRunP50, fromRunP50 time.Duration
	// ctl*: request by request, end to end less the job as the manager logged it
	// (Running written → job ended): the controller's own part; before: create →
	// Running written; after: job ended → Succeeded seen by the bench's watch.
	ctlP25, ctlP50, ctlP75, ctlBeforeP50, ctlAfterP50 time.Duration
	ctlN                                              int
	// ctlSegP50: p50 of Create's round trip, Create answered → the manager about to
	// write Running (watch, queue, reconcile), the Running write, the job, job ended →
	// Succeeded written (wake, reconcile, write), written → seen by the bench's watch.
	ctlSegP50                     [6]time.Duration
	api                           apiCounts      // the manager's API requests over the counted warm run
	byResource                    resourceWrites // the API server's writes over the same run, by resource
	poolWrites                    int            // of which writes to the SandboxPool (its live counts in status)
	cpuProfile                    string         // the warm run's CPU profile
	rss                           map[string]int64
	pool2, floor2                 float64 // jobs/s
	poolRate, drainRate           float64 // charts/s
	poolRateBefore, poolRateAfter float64
	poolJobs, drainDone           int
	drainElapsed                  time.Duration
	drainCapped                   bool
	scale                         []scalePoint
	peakRSS                       int64 // bytes
	peakPhase                     string
	failures                      map[string]int
	warmUncounted, drainFailed    int
	directFailed                  int
}

type scalePoint struct {
	waiting, measured int
	elapsed           time.Duration
	rate              float64
	capped            bool
	created           time.Duration // how long creating the initial requests took
	read              time.Duration // until the manager had read (queued) every initial request
	failed            int
	intakeAPI         apiCounts // the manager's API requests from the first creation until all were read
	intakeProfile     string    // a CPU profile of the manager over the intake
	windowAPI         apiCounts // the manager's API requests over the measured window
}

func (b *bench) step(format string, args ...any) {
	fmt.Fprintf(b.out, "==> [%6.1fs] %s\n", time.Since(b.started).Seconds(), fmt.Sprintf(format, args...))
}

func run(ctx context.Context, cfg config, out io.Writer) error {
	b := &bench{cfg: cfg, out: out, started: time.Now(), res: results{failures: map[string]int{}}, stopped: map[*controlplane.Manager]bool{}}
	var err error
	if b.root, err = filepath.Abs(cfg.root); err != nil {
		return err
	}
	abs := func(p string) string {
		if filepath.IsAbs(p) {
			return p
		}
		return filepath.Join(b.root, p)
	}
	b.mgrBin = abs(cfg.manager)
	cfg.logDir = abs(cfg.logDir)
	b.cfg.logDir = cfg.logDir
	if err := os.MkdirAll(cfg.logDir, 0o755); err != nil {
		return err
	}
	b.res.machine = describeMachine()
	b.res.startLoad = loadavg()
	for _, l := range b.res.machine {
		fmt.Fprintln(out, "machine:", l)
	}
	fmt.Fprintln(out, "load average at start:", b.res.startLoad)

	assets := cfg.assets
	if assets == "" {
		if assets = controlplane.CachedAssets(b.root); assets == "" {
			b.step("finding the envtest binaries (hack/envtest-assets.sh; building kube-apiserver takes about 7 minutes once)")
			if assets, err = controlplane.FindAssets(b.root, os.Stderr); err != nil {
				return err
			}
		}
	}
	if !cfg.noBuild {
		b.step("building the manager: go build -o %s ./cmd", b.mgrBin)
		if err := controlplane.BuildManager(b.root, b.mgrBin, os.Stderr); err != nil {
			return err
		}
	}
	b.step("starting the control plane (kube-apiserver, etcd from %s)", assets)
	if b.cp, err = controlplane.Start(assets, filepath.Join(b.root, "config", "crd", "bases"), "vizops-bench"); err != nil {
		return err
	}
	defer func() {
		b.step("stopping the control plane")
		if err := b.cp.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, "e2e: stopping the control plane:", err)
		}
	}()
	restCfg, err := clientcmd.BuildConfigFromFlags("", b.cp.Kubeconfig)
	if err != nil {
		return err
	}
	// The benchmark's own client must not be what limits the rate.
	restCfg.QPS, restCfg.Burst = 1000, 2000
	scheme := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(scheme))
	utilruntime.Must(vizv1.AddToScheme(scheme))
	b.rest = restCfg
	if b.c, err = client.NewWithWatch(restCfg, client.Options{Scheme: scheme}); err != nil {
		return err
	}
	if err := b.c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: namespace}}); err != nil {
		return err
	}
	localClass := &vizv1.SandboxClass{ObjectMeta: metav1.ObjectMeta{Name: "bench-local", Annotations: map[string]string{vizv1.AnnotationDefaultClass: "true"}},
		Spec: vizv1.SandboxClassSpec{Backend: vizv1.BackendLocal}}
	if err := b.c.Create(ctx, localClass); err != nil {
		return err
	}
	if err := b.c.Create(ctx, b.poolObject(1)); err != nil {
		return err
	}
	b.tr = newTracker()
	if cfg.verbose {
		b.tr.trace = "warm-"
	}
	go b.tr.run(ctx, b.c, namespace)

	phases := []struct {
		name string
		fn   func(context.Context) error
	}{
		{"warm", b.warm},
		{"pool2floor", b.pool2},
		{"drain", b.drain},
		{"scale", b.scale},
	}
	for _, ph := range phases {
		if len(cfg.phases) > 0 && !cfg.phases[ph.name] {
			continue
		}
		if err := ph.fn(ctx); err != nil {
			if ctx.Err() != nil {
				err = fmt.Errorf("%s: %w (-timeout %s)", ph.name, ctx.Err(), cfg.timeout)
			}
			b.report()
			return fmt.Errorf("%s: %w", ph.name, err)
		}
	}
	b.res.endLoad = loadavg()
	b.report()
	return nil
}

// poolObject is the benchmark's SandboxPool: the sample's resources, cap -cap.
func (b *bench) poolObject(minReady int32) *vizv1.SandboxPool {
	return &vizv1.SandboxPool{
		ObjectMeta: metav1.ObjectMeta{Name: poolName, Namespace: namespace},
		Spec: vizv1.SandboxPoolSpec{
			MinReady:     ptr.To(minReady),
			MaxSandboxes: int32(b.cfg.poolCap),
			Resources: vizv1.SandboxResources{
				CPU:     ptr.To(resource.MustParse("1")),
				Memory:  ptr.To(resource.MustParse("1Gi")),
				Pids:    ptr.To(int32(128)),
				Scratch: ptr.To(resource.MustParse("64Mi")),
			},
		},
	}
}

// directPoolConfig is the same pool for the sandbox package directly.
func (b *bench) directPoolConfig(minReady, maxSandboxes int) sandbox.PoolConfig {
	return sandbox.PoolConfig{
		MinReady: minReady, MaxSandboxes: maxSandboxes, Network: sandbox.NetworkNone,
		Resources: sandbox.Resources{CPUMillis: 1000, MemoryBytes: 1 << 30, Pids: 128, ScratchBytes: 64 << 20},
	}
}

func (b *bench) setMinReady(ctx context.Context, n int32) error {
	sp := &vizv1.SandboxPool{}
	if err := b.c.Get(ctx, client.ObjectKey{Namespace: namespace, Name: poolName}, sp); err != nil {
		return err
	}
	before := sp.DeepCopy()
	sp.Spec.MinReady = ptr.To(n)
	return b.c.Patch(ctx, sp, client.MergeFrom(before))
}

// startManager runs a fresh manager for phase and waits until its pool has want
// sandboxes ready, then settles.
func (b *bench) startManager(ctx context.Context, phase string, want int, args ...string) (*controlplane.Manager, error) {
	log := filepath.Join(b.cfg.logDir, "manager-"+phase+".log")
	started := time.Now().Truncate(time.Second)
	m, err := controlplane.StartManager(b.mgrBin, b.cp.Kubeconfig, log, append(args, b.cfg.managerFlags...)...)
	if err != nil {
		return nil, err
	}
	b.step("%s: manager started (pid %d, log %s); waiting for %d ready sandboxes", phase, m.Pid(), log, want)
	deadline := time.Now().Add(b.cfg.readyWait)
	var seen string // the pool as last read, for the error
	for {
		sp := &vizv1.SandboxPool{}
		if err := b.c.Get(ctx, client.ObjectKey{Namespace: namespace, Name: poolName}, sp); err == nil {
			n := 0
			for _, s := range sp.Status.Sandboxes {
				if s.State == string(sandbox.StateReady) && s.Since != nil && !s.Since.Time.Before(started) {
					n++
				}
			}
			seen = fmt.Sprintf("spec.minReady %d, maxSandboxes %d; status: %d ready (%d since this manager started), %d busy, %d starting",
				ptr.Deref(sp.Spec.MinReady, 1), sp.Spec.MaxSandboxes, sp.Status.Ready, n, sp.Status.Busy, sp.Status.Starting)
			if n >= want {
				break
			}
		}
		select {
		case <-ctx.Done():
			b.stopManager(m, phase)
			return nil, ctx.Err()
		case <-m.Exited():
			return nil, fmt.Errorf("%w; its log: %s\n%s", m.ExitErr(), log, controlplane.Tail(log, 15))
		case <-time.After(250 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			b.stopManager(m, phase)
			return nil, fmt.Errorf("the pool did not have %d ready sandboxes within %s (-ready-wait); the pool as last read: %s; the manager's log: %s", want, b.cfg.readyWait, seen, log)
		}
	}
	time.Sleep(b.cfg.settle)
	return m, nil
}

// stopManager records the manager's peak RSS and stops it (once).
func (b *bench) stopManager(m *controlplane.Manager, phase string) {
	if b.stopped[m] {
		return
	}
	b.stopped[m] = true
	hwm := peakRSS(m.Pid())
	if hwm > b.res.peakRSS {
		b.res.peakRSS, b.res.peakPhase = hwm, phase
	}
	if b.res.rss == nil {
		b.res.rss = map[string]int64{}
	}
	b.res.rss[phase] = hwm
	if err := m.Stop(30 * time.Second); err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
	}
}

// cleanup deletes every request while no manager runs, and waits until they are gone.
func (b *bench) cleanup(ctx context.Context) error {
	if err := b.c.DeleteAllOf(ctx, &vizv1.VisualizationRequest{}, client.InNamespace(namespace)); err != nil {
		return err
	}
	for {
		var list metav1.PartialObjectMetadataList
		list.SetGroupVersionKind(vizv1.GroupVersion.WithKind("VisualizationRequestList"))
		if err := b.c.List(ctx, &list, client.InNamespace(namespace), client.Limit(1)); err != nil {
			return err
		}
		if len(list.Items) == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func chartRequest(name string) *vizv1.VisualizationRequest {
	return &vizv1.VisualizationRequest{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: namespace},
		Spec: vizv1.VisualizationRequestSpec{
			Code:           local.SeedBarChart,
			SandboxPoolRef: vizv1.SandboxPoolReference{Name: poolName},
			OutputFormats:  []vizv1.OutputFormat{vizv1.FormatPNG},
		},
	}
}

// createAll creates the named requests with -creators clients in parallel.
func (b *bench) createAll(ctx context.Context, names []string) error {
	work := make(chan string)
	errs := make(chan error, b.cfg.creators)
	var wg sync.WaitGroup
	for i := 0; i < b.cfg.creators; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := range work {
				if err := b.c.Create(ctx, chartRequest(n)); err != nil {
					errs <- fmt.Errorf("creating %s: %w", n, err)
					return
				}
			}
		}()
	}
	var err error
feed:
	for _, n := range names {
		select {
		case work <- n:
		case err = <-errs:
			break feed
		}
	}
	close(work)
	wg.Wait()
	if err == nil {
		select {
		case err = <-errs:
		default:
		}
	}
	return err
}

// ---- warm latency --------------------------------------------------------------------

func (b *bench) warm(ctx context.Context) error {
	const uncounted = 3
	b.res.warmUncounted = uncounted
	b.res.loads = append(b.res.loads, "warm: "+loadavg())
	metricsAddr, err := freeAddr()
	if err != nil {
		return err
	}
	pprofAddr, err := freeAddr()
	if err != nil {
		return err
	}
	// Debug logs with nanosecond times: each request's job as the manager saw it
	// (managerJobSpans), for the controller's own part of each request.
	m, err := b.startManager(ctx, "warm", 1, "--metrics-bind-address="+metricsAddr, "--pprof-bind-address="+pprofAddr,
		"--zap-log-level=debug", "--zap-time-encoding=rfc3339nano")
	if err != nil {
		return err
	}
	defer b.stopManager(m, "warm")
	floor, err := local.StartFloor(local.Options{})
	if err != nil {
		return err
	}
	defer floor.Close()
	// The direct run: the same chart on a warm Local pool outside the operator, in the
	// same loop, so warm minus direct is the controller's own cost.
	direct, err := b.warmDirectPool(ctx, b.directPoolConfig(1, 1))
	if err != nil {
		return err
	}
	defer direct.Close()
	b.step("warm: %d requests one at a time (%d more first, not counted), each after a floor render, a direct run and %s idle", b.cfg.warmN, uncounted, b.cfg.gap)
	var floorT, warmT, execT, directT, toRunT, fromRunT, pairT []time.Duration
	var e2e []warmTimes
	var before apiCounts
	var poolWatch watch.Interface
	poolWrites := make(chan int, 1)
	profDone := make(chan error, 1)
	apiProfDone := make(chan error, 1)
	for i := 0; i < uncounted+b.cfg.warmN; i++ {
		if i == uncounted {
			if before, err = scrapeAPICounts(ctx, metricsAddr); err != nil {
				return err
			}
			// The API server's own request latencies over the counted run (its
			// /metrics, before and after): how much of a status write's round trip the
			// API server and etcd take.
			if err := b.saveAPIServerMetrics(ctx, filepath.Join(b.cfg.logDir, "warm-apiserver-metrics-before.txt")); err != nil {
				b.step("warm: no API server metrics: %v", err)
			}
			// The pool's status writes (live counts, at most every 5 s) are the
			// manager's too, but not any request's: counted apart from the watch.
			if poolWatch, err = b.c.Watch(ctx, &vizv1.SandboxPoolList{}, client.InNamespace(namespace)); err != nil {
				return err
			}
			go func() {
				n := 0
				for ev := range poolWatch.ResultChan() {
					if ev.Type == watch.Modified {
						n++
					}
				}
				poolWrites <- n
			}()
			// A CPU profile of the counted run (about 1 s a request here), saved beside the results.
			secs := min(max(b.cfg.warmN, 5), 120)
			b.res.cpuProfile = filepath.Join(b.cfg.logDir, "warm-cpu.pprof")
			go func() { profDone <- saveCPUProfile(ctx, pprofAddr, secs, b.res.cpuProfile) }()
			// The API server's side of the same run: what a status write costs there.
			apiProf := filepath.Join(b.cfg.logDir, "warm-apiserver-cpu.pprof")
			go func() { apiProfDone <- b.saveAPIServerProfile(ctx, secs, apiProf) }()
		}
		t0 := time.Now()
		if err := floor.Render(local.SeedBarChart); err != nil {
			return err
		}
		ft := time.Since(t0)
		for direct.Status().Ready < 1 && ctx.Err() == nil {
			time.Sleep(10 * time.Millisecond)
		}
		t0 = time.Now()
		if err := b.runChart(ctx, direct); err != nil {
			return err
		}
		dt := time.Since(t0)
		time.Sleep(b.cfg.gap)
		name := fmt.Sprintf("warm-%03d", i)
		t0 = time.Now()
		if err := b.c.Create(ctx, chartRequest(name)); err != nil {
			return err
		}
		created := time.Now()
		o, err := b.tr.wait(ctx, name, time.Minute)
		if err != nil {
			return err
		}
		if !o.ok {
			return fmt.Errorf("%s did not succeed: %s", name, o.reason)
		}
		if i >= uncounted {
			floorT = append(floorT, ft)
			warmT = append(warmT, o.at.Sub(t0))
			execT = append(execT, o.exec)
			directT = append(directT, dt)
			pairT = append(pairT, o.at.Sub(t0)-dt)
			e2e = append(e2e, warmTimes{name: name, t0: t0, created: created, seen: o.at})
			if !o.running.IsZero() {
				toRunT = append(toRunT, o.running.Sub(t0))
				fromRunT = append(fromRunT, o.at.Sub(o.running))
			}
		}
		time.Sleep(b.cfg.gap)
	}
	after, err := scrapeAPICounts(ctx, metricsAddr)
	if err != nil {
		return err
	}
	b.res.api = after.minus(before)
	poolWatch.Stop()
	b.res.poolWrites = <-poolWrites
	b.res.directP50 = percentile(directT, 0.5)
	b.res.pairP50, b.res.pairP25, b.res.pairP75 = percentile(pairT, 0.5), percentile(pairT, 0.25), percentile(pairT, 0.75)
	b.res.toRunP50, b.res.fromRunP50 = percentile(toRunT, 0.5), percentile(fromRunT, 0.5)
	if err := b.saveAPIServerMetrics(ctx, filepath.Join(b.cfg.logDir, "warm-apiserver-metrics-after.txt")); err != nil {
		b.step("warm: no API server metrics: %v", err)
	} else {
		wb, errB := readResourceWrites(filepath.Join(b.cfg.logDir, "warm-apiserver-metrics-before.txt"))
		wa, errA := readResourceWrites(filepath.Join(b.cfg.logDir, "warm-apiserver-metrics-after.txt"))
		if errA == nil && errB == nil {
			b.res.byResource = wa.minus(wb)
		}
	}
	if err := saveMetrics(ctx, metricsAddr, filepath.Join(b.cfg.logDir, "warm-metrics.txt")); err != nil {
		b.step("warm: no metrics saved: %v", err)
	}
	if err := <-profDone; err != nil {
		b.step("warm: no CPU profile: %v", err)
		b.res.cpuProfile = ""
	}
	if err := <-apiProfDone; err != nil {
		b.step("warm: no API server CPU profile: %v", err)
	}
	b.res.floorP50, b.res.floorP95 = percentile(floorT, 0.5), percentile(floorT, 0.95)
	b.res.warmP50, b.res.warmP95 = percentile(warmT, 0.5), percentile(warmT, 0.95)
	b.res.warmN = len(warmT)
	b.res.execP50 = percentile(execT, 0.5)
	b.step("warm: p50 %s p95 %s; floor p50 %s p95 %s", ms(b.res.warmP50), ms(b.res.warmP95), ms(b.res.floorP50), ms(b.res.floorP95))
	b.stopManager(m, "warm") // its log complete
	if spans, err := managerJobSpans(filepath.Join(b.cfg.logDir, "manager-warm.log")); err != nil {
		b.step("warm: no job times from the manager's log: %v", err)
	} else {
		var own, pre, post []time.Duration
		var seg [6][]time.Duration
		for _, w := range e2e {
			sp, ok := spans[w.name]
			if !ok || sp.ack.IsZero() || sp.end.IsZero() {
				continue
			}
			own = append(own, w.seen.Sub(w.t0)-sp.end.Sub(sp.ack))
			pre = append(pre, sp.ack.Sub(w.t0))
			post = append(post, w.seen.Sub(sp.end))
			if !sp.start.IsZero() && !sp.done.IsZero() {
				for i, d := range []time.Duration{w.created.Sub(w.t0), sp.start.Sub(w.created), sp.ack.Sub(sp.start),
					sp.end.Sub(sp.ack), sp.done.Sub(sp.end), w.seen.Sub(sp.done)} {
					seg[i] = append(seg[i], d)
				}
			}
		}
		b.res.ctlN = len(own)
		b.res.ctlP25, b.res.ctlP50, b.res.ctlP75 = percentile(own, 0.25), percentile(own, 0.5), percentile(own, 0.75)
		for i := range seg {
			b.res.ctlSegP50[i] = percentile(seg[i], 0.5)
		}
		b.res.ctlBeforeP50, b.res.ctlAfterP50 = percentile(pre, 0.5), percentile(post, 0.5)
	}
	return b.cleanup(ctx)
}

// ---- pool/2floor ---------------------------------------------------------------------

// runConcurrently runs n jobs on workers goroutines and returns jobs per second.
func runConcurrently(n, workers int, job func(worker int) error) (float64, error) {
	jobs := make(chan struct{}, n)
	for i := 0; i < n; i++ {
		jobs <- struct{}{}
	}
	close(jobs)
	var wg sync.WaitGroup
	var once sync.Once
	var firstErr error
	start := time.Now()
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range jobs {
				if err := job(w); err != nil {
					once.Do(func() { firstErr = err })
					return
				}
			}
		}()
	}
	wg.Wait()
	return float64(n) / time.Since(start).Seconds(), firstErr
}

// runChart runs the chart on a pool directly. A job that fails (a sandbox lost on an
// overloaded machine, say) is counted in directFailed and reported, not fatal: the
// rate then counts it as a job done, which flatters the reference a little.
func (b *bench) runChart(ctx context.Context, p sandbox.Pool) error {
	r, err := sandbox.Run(ctx, p, "bench", sandbox.Request{Code: local.SeedBarChart})
	if err == nil && (!r.Success || len(r.Files) != 1) {
		err = fmt.Errorf("the chart did not render: %+v", r.Error)
	}
	if err != nil {
		if ctx.Err() != nil {
			return err
		}
		b.failMu.Lock()
		b.res.directFailed++
		b.res.failures["direct pool: "+err.Error()]++
		b.failMu.Unlock()
	}
	return nil
}

// warmDirectPool starts a Local pool outside the operator, waits until it is ready,
// runs a few jobs that are not counted, and settles.
func (b *bench) warmDirectPool(ctx context.Context, cfg sandbox.PoolConfig) (*local.Pool, error) {
	p, err := local.NewPool(cfg, local.Options{})
	if err != nil {
		return nil, err
	}
	deadline := time.Now().Add(3 * time.Minute)
	for p.Status().Ready < cfg.MinReady {
		if time.Now().After(deadline) || ctx.Err() != nil {
			p.Close()
			return nil, fmt.Errorf("the direct pool did not have %d ready sandboxes within 3 minutes", cfg.MinReady)
		}
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(b.cfg.settle)
	if _, err := runConcurrently(2*cfg.MaxSandboxes, cfg.MaxSandboxes, func(int) error { return b.runChart(ctx, p) }); err != nil {
		p.Close()
		return nil, err
	}
	time.Sleep(b.cfg.settle)
	return p, nil
}

func (b *bench) pool2(ctx context.Context) error {
	b.res.loads = append(b.res.loads, "pool/2floor: "+loadavg())
	b.step("pool/2floor: 2 callers on a Local pool of 2 vs 2 hot interpreters, %d jobs per round, rounds alternating", b.cfg.throughputJobs)
	p, err := b.warmDirectPool(ctx, sandbox.PoolConfig{MinReady: 2, MaxSandboxes: 2})
	if err != nil {
		return err
	}
	defer p.Close()
	var floors [2]*local.Floor
	for i := range floors {
		if floors[i], err = local.StartFloor(local.Options{}); err != nil {
			return err
		}
		defer floors[i].Close()
	}
	var ours, ref float64
	for round := 0; round < 2; round++ {
		r, err := runConcurrently(b.cfg.throughputJobs, 2, func(w int) error { return floors[w].Render(local.SeedBarChart) })
		if err != nil {
			return err
		}
		ref += r
		o, err := runConcurrently(b.cfg.throughputJobs, 2, func(int) error { return b.runChart(ctx, p) })
		if err != nil {
			return err
		}
		ours += o
		time.Sleep(time.Second) // the last jobs' sandboxes re-arm
	}
	b.res.pool2, b.res.floor2 = ours/2, ref/2
	b.step("pool/2floor: pool %.2f jobs/s, 2 hot interpreters %.2f renders/s", b.res.pool2, b.res.floor2)
	return nil
}

// ---- drain ---------------------------------------------------------------------------

func (b *bench) drain(ctx context.Context) error {
	c := b.cfg.poolCap
	b.res.loads = append(b.res.loads, "drain: "+loadavg())
	b.step("drain: the reference, %d goroutines on a Local pool of %d (minReady %d), %d jobs before the drain", c, c, c, b.cfg.poolJobs/2)
	p, err := b.warmDirectPool(ctx, b.directPoolConfig(c, c))
	if err != nil {
		return err
	}
	defer p.Close()
	direct := func(n int) (float64, error) {
		return runConcurrently(n, c, func(int) error { return b.runChart(ctx, p) })
	}
	if b.res.poolRateBefore, err = direct(b.cfg.poolJobs / 2); err != nil {
		return err
	}
	b.step("drain: direct pool %.2f charts/s", b.res.poolRateBefore)

	if err := b.setMinReady(ctx, int32(c)); err != nil {
		return err
	}
	m, err := b.startManager(ctx, "drain", c)
	if err != nil {
		return err
	}
	names := make([]string, b.cfg.drainN)
	for i := range names {
		names[i] = fmt.Sprintf("drain-%04d", i)
	}
	b.step("drain: creating %d requests at once (cap %s)", len(names), b.cfg.drainCap)
	finished := b.tr.subscribe("drain-")
	start := time.Now()
	createErr := make(chan error, 1)
	go func() { createErr <- b.createAll(ctx, names) }()
	capT := time.NewTimer(b.cfg.drainCap)
	defer capT.Stop()
	progress := time.NewTicker(30 * time.Second)
	defer progress.Stop()
	var last time.Time
	done := 0
wait:
	for done < len(names) {
		select {
		case o := <-finished:
			done++
			last = o.at
			if !o.ok {
				b.res.drainFailed++
				b.res.failures[o.reason]++
			}
		case err := <-createErr:
			if err != nil {
				b.stopManager(m, "drain")
				return err
			}
		case <-progress.C:
			b.step("drain: %d of %d finished", done, len(names))
		case <-capT.C:
			b.res.drainCapped = true
			last = time.Now()
			break wait
		case <-ctx.Done():
			b.stopManager(m, "drain")
			return ctx.Err()
		case <-m.Exited():
			return fmt.Errorf("the manager exited during the drain: %w", m.ExitErr())
		}
	}
	b.tr.unsubscribe()
	b.res.drainDone, b.res.drainElapsed = done, last.Sub(start)
	b.res.drainRate = float64(done) / b.res.drainElapsed.Seconds()
	capped := ""
	if b.res.drainCapped {
		capped = fmt.Sprintf(" (capped at %s)", b.cfg.drainCap)
	}
	b.step("drain: %d of %d in %.1fs%s: %.2f charts/s", done, len(names), b.res.drainElapsed.Seconds(), capped, b.res.drainRate)
	b.stopManager(m, "drain")
	if err := b.cleanup(ctx); err != nil {
		return err
	}

	b.step("drain: the reference again, %d jobs after the drain", b.cfg.poolJobs-b.cfg.poolJobs/2)
	if b.res.poolRateAfter, err = direct(b.cfg.poolJobs - b.cfg.poolJobs/2); err != nil {
		return err
	}
	// The mean rate over both halves: total jobs over total time.
	n1, n2 := float64(b.cfg.poolJobs/2), float64(b.cfg.poolJobs-b.cfg.poolJobs/2)
	b.res.poolRate = (n1 + n2) / (n1/b.res.poolRateBefore + n2/b.res.poolRateAfter)
	b.res.poolJobs = b.cfg.poolJobs
	b.step("drain: direct pool %.2f charts/s after; %.2f over both", b.res.poolRateAfter, b.res.poolRate)
	return nil
}

// ---- scale ---------------------------------------------------------------------------

func (b *bench) scale(ctx context.Context) error {
	for _, w := range b.cfg.waiting {
		sp, err := b.scalePoint(ctx, w)
		if err != nil {
			return err
		}
		b.res.scale = append(b.res.scale, sp)
	}
	return nil
}

// scalePoint keeps w requests waiting (w + cap outstanding: one new request for each
// that finishes) and measures the completion rate over -window completions, starting
// at the first completion after the manager has read (queued) every initial request.
func (b *bench) scalePoint(ctx context.Context, w int) (scalePoint, error) {
	phase := fmt.Sprintf("scale-%d", w)
	b.res.loads = append(b.res.loads, phase+": "+loadavg())
	// The pool keeps -cap sandboxes warm, as in the drain. The scale phase sets it
	// itself: run alone (-phases scale), the pool still has the warm phase's minReady
	// of 1, and the manager would never make the cap's worth of ready sandboxes.
	if err := b.setMinReady(ctx, int32(b.cfg.poolCap)); err != nil {
		return scalePoint{}, err
	}
	metricsAddr, err := freeAddr()
	if err != nil {
		return scalePoint{}, err
	}
	pprofAddr, err := freeAddr()
	if err != nil {
		return scalePoint{}, err
	}
	m, err := b.startManager(ctx, phase, b.cfg.poolCap, "--metrics-bind-address="+metricsAddr, "--pprof-bind-address="+pprofAddr)
	if err != nil {
		return scalePoint{}, err
	}
	defer b.stopManager(m, phase)
	prefix := fmt.Sprintf("s%d-", w)
	var (
		mu   sync.Mutex
		next int
	)
	newName := func() string {
		mu.Lock()
		defer mu.Unlock()
		next++
		return fmt.Sprintf("%s%05d", prefix, next)
	}
	total := w + b.cfg.poolCap
	names := make([]string, total)
	for i := range names {
		names[i] = newName()
	}
	sp := scalePoint{waiting: w}
	finished := b.tr.subscribe(prefix)
	defer b.tr.unsubscribe()
	b.step("%s: creating %d requests (%d waiting, %d running), then one for each that finishes", phase, total, w, b.cfg.poolCap)
	apiBefore, err := scrapeAPICounts(ctx, metricsAddr)
	if err != nil {
		return scalePoint{}, err
	}
	// A CPU profile of the intake (the burst of creations until all are read), saved
	// beside the manager's log.
	profDone := make(chan error, 1)
	profPath := filepath.Join(b.cfg.logDir, phase+"-intake-cpu.pprof")
	go func() { profDone <- saveCPUProfile(ctx, pprofAddr, int(b.cfg.intakeProfile.Seconds()), profPath) }()
	start := time.Now()
	// The feeder: one new request for each that finishes, from the start.
	refill := make(chan struct{}, total+1<<16)
	feedCtx, stopFeed := context.WithCancel(ctx)
	defer stopFeed()
	var feeders sync.WaitGroup
	for i := 0; i < 4; i++ {
		feeders.Add(1)
		go func() {
			defer feeders.Done()
			for {
				select {
				case <-feedCtx.Done():
					return
				case <-refill:
					if err := b.c.Create(feedCtx, chartRequest(newName())); err != nil && feedCtx.Err() == nil {
						fmt.Fprintln(os.Stderr, "e2e: creating a refill request:", err)
					}
				}
			}
		}()
	}
	defer feeders.Wait()
	defer stopFeed()
	createErr := make(chan error, 1)
	go func() { createErr <- b.createAll(ctx, names) }()
	deadline := time.NewTimer(b.cfg.scaleCap)
	defer deadline.Stop()
	progress := time.NewTicker(30 * time.Second)
	defer progress.Stop()
	// The window opens at the first completion after the manager has read every
	// initial request (each has a phase: they wait in the queue). Before that the
	// manager and the API server are still taking in the burst of creations, which is
	// not what "W waiting" measures; that time is reported apart (sp.read).
	var created, read, windowStart, last time.Time
	var windowBefore apiCounts
	done, measured := 0, -1 // measured counts completions after windowStart
	poll := time.NewTicker(100 * time.Millisecond)
	defer poll.Stop()
loop:
	for measured < b.cfg.window {
		select {
		case <-poll.C:
			if !created.IsZero() && read.IsZero() && b.tr.readAll(names) {
				read = time.Now()
				sp.read = read.Sub(start)
				if after, err := scrapeAPICounts(ctx, metricsAddr); err == nil {
					sp.intakeAPI = after.minus(apiBefore)
				}
				// Every metric as it stood then (reconcile and request latencies, the
				// work queue), beside the profile.
				_ = saveMetrics(ctx, metricsAddr, filepath.Join(b.cfg.logDir, phase+"-intake-metrics.txt"))
				b.step("%s: the manager has read all %d requests, %.1fs after creation began (%.1fs after the last was created); its API requests meanwhile: %.0f writes, %.0f reads (%v)",
					phase, total, sp.read.Seconds(), read.Sub(created).Seconds(), sp.intakeAPI.writes(), sp.intakeAPI["GET"], map[string]float64(sp.intakeAPI))
			}
		case o := <-finished:
			done++
			refill <- struct{}{}
			if !o.ok {
				sp.failed++
				b.res.failures[o.reason]++
			}
			if !read.IsZero() {
				if measured < 0 {
					windowStart, measured = o.at, 0
					if c, err := scrapeAPICounts(ctx, metricsAddr); err == nil {
						windowBefore = c
					}
				} else {
					measured++
					last = o.at
				}
			}
		case err := <-createErr:
			if err != nil {
				return sp, err
			}
			created = time.Now()
			sp.created = created.Sub(start)
			b.step("%s: %d requests created in %.1fs", phase, total, sp.created.Seconds())
		case <-progress.C:
			b.step("%s: %d finished so far, %d in the window", phase, done, max(measured, 0))
		case <-deadline.C:
			sp.capped = true
			last = time.Now()
			if measured < 0 {
				// No completion since every request was read: the rate is a bound.
				windowStart = start
				if !read.IsZero() {
					windowStart = read
				} else if !created.IsZero() {
					windowStart = created
				}
				measured = 0
			}
			break loop
		case <-ctx.Done():
			return sp, ctx.Err()
		case <-m.Exited():
			return sp, fmt.Errorf("the manager exited during %s: %w", phase, m.ExitErr())
		}
	}
	if c, err := scrapeAPICounts(ctx, metricsAddr); err == nil && windowBefore != nil && measured > 0 {
		sp.windowAPI = c.minus(windowBefore)
		b.step("%s: the manager's writes over the window: %.0f (%.1f per completion: each costs its own 2 status patches and an Event, and its refill's Queued patch; the rest are queue positions and the pool's status)",
			phase, sp.windowAPI.writes(), sp.windowAPI.writes()/float64(measured))
	}
	if err := <-profDone; err != nil {
		b.step("%s: no CPU profile of the intake: %v", phase, err)
	} else {
		sp.intakeProfile = profPath
	}
	sp.measured, sp.elapsed = measured, last.Sub(windowStart)
	sp.rate = float64(measured) / sp.elapsed.Seconds()
	capped := ""
	if sp.capped {
		capped = fmt.Sprintf(" (capped %s after creation began)", b.cfg.scaleCap)
	}
	b.step("%s: %d completions in %.1fs%s: %.2f charts/s", phase, measured, sp.elapsed.Seconds(), capped, sp.rate)
	stopFeed()
	feeders.Wait()
	b.stopManager(m, phase)
	return sp, b.cleanup(ctx)
}

// ---- watching the requests -----------------------------------------------------------

type outcome struct {
	name   string
	at     time.Time
	ok     bool // Succeeded with at least one artifact stored
	reason string
	exec   time.Duration // status.execution.durationMillis: the code's run in the sandbox
	// running is when the watch first showed the request Running (zero if it never
	// did): the controller's part before the job, and the job with the final write after.
	running time.Time
}

// warmTimes is one counted warm request: its name, when its Create was sent and when
// the watch showed it Succeeded.
type warmTimes struct {
	name              string
	t0, created, seen time.Time // Create sent, Create answered, Succeeded seen
}

// tracker follows the requests through one watch and records when each finished.
type tracker struct {
	mu      sync.Mutex
	done    map[string]outcome
	changed chan struct{}
	prefix  string
	sub     chan outcome
	trace   string // print the events of requests with this prefix
	first   map[string]time.Time
	read    map[string]bool // requests the manager has written a phase for
	running map[string]time.Time
}

func newTracker() *tracker {
	return &tracker{done: map[string]outcome{}, changed: make(chan struct{}), first: map[string]time.Time{}, read: map[string]bool{}, running: map[string]time.Time{}}
}

// readAll reports whether the manager has written a phase for every one of names.
func (t *tracker) readAll(names []string) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, n := range names {
		if !t.read[n] {
			return false
		}
	}
	return true
}

func (t *tracker) run(ctx context.Context, c client.WithWatch, ns string) {
	for ctx.Err() == nil {
		w, err := c.Watch(ctx, &vizv1.VisualizationRequestList{}, client.InNamespace(ns))
		if err != nil {
			time.Sleep(200 * time.Millisecond)
			continue
		}
		for ev := range w.ResultChan() {
			vr, ok := ev.Object.(*vizv1.VisualizationRequest)
			if !ok {
				continue
			}
			if t.trace != "" && strings.HasPrefix(vr.Name, t.trace) {
				t.print(ev.Type, vr)
			}
			if vr.Status.Phase != "" {
				t.mu.Lock()
				t.read[vr.Name] = true
				if _, ok := t.running[vr.Name]; !ok && vr.Status.Phase == vizv1.PhaseRunning {
					t.running[vr.Name] = time.Now()
				}
				t.mu.Unlock()
			}
			if vr.Status.Phase.Finished() {
				t.finish(vr, time.Now())
			}
		}
		w.Stop()
		// The watch ended (it expires): catch what finished meanwhile, then watch again.
		var list vizv1.VisualizationRequestList
		if err := c.List(ctx, &list, client.InNamespace(ns)); err == nil {
			now := time.Now()
			for i := range list.Items {
				if list.Items[i].Status.Phase.Finished() {
					t.finish(&list.Items[i], now)
				}
			}
		}
	}
}

func (t *tracker) print(typ watch.EventType, vr *vizv1.VisualizationRequest) {
	now := time.Now()
	t.mu.Lock()
	if _, ok := t.first[vr.Name]; !ok {
		t.first[vr.Name] = now
	}
	since := now.Sub(t.first[vr.Name])
	t.mu.Unlock()
	var conds []string
	for _, c := range vr.Status.Conditions {
		conds = append(conds, c.Type+"="+string(c.Status)+"/"+c.Reason)
	}
	fmt.Printf("    %s %s +%7.1fms %-8s rv=%s phase=%s %s\n", vr.Name, now.UTC().Format("15:04:05.000000"), float64(since)/float64(time.Millisecond), typ, vr.ResourceVersion, vr.Status.Phase, strings.Join(conds, " "))
}

func (t *tracker) finish(vr *vizv1.VisualizationRequest, at time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if _, seen := t.done[vr.Name]; seen {
		return
	}
	o := outcome{name: vr.Name, at: at, ok: vr.Status.Phase == vizv1.PhaseSucceeded && len(vr.Status.Artifacts) > 0, running: t.running[vr.Name]}
	if e := vr.Status.Execution; e != nil {
		o.exec = time.Duration(e.DurationMillis) * time.Millisecond
	}
	if !o.ok {
		o.reason = string(vr.Status.Phase)
		if c := meta.FindStatusCondition(vr.Status.Conditions, vizv1.ConditionReady); c != nil {
			o.reason += "/" + c.Reason
		}
	}
	t.done[vr.Name] = o
	close(t.changed)
	t.changed = make(chan struct{})
	if t.sub != nil && strings.HasPrefix(vr.Name, t.prefix) {
		t.sub <- o // buffered for every request a phase can have
	}
}

// subscribe sends every finished request whose name starts with prefix to the
// returned channel until unsubscribe.
func (t *tracker) subscribe(prefix string) <-chan outcome {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.prefix, t.sub = prefix, make(chan outcome, 1<<17)
	return t.sub
}

func (t *tracker) unsubscribe() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.sub = nil
}

// wait returns name's outcome once it finished.
func (t *tracker) wait(ctx context.Context, name string, timeout time.Duration) (outcome, error) {
	deadline := time.After(timeout)
	for {
		t.mu.Lock()
		o, ok := t.done[name]
		changed := t.changed
		t.mu.Unlock()
		if ok {
			return o, nil
		}
		select {
		case <-changed:
		case <-deadline:
			return outcome{}, fmt.Errorf("%s did not finish within %s", name, timeout)
		case <-ctx.Done():
			return outcome{}, ctx.Err()
		}
	}
}

// ---- the report ----------------------------------------------------------------------

type figure struct {
	name, value, target string
	met                 *bool
	detail              string
}

func (b *bench) figures() []figure {
	r := b.res
	var out []figure
	check := func(v, t float64, atMost bool) *bool {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return nil
		}
		m := v >= t
		if atMost {
			m = v <= t
		}
		return &m
	}
	if r.warmN > 0 {
		v := float64(r.warmP50) / float64(r.floorP50)
		out = append(out, figure{"warm p50/floor", fmt.Sprintf("%.2f", v), "<= 1.5", check(v, 1.5, true),
			fmt.Sprintf("warm p50 %s, p95 %s over %d requests (status.execution.durationMillis p50 %s); floor p50 %s, p95 %s", ms(r.warmP50), ms(r.warmP95), r.warmN, ms(r.execP50), ms(r.floorP50), ms(r.floorP95))})
	}
	if r.warmN > 0 && r.directP50 > 0 {
		v := float64(r.warmP50-r.directP50) / float64(time.Millisecond)
		out = append(out, figure{"warm p50 - direct p50", fmt.Sprintf("%.1f ms", v), "<= 15 ms", check(v, 15, true),
			fmt.Sprintf("the controller's own cost: warm p50 %s against the same chart on a direct warm pool, p50 %s, in the same loop; request by request (warm − its direct run) p25 %s, p50 %s, p75 %s; create → Running seen p50 %s, Running → Succeeded seen p50 %s", ms(r.warmP50), ms(r.directP50), ms(r.pairP25), ms(r.pairP50), ms(r.pairP75), ms(r.toRunP50), ms(r.fromRunP50))})
	}
	if r.ctlN > 0 {
		v := float64(r.ctlP50) / float64(time.Millisecond)
		out = append(out, figure{"warm - job p50 (controller's own)", fmt.Sprintf("%.1f ms", v), "<= 15 ms", check(v, 15, true),
			fmt.Sprintf("request by request over %d: end to end less its job as the manager logged it (Running written → job ended), p25 %s, p50 %s, p75 %s; create → Running written p50 %s, job ended → Succeeded seen p50 %s; segments (p50 each): Create %s, → the manager starts it %s, Running write %s, job %s, → Succeeded written %s, → seen %s", r.ctlN, ms(r.ctlP25), ms(r.ctlP50), ms(r.ctlP75), ms(r.ctlBeforeP50), ms(r.ctlAfterP50),
				ms(r.ctlSegP50[0]), ms(r.ctlSegP50[1]), ms(r.ctlSegP50[2]), ms(r.ctlSegP50[3]), ms(r.ctlSegP50[4]), ms(r.ctlSegP50[5]))})
	}
	if r.warmN > 0 && r.api != nil {
		n := float64(r.warmN)
		// The target counts what a request costs (its status writes, ConfigMaps and
		// Events). The SandboxPool's status is written on a timer (its live counts, at
		// most every 5 s), whatever the request rate, so it is reported beside it, as
		// are the leases. The API server's counts by resource say which is which; the
		// pool's watch is the fallback when its metrics could not be read.
		v := (r.api.writes() - float64(r.poolWrites)) / n
		detail := fmt.Sprintf("the request's own, over %d: all the manager's writes %.1f per request (%.1f POST, %.1f PATCH, %.1f PUT, %.1f DELETE), less %d SandboxPool status writes seen by a watch (%.1f per request: its live counts, at most every 5 s); %.1f reads per request (GET, watches included)",
			r.warmN, r.api.writes()/n, r.api["POST"]/n, r.api["PATCH"]/n, r.api["PUT"]/n, r.api["DELETE"]/n,
			r.poolWrites, float64(r.poolWrites)/n, r.api["GET"]/n)
		if w := r.byResource; w != nil {
			v = w.requestOwn() / n
			detail = fmt.Sprintf("the request's own, over %d, as the API server counted them: %.1f status writes, %.1f other updates, %.1f Events, %.1f ConfigMaps per request; beside them %.1f SandboxPool status writes per request (its live counts, at most every 5 s) and %.1f others (leases); the manager's client counted %.1f writes per request in all (%.1f POST, %.1f PATCH, %.1f PUT, %.1f DELETE) and %.1f reads (GET, watches included)",
				r.warmN, w["visualizationrequests/status"]/n, w["visualizationrequests/update"]/n, w["events"]/n, w["configmaps"]/n,
				w["sandboxpools/status"]/n, (sumWrites(w)-w.requestOwn()-w["sandboxpools/status"]-w["visualizationrequests"])/n,
				r.api.writes()/n, r.api["POST"]/n, r.api["PATCH"]/n, r.api["PUT"]/n, r.api["DELETE"]/n, r.api["GET"]/n)
		}
		if r.cpuProfile != "" {
			detail += "; CPU profile " + r.cpuProfile
		}
		out = append(out, figure{"API writes per request", fmt.Sprintf("%.1f", v), "<= 3", check(v, 3, true), detail})
	}
	if r.poolRate > 0 && r.drainElapsed > 0 {
		v := r.drainRate / r.poolRate
		capped := ""
		if r.drainCapped {
			capped = fmt.Sprintf("; capped at %s: %d of %d finished", b.cfg.drainCap, r.drainDone, b.cfg.drainN)
		}
		out = append(out, figure{"drain/pool", fmt.Sprintf("%.2f", v), ">= 0.7", check(v, 0.7, false),
			fmt.Sprintf("drain %.2f charts/s (%d at once, cap %d%s); direct pool %.2f charts/s (%.2f before, %.2f after, %d jobs)",
				r.drainRate, b.cfg.drainN, b.cfg.poolCap, capped, r.poolRate, r.poolRateBefore, r.poolRateAfter, r.poolJobs)})
	}
	if len(r.scale) >= 2 && r.scale[0].rate > 0 {
		ref := r.scale[0]
		for _, sp := range r.scale[1:] {
			v := sp.rate / ref.rate
			out = append(out, figure{fmt.Sprintf("drain %d/%d", sp.waiting, ref.waiting), fmt.Sprintf("%.2f", v), ">= 0.8", check(v, 0.8, false),
				fmt.Sprintf("%s; %s", describeScale(sp, b.cfg), describeScale(ref, b.cfg))})
		}
	}
	for _, sp := range r.scale {
		if sp.waiting >= 2000 && sp.read > 0 {
			// Intake: every request of the burst read and queued (the target is for 2,000).
			v := sp.read.Seconds()
			target, verdict := "reported", (*bool)(nil)
			if sp.waiting == 2000 {
				target, verdict = "<= 10 s", check(v, 10, true)
			}
			out = append(out, figure{fmt.Sprintf("intake of %d", sp.waiting), fmt.Sprintf("%.1f s", v), target, verdict,
				fmt.Sprintf("from the first creation until the manager had written a phase for every request (created in %.1f s; manager's API requests meanwhile: %.0f writes, %.0f GETs; CPU profile %s)",
					sp.created.Seconds(), sp.intakeAPI.writes(), sp.intakeAPI["GET"], sp.intakeProfile)})
		}
		if sp.waiting >= 10000 {
			if rss := r.rss[fmt.Sprintf("scale-%d", sp.waiting)]; rss > 0 {
				v := float64(rss) / (1 << 20)
				out = append(out, figure{fmt.Sprintf("manager peak RSS, %d waiting", sp.waiting), fmt.Sprintf("%.0f MiB", v), "<= 300 MiB", check(v, 300, true), "VmHWM of that scale point's manager"})
			}
		}
	}
	if r.peakRSS > 0 {
		v := float64(r.peakRSS) / (1 << 20)
		out = append(out, figure{"manager peak RSS", fmt.Sprintf("%.0f MiB", v), "<= 150 MiB", check(v, 150, true),
			fmt.Sprintf("VmHWM, highest in the %s phase", r.peakPhase)})
	}
	if r.floor2 > 0 {
		v := r.pool2 / r.floor2
		out = append(out, figure{"pool/2floor", fmt.Sprintf("%.2f", v), ">= 0.8", check(v, 0.8, false),
			fmt.Sprintf("2 concurrent jobs %.2f /s; 2 hot interpreters %.2f /s", r.pool2, r.floor2)})
	}
	return out
}

func describeScale(sp scalePoint, cfg config) string {
	s := fmt.Sprintf("%d waiting: %.2f charts/s (%d completions in %.1fs", sp.waiting, sp.rate, sp.measured, sp.elapsed.Seconds())
	if sp.capped {
		s += fmt.Sprintf(", capped at %s", cfg.scaleCap)
	}
	if sp.failed > 0 {
		s += fmt.Sprintf(", %d failed", sp.failed)
	}
	s += fmt.Sprintf("; created in %.1fs, all read by the manager %.1fs after creation began", sp.created.Seconds(), sp.read.Seconds())
	if sp.windowAPI != nil && sp.measured > 0 {
		s += fmt.Sprintf("; %.1f manager writes per completion in the window", sp.windowAPI.writes()/float64(sp.measured))
	}
	return s + ")"
}

func (b *bench) report() {
	figs := b.figures()
	w := b.out
	fmt.Fprintln(w)
	fmt.Fprintln(w, "End-to-end results (ratios against references measured in this run):")
	for _, f := range figs {
		fmt.Fprintf(w, "%s: %s   (target %s: %s)\n", f.name, f.value, f.target, metWord(f.met))
		fmt.Fprintf(w, "    %s\n", f.detail)
	}
	if len(b.res.failures) > 0 {
		fmt.Fprintf(w, "failures (requests that did not succeed, direct-pool jobs that failed): %v\n", b.res.failures)
	}
	end := b.res.endLoad
	if end == "" {
		end = loadavg()
	}
	fmt.Fprintf(w, "load average: %s at start, %s at end; per phase: %s\n", b.res.startLoad, end, strings.Join(b.res.loads, "; "))
	if b.cfg.mdOut == "" {
		return
	}
	path := b.cfg.mdOut
	if !filepath.IsAbs(path) {
		path = filepath.Join(b.root, path)
	}
	var md strings.Builder
	fmt.Fprintf(&md, "`hack/bench/e2e` on %s (%s, git %s)\n\n", time.Now().UTC().Format("2006-01-02 15:04 UTC"), flagLine(b.cfg), gitDescribe(b.root))
	for _, l := range b.res.machine {
		fmt.Fprintf(&md, "- %s\n", l)
	}
	fmt.Fprintf(&md, "- load average: %s at start, %s at end; per phase: %s\n\n", b.res.startLoad, end, strings.Join(b.res.loads, "; "))
	fmt.Fprintln(&md, "| figure | value | target | met? | measured |")
	fmt.Fprintln(&md, "|---|---|---|---|---|")
	for _, f := range figs {
		fmt.Fprintf(&md, "| %s | **%s** | %s | %s | %s |\n", f.name, f.value, f.target, metWord(f.met), f.detail)
	}
	if len(b.res.failures) > 0 {
		fmt.Fprintf(&md, "\nFailures (requests that did not succeed, direct-pool jobs that failed): %v\n", b.res.failures)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err == nil {
		if err := os.WriteFile(path, []byte(md.String()), 0o644); err == nil {
			fmt.Fprintln(w, "wrote", path)
		}
	}
}

func flagLine(cfg config) string {
	ws := make([]string, len(cfg.waiting))
	for i, n := range cfg.waiting {
		ws[i] = strconv.Itoa(n)
	}
	line := fmt.Sprintf("-warm %d -drain %d -cap %d -waiting %s -window %d -drain-cap %s -scale-cap %s -creators %d",
		cfg.warmN, cfg.drainN, cfg.poolCap, strings.Join(ws, ","), cfg.window, cfg.drainCap, cfg.scaleCap, cfg.creators)
	if len(cfg.managerFlags) > 0 {
		line += fmt.Sprintf(" -manager-flags %q", strings.Join(cfg.managerFlags, " "))
	}
	return line
}

func metWord(m *bool) string {
	switch {
	case m == nil:
		return "n/a"
	case *m:
		return "met"
	default:
		return "not met"
	}
}

// ---- helpers -------------------------------------------------------------------------

func percentile(ds []time.Duration, q float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	i := int(math.Ceil(q*float64(len(s)))) - 1
	return s[min(max(i, 0), len(s)-1)]
}

func ms(d time.Duration) string { return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond)) }

// peakRSS is a process's VmHWM in bytes (0 when unreadable).
func peakRSS(pid int) int64 {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			if err == nil {
				return kb << 10
			}
		}
	}
	return 0
}

func loadavg() string {
	data, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(data))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

func describeMachine() []string {
	var out []string
	cpu := "?"
	if data, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(data), "\n") {
			if v, ok := strings.CutPrefix(l, "model name"); ok {
				cpu = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(v), ":"))
				break
			}
		}
	}
	mem := "?"
	if data, err := os.ReadFile("/proc/meminfo"); err == nil {
		for _, l := range strings.Split(string(data), "\n") {
			if v, ok := strings.CutPrefix(l, "MemTotal:"); ok {
				if kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64); err == nil {
					mem = fmt.Sprintf("%.0f GiB", float64(kb)/(1<<20))
				}
			}
		}
	}
	var uts syscall.Utsname
	kernel := "?"
	if syscall.Uname(&uts) == nil {
		kernel = charsToString(uts.Release[:])
	}
	out = append(out, fmt.Sprintf("%d CPUs (%s), %s RAM, Linux %s", goruntime.NumCPU(), cpu, mem, kernel))
	py, _ := exec.Command("/usr/bin/python3", "-c", "import sys, matplotlib, numpy; print('Python %d.%d.%d' % sys.version_info[:3], 'matplotlib', matplotlib.__version__, 'numpy', numpy.__version__)").Output()
	bw, _ := exec.Command("bwrap", "--version").Output()
	out = append(out, strings.TrimSpace(string(py))+", "+strings.TrimSpace(string(bw)))
	return out
}

func charsToString(cs []int8) string {
	var sb strings.Builder
	for _, c := range cs {
		if c == 0 {
			break
		}
		sb.WriteByte(byte(c))
	}
	return sb.String()
}

func gitDescribe(root string) string {
	out, err := exec.Command("git", "-C", root, "rev-parse", "--short", "HEAD").Output()
	if err != nil {
		return "?"
	}
	s := strings.TrimSpace(string(out))
	if st, err := exec.Command("git", "-C", root, "status", "--porcelain", "--untracked-files=no").Output(); err == nil && len(st) > 0 {
		s += "+dirty"
	}
	return s
}
