// Command kubectl-viz is the vizops kubectl plugin. Installed on PATH it runs as
// `kubectl viz`. Its --local modes run the operator's own pipeline packages without a
// cluster; the other commands talk to the cluster with kubectl's own flags and
// kubeconfig handling (k8s.io/cli-runtime).
package main

import (
	"errors"
	"fmt"
	"os"

	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/vizops/viz-operator/internal/sandbox/agent"
)

func main() {
	agent.RunIfReexec() // render --local and exec run Local sandboxes, whose agent is this binary
	streams := genericiooptions.IOStreams{In: os.Stdin, Out: os.Stdout, ErrOut: os.Stderr}
	if err := newRootCommand(streams).Execute(); err != nil {
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
	var e *exitError
	if errors.As(err, &e) {
		return e.code
	}
	return 1
}

func usage(format string, args ...any) error {
	return &exitError{code: 2, err: fmt.Errorf(format, args...)}
}
