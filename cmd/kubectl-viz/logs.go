package main

import (
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	vizv1 "github.com/vizops/viz-operator/api/v1alpha1"
)

func newLogsCommand(f *clientFactory) *cobra.Command {
	var showCode bool
	cmd := &cobra.Command{
		Use:   "logs NAME",
		Short: "Show how a VisualizationRequest's code came about and what it printed",
		Long: `Show the code generation (path, template or model), the last execution's stdout and
stderr, and the exception the code raised (name, value and traceback), as recorded in
the request's status.`,
		Example: `  kubectl viz logs treatment-effectiveness
  kubectl viz logs custom --code`,
		Args:              cobra.ExactArgs(1),
		ValidArgsFunction: completeRequestArg(f),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := f.connect()
			if err != nil {
				return err
			}
			vr, err := c.getRequest(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			printLogs(f.streams.Out, vr, showCode)
			return nil
		},
	}
	cmd.Flags().BoolVar(&showCode, "code", false, "also print the Python that ran")
	return cmd
}

func printLogs(w io.Writer, vr *vizv1.VisualizationRequest, showCode bool) {
	st := vr.Status
	phase := string(st.Phase)
	if phase == "" {
		phase = "Pending"
	}
	line := fmt.Sprintf("phase: %s", phase)
	if c := readyCondition(st.Conditions); c != nil && c.Reason != "" {
		line += fmt.Sprintf(" (%s: %s)", c.Reason, oneLine(c.Message))
	}
	fmt.Fprintln(w, line)
	if c := blockingCondition(vr); c != nil && !st.Phase.Finished() {
		fmt.Fprintf(w, "waiting: %s=%s %s: %s\n", c.Type, c.Status, c.Reason, oneLine(c.Message))
	}
	if d := st.Detection; d != nil {
		fmt.Fprintf(w, "detection: visualization=%v tool=%s chartType=%s source=%s\n", d.Visualization, d.Tool, d.ChartType, d.Source)
	}
	if g := st.CodeGeneration; g != nil {
		parts := []string{"path " + orDash(g.Path), "source " + orDash(string(g.Source))}
		if g.Template != "" {
			parts = append(parts, "template "+g.Template)
		}
		if g.Model != "" {
			parts = append(parts, fmt.Sprintf("model %s (%d call(s))", g.Model, g.Attempts))
		}
		fmt.Fprintf(w, "code generation: %s\n", strings.Join(parts, ", "))
		if g.FallbackReason != "" {
			fmt.Fprintf(w, "fallback reason: %s\n", oneLine(g.FallbackReason))
		}
		if showCode && g.Code != "" {
			section(w, "code", g.Code)
		}
	}
	e := st.Execution
	if e == nil {
		fmt.Fprintln(w, "execution: none yet")
		return
	}
	fmt.Fprintf(w, "execution: backend %s, sandbox %s, %d ms, attempt(s) %d\n", orDash(e.Backend), orDash(e.SandboxID), e.DurationMillis, st.Attempts)
	section(w, "stdout", e.Stdout)
	section(w, "stderr", e.Stderr)
	if e.Text != "" {
		section(w, "result", e.Text)
	}
	if x := e.Error; x != nil {
		fmt.Fprintf(w, "--- error: %s: %s\n", x.Name, x.Value)
		if x.Traceback != "" {
			fmt.Fprint(w, withNewline(x.Traceback))
		}
	}
}

func section(w io.Writer, title, body string) {
	if body == "" {
		fmt.Fprintf(w, "--- %s: (empty)\n", title)
		return
	}
	fmt.Fprintf(w, "--- %s\n%s", title, withNewline(body))
}

func withNewline(s string) string {
	if strings.HasSuffix(s, "\n") {
		return s
	}
	return s + "\n"
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
