package controller

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	authzv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	vizv1 "github.com/vizops/viz-operator/api/v1alpha1"
	"github.com/vizops/viz-operator/internal/sandbox/sandboxtest"
)

// chartManager is the manager's ServiceAccount as the chart names it, and the RBAC
// the chart rendered for it.
type chartManager struct {
	namespace, serviceAccount string
}

func (m chartManager) user() string {
	return "system:serviceaccount:" + m.namespace + ":" + m.serviceAccount
}

func (m chartManager) groups() []string {
	return []string{"system:serviceaccounts", "system:serviceaccounts:" + m.namespace, "system:authenticated"}
}

// applyChartRBAC renders charts/viz-operator (bin/helm, as the chart tests do) as a
// release in opNS watching the given namespaces, without the default pool, and creates
// its ClusterRoles, Roles and their bindings: exactly what `helm install` would grant
// the manager. The release is named after opNS, so its cluster-scoped names are the
// test's own; they are deleted when the spec ends.
func applyChartRBAC(ctx context.Context, opNS string, watch []string) chartManager {
	GinkgoHelper()
	helm, err := filepath.Abs(filepath.Join("..", "..", "bin", "helm"))
	Expect(err).NotTo(HaveOccurred())
	if _, err := os.Stat(helm); err != nil {
		Fail("bin/helm not found: run `make helm` (the Makefile installs it, pinned, into bin/): " + err.Error())
	}
	values := "defaultPool: {enabled: false}\nwatchNamespaces:\n"
	for _, ns := range watch {
		values += "- " + ns + "\n"
	}
	vf := filepath.Join(GinkgoT().TempDir(), "values.yaml")
	Expect(os.WriteFile(vf, []byte(values), 0o644)).To(Succeed())
	cmd := exec.Command(helm, "template", opNS, "charts/viz-operator", "--namespace", opNS, "--values", vf)
	cmd.Dir = filepath.Join("..", "..")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	Expect(cmd.Run()).To(Succeed(), "helm template: %s", stderr.String())

	m := chartManager{namespace: opNS, serviceAccount: opNS + "-viz-operator-controller-manager"}
	d := utilyaml.NewYAMLOrJSONDecoder(&stdout, 4096)
	applied := 0
	for {
		var obj map[string]any
		err := d.Decode(&obj)
		if errors.Is(err, io.EOF) {
			break
		}
		Expect(err).NotTo(HaveOccurred())
		u := &unstructured.Unstructured{Object: obj}
		switch u.GetKind() {
		case "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding":
		case "ServiceAccount":
			Expect(u.GetName()).To(Equal(m.serviceAccount), "the chart's ServiceAccount")
			continue
		default:
			continue
		}
		Expect(k8sClient.Create(ctx, u)).To(Succeed(), "%s %s/%s", u.GetKind(), u.GetNamespace(), u.GetName())
		applied++
		if u.GetNamespace() == "" {
			DeferCleanup(func() { _ = k8sClient.Delete(context.Background(), u) })
		}
	}
	Expect(applied).To(BeNumerically(">=", 4+2*len(watch)), "the chart rendered the manager's RBAC")
	return m
}

// may asks the API server whether the manager may do verb on group/resource in ns ("":
// cluster-wide, every namespace).
func (m chartManager) may(ctx context.Context, verb, group, resource, ns string) bool {
	GinkgoHelper()
	sar := &authzv1.SubjectAccessReview{Spec: authzv1.SubjectAccessReviewSpec{
		User: m.user(), Groups: m.groups(),
		ResourceAttributes: &authzv1.ResourceAttributes{Namespace: ns, Verb: verb, Group: group, Resource: resource},
	}}
	Expect(k8sClient.Create(ctx, sar)).To(Succeed())
	return sar.Status.Allowed
}

// restConfig is the suite's config impersonating the manager's ServiceAccount: a client
// with the manager's rights and no more.
func (m chartManager) restConfig() *rest.Config {
	c := rest.CopyConfig(cfg)
	c.Impersonate = rest.ImpersonationConfig{UserName: m.user(), Groups: m.groups()}
	return c
}

var _ = Describe("The chart's namespace-scoped mode (watchNamespaces)", func() {
	ctx := context.Background()

	It("grants the manager Pods, NetworkPolicies, token Secrets and ConfigMaps in watched namespaces only", func() {
		opNS := newNamespace(ctx, nil)
		watched := newNamespace(ctx, nil)
		unwatched := newNamespace(ctx, nil)
		m := applyChartRBAC(ctx, opNS, []string{watched})
		Eventually(func() bool { return m.may(ctx, "create", "", "pods", watched) }, 10*time.Second).Should(BeTrue(),
			"the bindings must work for the refusals below to mean anything")

		type access struct{ verb, group, resource string }
		namespaced := []access{
			{"create", "", "pods"}, {"delete", "", "pods"}, {"list", "", "pods"}, {"watch", "", "pods"},
			{"create", "networking.k8s.io", "networkpolicies"}, {"list", "networking.k8s.io", "networkpolicies"},
			{"create", "", "secrets"}, {"delete", "", "secrets"},
			{"create", "", "configmaps"}, {"list", "", "configmaps"},
			{"create", "events.k8s.io", "events"},
			{"list", vizv1.GroupVersion.Group, "sandboxpools"}, {"watch", vizv1.GroupVersion.Group, "visualizationrequests"},
			{"patch", vizv1.GroupVersion.Group, "visualizationrequests/status"},
		}
		for _, a := range namespaced {
			Expect(m.may(ctx, a.verb, a.group, a.resource, watched)).To(BeTrue(), "%s %s/%s in the watched namespace", a.verb, a.group, a.resource)
			Expect(m.may(ctx, a.verb, a.group, a.resource, unwatched)).To(BeFalse(), "%s %s/%s in an unwatched namespace", a.verb, a.group, a.resource)
			Expect(m.may(ctx, a.verb, a.group, a.resource, "")).To(BeFalse(), "%s %s/%s cluster-wide", a.verb, a.group, a.resource)
			Expect(m.may(ctx, a.verb, a.group, a.resource, "kube-system")).To(BeFalse(), "%s %s/%s in kube-system", a.verb, a.group, a.resource)
		}
		// Sandbox Pods only where pools are watched: not beside the manager either.
		Expect(m.may(ctx, "create", "", "pods", opNS)).To(BeFalse())
		// Secrets: read only in the operator's namespace, nowhere else.
		Expect(m.may(ctx, "get", "", "secrets", opNS)).To(BeTrue(), "the operator's Role (E2B and model keys)")
		for _, ns := range []string{"kube-system", watched, unwatched, ""} {
			for _, verb := range []string{"get", "list", "watch"} {
				Expect(m.may(ctx, verb, "", "secrets", ns)).To(BeFalse(), "%s secrets in %q", verb, ns)
			}
		}
		// What stays cluster-wide: reading classes and namespaces.
		Expect(m.may(ctx, "watch", vizv1.GroupVersion.Group, "sandboxclasses", "")).To(BeTrue())
		Expect(m.may(ctx, "list", "", "namespaces", "")).To(BeTrue())
		Expect(m.may(ctx, "create", vizv1.GroupVersion.Group, "sandboxclasses", "")).To(BeFalse())
	})

	It("runs a manager with only those rights: a pool and a request in a watched namespace work, one in an unwatched namespace is left alone", func() {
		opNS := newNamespace(ctx, nil)
		watched := kubeletNamespace(ctx, nil)
		unwatched := kubeletNamespace(ctx, nil)
		m := applyChartRBAC(ctx, opNS, []string{watched})
		Eventually(func() bool { return m.may(ctx, "create", "", "pods", watched) }, 10*time.Second).Should(BeTrue())
		// The impersonating client really is the manager's ServiceAccount: refused
		// where the chart grants nothing.
		asManager, err := client.New(m.restConfig(), client.Options{Scheme: scheme})
		Expect(err).NotTo(HaveOccurred())
		Expect(asManager.List(ctx, &corev1.PodList{})).NotTo(Succeed(), "a cluster-wide Pod list must be forbidden")

		agent := newFakeAgent()
		h := startManager([]string{watched}, harnessOptions{
			restConfig:      m.restConfig(),
			watchNamespaces: []string{watched},
			factory:         fakeFactory(sandboxtest.NewPool(1)),
			kubeRunner:      agent.runner,
		})
		defer h.stop()

		for _, ns := range []string{watched, unwatched} {
			Expect(k8sClient.Create(ctx, newKubePool(ns, "default", 1, 2))).To(Succeed())
			Expect(k8sClient.Create(ctx, newRequest(ns, "chart", "print(1)", func(vr *vizv1.VisualizationRequest) {
				vr.Spec.ArtifactStorage = vizv1.ArtifactStorageConfigMap
			}))).To(Succeed())
		}

		// Watched: a warm Pod (with its token Secret) behind a NetworkPolicy, the
		// request succeeds with its artifact in a ConfigMap, and Events are written.
		Eventually(phaseOf(ctx, watched, "chart"), 30*time.Second).Should(Equal(vizv1.PhaseSucceeded))
		var nps networkingv1.NetworkPolicyList
		Expect(k8sClient.List(ctx, &nps, client.InNamespace(watched))).To(Succeed())
		Expect(nps.Items).NotTo(BeEmpty(), "the pool's NetworkPolicy")
		var cms corev1.ConfigMapList
		Expect(k8sClient.List(ctx, &cms, client.InNamespace(watched), client.HasLabels{vizv1.LabelRequestUID})).To(Succeed())
		Expect(cms.Items).To(HaveLen(1), "the request's artifact ConfigMap")
		Eventually(func(g Gomega) {
			g.Expect(getPool(ctx, g, watched, "default").Status.Ready).To(BeNumerically(">=", 1))
		}, 30*time.Second).Should(Succeed())
		Eventually(func(g Gomega) {
			var evs eventsv1.EventList
			g.Expect(k8sClient.List(ctx, &evs, client.InNamespace(watched))).To(Succeed())
			g.Expect(evs.Items).NotTo(BeEmpty())
		}, 10*time.Second).Should(Succeed(), "the manager's Events in the watched namespace")

		// A request in the watched namespace naming the pool of the unwatched one fails
		// at once, saying why (that pool is not in the manager's cache).
		Expect(k8sClient.Create(ctx, newRequest(watched, "elsewhere", "print(1)", func(vr *vizv1.VisualizationRequest) {
			vr.Spec.SandboxPoolRef = vizv1.SandboxPoolReference{Namespace: unwatched, Name: "default"}
		}))).To(Succeed())
		Eventually(phaseOf(ctx, watched, "elsewhere"), 10*time.Second).Should(Equal(vizv1.PhaseFailed))
		c := meta.FindStatusCondition(get(ctx, Default, watched, "elsewhere").Status.Conditions, vizv1.ConditionAdmitted)
		Expect(c).NotTo(BeNil())
		Expect(c.Reason).To(Equal(vizv1.ReasonPoolNotFound))
		Expect(c.Message).To(ContainSubstring("which this operator does not watch"))

		// Unwatched: nothing at all, neither status nor Pods.
		Consistently(func(g Gomega) {
			g.Expect(get(ctx, g, unwatched, "chart").Status.Phase).To(BeEmpty())
			g.Expect(getPool(ctx, g, unwatched, "default").Status.Conditions).To(BeEmpty())
			g.Expect(sandboxPods(ctx, g, unwatched)).To(BeEmpty())
		}, 2*time.Second).Should(Succeed())
	})
})
