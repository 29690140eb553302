// Command kubectl-viz is the vizops kubectl plugin. Installed on PATH it runs as
// `kubectl viz`. Its --local modes run the operator's own pipeline packages without a
// cluster; the other commands talk to the cluster through the kubeconfig.
package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"
)

func newRootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:           "kubectl-viz",
		Short:         "Turn natural-language chart requests into charts, safely (vizops)",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	// Each subcommand lives in its own file and registers itself here.
	for _, add := range subcommands {
		root.AddCommand(add())
	}
	return root
}

// subcommands is filled by the init functions of the subcommand files.
var subcommands []func() *cobra.Command

func main() {
	if err := newRootCommand().Execute(); err != nil {
		// Errors are one clear line and a non-zero exit.
		fmt.Fprintln(os.Stderr, "error:", err)
		os.Exit(exitCode(err))
	}
}

// exitError carries a specific exit code (e.g. 1 for "the code failed", 2 for usage).
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

func exitCode(err error) int {
	if e, ok := err.(*exitError); ok {
		return e.code
	}
	return 1
}
