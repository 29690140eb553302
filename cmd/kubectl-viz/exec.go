package main

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/vizops/viz-operator/internal/sandbox"
	"github.com/vizops/viz-operator/internal/sandbox/local"
)

func init() { subcommands = append(subcommands, newExecCommand) }

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

func newExecCommand() *cobra.Command {
	var (
		useLocal bool
		outDir   string
		formats  []string
		timeout  time.Duration
		asJSON   bool
		dataFile string
	)
	cmd := &cobra.Command{
		Use:   "exec --local FILE",
		Short: "Run a Python file in the vizops sandbox and save the charts it makes",
		Long: `Run a Python file in the same hardened sandbox the operator uses (bubblewrap, no
network, memory/process/time limits) and write the charts and files it produces to a
directory. Only --local is supported: it needs bubblewrap and Debian's python3 with
matplotlib, numpy, pandas, seaborn and plotly on this machine.`,
		Example: `  kubectl viz exec --local chart.py -o out/
  kubectl viz exec --local chart.py --format png,svg --data data.csv --json`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
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
			return runExec(cmd, req, outDir, asJSON)
		},
	}
	cmd.Flags().BoolVar(&useLocal, "local", false, "run in a local bubblewrap sandbox (required)")
	cmd.Flags().StringVarP(&outDir, "output-dir", "o", ".", "directory to write artifacts to")
	cmd.Flags().StringSliceVar(&formats, "format", []string{"png"}, "figure formats: png, svg, html (plotly figures are always HTML plus JSON)")
	cmd.Flags().DurationVar(&timeout, "timeout", 30*time.Second, "wall-clock limit for the code")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the result as JSON")
	cmd.Flags().StringVar(&dataFile, "data", "", "CSV file made available as data.csv (and as the DataFrame df)")
	return cmd
}

func runExec(cmd *cobra.Command, req sandbox.Request, outDir string, asJSON bool) error {
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
	if len(res.Files) > 0 {
		if err := os.MkdirAll(outDir, 0o755); err != nil {
			return err
		}
	}
	for _, f := range res.Files {
		path, err := artifactPath(outDir, f.Name)
		if err != nil {
			return err
		}
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(path, f.Data, 0o644); err != nil {
			return err
		}
		sum := sha256.Sum256(f.Data)
		out.Artifacts = append(out.Artifacts, artifactOutput{Name: f.Name, MIMEType: f.MIMEType, SizeBytes: len(f.Data), SHA256: hex.EncodeToString(sum[:]), Path: path})
	}
	if asJSON {
		enc := json.NewEncoder(cmd.OutOrStdout())
		enc.SetIndent("", "  ")
		if err := enc.Encode(out); err != nil {
			return err
		}
	} else {
		printExecResult(cmd.OutOrStdout(), cmd.ErrOrStderr(), out)
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

// artifactPath places an artifact under dir, refusing names that would leave it.
func artifactPath(dir, name string) (string, error) {
	clean := filepath.Clean(name)
	if filepath.IsAbs(clean) || clean == ".." || strings.HasPrefix(clean, "../") {
		return "", fmt.Errorf("artifact name %q escapes the output directory", name)
	}
	return filepath.Join(dir, clean), nil
}

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
