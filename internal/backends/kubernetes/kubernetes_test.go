package kubernetes

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	vizv1 "github.com/vizops/viz-operator/api/v1alpha1"
	"github.com/vizops/viz-operator/internal/backends"
	"github.com/vizops/viz-operator/internal/sandbox"
	"github.com/vizops/viz-operator/internal/sandbox/kubernetes"
)

// The backend spells the API's label and annotation keys again (it takes no API type):
// they must stay the API's, or a new manager would not recognise the Pods of the last.
func TestNamesAreTheAPIs(t *testing.T) {
	for name, tc := range map[string]struct{ backend, api string }{
		"pool UID label":         {kubernetes.LabelPoolUID, vizv1.LabelSandboxPoolUID},
		"state label":            {kubernetes.LabelState, vizv1.LabelSandboxState},
		"template hash label":    {kubernetes.LabelTemplateHash, vizv1.LabelTemplateHash},
		"claim":                  {kubernetes.AnnotationClaim, vizv1.AnnotationClaim},
		"executions":             {kubernetes.AnnotationExecutions, vizv1.AnnotationExecutions},
		"token nonce":            {kubernetes.AnnotationTokenNonce, vizv1.AnnotationTokenNonce},
		"served namespace":       {kubernetes.AnnotationServedNamespace, vizv1.AnnotationServedNamespace},
		"warm":                   {kubernetes.StateWarm, vizv1.SandboxWarm},
		"busy":                   {kubernetes.StateBusy, vizv1.SandboxBusy},
		"owner API version":      {kubernetes.PoolAPIVersion, vizv1.GroupVersion.String()},
		"owner kind":             {kubernetes.PoolKind, "SandboxPool"},
		"finalizer (adapter)":    {(&Backend{}).FinalizerName(), vizv1.FinalizerSandboxPool},
		"backend name (adapter)": {string((&Backend{}).Name()), string(vizv1.BackendKubernetes)},
	} {
		if tc.backend != tc.api {
			t.Errorf("%s: the backend writes %q, the API says %q", name, tc.backend, tc.api)
		}
	}
}

func TestClassOf(t *testing.T) {
	tol := []corev1.Toleration{{Key: "sandbox", Operator: corev1.TolerationOpExists}}
	for name, tc := range map[string]struct {
		class *vizv1.SandboxClass
		want  kubernetes.Class
	}{
		"no class":           {nil, kubernetes.Class{}},
		"no spec.kubernetes": {&vizv1.SandboxClass{}, kubernetes.Class{}},
		"every field": {
			&vizv1.SandboxClass{ObjectMeta: metav1.ObjectMeta{Name: "c"}, Spec: vizv1.SandboxClassSpec{
				Backend: vizv1.BackendKubernetes,
				Kubernetes: &vizv1.KubernetesClass{Image: "img", RuntimeClassName: "gvisor", NodeSelector: map[string]string{"pool": "sandbox"},
					Tolerations: tol, HostUsers: ptr.To(true),
					SeccompProfile: &vizv1.SandboxSeccompProfile{Type: vizv1.SeccompLocalhost, LocalhostProfile: "vizops/sandbox-agent.json"}},
				Egress: []vizv1.EgressRule{{CIDR: "10.0.0.0/8", Except: []string{"10.1.0.0/16"}, Ports: []int32{443}}},
			}},
			kubernetes.Class{Image: "img", RuntimeClassName: "gvisor", NodeSelector: map[string]string{"pool": "sandbox"},
				Tolerations: tol, HostUsers: ptr.To(true), SeccompLocalhostProfile: "vizops/sandbox-agent.json",
				Egress: []kubernetes.EgressRule{{CIDR: "10.0.0.0/8", Except: []string{"10.1.0.0/16"}, Ports: []int32{443}}}},
		},
		// An explicit RuntimeDefault is the default: the template (and its hash, so the
		// Pods) stays what it was without the field.
		"explicit RuntimeDefault": {
			&vizv1.SandboxClass{Spec: vizv1.SandboxClassSpec{Kubernetes: &vizv1.KubernetesClass{Image: "img",
				SeccompProfile: &vizv1.SandboxSeccompProfile{Type: vizv1.SeccompRuntimeDefault}}}},
			kubernetes.Class{Image: "img"},
		},
	} {
		t.Run(name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, ClassOf(tc.class)); diff != "" {
				t.Errorf("ClassOf (-want +got):\n%s", diff)
			}
		})
	}
}

func TestNotReady(t *testing.T) {
	in := backends.Input{Class: &vizv1.SandboxClass{ObjectMeta: metav1.ObjectMeta{Name: "gvisor"}}}
	stuck := "creating sandboxes fails: sandbox Pod p-x2k4z cannot start: ImagePullBackOff"
	refused := `creating sandboxes fails: creating sandbox Pod p-x2k4z: pods "p-x2k4z" is forbidden: violates PodSecurity`
	for name, tc := range map[string]struct {
		st          sandbox.PoolStatus
		wantReason  string
		wantMessage string
	}{
		"running":                              {st: sandbox.PoolStatus{Ready: 1, Total: 1}},
		"starts fail, but a Pod is ready":      {st: sandbox.PoolStatus{Ready: 1, Total: 1, Degraded: stuck}},
		"starts fail, but a Pod runs a job":    {st: sandbox.PoolStatus{Busy: 1, Total: 1, Degraded: stuck}},
		"the last start failed":                {st: sandbox.PoolStatus{Degraded: stuck}, wantReason: vizv1.ReasonSandboxStartFailed, wantMessage: stuck + "; the platform team fixes SandboxClass gvisor"},
		"the last start failed, the next runs": {st: sandbox.PoolStatus{Starting: 1, Total: 1, Degraded: stuck}, wantReason: vizv1.ReasonSandboxStartFailed, wantMessage: stuck},
		"the API server refuses the Pods":      {st: sandbox.PoolStatus{Degraded: refused}, wantReason: vizv1.ReasonSandboxStartFailed, wantMessage: refused},
		"a first start in flight, none failed": {st: sandbox.PoolStatus{Starting: 1, Total: 1}},
	} {
		t.Run(name, func(t *testing.T) {
			reason, msg := (&Backend{}).NotReady(in, tc.st, nil)
			if reason != tc.wantReason || !strings.HasPrefix(msg, tc.wantMessage) {
				t.Errorf("NotReady = %q, %q; want %q, a message starting %q", reason, msg, tc.wantReason, tc.wantMessage)
			}
		})
	}
}
