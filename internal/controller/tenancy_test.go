package controller

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	authzv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	vizv1 "github.com/vizops/viz-operator/api/v1alpha1"
	"github.com/vizops/viz-operator/internal/sandbox/sandboxtest"
)

// tenantClient is a client impersonating user, who may do anything with the namespaced
// objects of ns (pools, requests, ConfigMaps, Secrets, Pods) and nothing else: a
// tenant with edit rights in one namespace.
func tenantClient(ctx context.Context, ns, user string) client.Client {
	GinkgoHelper()
	role := &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "tenant-edit"}, Rules: []rbacv1.PolicyRule{
		{APIGroups: []string{vizv1.GroupVersion.Group}, Resources: []string{"sandboxpools", "visualizationrequests"}, Verbs: []string{"*"}},
		{APIGroups: []string{""}, Resources: []string{"configmaps", "secrets", "pods"}, Verbs: []string{"*"}},
	}}
	Expect(k8sClient.Create(ctx, role)).To(Succeed())
	Expect(k8sClient.Create(ctx, &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "tenant-edit"},
		RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: role.Name},
		Subjects: []rbacv1.Subject{{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: user}},
	})).To(Succeed())
	tc := rest.CopyConfig(cfg)
	tc.Impersonate = rest.ImpersonationConfig{UserName: user}
	c, err := client.New(tc, client.Options{Scheme: scheme})
	Expect(err).NotTo(HaveOccurred())
	return c
}

// bindManagerRole binds the generated config/rbac/role.yaml (its ClusterRole, and its
// Role in the operator's namespace opNS) to the service account opNS/manager.
func bindManagerRole(ctx context.Context, opNS string) {
	GinkgoHelper()
	raw, err := os.ReadFile(filepath.Join("..", "..", "config", "rbac", "role.yaml"))
	Expect(err).NotTo(HaveOccurred())
	sa := rbacv1.Subject{Kind: rbacv1.ServiceAccountKind, Name: "manager", Namespace: opNS}
	for _, doc := range strings.Split(string(raw), "\n---\n") {
		var role rbacv1.ClusterRole // a Role has the same shape
		Expect(yaml.Unmarshal([]byte(doc), &role)).To(Succeed())
		if role.Kind == "Role" {
			r := &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Namespace: opNS, Name: "manager-role"}, Rules: role.Rules}
			Expect(k8sClient.Create(ctx, r)).To(Succeed())
			Expect(k8sClient.Create(ctx, &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Namespace: opNS, Name: "manager"},
				RoleRef: rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: r.Name}, Subjects: []rbacv1.Subject{sa}})).To(Succeed())
			continue
		}
		cr := &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: opNS + "-manager-role"}, Rules: role.Rules}
		Expect(k8sClient.Create(ctx, cr)).To(Succeed())
		Expect(k8sClient.Create(ctx, &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: opNS + "-manager"},
			RoleRef: rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: cr.Name}, Subjects: []rbacv1.Subject{sa}})).To(Succeed())
	}
}

// managerMay asks the API server whether opNS/manager may do verb on resource in ns.
func managerMay(ctx context.Context, opNS, verb, resource, ns string) bool {
	GinkgoHelper()
	sar := &authzv1.SubjectAccessReview{Spec: authzv1.SubjectAccessReviewSpec{
		User:               "system:serviceaccount:" + opNS + ":manager",
		Groups:             []string{"system:serviceaccounts", "system:serviceaccounts:" + opNS},
		ResourceAttributes: &authzv1.ResourceAttributes{Namespace: ns, Verb: verb, Resource: resource},
	}}
	Expect(k8sClient.Create(ctx, sar)).To(Succeed())
	return sar.Status.Allowed
}

var _ = Describe("Tenancy", func() {
	ctx := context.Background()

	It("gives the manager's service account no Secret outside its own namespace", func() {
		opNS := newNamespace(ctx, nil)
		tenant := newNamespace(ctx, nil)
		bindManagerRole(ctx, opNS)
		Eventually(func() bool { return managerMay(ctx, opNS, "get", "secrets", opNS) }, 10*time.Second).Should(BeTrue(),
			"the binding must work for the refusals below to mean anything")
		for _, ns := range []string{"kube-system", tenant} {
			for _, verb := range []string{"get", "list", "watch", "update", "patch"} {
				Expect(managerMay(ctx, opNS, verb, "secrets", ns)).To(BeFalse(), "%s secrets in %s", verb, ns)
			}
		}
		// What it does need cluster-wide still works: the pools' Pods and token Secrets.
		Expect(managerMay(ctx, opNS, "create", "pods", tenant)).To(BeTrue())
		Expect(managerMay(ctx, opNS, "create", "secrets", tenant)).To(BeTrue())
	})

	It("lets a tenant choose no image, node, runtime class, URL or key: those are the class's, which it cannot write", func() {
		ns := kubeletNamespace(ctx, nil)
		tenant := tenantClient(ctx, ns, "tenant-"+ns)

		// A tenant cannot write a class.
		evil := &vizv1.SandboxClass{ObjectMeta: metav1.ObjectMeta{Name: ns + "-evil"}, Spec: vizv1.SandboxClassSpec{
			Backend: vizv1.BackendKubernetes, Kubernetes: &vizv1.KubernetesClass{Image: "evil:latest"}}}
		err := tenant.Create(ctx, evil)
		Expect(apierrors.IsForbidden(err)).To(BeTrue(), "creating a SandboxClass as a tenant: %v", err)

		// The platform's class; the tenant's pool tries every field the old API had.
		newKubePool(ns, "class-only", 1, 1) // makes the class kubeClassName(ns, "class-only")
		u := &unstructured.Unstructured{Object: map[string]any{
			"apiVersion": vizv1.GroupVersion.String(), "kind": "SandboxPool",
			"metadata": map[string]any{"namespace": ns, "name": "mine"},
			"spec": map[string]any{
				"className": kubeClassName(ns, "class-only"), "minReady": int64(1), "maxSandboxes": int64(1),
				"backend": "Kubernetes", "network": "Egress",
				"kubernetes": map[string]any{"image": "evil:latest", "runtimeClassName": "host", "nodeSelector": map[string]any{"node-role.kubernetes.io/control-plane": ""},
					"tolerations": []any{map[string]any{"operator": "Exists"}}, "resources": map[string]any{}},
				"e2b": map[string]any{"apiURL": "http://attacker.example", "apiKeySecretRef": map[string]any{"name": "x", "key": "y"}},
			},
		}}
		Expect(tenant.Create(ctx, u)).To(Succeed(), "unknown fields are pruned, not refused (kubectl warns)")
		got := &unstructured.Unstructured{}
		got.SetGroupVersionKind(u.GroupVersionKind())
		Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(u), got)).To(Succeed())
		for _, f := range [][]string{{"spec", "backend"}, {"spec", "network"}, {"spec", "kubernetes"}, {"spec", "e2b", "apiURL"}, {"spec", "e2b", "apiKeySecretRef"}} {
			_, found, _ := unstructured.NestedFieldNoCopy(got.Object, f...)
			Expect(found).To(BeFalse(), "spec field %v survived", f)
		}

		h := startManager([]string{ns}, harnessOptions{factory: fakeFactory(sandboxtest.NewPool(1)), kubeRunner: newFakeAgent().runner})
		defer h.stop()
		Eventually(func(g Gomega) {
			pods := sandboxPods(ctx, g, ns)
			var mine []corev1.Pod
			for _, p := range pods {
				if p.Labels[vizv1.LabelSandboxPoolUID] == string(got.GetUID()) {
					mine = append(mine, p)
				}
			}
			g.Expect(mine).NotTo(BeEmpty())
			for _, p := range mine {
				g.Expect(p.Spec.Containers[0].Image).To(Equal("ghcr.io/vizops/viz-sandbox:test"))
				for _, t := range p.Spec.Tolerations {
					// Only the API server's own defaults (not-ready/unreachable, 300 s).
					g.Expect(t.Key).To(HavePrefix("node.kubernetes.io/"), "toleration %+v", t)
				}
				g.Expect(p.Spec.NodeSelector).To(BeEmpty())
				g.Expect(p.Spec.RuntimeClassName).To(BeNil())
				g.Expect(p.Spec.Containers[0].Resources.Limits.Memory().Value()).To(BeNumerically(">", 0), "limits are never removed")
			}
		}, 30*time.Second).Should(Succeed())
	})

	It("reports a missing class, a class that refuses the namespace, and resources over the class's maximum", func() {
		ns := newNamespace(ctx, map[string]string{"team": "a"})
		h := startManager([]string{ns}, harnessOptions{factory: fakeFactory(sandboxtest.NewPool(1))})
		defer h.stop()
		bounded := &vizv1.SandboxClass{ObjectMeta: metav1.ObjectMeta{Name: ns + "-bounded"}, Spec: vizv1.SandboxClassSpec{
			Backend: vizv1.BackendLocal, MaxResources: vizv1.SandboxResources{Memory: ptr.To(resource.MustParse("512Mi"))}}}
		teamB := &vizv1.SandboxClass{ObjectMeta: metav1.ObjectMeta{Name: ns + "-team-b"}, Spec: vizv1.SandboxClassSpec{
			Backend: vizv1.BackendLocal, NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"team": "b"}}}}
		for _, c := range []*vizv1.SandboxClass{bounded, teamB} {
			Expect(k8sClient.Create(ctx, c)).To(Succeed())
			DeferCleanup(func() { _ = k8sClient.Delete(context.Background(), c) })
		}
		Expect(k8sClient.Create(ctx, newPool(ns, "missing", 1, func(p *vizv1.SandboxPool) { p.Spec.ClassName = "no-such-class" }))).To(Succeed())
		Expect(k8sClient.Create(ctx, newPool(ns, "other-team", 1, func(p *vizv1.SandboxPool) { p.Spec.ClassName = teamB.Name }))).To(Succeed())
		Expect(k8sClient.Create(ctx, newPool(ns, "too-big", 1, func(p *vizv1.SandboxPool) {
			p.Spec.ClassName = bounded.Name
			p.Spec.Resources.Memory = ptr.To(resource.MustParse("1Gi"))
		}))).To(Succeed())
		Expect(k8sClient.Create(ctx, newPool(ns, "fits", 1, func(p *vizv1.SandboxPool) { p.Spec.ClassName = bounded.Name }))).To(Succeed())

		Eventually(poolCondition(ctx, ns, "missing", vizv1.PoolConditionReady), 30*time.Second).Should(
			And(HavePrefix("False/"+vizv1.ReasonClassNotFound+": "), ContainSubstring("no-such-class")))
		Eventually(poolCondition(ctx, ns, "other-team", vizv1.PoolConditionReady), 30*time.Second).Should(
			And(HavePrefix("False/"+vizv1.ReasonClassForbidsNamespace+": "), ContainSubstring(ns)))
		Eventually(poolCondition(ctx, ns, "too-big", vizv1.PoolConditionReady), 30*time.Second).Should(
			And(HavePrefix("False/"+vizv1.ReasonResourcesExceedClass+": "), ContainSubstring("memory 1Gi > 512Mi")))
		// Unset resources take the class's... bounded default of nothing: the built-in
		// 1Gi is over 512Mi too, so a bounded class needs defaults; with them it fits.
		Eventually(poolCondition(ctx, ns, "fits", vizv1.PoolConditionReady), 30*time.Second).Should(
			HavePrefix("False/" + vizv1.ReasonResourcesExceedClass))
		updateClass(ctx, bounded.Name, func(c *vizv1.SandboxClass) {
			c.Spec.DefaultResources.Memory = ptr.To(resource.MustParse("256Mi"))
		})
		Eventually(poolCondition(ctx, ns, "fits", vizv1.PoolConditionReady), 30*time.Second).Should(HavePrefix("True/" + vizv1.ReasonPoolReady))
		Eventually(func(g Gomega) []string { return eventsOf(ctx, g, ns, "missing") }, 10*time.Second).Should(
			ContainElement(HavePrefix("Warning/" + vizv1.ReasonClassNotFound)))
		sp := getPool(ctx, Default, ns, "fits")
		Expect(sp.Status.ClassName).To(Equal(bounded.Name))
		Expect(sp.Status.Backend).To(Equal(vizv1.BackendLocal))
	})
})
