package controller

import (
	"context"
	"strings"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/utils/ptr"

	vizv1 "github.com/vizops/viz-operator/api/v1alpha1"
)

// These run against the real API server: the CRD's schema, defaults and CEL rules.
var _ = Describe("API validation", func() {
	ctx := context.Background()
	var ns string
	BeforeEach(func() { ns = newNamespace(ctx, nil) })

	DescribeTable("rejects a bad VisualizationRequest with a clear message",
		func(mutate func(*vizv1.VisualizationRequest), wantMsg string) {
			vr := newRequest(ns, "bad", "")
			vr.Spec.Prompt = "plot VOE episodes per month"
			mutate(vr)
			err := k8sClient.Create(ctx, vr)
			Expect(err).To(HaveOccurred())
			Expect(err.Error()).To(ContainSubstring(wantMsg))
		},
		Entry("neither prompt nor code", func(vr *vizv1.VisualizationRequest) { vr.Spec.Prompt = "" },
			"set spec.prompt (a natural-language request) or spec.code"),
		Entry("a prompt over 8192 characters", func(vr *vizv1.VisualizationRequest) {
			vr.Spec.Prompt = strings.Repeat("a", 8193)
		}, "spec.prompt: Too long"),
		Entry("an unknown output format", func(vr *vizv1.VisualizationRequest) {
			vr.Spec.OutputFormats = []vizv1.OutputFormat{"gif"}
		}, `Unsupported value: "gif"`),
		Entry("timeout 601", func(vr *vizv1.VisualizationRequest) { vr.Spec.TimeoutSeconds = 601 },
			"should be less than or equal to 600"),
		Entry("both data sources", func(vr *vizv1.VisualizationRequest) {
			vr.Spec.Data = &vizv1.DataSource{CSV: ptr.To("a,b\n1,2\n"),
				ConfigMapKeyRef: &vizv1.ConfigMapKeyReference{Name: "cm", Key: "k"}}
		}, "set exactly one of data.csv and data.configMapKeyRef"),
		Entry("neither data source", func(vr *vizv1.VisualizationRequest) {
			vr.Spec.Data = &vizv1.DataSource{}
		}, "set exactly one of data.csv and data.configMapKeyRef"),
		Entry("a model without provider", func(vr *vizv1.VisualizationRequest) { vr.Spec.Model = "gpt-4o" },
			"spec.model"),
		Entry("a pool name that no object can have", func(vr *vizv1.VisualizationRequest) {
			vr.Spec.SandboxPoolRef.Name = "Bad_Name!"
		}, "spec.sandboxPoolRef.name in body should match"),
		Entry("a pool namespace that no namespace can have", func(vr *vizv1.VisualizationRequest) {
			vr.Spec.SandboxPoolRef.Namespace = "Team.A"
		}, "spec.sandboxPoolRef.namespace in body should match"),
	)

	// Go's typed client omits "" and 0, so these go over the wire as raw objects, as
	// kubectl would send them.
	DescribeTable("rejects explicit empty or zero values",
		func(spec map[string]any, wantMsg string) {
			u := &unstructured.Unstructured{Object: map[string]any{
				"apiVersion": vizv1.GroupVersion.String(), "kind": "VisualizationRequest",
				"metadata": map[string]any{"name": "raw", "namespace": ns},
				"spec":     spec,
			}}
			err := k8sClient.Create(ctx, u)
			Expect(err).To(HaveOccurred())
			Expect(err.Error()).To(ContainSubstring(wantMsg))
		},
		Entry("an empty prompt", map[string]any{"prompt": ""},
			"spec.prompt: Invalid value: \"\": spec.prompt in body should be at least 1 chars long"),
		Entry("timeout 0", map[string]any{"prompt": "plot x", "timeoutSeconds": int64(0)},
			"spec.timeoutSeconds in body should be greater than or equal to 1"),
		Entry("timeout 601", map[string]any{"prompt": "plot x", "timeoutSeconds": int64(601)},
			"spec.timeoutSeconds in body should be less than or equal to 600"),
		Entry("an empty model", map[string]any{"prompt": "plot x", "model": ""},
			"spec.model in body should be at least 1 chars long"),
		Entry("empty code", map[string]any{"code": ""},
			"spec.code in body should be at least 1 chars long"),
		Entry("an empty pool namespace", map[string]any{"prompt": "plot x", "sandboxPoolRef": map[string]any{"namespace": ""}},
			"spec.sandboxPoolRef.namespace in body should be at least 1 chars long"),
		Entry("an empty spec", map[string]any{},
			"set spec.prompt (a natural-language request) or spec.code (Python to run)"),
	)

	It("rejects a request without a spec", func() {
		u := &unstructured.Unstructured{Object: map[string]any{
			"apiVersion": vizv1.GroupVersion.String(), "kind": "VisualizationRequest",
			"metadata": map[string]any{"name": "nospec", "namespace": ns},
		}}
		err := k8sClient.Create(ctx, u)
		Expect(err).To(HaveOccurred())
		Expect(err.Error()).To(ContainSubstring("spec: Required value"))
	})

	It("rejects a spec change after creation", func() {
		vr := newRequest(ns, "immutable", "")
		vr.Spec.Prompt = "plot VOE episodes per month"
		Expect(k8sClient.Create(ctx, vr)).To(Succeed())
		vr.Spec.Prompt = "plot something else"
		err := k8sClient.Update(ctx, vr)
		Expect(err).To(HaveOccurred())
		Expect(err.Error()).To(ContainSubstring("spec is immutable: delete and re-create the VisualizationRequest to change it"))
	})

	It("fills in the documented defaults", func() {
		vr := newRequest(ns, "defaults", "")
		vr.Spec.Prompt = "plot VOE episodes per month"
		Expect(k8sClient.Create(ctx, vr)).To(Succeed())
		Expect(vr.Spec.OutputFormats).To(Equal([]vizv1.OutputFormat{vizv1.FormatPNG}))
		Expect(vr.Spec.TimeoutSeconds).To(Equal(int32(30)))
		Expect(vr.Spec.MaxAttempts).To(Equal(int32(3)))
		Expect(vr.Spec.ArtifactStorage).To(Equal(vizv1.ArtifactStorageAuto))
		Expect(vr.Spec.SandboxPoolRef.Name).To(Equal("default"))

		p := &vizv1.SandboxPool{}
		p.Namespace, p.Name = ns, "defaults"
		Expect(k8sClient.Create(ctx, p)).To(Succeed())
		Expect(p.Spec.ClassName).To(BeEmpty(), "empty: the default class")
		Expect(p.Spec.MinReady).To(Equal(ptr.To(int32(1))))
		Expect(p.Spec.MaxSandboxes).To(Equal(int32(10)))
		Expect(p.Spec.PythonPackages).To(ConsistOf("matplotlib", "numpy", "pandas", "seaborn", "plotly"))
		// Unset resources stay unset: they mean the class's defaults, never "none".
		Expect(p.Spec.Resources.Memory).To(BeNil())
	})

	DescribeTable("rejects a bad SandboxPool with a clear message",
		func(mutate func(*vizv1.SandboxPool), wantMsg string) {
			p := newPool(ns, "bad", 10, mutate)
			err := k8sClient.Create(ctx, p)
			Expect(err).To(HaveOccurred())
			Expect(err.Error()).To(ContainSubstring(wantMsg))
		},
		Entry("minReady > maxSandboxes", func(p *vizv1.SandboxPool) { p.Spec.MinReady, p.Spec.MaxSandboxes = ptr.To(int32(5)), 2 },
			"minReady must not exceed maxSandboxes"),
		Entry("maxSandboxes over 1000", func(p *vizv1.SandboxPool) { p.Spec.MaxSandboxes = 1001 },
			"should be less than or equal to 1000"),
	)

	DescribeTable("rejects a bad SandboxClass with a clear message",
		func(spec vizv1.SandboxClassSpec, wantMsg string) {
			c := &vizv1.SandboxClass{ObjectMeta: metav1.ObjectMeta{GenerateName: "bad-"}, Spec: spec}
			err := k8sClient.Create(ctx, c)
			Expect(err).To(HaveOccurred())
			Expect(err.Error()).To(ContainSubstring(wantMsg))
		},
		Entry("an e2b block on a Local class", vizv1.SandboxClassSpec{Backend: vizv1.BackendLocal,
			E2B: &vizv1.E2BClass{APIKeySecretRef: vizv1.SecretKeyReference{Name: "e2b", Key: "key"}}}, "spec.e2b is only allowed with backend E2B"),
		Entry("a kubernetes block on a Local class", vizv1.SandboxClassSpec{Backend: vizv1.BackendLocal,
			Kubernetes: &vizv1.KubernetesClass{Image: "x"}}, "spec.kubernetes is only allowed with backend Kubernetes"),
		Entry("an E2B class without its block", vizv1.SandboxClassSpec{Backend: vizv1.BackendE2B}, "backend E2B needs spec.e2b"),
		Entry("a Kubernetes class without its block", vizv1.SandboxClassSpec{Backend: vizv1.BackendKubernetes}, "backend Kubernetes needs spec.kubernetes"),
		Entry("egress on a Local class", vizv1.SandboxClassSpec{Backend: vizv1.BackendLocal,
			Egress: []vizv1.EgressRule{{CIDR: "10.0.0.0/8"}}}, "spec.egress is only supported by backend Kubernetes"),
		Entry("an egress rule that is no CIDR", vizv1.SandboxClassSpec{Backend: vizv1.BackendKubernetes, Kubernetes: &vizv1.KubernetesClass{Image: "x"},
			Egress: []vizv1.EgressRule{{CIDR: "example.com"}}}, "cidr must be a CIDR"),
		Entry("maxExecutionsPerSandbox -1", vizv1.SandboxClassSpec{Backend: vizv1.BackendKubernetes,
			Kubernetes: &vizv1.KubernetesClass{Image: "x", MaxExecutionsPerSandbox: -1}}, "spec.kubernetes.maxExecutionsPerSandbox"),
		Entry("no backend", vizv1.SandboxClassSpec{}, "spec.backend"),
		Entry("a Localhost seccomp profile without its path", vizv1.SandboxClassSpec{Backend: vizv1.BackendKubernetes,
			Kubernetes: &vizv1.KubernetesClass{Image: "x", SeccompProfile: &vizv1.SandboxSeccompProfile{Type: vizv1.SeccompLocalhost}}},
			"localhostProfile is required with type Localhost"),
		Entry("a path with RuntimeDefault", vizv1.SandboxClassSpec{Backend: vizv1.BackendKubernetes,
			Kubernetes: &vizv1.KubernetesClass{Image: "x", SeccompProfile: &vizv1.SandboxSeccompProfile{Type: vizv1.SeccompRuntimeDefault, LocalhostProfile: "a.json"}}},
			"not allowed otherwise"),
		Entry("an Unconfined seccomp profile", vizv1.SandboxClassSpec{Backend: vizv1.BackendKubernetes,
			Kubernetes: &vizv1.KubernetesClass{Image: "x", SeccompProfile: &vizv1.SandboxSeccompProfile{Type: "Unconfined"}}},
			"spec.kubernetes.seccompProfile.type"),
		Entry("a profile path leaving the seccomp directory", vizv1.SandboxClassSpec{Backend: vizv1.BackendKubernetes,
			Kubernetes: &vizv1.KubernetesClass{Image: "x", SeccompProfile: &vizv1.SandboxSeccompProfile{Type: vizv1.SeccompLocalhost, LocalhostProfile: "../../etc/x.json"}}},
			"must not contain . or .. segments"),
		Entry("an absolute profile path", vizv1.SandboxClassSpec{Backend: vizv1.BackendKubernetes,
			Kubernetes: &vizv1.KubernetesClass{Image: "x", SeccompProfile: &vizv1.SandboxSeccompProfile{Type: vizv1.SeccompLocalhost, LocalhostProfile: "/etc/x.json"}}},
			"spec.kubernetes.seccompProfile.localhostProfile"),
	)

	It("accepts the agent's Localhost seccomp profile", func() {
		c := &vizv1.SandboxClass{ObjectMeta: metav1.ObjectMeta{GenerateName: "seccomp-"}, Spec: vizv1.SandboxClassSpec{Backend: vizv1.BackendKubernetes,
			Kubernetes: &vizv1.KubernetesClass{Image: "x", SeccompProfile: &vizv1.SandboxSeccompProfile{Type: vizv1.SeccompLocalhost, LocalhostProfile: "vizops/sandbox-agent.json"}}}}
		Expect(k8sClient.Create(ctx, c)).To(Succeed())
		DeferCleanup(func() { Expect(k8sClient.Delete(ctx, c)).To(Succeed()) })
	})
})
