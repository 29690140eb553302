package main

import (
	"flag"
	"io"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/klog/v2"
)

// newRootCommand builds the whole command tree, in one place: the kubectl flags
// (genericclioptions.ConfigFlags: --kubeconfig, --context, -n, --as, --as-group,
// --token, --server, --request-timeout, ...) are persistent flags of the root, read by
// every cluster command through one clientFactory; each subcommand is constructed with
// that factory and the IO streams.
func newRootCommand(streams genericiooptions.IOStreams) *cobra.Command {
	return newRootCommandWith(streams, genericclioptions.NewConfigFlags(true).WithWarningPrinter(streams))
}

// newRootCommandWith takes the ConfigFlags to bind (tests wrap its REST config).
func newRootCommandWith(streams genericiooptions.IOStreams, config *genericclioptions.ConfigFlags) *cobra.Command {
	root := &cobra.Command{
		Use:           "kubectl-viz",
		Short:         "Turn natural-language chart requests into charts, safely (vizops)",
		SilenceUsage:  true,
		SilenceErrors: true,
		Annotations: map[string]string{
			// Shown as "kubectl viz" in usage lines when run as a plugin.
			cobra.CommandDisplayNameAnnotation: "kubectl viz",
		},
	}
	root.SetIn(streams.In)
	root.SetOut(streams.Out)
	root.SetErr(streams.ErrOut)

	config.AddFlags(root.PersistentFlags())
	addLogFlags(root)
	f := &clientFactory{config: config, streams: streams}
	registerConfigCompletion(root, f)

	root.AddGroup(
		&cobra.Group{ID: "cluster", Title: "Requests in a cluster:"},
		&cobra.Group{ID: "local", Title: "On this machine, without a cluster:"},
	)
	for _, c := range []*cobra.Command{
		newCreateCommand(f),
		newGetCommand(f),
		newLogsCommand(f),
		newPoolsCommand(f),
	} {
		c.GroupID = "cluster"
		root.AddCommand(c)
	}
	for _, c := range []*cobra.Command{
		newRenderCommand(streams),
		newExecCommand(streams),
	} {
		c.GroupID = "local"
		root.AddCommand(c)
	}
	return root
}

// addLogFlags adds kubectl's -v: client-go's own diagnostics (a watch that ended and
// was started again, request traces at -v=6 and up) go to stderr only when asked for.
func addLogFlags(root *cobra.Command) {
	klogFlags := flag.NewFlagSet("klog", flag.ContinueOnError)
	klog.InitFlags(klogFlags)
	v := klogFlags.Lookup("v")
	v.Usage = "log level of client-go's diagnostics on stderr (0: none; 6 and up: the API requests)"
	root.PersistentFlags().AddGoFlag(v)
	root.PersistentPreRun = func(*cobra.Command, []string) {
		if v.Value.String() == "0" {
			klog.SetOutput(io.Discard)
			klog.LogToStderr(false)
			return
		}
		klog.SetOutput(root.ErrOrStderr())
	}
}
