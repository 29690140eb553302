package main

import (
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/spf13/cobra"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	vizv1 "github.com/vizops/viz-operator/api/v1alpha1"
)

func newPoolsCommand(f *clientFactory) *cobra.Command {
	var allNamespaces bool
	cmd := &cobra.Command{
		Use:   "pools",
		Short: "List the SandboxPools: backend, ready and busy sandboxes, and why a pool is not ready",
		Example: `  kubectl viz pools
  kubectl viz pools -A`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := f.connect()
			if err != nil {
				return err
			}
			list := &vizv1.SandboxPoolList{}
			var opts []client.ListOption
			if !allNamespaces {
				opts = append(opts, client.InNamespace(c.namespace))
			}
			if err := c.List(cmd.Context(), list, opts...); err != nil {
				return apiError(err, "sandboxpools", "", c.namespace)
			}
			if len(list.Items) == 0 {
				where := fmt.Sprintf("in namespace %q", c.namespace)
				if allNamespaces {
					where = "in any namespace"
				}
				fmt.Fprintf(f.streams.ErrOut, "No SandboxPools %s.\n", where)
				return nil
			}
			printPools(f.streams.Out, list.Items, allNamespaces)
			return nil
		},
	}
	cmd.Flags().BoolVarP(&allNamespaces, "all-namespaces", "A", false, "list the pools of every namespace")
	return cmd
}

func printPools(w io.Writer, pools []vizv1.SandboxPool, withNamespace bool) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	if withNamespace {
		fmt.Fprint(tw, "NAMESPACE\t")
	}
	fmt.Fprintln(tw, "NAME\tBACKEND\tREADY\tBUSY\tMAX\tMESSAGE")
	for _, p := range pools {
		if withNamespace {
			fmt.Fprintf(tw, "%s\t", p.Namespace)
		}
		backend := string(p.Status.Backend)
		if backend == "" {
			backend = "-" // not yet resolved from its class
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%s\n", p.Name, backend, p.Status.Ready, p.Status.Busy, p.Spec.MaxSandboxes, poolMessage(p))
	}
	_ = tw.Flush()
}

// poolMessage is the Ready condition's message when the pool is not ready.
func poolMessage(p vizv1.SandboxPool) string {
	c := readyCondition(p.Status.Conditions)
	switch {
	case c == nil:
		return "not reconciled yet (is the operator running?)"
	case c.Status == metav1.ConditionTrue:
		return ""
	case c.Message != "":
		return c.Reason + ": " + oneLine(c.Message)
	}
	return c.Reason
}
