package chart

import (
	"context"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// TestInstallsApply applies every object of each install to a real API server: schema
// and CEL validation of the default pool, RBAC object validation, and the pod security
// fields (the server drops fields of disabled features, so they are read back).
func TestInstallsApply(t *testing.T) {
	tests := map[string]struct {
		namespace string
		render    func(t *testing.T) []*unstructured.Unstructured
		wantPool  bool
	}{
		"chart defaults": {
			namespace: "chart-defaults",
			render: func(t *testing.T) []*unstructured.Unstructured {
				return mustHelmTemplate(t, "vizops", "chart-defaults", "")
			},
			wantPool: true,
		},
		"chart custom values": {
			namespace: "llm",
			render: func(t *testing.T) []*unstructured.Unstructured {
				return mustHelmTemplate(t, "custom", "llm", customValues)
			},
		},
		"chart with separateSandboxUser": {
			namespace: "nobody",
			render: func(t *testing.T) []*unstructured.Unstructured {
				return mustHelmTemplate(t, "vizops", "nobody", "sandboxing: {separateSandboxUser: true}")
			},
			wantPool: true,
		},
		"config/default and the sample pool (make deploy)": {
			namespace: "viz-system",
			render: func(t *testing.T) []*unstructured.Unstructured {
				objs := kustomizeBuild(t, "config/default")
				pool := decode(t, readFile(t, "config/samples/viz_v1alpha1_sandboxpool.yaml"))[0]
				pool.SetNamespace("viz-system")
				return append(objs, pool)
			},
			wantPool: true,
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			objs := tc.render(t)
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
			if sc == nil || sc.ProcMount == nil || *sc.ProcMount != corev1.UnmaskedProcMount {
				t.Errorf("the API server did not keep procMount: Unmasked: %+v", sc)
			}
			if pod.HostUsers == nil || *pod.HostUsers {
				t.Errorf("the API server did not keep hostUsers: false")
			}
			if sc == nil || sc.AppArmorProfile == nil || sc.AppArmorProfile.Type != corev1.AppArmorProfileTypeUnconfined {
				t.Errorf("the API server did not keep appArmorProfile Unconfined: %+v", sc)
			}
			if pools := ofKind(objs, "SandboxPool"); tc.wantPool != (len(pools) == 1) {
				t.Errorf("pools %v, want a default pool: %v", names(pools), tc.wantPool)
			} else if tc.wantPool {
				got := readBack(ctx, t, pools[0])
				if b, _, _ := unstructured.NestedString(got.Object, "spec", "backend"); b != "Local" {
					t.Errorf("default pool backend %q", b)
				}
			}
		})
	}
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
