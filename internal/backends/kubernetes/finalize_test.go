package kubernetes

import (
	"context"
	"fmt"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

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

// Finalize deletes the pool's Pods that no live pool object holds (left by an earlier
// manager), with their token Secrets, and is done once none is left.
func TestFinalizeDeletesPodsNoPoolHolds(t *testing.T) {
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	sp := &vizv1.SandboxPool{ObjectMeta: metav1.ObjectMeta{Namespace: "team-a", Name: "default", UID: "pool-uid"}}
	s := kubernetes.Settings{Namespace: sp.Namespace, PoolName: sp.Name, PoolUID: sp.UID, Template: kubernetes.Template{Image: "img"}}.WithTokenKey([]byte("key-0123456789abcdef"))
	n := 0
	c := fake.NewClientBuilder().WithScheme(scheme).WithInterceptorFuncs(interceptor.Funcs{
		Create: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.CreateOption) error {
			n++
			obj.SetUID(types.UID(fmt.Sprintf("uid-%d", n))) // as the API server does
			return c.Create(ctx, obj, opts...)
		},
	}).Build()
	api := NewPodAPI(c, s)
	ctx := context.Background()
	for i := range 2 {
		if err := api.Create(ctx, kubernetes.RenderPod(s)(i)); err != nil {
			t.Fatal(err)
		}
	}
	var secrets corev1.SecretList
	if err := c.List(ctx, &secrets); err != nil || len(secrets.Items) != 2 {
		t.Fatalf("Create made %d token Secrets (%v), want one per Pod", len(secrets.Items), err)
	}
	k := &Backend{Client: c, APIReader: c}
	k.init()
	done, err := k.Finalize(ctx, sp, sandbox.PoolConfig{})
	if err != nil || done {
		t.Fatalf("the first Finalize = %v, %v; want not done (it deleted Pods)", done, err)
	}
	done, err = k.Finalize(ctx, sp, sandbox.PoolConfig{})
	if err != nil || !done {
		t.Fatalf("the second Finalize = %v, %v; want done", done, err)
	}
	var pods corev1.PodList
	if err := c.List(ctx, &pods); err != nil || len(pods.Items) != 0 {
		t.Errorf("%d Pods left (%v)", len(pods.Items), err)
	}
	if err := c.List(ctx, &secrets); err != nil || len(secrets.Items) != 0 {
		t.Errorf("%d token Secrets left (%v)", len(secrets.Items), err)
	}
}
