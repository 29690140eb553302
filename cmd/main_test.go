package main

import (
	"slices"
	"testing"

	corev1 "k8s.io/api/core/v1"

	"github.com/vizops/viz-operator/internal/backends"
	kubebackend "github.com/vizops/viz-operator/internal/backends/kubernetes"
)

func TestCacheOptionsWatchNamespaces(t *testing.T) {
	if o := cacheOptions("", nil); o.DefaultNamespaces != nil {
		t.Errorf("no --watch-namespaces: %v, want every namespace", o.DefaultNamespaces)
	}
	o := cacheOptions(" team-a, team-b ,,", backends.NewSet(&kubebackend.Backend{}))
	var got []string
	for ns := range o.DefaultNamespaces {
		got = append(got, ns)
	}
	slices.Sort(got)
	if !slices.Equal(got, []string{"team-a", "team-b"}) {
		t.Errorf("namespaces %v", got)
	}
	var pods bool
	for obj, by := range o.ByObject {
		if _, ok := obj.(*corev1.Pod); ok {
			pods = by.Label != nil && !by.Label.Empty()
		}
	}
	if len(o.ByObject) < 2 || !pods {
		t.Errorf("the label-filtered caches are lost (the ConfigMaps', and the Kubernetes backend's Pods'): %v", o.ByObject)
	}
}
