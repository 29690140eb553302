package main

import (
	"fmt"

	"github.com/spf13/cobra"
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
			return nil
		},
	}
	cluster.addFlags(cmd)
	cmd.Flags().StringVarP(&outDir, "output-dir", "o", ".", "directory to write the charts to")
	return cmd
}
