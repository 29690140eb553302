package main

import (
	"context"
	"fmt"
	"io"
	"math"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	vizv1 "github.com/vizops/viz-operator/api/v1alpha1"
	"github.com/vizops/viz-operator/internal/progress"
)

func init() { subcommands = append(subcommands, newCreateCommand) }

// maxInlineCSV is what spec.data.csv holds (its MaxLength).
const maxInlineCSV = 256 << 10

type createOptions struct {
	cluster      clusterOptions
	prompt       string
	model        string
	pool         string
	codeFile     string
	dataFile     string
	formats      []string
	timeout      time.Duration
	wait         bool
	waitTimeout  time.Duration
	outDir       string
	pollInterval time.Duration
}

func newCreateCommand() *cobra.Command {
	o := createOptions{pollInterval: 500 * time.Millisecond}
	cmd := &cobra.Command{
		Use:   "create NAME --prompt TEXT",
		Short: "Create a VisualizationRequest in the cluster (and optionally wait for its charts)",
		Long: `Create a VisualizationRequest: the operator detects whether the prompt asks for a
chart, generates the code (built-in templates, or --model), runs it in a sandbox of the
pool and stores the charts. --code-file runs given Python instead of a prompt.

With --wait the command follows the request (phase, queue position, attempts) until it
finishes, then writes the charts to -o DIR. It exits 1 when the request Failed and
prints the reason; a prompt that is not a chart request ends Skipped and exits 0.`,
		Example: `  kubectl viz create effectiveness --prompt "bar chart of Hydroxyurea 85, Voxelotor 70" --wait -o out/
  kubectl viz create hb --prompt "line chart of hemoglobin over time" --data hb.csv --format png,svg --wait
  kubectl viz create custom --code-file chart.py --pool gpu-free --timeout 60s`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error { return runCreate(cmd, args[0], o) },
	}
	f := cmd.Flags()
	o.cluster.addFlags(cmd)
	f.StringVar(&o.prompt, "prompt", "", "the chart request in natural language")
	f.StringVar(&o.model, "model", "", `model as "provider/model" (empty: the built-in templates)`)
	f.StringVar(&o.pool, "pool", "", "SandboxPool to run in (default: the operator's default, \"default\")")
	f.StringVar(&o.codeFile, "code-file", "", "Python file to run as given (skips detection and code generation)")
	f.StringVar(&o.dataFile, "data", "", "CSV file (with a header row) sent inline as spec.data.csv, at most 256 KiB")
	f.StringSliceVar(&o.formats, "format", nil, "figure formats: png, svg, html (default png)")
	f.DurationVar(&o.timeout, "timeout", 0, "limit for one execution of the code, 1s to 10m (default 30s)")
	f.BoolVar(&o.wait, "wait", false, "wait until the request finishes, showing its progress")
	f.DurationVar(&o.waitTimeout, "wait-timeout", 5*time.Minute, "how long --wait waits")
	f.StringVarP(&o.outDir, "output-dir", "o", "", "with --wait, write the charts to this directory")
	f.DurationVar(&o.pollInterval, "poll-interval", o.pollInterval, "how often --wait reads the request")
	_ = f.MarkHidden("poll-interval")
	return cmd
}

func buildRequest(name string, o createOptions) (*vizv1.VisualizationRequest, error) {
	vr := &vizv1.VisualizationRequest{ObjectMeta: metav1.ObjectMeta{Name: name}}
	vr.Spec.Prompt = o.prompt
	vr.Spec.Model = o.model
	if o.codeFile != "" {
		code, err := os.ReadFile(o.codeFile)
		if err != nil {
			return nil, usage("--code-file: %v", err)
		}
		if len(code) > 64<<10 {
			return nil, usage("--code-file %s is %d KiB; spec.code holds at most 64 KiB", o.codeFile, len(code)>>10)
		}
		vr.Spec.Code = string(code)
	}
	if strings.TrimSpace(vr.Spec.Prompt) == "" && vr.Spec.Code == "" {
		return nil, usage("give --prompt \"...\" (a chart request) or --code-file FILE (Python to run)")
	}
	if o.dataFile != "" {
		data, err := os.ReadFile(o.dataFile)
		if err != nil {
			return nil, usage("--data: %v", err)
		}
		if len(data) > maxInlineCSV {
			return nil, usage("--data %s is %.1f KiB; inline data (spec.data.csv) holds at most 256 KiB. Put the CSV in a ConfigMap (kubectl create configmap NAME --from-file=data.csv=%s) and reference it with spec.data.configMapKeyRef",
				o.dataFile, float64(len(data))/1024, o.dataFile)
		}
		csv := string(data)
		vr.Spec.Data = &vizv1.DataSource{CSV: &csv}
	}
	if o.pool != "" {
		vr.Spec.SandboxPoolRef.Name = o.pool
	}
	for _, f := range o.formats {
		f = strings.ToLower(strings.TrimSpace(f))
		switch vizv1.OutputFormat(f) {
		case vizv1.FormatPNG, vizv1.FormatSVG, vizv1.FormatHTML:
			vr.Spec.OutputFormats = append(vr.Spec.OutputFormats, vizv1.OutputFormat(f))
		default:
			return nil, usage("--format %q is not supported: use png, svg or html", f)
		}
	}
	if o.timeout != 0 {
		secs := math.Ceil(o.timeout.Seconds())
		if secs < 1 || secs > 600 {
			return nil, usage("--timeout %s is out of range: 1s to 10m", o.timeout)
		}
		vr.Spec.TimeoutSeconds = int32(secs)
	}
	return vr, nil
}

func runCreate(cmd *cobra.Command, name string, o createOptions) error {
	if o.outDir != "" && !o.wait {
		return usage("-o needs --wait (the charts exist only once the request finishes); or run `kubectl viz get %s -o %s` later", name, o.outDir)
	}
	vr, err := buildRequest(name, o)
	if err != nil {
		return err
	}
	c, err := o.cluster.connect()
	if err != nil {
		return err
	}
	vr.Namespace = c.namespace
	ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := c.Create(ctx, vr); err != nil {
		if apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("visualizationrequest %q already exists in namespace %q (a request's spec cannot change: delete it or pick another name)", name, c.namespace)
		}
		if apierrors.IsInvalid(err) {
			return fmt.Errorf("the cluster rejected the request: %s", oneLine(err.Error()))
		}
		return apiError(err, "visualizationrequest", name, c.namespace)
	}
	fmt.Fprintf(cmd.OutOrStdout(), "visualizationrequest/%s created in namespace %s\n", name, c.namespace)
	if !o.wait {
		return nil
	}
	done, err := waitForRequest(ctx, c, name, o.waitTimeout, o.pollInterval, cmd.ErrOrStderr())
	if err != nil {
		return err
	}
	return reportFinished(ctx, cmd.OutOrStdout(), c, done, o.outDir)
}

// waitForRequest polls the request until it finishes, showing its progress on w.
func waitForRequest(ctx context.Context, c *cluster, name string, timeout, every time.Duration, w io.Writer) (*vizv1.VisualizationRequest, error) {
	start := time.Now()
	deadline := start.Add(timeout)
	p := progress.NewLine(w)
	defer p.Done()
	tick := time.NewTicker(every)
	defer tick.Stop()
	phase, waitingFor := "Pending", ""
	for {
		vr, err := c.getRequest(ctx, name)
		switch {
		case ctx.Err() != nil:
		case err != nil:
			return nil, err
		default:
			if vr.Status.Phase != "" {
				phase = string(vr.Status.Phase)
			}
			waitingFor = ""
			if c := blockingCondition(vr); c != nil {
				waitingFor = fmt.Sprintf(", %s: %s", c.Reason, oneLine(c.Message))
			}
			p.Update(requestProgress(vr, time.Since(start)))
			if vr.Status.Phase.Finished() {
				return vr, nil
			}
		}
		if time.Now().After(deadline) {
			p.Done()
			hint := "is the operator running? "
			if waitingFor != "" {
				hint = ""
			}
			return nil, fmt.Errorf("visualizationrequest %q did not finish within %s (phase %s%s); %sfollow it with `kubectl get vr %s -n %s -w`", name, timeout, phase, waitingFor, hint, name, c.namespace)
		}
		select {
		case <-ctx.Done():
			p.Done()
			return nil, fmt.Errorf("stopped waiting for visualizationrequest %q (phase %s); it keeps going in the cluster", name, phase)
		case <-tick.C:
		}
	}
}

// reportFinished prints the outcome of a finished request and downloads its charts.
func reportFinished(ctx context.Context, w io.Writer, c *cluster, vr *vizv1.VisualizationRequest, outDir string) error {
	switch vr.Status.Phase {
	case vizv1.PhaseSkipped:
		tool := "None"
		if d := vr.Status.Detection; d != nil && d.Tool != "" {
			tool = d.Tool
		}
		fmt.Fprintf(w, "%s: not a visualization (tool: %s)\n", vr.Name, tool)
		return nil
	case vizv1.PhaseFailed:
		reason, msg := "Failed", "no Ready condition recorded"
		if cond := readyCondition(vr.Status.Conditions); cond != nil {
			reason, msg = cond.Reason, oneLine(cond.Message)
		}
		return &exitError{code: 1, err: fmt.Errorf("visualizationrequest %q failed: %s: %s", vr.Name, reason, msg)}
	}
	fmt.Fprintf(w, "%s: %s%s\n", vr.Name, vr.Status.Phase, describeRun(vr))
	if outDir == "" {
		for _, a := range vr.Status.Artifacts {
			fmt.Fprintf(w, "  %s (%s, %d bytes)\n", a.Name, a.MIMEType, a.SizeBytes)
		}
		if len(vr.Status.Artifacts) > 0 {
			fmt.Fprintf(w, "download them with: kubectl viz get %s -n %s -o DIR\n", vr.Name, vr.Namespace)
		}
		return nil
	}
	saved, err := saveArtifacts(ctx, c, vr, outDir)
	if err != nil {
		return err
	}
	printSaved(w, saved)
	return nil
}

// describeRun is " (bar, Local, 812 ms, 2 artifacts)".
func describeRun(vr *vizv1.VisualizationRequest) string {
	var parts []string
	if d := vr.Status.Detection; d != nil && d.ChartType != "" {
		parts = append(parts, d.ChartType)
	}
	if e := vr.Status.Execution; e != nil {
		if e.Backend != "" {
			parts = append(parts, e.Backend)
		}
		parts = append(parts, fmt.Sprintf("%d ms", e.DurationMillis))
	}
	parts = append(parts, fmt.Sprintf("%d artifact(s)", len(vr.Status.Artifacts)))
	return " (" + strings.Join(parts, ", ") + ")"
}

func printSaved(w io.Writer, saved []savedArtifact) {
	for _, a := range saved {
		fmt.Fprintf(w, "wrote %s (%s, %d bytes, sha256 %s)\n", a.Path, a.MIMEType, a.SizeBytes, shortSum(a.SHA256))
	}
}

func shortSum(s string) string {
	if len(s) > 12 {
		return s[:12]
	}
	return s
}
