package chart

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/wait"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
)

// k8sClient talks to the envtest API server every apply test shares. It starts without
// CRDs: the installs under test bring their own.
var k8sClient client.Client

func TestMain(m *testing.M) {
	if os.Getenv("KUBEBUILDER_ASSETS") == "" {
		fmt.Fprintln(os.Stderr, "KUBEBUILDER_ASSETS is not set: run the tests with `make test`, which finds or builds the envtest binaries")
		os.Exit(1)
	}
	env := &envtest.Environment{}
	cfg, err := env.Start()
	if err != nil {
		fmt.Fprintln(os.Stderr, "starting envtest:", err)
		os.Exit(1)
	}
	k8sClient, err = client.New(cfg, client.Options{})
	code := 1
	if err != nil {
		fmt.Fprintln(os.Stderr, "client:", err)
	} else {
		code = m.Run()
	}
	if err := env.Stop(); err != nil {
		fmt.Fprintln(os.Stderr, "stopping envtest:", err)
	}
	os.Exit(code)
}

// apply creates every object as `helm install` or `kubectl apply --server-side` would:
// the namespace first, then CRDs (waiting until they are served), then everything else,
// custom resources last. Each object is read back.
func apply(ctx context.Context, t *testing.T, owner, namespace string, objs []*unstructured.Unstructured) {
	t.Helper()
	ns := &unstructured.Unstructured{}
	ns.SetAPIVersion("v1")
	ns.SetKind("Namespace")
	ns.SetName(namespace)
	objs = append([]*unstructured.Unstructured{ns}, objs...)
	stage := func(o *unstructured.Unstructured) int {
		switch {
		case o.GetKind() == "Namespace":
			return 0
		case o.GetKind() == "CustomResourceDefinition":
			return 1
		case o.GroupVersionKind().Group == "viz.vizops.io":
			return 3
		default:
			return 2
		}
	}
	for s := 0; s <= 3; s++ {
		for _, o := range objs {
			if stage(o) != s {
				continue
			}
			applyOne(ctx, t, owner, o)
		}
		if s == 1 {
			for _, o := range objs {
				if stage(o) == 1 {
					waitEstablished(ctx, t, o.GetName())
				}
			}
		}
	}
}

func applyOne(ctx context.Context, t *testing.T, owner string, o *unstructured.Unstructured) {
	t.Helper()
	if err := applyErr(ctx, owner, o); err != nil {
		t.Fatalf("applying %s %s/%s: %v", o.GetKind(), o.GetNamespace(), o.GetName(), err)
	}
	got := &unstructured.Unstructured{}
	got.SetGroupVersionKind(o.GroupVersionKind())
	if err := k8sClient.Get(ctx, client.ObjectKeyFromObject(o), got); err != nil {
		t.Fatalf("reading back %s %s/%s: %v", o.GetKind(), o.GetNamespace(), o.GetName(), err)
	}
}

func applyErr(ctx context.Context, owner string, o *unstructured.Unstructured) error {
	o = o.DeepCopy()
	// The envtest API server's RESTMapper learns the CRDs' kinds lazily; retry a
	// no-match briefly after the CRDs became Established.
	return wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 20*time.Second, true, func(ctx context.Context) (bool, error) {
		err := k8sClient.Apply(ctx, client.ApplyConfigurationFromUnstructured(o), client.FieldOwner(owner), client.ForceOwnership)
		if meta.IsNoMatchError(err) {
			return false, nil
		}
		return true, err
	})
}

func waitEstablished(ctx context.Context, t *testing.T, name string) {
	t.Helper()
	err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		crd := &unstructured.Unstructured{}
		crd.SetAPIVersion("apiextensions.k8s.io/v1")
		crd.SetKind("CustomResourceDefinition")
		if err := k8sClient.Get(ctx, client.ObjectKey{Name: name}, crd); err != nil {
			return false, client.IgnoreNotFound(err)
		}
		conds, _, _ := unstructured.NestedSlice(crd.Object, "status", "conditions")
		for _, c := range conds {
			m, _ := c.(map[string]any)
			if m["type"] == "Established" && m["status"] == "True" {
				return true, nil
			}
		}
		return false, nil
	})
	if err != nil {
		t.Fatalf("CRD %s not Established: %v", name, err)
	}
}

func readBack(ctx context.Context, t *testing.T, o *unstructured.Unstructured) *unstructured.Unstructured {
	t.Helper()
	got := &unstructured.Unstructured{}
	got.SetGroupVersionKind(o.GroupVersionKind())
	if err := k8sClient.Get(ctx, client.ObjectKeyFromObject(o), got); err != nil {
		t.Fatal(err)
	}
	return got
}
