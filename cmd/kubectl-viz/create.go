package main

import (
	"context"
	"fmt"
	"math"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/cli-runtime/pkg/genericiooptions"

	vizv1 "github.com/vizops/viz-operator/api/v1alpha1"
)

type createOptions struct {
	prompt      string
	model       string
	pool        string
	codeFile    string
	dataFile    string
	formats     []string
	timeout     time.Duration
	wait        bool
	waitTimeout time.Duration
	outDir      string
	plotly      plotlyOptions
}

func newCreateCommand(f *clientFactory) *cobra.Command {
	var o createOptions
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
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := o.plotly.complete(cmd.Flags()); err != nil {
				return err
			}
			return runCreate(cmd, f, args[0], &o)
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&o.prompt, "prompt", "", "the chart request in natural language")
	fs.StringVar(&o.model, "model", "", `model as "provider/model" (empty: the built-in templates)`)
	fs.StringVar(&o.pool, "pool", "", "SandboxPool to run in (default: the operator's default, \"default\")")
	fs.StringVar(&o.codeFile, "code-file", "", "Python file to run as given (skips detection and code generation)")
	fs.StringVar(&o.dataFile, "data", "", "CSV file (with a header row) sent inline as spec.data.csv, at most 256 KiB")
	fs.StringSliceVar(&o.formats, "format", nil, "figure formats: png, svg, html (default png)")
	fs.DurationVar(&o.timeout, "timeout", 0, "limit for one execution of the code, 1s to 10m (default 30s)")
	fs.BoolVar(&o.wait, "wait", false, "wait until the request finishes, showing its progress")
	fs.DurationVar(&o.waitTimeout, "wait-timeout", 5*time.Minute, "how long --wait waits")
	fs.StringVarP(&o.outDir, "output-dir", "o", "", "with --wait, write the charts to this directory")
	o.plotly.addFlags(fs)
	_ = cmd.RegisterFlagCompletionFunc("pool", completeNames(f, poolKind))
	_ = cmd.RegisterFlagCompletionFunc("format", cobra.FixedCompletions([]string{string(vizv1.FormatPNG), string(vizv1.FormatSVG), string(vizv1.FormatHTML)}, cobra.ShellCompDirectiveNoFileComp))
	_ = cmd.MarkFlagDirname("output-dir")
	_ = cmd.MarkFlagFilename("code-file", "py")
	_ = cmd.MarkFlagFilename("data", "csv")
	return cmd
}

func buildRequest(name string, o *createOptions) (*vizv1.VisualizationRequest, error) {
	vr := &vizv1.VisualizationRequest{ObjectMeta: metav1.ObjectMeta{Name: name}}
	vr.Spec.Prompt = o.prompt
	vr.Spec.Model = o.model
	if o.codeFile != "" {
		code, err := os.ReadFile(o.codeFile)
		if err != nil {
			return nil, usage("--code-file: %v", err)
		}
		if len(code) > vizv1.MaxCodeLength {
			return nil, usage("--code-file %s is %.1f KiB; spec.code holds at most %d KiB", o.codeFile, float64(len(code))/1024, vizv1.MaxCodeLength>>10)
		}
		vr.Spec.Code = string(code)
	}
	if n := len([]rune(vr.Spec.Prompt)); n > vizv1.MaxPromptLength {
		return nil, usage("--prompt is %d characters; spec.prompt holds at most %d", n, vizv1.MaxPromptLength)
	}
	if strings.TrimSpace(vr.Spec.Prompt) == "" && vr.Spec.Code == "" {
		return nil, usage("give --prompt \"...\" (a chart request) or --code-file FILE (Python to run)")
	}
	if o.dataFile != "" {
		data, err := os.ReadFile(o.dataFile)
		if err != nil {
			return nil, usage("--data: %v", err)
		}
		if len(data) > vizv1.MaxInlineCSVLength {
			return nil, usage("--data %s is %.1f KiB; inline data (spec.data.csv) holds at most %d KiB. Put the CSV in a ConfigMap (kubectl create configmap NAME --from-file=data.csv=%s) and reference it with spec.data.configMapKeyRef",
				o.dataFile, float64(len(data))/1024, vizv1.MaxInlineCSVLength>>10, o.dataFile)
		}
		csv := string(data)
		vr.Spec.Data = &vizv1.DataSource{CSV: &csv}
	}
	if o.pool != "" {
		vr.Spec.SandboxPoolRef.Name = o.pool
	}
	if len(o.formats) > vizv1.MaxOutputFormats {
		return nil, usage("--format names %d formats; a request makes at most %d", len(o.formats), vizv1.MaxOutputFormats)
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
		if secs < vizv1.MinTimeoutSeconds || secs > vizv1.MaxTimeoutSeconds {
			return nil, usage("--timeout %s is out of range: %s to %s", o.timeout,
				time.Duration(vizv1.MinTimeoutSeconds)*time.Second, time.Duration(vizv1.MaxTimeoutSeconds)*time.Second)
		}
		vr.Spec.TimeoutSeconds = int32(secs)
	}
	return vr, nil
}

func runCreate(cmd *cobra.Command, f *clientFactory, name string, o *createOptions) error {
	if o.outDir != "" && !o.wait {
		return usage("-o needs --wait (the charts exist only once the request finishes); or run `kubectl viz get %s -o %s` later", name, o.outDir)
	}
	vr, err := buildRequest(name, o)
	if err != nil {
		return err
	}
	c, err := f.connect()
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
	fmt.Fprintf(f.streams.Out, "visualizationrequest/%s created in namespace %s\n", name, c.namespace)
	if !o.wait {
		return nil
	}
	done, err := waitForRequest(ctx, c, name, o.waitTimeout, f.streams.ErrOut)
	if err != nil {
		return err
	}
	return reportFinished(ctx, f.streams, c, done, o.outDir, &o.plotly)
}

// reportFinished prints the outcome of a finished request and downloads its charts.
func reportFinished(ctx context.Context, streams genericiooptions.IOStreams, c *cluster, vr *vizv1.VisualizationRequest, outDir string, plotly *plotlyOptions) error {
	w := streams.Out
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
	saved, err := saveArtifacts(ctx, c, vr, outDir, plotly, streams.ErrOut)
	printWritten(w, saved)
	return err
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
