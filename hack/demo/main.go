// Command demo is `make demo`: the whole operator on this machine in one command. It
// finds or builds the envtest binaries, starts an embedded control plane
// (kube-apiserver and etcd), installs the CRDs, builds and runs the manager against it,
// applies config/samples/, follows the requests, writes every chart to demo-out/ after
// checking its sha256, prints a summary, and stops everything it started.
//
// It exits 0 only when each sample ended as expected: dosing-question Skipped
// (NotAVisualization), every other request Succeeded with an artifact of each format
// it asked for.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	vizv1 "github.com/vizops/viz-operator/api/v1alpha1"
	"github.com/vizops/viz-operator/hack/internal/controlplane"
	"github.com/vizops/viz-operator/internal/artifacts"
	"github.com/vizops/viz-operator/internal/progress"
)

type config struct {
	root      string        // the repository
	outDir    string        // where the charts go
	namespace string        // where the samples are applied
	timeout   time.Duration // bound on everything after the build
	manager   string        // manager binary; built from ./cmd unless noBuild
	noBuild   bool
	hold      bool   // keep the control plane and the manager until Ctrl-C
	assets    string // envtest binaries; found or built by hack/envtest-assets.sh when empty
	out, errw io.Writer
}

func main() {
	cfg := config{out: os.Stdout, errw: os.Stderr}
	flag.StringVar(&cfg.root, "root", ".", "the repository's root")
	flag.StringVar(&cfg.outDir, "out", "demo-out", "directory for the charts, one subdirectory per request")
	flag.StringVar(&cfg.namespace, "namespace", "vizops-demo", "namespace to apply the samples in")
	flag.DurationVar(&cfg.timeout, "timeout", 5*time.Minute, "bound on the run once the binaries are built (control plane, manager, samples)")
	flag.StringVar(&cfg.manager, "manager", "bin/manager", "manager binary (built from ./cmd, relative to -root)")
	flag.BoolVar(&cfg.noBuild, "no-build", false, "use the manager binary as it is")
	flag.BoolVar(&cfg.hold, "hold", false, "after the summary, keep the control plane and the manager running until Ctrl-C (to try kubectl viz against them)")
	flag.Parse()
	ctrllog.SetLogger(discardLogger())

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ok, err := run(ctx, cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, "demo: error:", err)
		os.Exit(1)
	}
	if !ok {
		os.Exit(1)
	}
}

func newScheme() *runtime.Scheme {
	s := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(s))
	utilruntime.Must(vizv1.AddToScheme(s))
	return s
}

// run is the demo. It returns whether every sample ended as expected; err is for the
// demo itself going wrong (it could not start, it timed out, it was interrupted).
// Whatever happens, nothing it started is left running.
func run(ctx context.Context, cfg config) (bool, error) {
	w := cfg.out
	started := time.Now()
	step := func(format string, args ...any) {
		fmt.Fprintf(w, "==> [%5.1fs] %s\n", time.Since(started).Seconds(), fmt.Sprintf(format, args...))
	}
	root, err := filepath.Abs(cfg.root)
	if err != nil {
		return false, err
	}
	abs := func(p string) string {
		if filepath.IsAbs(p) {
			return p
		}
		return filepath.Join(root, p)
	}
	outDir, manager := abs(cfg.outDir), abs(cfg.manager)
	if err := os.MkdirAll(outDir, 0o755); err != nil {
		return false, err
	}

	objs, err := loadSamples(filepath.Join(root, "config", "samples"))
	if err != nil {
		return false, err
	}

	assets := cfg.assets
	if assets == "" {
		if controlplane.CachedAssets(root) == "" {
			fmt.Fprintln(w, "First run: the envtest binaries (kube-apiserver, etcd) are not cached. Online they are downloaded")
			fmt.Fprintln(w, "in a minute; offline, building kube-apiserver takes about 7 minutes once on 2 idle cores. Later runs")
			fmt.Fprintln(w, "reuse bin/k8s/ and start in seconds.")
		}
		step("finding the envtest binaries (hack/envtest-assets.sh)")
		if assets, err = controlplane.FindAssets(root, cfg.errw); err != nil {
			return false, err
		}
	}
	if ctx.Err() != nil {
		return false, errors.New("interrupted")
	}
	if !cfg.noBuild {
		step("building the manager: go build -o %s ./cmd (a few minutes with a cold Go build cache, seconds after)", rel(root, manager))
		if err := controlplane.BuildManager(root, manager, cfg.errw); err != nil {
			return false, err
		}
	}

	parent := ctx
	ctx, cancel := context.WithTimeout(ctx, cfg.timeout)
	defer cancel()
	deadline := time.Now().Add(cfg.timeout)
	interrupted := func() error {
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return fmt.Errorf("timed out after %s (-timeout); the manager's log is %s", cfg.timeout, rel(root, filepath.Join(outDir, "manager.log")))
		}
		return errors.New("interrupted; stopped the manager and the control plane")
	}

	step("starting the control plane (kube-apiserver, etcd from %s) and installing the CRDs", assets)
	cp, err := controlplane.Start(assets, filepath.Join(root, "config", "crd", "bases"), "vizops-demo")
	if err != nil {
		return false, err
	}
	defer func() {
		step("stopping the control plane")
		t0 := time.Now()
		if err := cp.Stop(); err != nil {
			fmt.Fprintln(cfg.errw, "demo: stopping the control plane:", err)
		}
		if d := time.Since(t0); d > 3*time.Second {
			step("stopped the control plane in %.0fs", d.Seconds())
		}
	}()
	if ctx.Err() != nil {
		return false, interrupted()
	}
	restCfg, err := clientcmd.BuildConfigFromFlags("", cp.Kubeconfig)
	if err != nil {
		return false, err
	}
	c, err := client.New(restCfg, client.Options{Scheme: newScheme()})
	if err != nil {
		return false, err
	}

	logPath := filepath.Join(outDir, "manager.log")
	step("starting the manager (log: %s)", rel(root, logPath))
	mgr, err := controlplane.StartManager(manager, cp.Kubeconfig, logPath)
	if err != nil {
		return false, err
	}
	defer func() {
		step("stopping the manager")
		if err := mgr.Stop(15 * time.Second); err != nil {
			fmt.Fprintln(cfg.errw, "demo:", err)
		}
	}()

	step("applying %d objects of config/samples/ in namespace %s", len(objs), cfg.namespace)
	if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: cfg.namespace}}); err != nil {
		return false, fmt.Errorf("creating namespace %s: %w", cfg.namespace, err)
	}
	expect := map[string]expectation{}
	var names []string
	for _, u := range objs {
		u = u.DeepCopy()
		if u.GetKind() != "SandboxClass" { // cluster-scoped
			u.SetNamespace(cfg.namespace)
		}
		if err := c.Create(ctx, u); err != nil {
			if ctx.Err() != nil {
				return false, interrupted()
			}
			return false, fmt.Errorf("creating %s %s: %w", u.GetKind(), u.GetName(), err)
		}
		if isRequest(u) {
			expect[u.GetName()] = expectationFor(u)
			names = append(names, u.GetName())
		}
	}

	step("waiting for %d requests (at most %s)", len(names), time.Until(deadline).Truncate(time.Second))
	final, err := follow(ctx, c, cfg.namespace, names, mgr, w)
	if err != nil {
		if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
			err = interrupted()
		}
		if final != nil {
			fmt.Fprintln(w)
			summary(w, names, final, expect, nil)
		}
		fmt.Fprintf(w, "\nlast lines of the manager's log (%s):\n%s\n", rel(root, logPath), controlplane.Tail(logPath, 15))
		return false, err
	}

	// Interactive charts get the local plotly.js beside them, so they open offline.
	lib, libPath, libErr := artifacts.ReadLocalPlotlyJS("")
	if libErr != nil {
		step("writing the charts to %s/ (warning: %v; interactive charts will load plotly.js from the CDN)", rel(root, outDir), libErr)
	} else {
		step("writing the charts to %s/ (interactive charts with %s from %s beside them)", rel(root, outDir), artifacts.PlotlyJSFile, libPath)
	}
	written := map[string][]string{}
	var writeErrs []error
	for _, name := range names {
		paths, err := writeArtifacts(ctx, c, final[name], outDir, lib)
		written[name] = paths
		if err != nil {
			writeErrs = append(writeErrs, err)
		}
	}

	fmt.Fprintln(w)
	allOK := summary(w, names, final, expect, written)
	for _, err := range writeErrs {
		fmt.Fprintln(w, "FAIL:", err)
		allOK = false
	}
	fmt.Fprintln(w)
	if allOK {
		fmt.Fprintf(w, "All %d samples ended as expected in %.0fs. Charts: %s/<request>/ (e.g. %s)\n",
			len(names), time.Since(started).Seconds(), rel(root, outDir), firstChart(root, names, written))
	} else {
		fmt.Fprintf(w, "Some samples did not end as expected. The manager's log: %s\n", rel(root, logPath))
		fmt.Fprintf(w, "last lines:\n%s\n", controlplane.Tail(logPath, 15))
	}
	if cfg.hold && parent.Err() == nil {
		fmt.Fprintf(w, "\nHolding the control plane and the manager (-hold). In another shell:\n")
		fmt.Fprintf(w, "  export KUBECONFIG=%s\n", cp.Kubeconfig)
		fmt.Fprintf(w, "  go build -o bin/kubectl-viz ./cmd/kubectl-viz\n")
		fmt.Fprintf(w, "  bin/kubectl-viz pools -n %s\n", cfg.namespace)
		fmt.Fprintf(w, "  bin/kubectl-viz create bars -n %s --prompt \"bar chart of A 3, B 5, C 2\" --wait -o demo-out/bars\n", cfg.namespace)
		fmt.Fprintf(w, "Press Ctrl-C to stop everything.\n")
		select {
		case <-parent.Done():
		case <-mgr.Exited():
			fmt.Fprintln(w, "the manager exited:", mgr.ExitErr())
		}
	}
	return allOK, nil
}

func isRequest(u *unstructured.Unstructured) bool {
	return u.GetKind() == "VisualizationRequest" && strings.HasPrefix(u.GetAPIVersion(), vizv1.GroupVersion.Group+"/")
}

// follow polls the requests until all have finished, showing the phase counts on one
// updated line and a line for each request as it finishes. It fails fast if the
// manager exits.
func follow(ctx context.Context, c client.Client, ns string, names []string, mgr *controlplane.Manager, w io.Writer) (map[string]*vizv1.VisualizationRequest, error) {
	start := time.Now()
	p := progress.NewLine(w)
	defer p.Done()
	reported := map[string]bool{}
	latest := map[string]*vizv1.VisualizationRequest{}
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	for {
		list := &vizv1.VisualizationRequestList{}
		if err := c.List(ctx, list, client.InNamespace(ns)); err != nil {
			if ctx.Err() != nil {
				return latest, ctx.Err()
			}
			return latest, err
		}
		counts := map[string]int{}
		for i := range list.Items {
			vr := &list.Items[i]
			if !slices.Contains(names, vr.Name) {
				continue
			}
			latest[vr.Name] = vr
			phase := string(vr.Status.Phase)
			if phase == "" {
				phase = string(vizv1.PhasePending)
			}
			counts[phase]++
			if vr.Status.Phase.Finished() && !reported[vr.Name] {
				reported[vr.Name] = true
				p.Println(fmt.Sprintf("    %-26s %s%s", vr.Name, vr.Status.Phase, briefOutcome(vr)))
			}
		}
		summary := fmt.Sprintf("%d requests: %s", len(names), phaseCounts(counts))
		p.Update(summary, fmt.Sprintf("    [%3ds] %s", int(time.Since(start).Seconds()), summary))
		if len(reported) == len(names) {
			return latest, nil
		}
		select {
		case <-ctx.Done():
			return latest, ctx.Err()
		case <-mgr.Exited():
			return latest, mgr.ExitErr()
		case <-tick.C:
		}
	}
}

var phaseOrder = []string{"Pending", "Queued", "Running", "Succeeded", "Skipped", "Failed"}

func phaseCounts(counts map[string]int) string {
	var parts []string
	for _, ph := range phaseOrder {
		if n := counts[ph]; n > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", n, ph))
		}
	}
	return strings.Join(parts, ", ")
}

func briefOutcome(vr *vizv1.VisualizationRequest) string {
	st := vr.Status
	switch st.Phase {
	case vizv1.PhaseSkipped:
		tool := "None"
		if st.Detection != nil && st.Detection.Tool != "" {
			tool = st.Detection.Tool
		}
		return fmt.Sprintf(": not a visualization (tool: %s)", tool)
	case vizv1.PhaseFailed:
		for _, cond := range st.Conditions {
			if cond.Type == vizv1.ConditionReady {
				return ": " + cond.Reason + ": " + strings.Join(strings.Fields(cond.Message), " ")
			}
		}
	}
	var parts []string
	if st.Detection != nil && st.Detection.ChartType != "" {
		parts = append(parts, st.Detection.ChartType)
	}
	if st.Execution != nil {
		parts = append(parts, fmt.Sprintf("%d ms", st.Execution.DurationMillis))
	}
	parts = append(parts, fmt.Sprintf("%d artifact(s)", len(st.Artifacts)))
	return " (" + strings.Join(parts, ", ") + ")"
}

// summary prints the table and returns whether every request ended as expected.
func summary(w io.Writer, names []string, final map[string]*vizv1.VisualizationRequest, expect map[string]expectation, written map[string][]string) bool {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tPHASE\tCHART\tBACKEND\tDURATION\tARTIFACTS\tRESULT")
	allOK := true
	for _, name := range names {
		vr := final[name]
		if vr == nil {
			fmt.Fprintf(tw, "%s\t-\t-\t-\t-\t-\tFAIL: never seen\n", name)
			allOK = false
			continue
		}
		phase, chart, backend, duration := orDash(string(vr.Status.Phase)), "-", "-", "-"
		if d := vr.Status.Detection; d != nil && d.ChartType != "" {
			chart = d.ChartType
		}
		if e := vr.Status.Execution; e != nil {
			backend = orDash(e.Backend)
			duration = fmt.Sprintf("%d ms", e.DurationMillis)
		}
		var arts []string
		for _, a := range vr.Status.Artifacts {
			where := ""
			if a.ConfigMapKeyRef != nil {
				where = " [cm]"
			}
			arts = append(arts, fmt.Sprintf("%s (%s)%s", a.Name, humanBytes(a.SizeBytes), where))
		}
		sort.Strings(arts)
		result := "ok"
		if ok, why := check(vr, expect[name]); !ok {
			result = "FAIL: " + why
			allOK = false
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", name, phase, chart, backend, duration, orDash(strings.Join(arts, ", ")), result)
	}
	_ = tw.Flush()
	return allOK
}

func humanBytes(n int64) string {
	if n < 1024 {
		return fmt.Sprintf("%d B", n)
	}
	return fmt.Sprintf("%.1f KiB", float64(n)/1024)
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func rel(root, path string) string {
	if r, err := filepath.Rel(root, path); err == nil && !strings.HasPrefix(r, "..") {
		return r
	}
	return path
}

func firstChart(root string, names []string, written map[string][]string) string {
	for _, n := range names {
		if len(written[n]) > 0 {
			return rel(root, written[n][0])
		}
	}
	return "-"
}
