package kubernetes

import (
	"context"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	vizv1 "github.com/vizops/viz-operator/api/v1alpha1"
	"github.com/vizops/viz-operator/internal/sandbox"
	"github.com/vizops/viz-operator/internal/sandbox/kubernetes"
)

// Finalize lets the pool go only when the API server, not just the cache, has no Pod
// of it left: a cache that is behind must not strand a running sandbox Pod.
func TestFinalizeConfirmsWithTheAPIServer(t *testing.T) {
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	if err := vizv1.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	sp := &vizv1.SandboxPool{ObjectMeta: metav1.ObjectMeta{Namespace: "team-a", Name: "default", UID: "pool-uid"}}
	straggler := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "team-a", Name: "default-sbx-0",
		Labels: kubernetes.Selector(sp.UID)}}
	for name, tc := range map[string]struct {
		server   []client.Object
		wantDone bool
	}{
		"the cache and the API server agree: no Pod":        {wantDone: true},
		"the cache is behind: a Pod is still on the server": {server: []client.Object{straggler}},
	} {
		t.Run(name, func(t *testing.T) {
			cache := fake.NewClientBuilder().WithScheme(scheme).Build() // sees no Pod
			server := fake.NewClientBuilder().WithScheme(scheme).WithObjects(tc.server...).Build()
			k := &Backend{Client: cache, APIReader: server}
			k.init()
			done, err := k.Finalize(context.Background(), sp, sandbox.PoolConfig{})
			if err != nil {
				t.Fatal(err)
			}
			if done != tc.wantDone {
				t.Fatalf("Finalize done = %v, want %v", done, tc.wantDone)
			}
		})
	}
}
