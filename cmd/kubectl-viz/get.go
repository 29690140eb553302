package main

import (
	"fmt"
	"io"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/api/meta"

	vizv1 "github.com/vizops/viz-operator/api/v1alpha1"
)

func init() { subcommands = append(subcommands, newGetCommand) }

func newGetCommand() *cobra.Command {
	var (
		cluster clusterOptions
		outDir  string
	)
	cmd := &cobra.Command{
		Use:   "get NAME -o DIR",
		Short: "Download the charts of a VisualizationRequest, checking each sha256",
		Long: `Download the artifacts of a finished VisualizationRequest, whether the operator kept
them in status or in a ConfigMap, check each against the sha256 in status, and write
them to DIR. Nothing is written when any artifact does not match.`,
		Example: `  kubectl viz get treatment-effectiveness -o out/
  kubectl viz get hemoglobin-trend -n research -o charts/`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := cluster.connect()
			if err != nil {
				return err
			}
			vr, err := c.getRequest(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			if len(vr.Status.Artifacts) == 0 {
				phase := string(vr.Status.Phase)
				if phase == "" {
					phase = "Pending"
				}
				if vr.Status.Phase.Finished() {
					return fmt.Errorf("visualizationrequest %q has no artifacts (phase %s); see `kubectl viz logs %s`", vr.Name, phase, vr.Name)
				}
				return fmt.Errorf("visualizationrequest %q has no artifacts yet (phase %s); wait for it with `kubectl wait vr/%s --for=jsonpath='{.status.phase}'=Succeeded`", vr.Name, phase, vr.Name)
			}
			saved, err := saveArtifacts(cmd.Context(), c, vr, outDir)
			if err != nil {
				return err
			}
			printSaved(cmd.OutOrStdout(), saved)
			printCharts(cmd.OutOrStdout(), vr)
			return nil
		},
	}
	cluster.addFlags(cmd)
	cmd.Flags().StringVarP(&outDir, "output-dir", "o", ".", "directory to write the charts to")
	return cmd
}

// printCharts prints what each figure plots (status.artifacts[].chart, altText) and
// the Verified condition.
func printCharts(w io.Writer, vr *vizv1.VisualizationRequest) {
	for _, a := range vr.Status.Artifacts {
		if a.Chart == nil {
			continue
		}
		fmt.Fprintf(w, "%s: %s chart", a.Name, a.Chart.Type)
		if a.Chart.Title != "" {
			fmt.Fprintf(w, " %q", a.Chart.Title)
		}
		fmt.Fprintln(w)
		for _, s := range a.Chart.Series {
			name := s.Name
			if name == "" {
				name = "(unnamed)"
			}
			fmt.Fprintf(w, "  %s %s: labels=%v x=%v y=%v", s.Type, name, s.Labels, s.X, s.Y)
			for _, b := range s.Boxes {
				fmt.Fprintf(w, " [%s min %s q1 %s median %s q3 %s max %s]", b.Label, b.Min, b.Q1, b.Median, b.Q3, b.Max)
			}
			if s.Omitted > 0 {
				fmt.Fprintf(w, " (… %d more points)", s.Omitted)
			}
			fmt.Fprintln(w)
		}
		if a.AltText != "" {
			fmt.Fprintf(w, "  alt text: %s\n", a.AltText)
		}
	}
	if c := meta.FindStatusCondition(vr.Status.Conditions, vizv1.ConditionVerified); c != nil {
		fmt.Fprintf(w, "Verified=%s (%s): %s\n", c.Status, c.Reason, c.Message)
	}
}
