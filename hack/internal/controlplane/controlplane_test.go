package controlplane

import (
	"os"
	"path/filepath"
	"testing"
)

// The first-run note depends on whether the envtest binaries are cached.
func TestCachedAssets(t *testing.T) {
	root, machine := t.TempDir(), t.TempDir()
	t.Setenv("KUBEBUILDER_ASSETS", "")
	t.Setenv("ENVTEST_MACHINE_CACHE", machine)
	if err := os.WriteFile(filepath.Join(root, "go.mod"), []byte("module x\n\nrequire (\n\tk8s.io/api v0.37.2 // indirect\n)\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if v := K8sVersion(root); v != "1.37.2" {
		t.Fatalf("K8sVersion = %q", v)
	}
	fill := func(dir string, names ...string) {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		for _, n := range names {
			if err := os.WriteFile(filepath.Join(dir, n), []byte("#!/bin/sh\n"), 0o755); err != nil {
				t.Fatal(err)
			}
		}
	}
	if got := CachedAssets(root); got != "" {
		t.Errorf("nothing cached: got %q", got)
	}
	fill(filepath.Join(root, "bin", "k8s", "1.37.2"), "etcd") // kube-apiserver still missing
	if got := CachedAssets(root); got != "" {
		t.Errorf("half cached: got %q", got)
	}
	fill(filepath.Join(machine, "1.37.2"), "etcd", "kube-apiserver")
	if got, want := CachedAssets(root), filepath.Join(machine, "1.37.2"); got != want {
		t.Errorf("machine cache: got %q, want %q", got, want)
	}
	fill(filepath.Join(root, "bin", "k8s", "1.37.2"), "kube-apiserver")
	if got, want := CachedAssets(root), filepath.Join(root, "bin", "k8s", "1.37.2"); got != want {
		t.Errorf("repository cache first: got %q, want %q", got, want)
	}
	other := t.TempDir()
	fill(other, "etcd", "kube-apiserver")
	t.Setenv("KUBEBUILDER_ASSETS", other)
	if got := CachedAssets(root); got != other {
		t.Errorf("KUBEBUILDER_ASSETS first: got %q", got)
	}
}
