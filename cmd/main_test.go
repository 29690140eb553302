package main

import (
	"slices"
	"testing"
)

func TestCacheOptionsWatchNamespaces(t *testing.T) {
	if o := cacheOptions(""); o.DefaultNamespaces != nil {
		t.Errorf("no --watch-namespaces: %v, want every namespace", o.DefaultNamespaces)
	}
	o := cacheOptions(" team-a, team-b ,,")
	var got []string
	for ns := range o.DefaultNamespaces {
		got = append(got, ns)
	}
	slices.Sort(got)
	if !slices.Equal(got, []string{"team-a", "team-b"}) {
		t.Errorf("namespaces %v", got)
	}
	if len(o.ByObject) == 0 {
		t.Errorf("the label-filtered caches are lost")
	}
}
