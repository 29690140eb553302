package kube

import (
	"context"
	"errors"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	vizv1 "github.com/vizops/viz-operator/api/v1alpha1"
	"github.com/vizops/viz-operator/internal/gateway"
)

// The fake client stands in for the API server in these decisions (no validation, no
// defaults); test/conformance runs the whole Store on envtest.
func newStore(objs ...client.Object) *Store {
	scheme := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(scheme))
	utilruntime.Must(vizv1.AddToScheme(scheme))
	return &Store{Client: fake.NewClientBuilder().WithScheme(scheme).WithObjects(objs...).Build(), TokenKey: []byte("0123456789abcdef0123456789abcdef")}
}

func kubeClass(name string, mutate func(*vizv1.SandboxClass)) *vizv1.SandboxClass {
	c := &vizv1.SandboxClass{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: vizv1.SandboxClassSpec{
		Backend: vizv1.BackendKubernetes, Kubernetes: &vizv1.KubernetesClass{Image: "sandbox:test"},
	}}
	if mutate != nil {
		mutate(c)
	}
	return c
}

func TestAuthenticate(t *testing.T) {
	s := newStore(
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "k", Namespace: "team-a",
			Labels:      map[string]string{vizv1.LabelGatewayAPIKey: "true"},
			Annotations: map[string]string{vizv1.AnnotationGatewayMaxSandboxes: "3"}},
			Data: map[string][]byte{vizv1.GatewayAPIKeyDataKey: []byte("e2b_right")}},
		// The same key in a Secret without the label is no key of the gateway.
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "unlabelled", Namespace: "team-b"},
			Data: map[string][]byte{vizv1.GatewayAPIKeyDataKey: []byte("e2b_unlabelled")}},
	)
	ctx := context.Background()
	got, err := s.Authenticate(ctx, "e2b_right")
	if err != nil || got != (gateway.Tenant{Namespace: "team-a", KeyName: "k", MaxSandboxes: 3}) {
		t.Errorf("right key: %+v %v", got, err)
	}
	for _, key := range []string{"e2b_wrong", "e2b_unlabelled", ""} {
		if _, err := s.Authenticate(ctx, key); !errors.Is(err, gateway.ErrUnauthorized) {
			t.Errorf("key %q: %v, want ErrUnauthorized", key, err)
		}
	}
}

func TestClass(t *testing.T) {
	tenant := map[string]string{"vizops.io/tenant": "a"}
	s := newStore(
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "team-a", Labels: tenant}},
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "team-b"}},
		kubeClass("python", func(c *vizv1.SandboxClass) {
			c.Annotations = map[string]string{vizv1.AnnotationDefaultClass: "true"}
		}),
		kubeClass("tenant-a-only", func(c *vizv1.SandboxClass) {
			c.Spec.NamespaceSelector = &metav1.LabelSelector{MatchLabels: tenant}
		}),
		&vizv1.SandboxClass{ObjectMeta: metav1.ObjectMeta{Name: "cloud"}, Spec: vizv1.SandboxClassSpec{Backend: vizv1.BackendE2B}},
	)
	tests := map[string]struct {
		template, namespace string
		want                string
		code                int
	}{
		"a class by name":                     {template: "tenant-a-only", namespace: "team-a", want: "tenant-a-only"},
		"code-interpreter's default template": {template: "code-interpreter-v1", namespace: "team-b", want: "python"},
		"e2b's default template":              {template: "base", namespace: "team-b", want: "python"},
		"an unknown template":                 {template: "nope", namespace: "team-a", code: 404},
		"a class that refuses the namespace":  {template: "tenant-a-only", namespace: "team-b", code: 403},
		"a class of another backend":          {template: "cloud", namespace: "team-a", code: 400},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			c, err := s.class(context.Background(), tc.template, tc.namespace)
			if tc.code != 0 {
				var e *gateway.Error
				if !errors.As(err, &e) || e.Code != tc.code {
					t.Fatalf("err %v, want a %d", err, tc.code)
				}
				return
			}
			if err != nil || c.Name != tc.want {
				t.Fatalf("class %v, err %v; want %s", c, err, tc.want)
			}
		})
	}
}

func TestResources(t *testing.T) {
	q := func(s string) *resource.Quantity { return ptr.To(resource.MustParse(s)) }
	tests := map[string]struct {
		def, max vizv1.SandboxResources
		wantCPU  int64
		wantErr  bool
	}{
		"built-in sizes":              {wantCPU: 1000},
		"the class's defaults":        {def: vizv1.SandboxResources{CPU: q("500m")}, max: vizv1.SandboxResources{CPU: q("1")}, wantCPU: 500},
		"defaults above the maximum":  {def: vizv1.SandboxResources{Memory: q("8Gi")}, max: vizv1.SandboxResources{Memory: q("4Gi")}, wantErr: true},
		"built-ins above the maximum": {max: vizv1.SandboxResources{CPU: q("500m")}, wantErr: true},
		"pids above the maximum":      {def: vizv1.SandboxResources{Pids: ptr.To(int32(600))}, max: vizv1.SandboxResources{Pids: ptr.To(int32(512))}, wantErr: true},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			r, err := resources(kubeClass("c", func(c *vizv1.SandboxClass) {
				c.Spec.DefaultResources, c.Spec.MaxResources = tc.def, tc.max
			}))
			if (err != nil) != tc.wantErr {
				t.Fatalf("err %v, want error %v", err, tc.wantErr)
			}
			if !tc.wantErr && r.CPUMillis != tc.wantCPU {
				t.Errorf("cpu %dm, want %dm", r.CPUMillis, tc.wantCPU)
			}
		})
	}
}

// TestSandboxFromPod: what a restarted gateway reads back from a Pod.
func TestSandboxFromPod(t *testing.T) {
	s := newStore()
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "abc", Namespace: "team-a",
			Labels: map[string]string{vizv1.LabelGatewaySandbox: "abc", vizv1.LabelGatewayKey: "k", vizv1.LabelSandboxPoolUID: "gateway-abc"},
			Annotations: map[string]string{
				vizv1.AnnotationTokenNonce: "n1", vizv1.AnnotationGatewayEndTime: "2026-01-02T03:04:05Z",
				vizv1.AnnotationGatewayTemplate: "python", vizv1.AnnotationGatewayMetadata: `{"app":"x"}`,
			}},
		Status: corev1.PodStatus{PodIP: "10.0.0.7", Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}},
	}
	sb, ok := s.sandbox(pod)
	envd, traffic := gateway.Tokens(s.TokenKey, "team-a", "abc", "n1")
	if !ok || !sb.Ready || sb.AgentURL != "http://10.0.0.7:49999" || sb.EnvdToken != envd || sb.TrafficToken != traffic ||
		sb.AgentToken == "" || sb.Metadata["app"] != "x" || sb.KeyName != "k" || sb.EndAt.Format("15:04:05") != "03:04:05" {
		t.Errorf("read %+v", sb)
	}
	pod.Annotations[vizv1.AnnotationTokenNonce] = "n2"
	if other, _ := s.sandbox(pod); other.EnvdToken == envd || other.AgentToken == sb.AgentToken {
		t.Error("a Pod with another nonce has the same tokens")
	}
	notReady := pod.DeepCopy()
	notReady.Status = corev1.PodStatus{}
	if sb, ok := s.sandbox(notReady); !ok || sb.Ready || sb.AgentURL != "" {
		t.Errorf("a Pod without an IP: %+v", sb)
	}
	failed := pod.DeepCopy()
	failed.Status.Phase = corev1.PodFailed
	if sb, ok := s.sandbox(failed); !ok || sb.Ready || !sb.Ended {
		t.Errorf("a failed Pod: %+v", sb)
	}
	deleting := pod.DeepCopy()
	deleting.DeletionTimestamp = ptr.To(metav1.Now())
	if _, ok := s.sandbox(deleting); ok {
		t.Error("a Pod being deleted is still a sandbox")
	}
	renamed := pod.DeepCopy()
	renamed.Name = "other"
	if _, ok := s.sandbox(renamed); ok {
		t.Error("a Pod whose name is not its sandbox label is a sandbox")
	}
}
