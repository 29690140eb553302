package main

import (
	"context"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"sigs.k8s.io/controller-runtime/pkg/client"

	vizv1 "github.com/vizops/viz-operator/api/v1alpha1"
)

// Shell completion (`kubectl viz completion bash|zsh|fish|powershell`, and kubectl's
// plugin completion through a kubectl_complete-viz script) of request, pool and
// namespace names, read from the cluster with the flags given so far (--context, -n,
// --as, ...). A cluster that cannot be reached completes nothing rather than failing.

type nameKind int

const (
	requestKind nameKind = iota
	poolKind
)

// completionTimeout bounds the API call a completion makes: a shell waits for it;
// completionLimit bounds the names it lists.
const (
	completionTimeout = 5 * time.Second
	completionLimit   = 500
)

// completeNames completes the names of the namespace's requests or pools.
func completeNames(f *clientFactory, kind nameKind) cobra.CompletionFunc {
	return func(cmd *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
		c, err := f.connect()
		if err != nil {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		ctx, cancel := context.WithTimeout(cmd.Context(), completionTimeout)
		defer cancel()
		var names []string
		switch kind {
		case requestKind:
			list := &vizv1.VisualizationRequestList{}
			if err := c.List(ctx, list, client.InNamespace(c.namespace), client.Limit(completionLimit)); err != nil {
				return nil, cobra.ShellCompDirectiveNoFileComp
			}
			for _, vr := range list.Items {
				names = append(names, vr.Name)
			}
		case poolKind:
			list := &vizv1.SandboxPoolList{}
			if err := c.List(ctx, list, client.InNamespace(c.namespace), client.Limit(completionLimit)); err != nil {
				return nil, cobra.ShellCompDirectiveNoFileComp
			}
			for _, p := range list.Items {
				names = append(names, p.Name)
			}
		}
		return matching(names, toComplete, args), cobra.ShellCompDirectiveNoFileComp
	}
}

// completeRequestArg completes one request name as the first argument.
func completeRequestArg(f *clientFactory) cobra.CompletionFunc {
	names := completeNames(f, requestKind)
	return func(cmd *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
		if len(args) > 0 {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		return names(cmd, args, toComplete)
	}
}

// registerConfigCompletion completes -n/--namespace with the cluster's namespaces, and
// --context, --cluster and --user with the kubeconfig's.
func registerConfigCompletion(root *cobra.Command, f *clientFactory) {
	fromKubeconfig := func(names func(api *clientcmdapi.Config) []string) cobra.CompletionFunc {
		return func(_ *cobra.Command, _ []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
			raw, err := f.config.ToRawKubeConfigLoader().RawConfig()
			if err != nil {
				return nil, cobra.ShellCompDirectiveNoFileComp
			}
			return matching(names(&raw), toComplete, nil), cobra.ShellCompDirectiveNoFileComp
		}
	}
	_ = root.RegisterFlagCompletionFunc("context", fromKubeconfig(func(c *clientcmdapi.Config) []string { return slices.Collect(maps.Keys(c.Contexts)) }))
	_ = root.RegisterFlagCompletionFunc("cluster", fromKubeconfig(func(c *clientcmdapi.Config) []string { return slices.Collect(maps.Keys(c.Clusters)) }))
	_ = root.RegisterFlagCompletionFunc("user", fromKubeconfig(func(c *clientcmdapi.Config) []string { return slices.Collect(maps.Keys(c.AuthInfos)) }))
	_ = root.RegisterFlagCompletionFunc("namespace", func(cmd *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
		c, err := f.connect()
		if err != nil {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		ctx, cancel := context.WithTimeout(cmd.Context(), completionTimeout)
		defer cancel()
		list := &corev1.NamespaceList{}
		if err := c.List(ctx, list, client.Limit(completionLimit)); err != nil {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		var names []string
		for _, ns := range list.Items {
			names = append(names, ns.Name)
		}
		return matching(names, toComplete, nil), cobra.ShellCompDirectiveNoFileComp
	})
}

// matching keeps the names that start with prefix and are not already arguments, sorted.
func matching(names []string, prefix string, args []string) []cobra.Completion {
	var out []cobra.Completion
	for _, n := range names {
		if strings.HasPrefix(n, prefix) && !slices.Contains(args, n) {
			out = append(out, n)
		}
	}
	slices.Sort(out)
	return out
}
