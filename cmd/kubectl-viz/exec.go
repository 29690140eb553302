package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/vizops/viz-operator/internal/artifacts"
	"github.com/vizops/viz-operator/internal/sandbox"
	"github.com/vizops/viz-operator/internal/sandbox/local"
)

// execOutput is what --json prints.
type execOutput struct {
	Success         bool             `json:"success"`
	Stdout          string           `json:"stdout"`
	Stderr          string           `json:"stderr"`
	Text            string           `json:"text,omitempty"`
	Error           *execErrorOutput `json:"error,omitempty"`
	TimedOut        bool             `json:"timedOut,omitempty"`
	ExecutionTimeMS int64            `json:"executionTimeMs"`
	SandboxID       string           `json:"sandboxId"`
	Artifacts       []artifactOutput `json:"artifacts"`
}

type execErrorOutput struct {
	Name      string `json:"name"`
	Value     string `json:"value"`
	Traceback string `json:"traceback,omitempty"`
}

type artifactOutput struct {
	Name      string `json:"name"`
	MIMEType  string `json:"mimeType"`
	SizeBytes int    `json:"sizeBytes"`
	SHA256    string `json:"sha256"`
	Path      string `json:"path"`
}

func newExecCommand(streams genericiooptions.IOStreams) *cobra.Command {
	var (
		plotly    plotlyOptions
		useLocal  bool
		outDir    string
		formats   []string
		timeout   time.Duration
		asJSON    bool
		dataFile  string
		overwrite bool
	)
	cmd := &cobra.Command{
		Use:   "exec --local FILE",
		Short: "Run a Python file in the vizops sandbox and save the charts it makes",
		Long: `Run a Python file in the same hardened sandbox the operator uses (bubblewrap, no
network, memory/process/time limits) and write the charts and files it produces to a
directory. Only --local is supported: it needs bubblewrap and Debian's python3 with
matplotlib, numpy, pandas, seaborn and plotly on this machine.

What is written: the figures the sandbox captured, and the files the code left in its
output folder (OUTPUT_DIR, "outputs/"), after the same checks and sanitizing the operator
applies (artifacts.Prepare). Each lands directly in the output directory under a safe,
flat name; nothing else the code wrote is copied, nothing is written outside that
directory, symlinks there are never followed, and existing files are kept unless you
pass --overwrite.`,
		Example: `  kubectl viz exec --local chart.py -o out/
  kubectl viz exec --local chart.py --format png,svg --data data.csv --json`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := plotly.complete(cmd.Flags()); err != nil {
				return err
			}
			if !useLocal {
				return &exitError{code: 2, err: errors.New("exec runs code only with --local (running code in the cluster through exec is not supported); try: kubectl viz exec --local " + args[0])}
			}
			code, err := os.ReadFile(args[0])
			if err != nil {
				return &exitError{code: 2, err: err}
			}
			req := sandbox.Request{Code: string(code), Timeout: timeout}
			for _, f := range formats {
				req.Formats = append(req.Formats, sandbox.Format(strings.ToLower(strings.TrimSpace(f))))
			}
			if dataFile != "" {
				data, err := os.ReadFile(dataFile)
				if err != nil {
					return &exitError{code: 2, err: err}
				}
				req.Files = append(req.Files, sandbox.File{Name: "data.csv", Data: data})
			}
			return runExec(cmd, streams, req, outDir, asJSON, overwrite, &plotly)
		},
	}
	cmd.Flags().BoolVar(&useLocal, "local", false, "run in a local bubblewrap sandbox (required)")
	cmd.Flags().StringVarP(&outDir, "output-dir", "o", ".", "directory to write artifacts to")
	cmd.Flags().StringSliceVar(&formats, "format", []string{"png"}, "figure formats: png, svg, html (plotly figures are always HTML plus JSON)")
	cmd.Flags().DurationVar(&timeout, "timeout", 30*time.Second, "wall-clock limit for the code")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the result as JSON")
	cmd.Flags().StringVar(&dataFile, "data", "", "CSV file made available as data.csv (and as the DataFrame df)")
	cmd.Flags().BoolVar(&overwrite, "overwrite", false, "replace files of the same name in the output directory (a symlink there is replaced, never followed)")
	plotly.addFlags(cmd.Flags())
	_ = cmd.MarkFlagDirname("output-dir")
	_ = cmd.MarkFlagFilename("data", "csv")
	_ = cmd.RegisterFlagCompletionFunc("format", cobra.FixedCompletions([]string{"png", "svg", "html"}, cobra.ShellCompDirectiveNoFileComp))
	return cmd
}

func runExec(cmd *cobra.Command, streams genericiooptions.IOStreams, req sandbox.Request, outDir string, asJSON, overwrite bool, plotly *plotlyOptions) error {
	ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	pool, err := local.NewPool(sandbox.PoolConfig{MinReady: 1, MaxSandboxes: 1}, local.Options{})
	if err != nil {
		return err
	}
	defer pool.Close()
	res, err := sandbox.Run(ctx, pool, "kubectl-viz", req)
	if err != nil {
		return err
	}
	out := execOutput{
		Success: res.Success, Stdout: res.Stdout, Stderr: res.Stderr, Text: res.Text,
		TimedOut: res.TimedOut, ExecutionTimeMS: res.ExecutionTime.Milliseconds(), SandboxID: res.SandboxID,
		Artifacts: []artifactOutput{},
	}
	if res.Error != nil {
		out.Error = &execErrorOutput{Name: res.Error.Name, Value: res.Error.Value, Traceback: res.Error.Traceback}
	}
	arts, warnings, err := artifacts.Prepare(exportable(res.Files), artifacts.DefaultLimits())
	if err != nil {
		return err
	}
	for _, w := range warnings {
		fmt.Fprintf(streams.ErrOut, "warning: %s\n", w)
	}
	if len(arts) > 0 {
		files, err := writeOutput(outDir, arts, overwrite, plotly, streams.ErrOut)
		for i, f := range files {
			if i >= len(arts) { // plotly.min.js, beside the HTML
				fmt.Fprintf(streams.ErrOut, "wrote %s (plotly.js for the HTML charts)\n", f.Path)
				continue
			}
			out.Artifacts = append(out.Artifacts, artifactOutput{Name: f.Name, MIMEType: f.MIMEType, SizeBytes: int(f.SizeBytes), SHA256: f.SHA256, Path: f.Path})
		}
		if err != nil {
			return &exitError{code: 1, err: err}
		}
	}
	if asJSON {
		enc := json.NewEncoder(streams.Out)
		enc.SetIndent("", "  ")
		if err := enc.Encode(out); err != nil {
			return err
		}
	} else {
		printExecResult(streams.Out, streams.ErrOut, out)
	}
	if !res.Success {
		msg := "the code failed"
		if res.Error != nil {
			msg = res.Error.Name
			if res.Error.Value != "" {
				msg += ": " + res.Error.Value
			}
		}
		return &exitError{code: 1, err: errors.New(msg)}
	}
	return nil
}

// exportable keeps what the CLI may write: the figures the sandbox captured, and the
// files in the job's output folder (renamed without the folder). Everything else the
// code left in its working directory (a Makefile, a .bashrc) is the code's scratch.
func exportable(files []sandbox.Artifact) []sandbox.Artifact {
	var out []sandbox.Artifact
	for _, f := range files {
		switch {
		case f.Figure:
			out = append(out, f)
		case strings.HasPrefix(f.Name, outputFolder):
			f.Name = strings.TrimPrefix(f.Name, outputFolder)
			out = append(out, f)
		}
	}
	return out
}

// outputFolder is the job's OUTPUT_DIR relative to its working directory.
const outputFolder = "outputs/"

func printExecResult(stdout, stderr io.Writer, out execOutput) {
	fmt.Fprint(stdout, out.Stdout)
	fmt.Fprint(stderr, out.Stderr)
	if out.Text != "" {
		fmt.Fprintln(stdout, out.Text)
	}
	if out.Error != nil && out.Error.Traceback != "" {
		fmt.Fprint(stderr, out.Error.Traceback)
	}
	for _, a := range out.Artifacts {
		fmt.Fprintf(stderr, "wrote %s (%s, %d bytes)\n", a.Path, a.MIMEType, a.SizeBytes)
	}
}
