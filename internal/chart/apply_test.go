package chart

import (
	"context"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/discovery"
	"sigs.k8s.io/controller-runtime/pkg/client"

	vizv1 "github.com/vizops/viz-operator/api/v1alpha1"
)

// TestInstallsApply applies every object of each install to a real API server: schema
// and CEL validation of the default pool, RBAC object validation, and the pod security
// fields (the server drops fields of disabled features, so they are read back). The
// manager's Pod is then created (server-side dry run) in a namespace that enforces the
// restricted Pod Security level: admitted by default, refused with the Local backend.
func TestInstallsApply(t *testing.T) {
	tests := map[string]struct {
		namespace   string
		render      func(t *testing.T) []*unstructured.Unstructured
		wantBackend string // of the default pool; "" for none
		local       bool   // the manager carries the Local backend's settings
		seccomp     string // the default class's Localhost seccomp profile; "" for RuntimeDefault
	}{
		"chart defaults": {
			namespace: "chart-defaults",
			render: func(t *testing.T) []*unstructured.Unstructured {
				return mustHelmTemplate(t, "vizops", "chart-defaults", "")
			},
			wantBackend: "Kubernetes",
		},
		"chart custom values": {
			namespace: "llm",
			render: func(t *testing.T) []*unstructured.Unstructured {
				return mustHelmTemplate(t, "custom", "llm", customValues)
			},
		},
		"chart with the Local backend": {
			namespace: "local",
			render: func(t *testing.T) []*unstructured.Unstructured {
				return mustHelmTemplate(t, "vizops", "local", localValues)
			},
			wantBackend: "Local", local: true,
		},
		"chart with separateSandboxUser": {
			namespace: "nobody",
			render: func(t *testing.T) []*unstructured.Unstructured {
				return mustHelmTemplate(t, "vizops", "nobody", "sandboxing: {local: {enabled: true}, separateSandboxUser: true}")
			},
			wantBackend: "Kubernetes", local: true,
		},
		"chart with the agent's Localhost seccomp profile": {
			namespace: "seccomp",
			render: func(t *testing.T) []*unstructured.Unstructured {
				return mustHelmTemplate(t, "vizops", "seccomp", "defaultPool: {kubernetes: {seccompProfile: {type: Localhost, localhostProfile: vizops/sandbox-agent.json}}}")
			},
			wantBackend: "Kubernetes", seccomp: "vizops/sandbox-agent.json",
		},
		"config/default and its default pool as make deploy applies them": {
			namespace: "viz-system",
			render: func(t *testing.T) []*unstructured.Unstructured {
				objs := kustomizeBuild(t, "config/default")
				class := decode(t, readFile(t, "config/samples/viz_v1alpha1_sandboxclass_kubernetes.yaml"))[0]
				pool := decode(t, readFile(t, "config/samples/viz_v1alpha1_sandboxpool_kubernetes.yaml"))[0]
				pool.SetNamespace("viz-system")
				return append(objs, class, pool)
			},
			wantBackend: "Kubernetes",
		},
		"the Local sample pool of make demo and make run": {
			namespace: "demo",
			render: func(t *testing.T) []*unstructured.Unstructured {
				objs := mustHelmTemplate(t, "vizops", "demo", localValues)
				var out []*unstructured.Unstructured
				for _, o := range objs {
					if o.GetKind() != "SandboxPool" && o.GetKind() != "SandboxClass" {
						out = append(out, o)
					}
				}
				class := decode(t, readFile(t, "config/samples/viz_v1alpha1_sandboxclass_local.yaml"))[0]
				pool := decode(t, readFile(t, "config/samples/viz_v1alpha1_sandboxpool.yaml"))[0]
				pool.SetNamespace("demo")
				return append(out, class, pool)
			},
			wantBackend: "Local", local: true,
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			objs := tc.render(t)
			// Classes are cluster-scoped and the cases share their names: start each
			// case from none, so one case's fields do not stay in the next's.
			for _, c := range ofKind(objs, "SandboxClass") {
				if err := k8sClient.Delete(ctx, c.DeepCopy()); client.IgnoreNotFound(err) != nil && !meta.IsNoMatchError(err) && !discovery.IsGroupDiscoveryFailedError(err) {
					t.Fatal(err)
				}
			}
			apply(ctx, t, "test-"+tc.namespace, tc.namespace, objs)

			for _, o := range objs {
				if o.GetKind() == "CustomResourceDefinition" || o.GetKind() == "Namespace" {
					continue
				}
				if ns := o.GetNamespace(); ns != "" && ns != tc.namespace {
					t.Errorf("%s %s is in namespace %q, want %q", o.GetKind(), o.GetName(), ns, tc.namespace)
				}
			}
			d := typed[appsv1.Deployment](t, readBack(ctx, t, find(t, objs, "Deployment", "-controller-manager")))
			pod := d.Spec.Template.Spec
			sc := pod.Containers[0].SecurityContext
			if tc.local {
				if sc == nil || sc.ProcMount == nil || *sc.ProcMount != corev1.UnmaskedProcMount {
					t.Errorf("the API server did not keep procMount: Unmasked: %+v", sc)
				}
				if pod.HostUsers == nil || *pod.HostUsers {
					t.Errorf("the API server did not keep hostUsers: false")
				}
				if sc == nil || sc.AppArmorProfile == nil || sc.AppArmorProfile.Type != corev1.AppArmorProfileTypeUnconfined {
					t.Errorf("the API server did not keep appArmorProfile Unconfined: %+v", sc)
				}
			}
			err := restrictedPodErr(ctx, t, tc.namespace, pod)
			switch {
			case !tc.local && err != nil:
				t.Errorf("the manager's Pod does not pass the restricted Pod Security level: %v", err)
			case tc.local && err == nil:
				t.Errorf("the manager's Pod with the Local backend's settings passed the restricted level: the check proves nothing")
			}
			pools := ofKind(objs, "SandboxPool")
			if (tc.wantBackend != "") != (len(pools) == 1) {
				t.Fatalf("pools %v, want a default pool: %v", names(pools), tc.wantBackend != "")
			}
			if tc.wantBackend != "" {
				// The backend is the class's: the pool names it.
				classes := ofKind(objs, "SandboxClass")
				if len(classes) != 1 {
					t.Fatalf("classes %v, want the default pool's", names(classes))
				}
				got := readBack(ctx, t, classes[0])
				if b, _, _ := unstructured.NestedString(got.Object, "spec", "backend"); b != tc.wantBackend {
					t.Errorf("default class backend %q, want %q", b, tc.wantBackend)
				}
				if got.GetAnnotations()[vizv1.AnnotationDefaultClass] != "true" {
					t.Errorf("the default pool's class is not annotated as the default: %v", got.GetAnnotations())
				}
				if lp, _, _ := unstructured.NestedString(got.Object, "spec", "kubernetes", "seccompProfile", "localhostProfile"); lp != tc.seccomp {
					t.Errorf("default class seccomp localhostProfile %q, want %q", lp, tc.seccomp)
				}
				if c, _, _ := unstructured.NestedString(readBack(ctx, t, pools[0]).Object, "spec", "className"); c != "" && c != got.GetName() {
					t.Errorf("default pool names class %q, not %q", c, got.GetName())
				}
			}
		})
	}
}

// restrictedPodErr creates (dry run) a Pod of spec in a namespace enforcing the
// restricted Pod Security level, and returns the API server's answer.
func restrictedPodErr(ctx context.Context, t *testing.T, from string, spec corev1.PodSpec) error {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "restricted-" + from,
		Labels: map[string]string{"pod-security.kubernetes.io/enforce": "restricted"}}}
	if err := k8sClient.Create(ctx, ns); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: ns.Name, Name: spec.ServiceAccountName}}
	if err := k8sClient.Create(ctx, sa); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns.Name, Name: "manager"}, Spec: spec}
	return k8sClient.Create(ctx, pod, client.DryRunAll)
}

// TestAPIServerValidatesWhatIsApplied guards the test above: the API server refuses an
// invalid pool from the same rendering, so "applied" means "validated".
func TestAPIServerValidatesWhatIsApplied(t *testing.T) {
	ctx := context.Background()
	objs := mustHelmTemplate(t, "guard", "guard", "")
	apply(ctx, t, "test-guard", "guard", ofKind(objs, "CustomResourceDefinition"))
	pool := find(t, objs, "SandboxPool", "default").DeepCopy()
	pool.SetName("invalid")
	if err := unstructured.SetNestedField(pool.Object, int64(5), "spec", "minReady"); err != nil {
		t.Fatal(err)
	}
	if err := unstructured.SetNestedField(pool.Object, int64(2), "spec", "maxSandboxes"); err != nil {
		t.Fatal(err)
	}
	err := applyErr(ctx, "test-guard", pool)
	if !apierrors.IsInvalid(err) {
		t.Errorf("a pool with minReady 5 > maxSandboxes 2 was not refused as invalid: %v", err)
	}
}
