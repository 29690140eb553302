package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/vizops/viz-operator/internal/artifacts"
	"github.com/vizops/viz-operator/internal/chartdata"
	"github.com/vizops/viz-operator/internal/codegen"
	"github.com/vizops/viz-operator/internal/detect"
	"github.com/vizops/viz-operator/internal/models"
	"github.com/vizops/viz-operator/internal/pipeline"
	"github.com/vizops/viz-operator/internal/requeststatus"
	"github.com/vizops/viz-operator/internal/sandbox"
	"github.com/vizops/viz-operator/internal/sandbox/local"
)

// renderOutput is what render --json prints.
type renderOutput struct {
	Detection      renderDetection  `json:"detection"`
	CodeGeneration *renderCodegen   `json:"codeGeneration,omitempty"`
	Verified       *renderVerified  `json:"verified,omitempty"`
	Success        bool             `json:"success"`
	Error          string           `json:"error,omitempty"`
	Message        string           `json:"message,omitempty"`
	Warnings       []string         `json:"warnings,omitempty"`
	Artifacts      []renderArtifact `json:"artifacts"`
}

type renderDetection struct {
	Visualization bool     `json:"visualization"`
	ChartType     string   `json:"chartType"`
	Tool          string   `json:"tool"`
	Keywords      []string `json:"keywords"`
	Source        string   `json:"source"`
}

// renderVerified is the Verified condition's content.
type renderVerified struct {
	Status  string `json:"status"` // True, False or Unknown
	Reason  string `json:"reason"`
	Message string `json:"message"`
}

type renderCodegen struct {
	DataSource     string `json:"dataSource,omitempty"`
	Source         string `json:"source"`
	Path           string `json:"path"`
	Template       string `json:"template,omitempty"`
	Model          string `json:"model,omitempty"`
	Attempts       int    `json:"attempts"`
	Repairs        int    `json:"repairs,omitempty"`
	FallbackReason string `json:"fallbackReason,omitempty"`
	Code           string `json:"code"`
}

type renderArtifact struct {
	Name      string `json:"name"`
	MIMEType  string `json:"mimeType"`
	SizeBytes int64  `json:"sizeBytes"`
	SHA256    string `json:"sha256"`
	Path      string `json:"path"`
	// Chart is what the figure plots, read back from it; AltText describes it.
	Chart   *chartdata.Chart `json:"chart,omitempty"`
	AltText string           `json:"altText,omitempty"`
}

type renderOptions struct {
	local     bool
	prompt    string
	model     string
	providers string
	dataFile  string
	formats   []string
	outDir    string
	asJSON    bool
	timeout   time.Duration
	plotly    plotlyOptions
	streams   genericiooptions.IOStreams
}

func newRenderCommand(streams genericiooptions.IOStreams) *cobra.Command {
	o := renderOptions{streams: streams}
	cmd := &cobra.Command{
		Use:   "render --local --prompt TEXT",
		Short: "Turn a chart request into a chart on this machine (detect, generate, run)",
		Long: `Run the operator's whole pipeline without a cluster: keyword detection (refined by the
model when --model is given), code generation (a model with validation and repair, or
the built-in templates), execution in the local bubblewrap sandbox, and the same
artifact checks the operator applies. Charts are written to the output directory.

--model is "provider/model" (e.g. ollama/qwen2.5-coder:7b) and needs --providers, the
same providers file the operator reads. Locally, API keys come from the environment
variables the file names in apiKeyEnv; Kubernetes Secrets are not read.

A prompt that is not a chart request prints the detection and exits 0.`,
		Example: `  kubectl viz render --local --prompt "bar chart of Hydroxyurea (85%), Voxelotor (70%)" -o out/
  kubectl viz render --local --prompt "monthly sales trend" --data sales.csv --format png,svg -o out/
  OPENAI_API_KEY=... kubectl viz render --local --model openai/gpt-4o-mini --providers providers.yaml \
      --prompt "scatter of dosage against HbF" --json -o out/`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := o.plotly.complete(cmd.Flags()); err != nil {
				return err
			}
			return runRender(cmd, &o)
		},
	}
	f := cmd.Flags()
	f.BoolVar(&o.local, "local", false, "run everything on this machine (required)")
	f.StringVar(&o.prompt, "prompt", "", "the chart request in natural language (required)")
	f.StringVar(&o.model, "model", "", `model as "provider/model" (empty: templates only)`)
	f.StringVar(&o.providers, "providers", "", "providers file (YAML), needed with --model")
	f.StringVar(&o.dataFile, "data", "", "CSV file made available as data.csv and the DataFrame df")
	f.StringSliceVar(&o.formats, "format", []string{"png"}, "figure formats: png, svg, html (html selects plotly)")
	f.StringVarP(&o.outDir, "output-dir", "o", ".", "directory to write the charts to")
	f.BoolVar(&o.asJSON, "json", false, "print the outcome as JSON")
	f.DurationVar(&o.timeout, "timeout", 30*time.Second, "wall-clock limit for each execution of the code")
	o.plotly.addFlags(f)
	_ = cmd.MarkFlagDirname("output-dir")
	_ = cmd.MarkFlagFilename("data", "csv")
	_ = cmd.MarkFlagFilename("providers", "yaml", "yml")
	_ = cmd.RegisterFlagCompletionFunc("format", cobra.FixedCompletions([]string{"png", "svg", "html"}, cobra.ShellCompDirectiveNoFileComp))
	return cmd
}

func runRender(cmd *cobra.Command, o *renderOptions) error {
	if !o.local {
		return usage("render runs only with --local for now (it renders on this machine, without a cluster); add --local")
	}
	if strings.TrimSpace(o.prompt) == "" {
		return usage("--prompt is required, e.g. --prompt \"bar chart of A 3, B 5\"")
	}
	var formats []string
	for _, f := range o.formats {
		f = strings.ToLower(strings.TrimSpace(f))
		if f != "png" && f != "svg" && f != "html" {
			return usage("--format %q is not supported: use png, svg or html", f)
		}
		if !slices.Contains(formats, f) {
			formats = append(formats, f)
		}
	}
	var csv []byte
	if o.dataFile != "" {
		b, err := os.ReadFile(o.dataFile)
		if err != nil {
			return usage("--data: %v", err)
		}
		csv = b
	}
	ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	var out renderOutput
	stderr := o.streams.ErrOut
	warn := func(format string, args ...any) {
		msg := fmt.Sprintf(format, args...)
		out.Warnings = append(out.Warnings, msg)
		if !o.asJSON {
			fmt.Fprintln(stderr, "warning:", msg)
		}
	}

	// Model and generator (a ConfigError is the user's to fix: exit 2).
	gen := &codegen.Generator{}
	if o.model != "" {
		if o.providers == "" {
			return usage("--model %s needs --providers FILE (the providers file; see docs/models.md)", o.model)
		}
		cfg, err := models.LoadConfig(o.providers)
		if err != nil {
			return &exitError{code: 2, err: err}
		}
		reg := models.NewRegistry(cfg, models.Options{LookupEnv: os.LookupEnv})
		if gen, err = codegen.NewGenerator(ctx, reg, o.model); err != nil {
			return &exitError{code: 2, err: err}
		}
	}

	// Detection runs once, here; the pipeline takes it as decided (refined by the
	// model when one is given; on the model's failure the keywords decide).
	det := detectPrompt(o.prompt)
	out.Artifacts = []renderArtifact{}
	var pool *local.Pool
	defer func() {
		if pool != nil {
			pool.Close()
		}
	}()
	var sfiles []sandbox.File
	if csv != nil {
		sfiles = append(sfiles, sandbox.File{Name: codegen.DataFile, Data: csv})
	}
	var sformats []sandbox.Format
	for _, f := range formats {
		sformats = append(sformats, sandbox.Format(f))
	}
	exec := func(ctx context.Context, code string) (*sandbox.Result, error) {
		if pool == nil { // started on first use: a prompt that is not a chart needs none
			p, err := local.NewPool(sandbox.PoolConfig{MinReady: 1, MaxSandboxes: 1}, local.Options{})
			if err != nil {
				return nil, fmt.Errorf("the local sandbox cannot start: %w", err)
			}
			pool = p
		}
		return sandbox.Run(ctx, pool, "kubectl-viz", sandbox.Request{Code: code, Files: sfiles, Timeout: o.timeout, Formats: sformats})
	}
	in := codegen.Input{Prompt: o.prompt, Detection: det, CSV: csv, Formats: formats, Packages: codegen.DefaultPackages}
	// The same path as the operator's: detection (refined by the model), generation,
	// execution, chart read-back, verification.
	pres, err := pipeline.Run(ctx, gen, pipeline.Request{Input: in, Model: o.model}, exec)
	rendered, code := renderResult(pres, err)
	out.Detection, out.CodeGeneration, out.Verified = rendered.Detection, rendered.CodeGeneration, rendered.Verified
	if err == nil && !pres.Detection.Visualization {
		out.Message = fmt.Sprintf("not a visualization (tool: %s)", pres.Detection.Tool)
		return printRender(o, out)
	}
	outcome := pres.Outcome
	if err != nil {
		out.Error = rendered.Error
		if o.asJSON {
			_ = printRender(o, out)
		}
		return &exitError{code: code, err: errors.New(rendered.Error)}
	}
	if outcome.FallbackReason != "" {
		warn("used the %s template: %s", outcome.Code.Template, outcome.FallbackReason)
	}
	res := outcome.Result
	out.Success = res != nil && res.Success
	if res != nil && res.Error != nil {
		out.Error = res.Error.Name
		if res.Error.Value != "" {
			out.Error += ": " + res.Error.Value
		}
	}
	if res != nil && len(res.Files) > 0 {
		arts, warnings, err := artifacts.Prepare(res.Files, artifacts.DefaultLimits())
		if err != nil {
			return err
		}
		for _, w := range warnings {
			warn("%s", w)
		}
		// render has always replaced its outputs; it does so without following a
		// symlink in the output directory, as exec does.
		files, err := writeOutput(o.outDir, arts, true, &o.plotly, stderr)
		for i, f := range files {
			if i >= len(arts) { // plotly.min.js, beside the HTML
				if !o.asJSON {
					fmt.Fprintf(stderr, "wrote %s (plotly.js for the HTML charts)\n", f.Path)
				}
				continue
			}
			a := arts[i]
			ra := renderArtifact{Name: a.Name, MIMEType: a.MIMEType, SizeBytes: f.SizeBytes, SHA256: f.SHA256, Path: f.Path}
			if cs := pipeline.ChartsOf(pres.Charts, a.Name); len(cs) > 0 {
				c := cs[0]
				ra.Chart, ra.AltText = &c, chartdata.AltText(cs)
			}
			out.Artifacts = append(out.Artifacts, ra)
		}
		if err != nil {
			return err
		}
	}
	if err := printRender(o, out); err != nil {
		return err
	}
	if !out.Success {
		msg := out.Error
		if msg == "" {
			msg = "the code failed"
		}
		return &exitError{code: 1, err: errors.New(msg)}
	}
	return nil
}

// detectPrompt is the keyword detection render runs, once per request (a variable so
// that a test counts its calls).
var detectPrompt = detect.Detect

// renderResult maps the pipeline's result with internal/requeststatus, as the
// controller maps it into the request's status: the detection, code generation and
// Verified condition render prints, and for an error the message and exit code (2 when
// no retry can help, the request's reason first, as the Ready condition reads).
func renderResult(pres pipeline.Result, err error) (renderOutput, int) {
	rs := requeststatus.Of(pres, err)
	var out renderOutput
	d := requeststatus.Detection(pres.Detection)
	out.Detection = renderDetection{Visualization: d.Visualization, ChartType: d.ChartType, Tool: d.Tool, Keywords: d.Keywords, Source: d.Source}
	if out.Detection.Keywords == nil {
		out.Detection.Keywords = []string{}
	}
	if cg := rs.CodeGeneration; cg != nil {
		out.CodeGeneration = &renderCodegen{DataSource: string(cg.DataSource), Source: string(cg.Source), Path: cg.Path, Template: cg.Template,
			Model: cg.Model, Attempts: int(cg.Attempts), Repairs: pres.Outcome.Repairs, FallbackReason: cg.FallbackReason, Code: cg.Code}
	}
	if v := rs.Verified; v != nil {
		out.Verified = &renderVerified{Status: string(v.Status), Reason: v.Reason, Message: v.Message}
	}
	if err == nil {
		return out, 0
	}
	// No chart rather than a wrong one: say why, as the operator's condition does.
	if f := rs.Failed; f != nil {
		out.Error = fmt.Sprintf("%s: %s", f.Reason, f.Message)
		return out, 2
	}
	out.Error = err.Error()
	return out, 1
}

func printRender(o *renderOptions, out renderOutput) error {
	w := o.streams.Out
	if o.asJSON {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(out)
	}
	d := out.Detection
	fmt.Fprintf(w, "detection: visualization=%v tool=%s chartType=%s source=%s keywords=%s\n",
		d.Visualization, d.Tool, d.ChartType, d.Source, strings.Join(d.Keywords, ","))
	if out.Message != "" {
		fmt.Fprintln(w, out.Message)
		return nil
	}
	if cg := out.CodeGeneration; cg != nil {
		what := cg.Template
		if cg.Model != "" && cg.Source == string(codegen.SourceModel) {
			what = cg.Model
		}
		fmt.Fprintf(w, "code: %s (%s, path %s, model calls %d)\n", strings.ToLower(cg.Source), what, cg.Path, cg.Attempts)
	}
	if v := out.Verified; v != nil {
		fmt.Fprintf(w, "verified: %s (%s): %s\n", v.Status, v.Reason, v.Message)
	}
	printArtifacts(w, out.Artifacts)
	for _, a := range out.Artifacts {
		if a.AltText != "" {
			fmt.Fprintf(w, "  %s: %s\n", a.Name, a.AltText)
		}
	}
	return nil
}

func printArtifacts(w io.Writer, arts []renderArtifact) {
	for _, a := range arts {
		fmt.Fprintf(w, "wrote %s (%s, %d bytes)\n", a.Path, a.MIMEType, a.SizeBytes)
	}
}
