package controller

import (
	"context"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/utils/ptr"

	vizv1 "github.com/vizops/viz-operator/api/v1alpha1"
	"github.com/vizops/viz-operator/internal/models"
	"github.com/vizops/viz-operator/internal/models/modelstest"
	"github.com/vizops/viz-operator/internal/sandbox/sandboxtest"
)

const modelCode = "Here is the chart:\n```python\nimport matplotlib.pyplot as plt\nplt.bar(['a', 'b'], [1, 2])\nplt.title('From the model')\nplt.show()\n```\n"

var _ = Describe("Models and data", func() {
	ctx := context.Background()

	It("generates code with a configured model and records the path", func() {
		ns := newNamespace(ctx, nil)
		srv := modelstest.NewOpenAI(GinkgoT(),
			modelstest.Reply{Content: `{"visualization": true, "tool": "CodeInterpreter", "chartType": "bar"}`},
			modelstest.Reply{Content: modelCode})
		srv.RequireKey("sk-test-secret")
		reg := models.NewRegistry(&models.Config{Providers: []models.ProviderConfig{{
			Name: "local", Type: models.TypeOpenAI, BaseURL: srv.BaseURL(), DefaultModel: "qwen",
			APIKeySecretRef: &models.SecretRef{Name: "keys", Key: "local"},
		}}}, models.Options{Secrets: func(context.Context, string, string) (string, error) { return "sk-test-secret", nil }})
		h := startManager([]string{ns}, harnessOptions{factory: fakeFactory(sandboxtest.NewPool(1)), pipeline: CodegenPipeline{Models: reg}})
		defer h.stop()
		Expect(k8sClient.Create(ctx, newPool(ns, "default", 1))).To(Succeed())
		vr := newRequest(ns, "model", "", func(vr *vizv1.VisualizationRequest) {
			vr.Spec.Prompt = "bar chart of a and b"
			vr.Spec.Model = "local/"
		})
		Expect(k8sClient.Create(ctx, vr)).To(Succeed())
		Eventually(phaseOf(ctx, ns, "model"), 30*time.Second).Should(Equal(vizv1.PhaseSucceeded))
		vr = get(ctx, Default, ns, "model")
		Expect(vr.Status.CodeGeneration.Source).To(Equal(vizv1.CodeGenerationSource("Model")))
		Expect(vr.Status.CodeGeneration.Path).To(Equal("Model"))
		Expect(vr.Status.CodeGeneration.Model).To(Equal("local/qwen"))
		Expect(vr.Status.CodeGeneration.Code).To(ContainSubstring("From the model"))
		Expect(vr.Status.Detection.Source).To(Equal("Model"))
		Expect(vr.Status.CodeGeneration.Attempts).To(Equal(int32(1)))
	})

	It("fails with ProviderUnavailable for an unknown provider, naming it", func() {
		ns := newNamespace(ctx, nil)
		h := startManager([]string{ns}, harnessOptions{factory: fakeFactory(sandboxtest.NewPool(1))})
		defer h.stop()
		Expect(k8sClient.Create(ctx, newPool(ns, "default", 1))).To(Succeed())
		Expect(k8sClient.Create(ctx, newRequest(ns, "nomodel", "", func(vr *vizv1.VisualizationRequest) {
			vr.Spec.Prompt = "bar chart of a and b"
			vr.Spec.Model = "openai/gpt-4o-mini"
		}))).To(Succeed())
		Eventually(readyReason(ctx, ns, "nomodel"), 30*time.Second).Should(Equal(vizv1.ReasonProviderUnavailable))
		vr := get(ctx, Default, ns, "nomodel")
		Expect(vr.Status.Phase).To(Equal(vizv1.PhaseFailed))
		Expect(vr.Status.Attempts).To(Equal(int32(1)), "a configuration error is not retried")
	})

	It("reads data from a ConfigMap, and fails clearly when it is missing or not CSV", func() {
		ns := newNamespace(ctx, nil)
		fake := sandboxtest.NewPool(3)
		h := startManager([]string{ns}, harnessOptions{factory: fakeFactory(fake)})
		defer h.stop()
		Expect(k8sClient.Create(ctx, newPool(ns, "default", 3))).To(Succeed())
		cm := &corev1.ConfigMap{Data: map[string]string{"r.csv": "month,hb\n2026-01,8.1\n2026-02,8.4\n"}}
		cm.Namespace, cm.Name = ns, "readings"
		Expect(k8sClient.Create(ctx, cm)).To(Succeed())
		withData := func(d vizv1.DataSource) func(*vizv1.VisualizationRequest) {
			return func(vr *vizv1.VisualizationRequest) {
				vr.Spec.Prompt = "line chart of hb over time"
				vr.Spec.Data = &d
			}
		}
		Expect(k8sClient.Create(ctx, newRequest(ns, "csv", "", withData(vizv1.DataSource{
			ConfigMapKeyRef: &vizv1.ConfigMapKeyReference{Name: "readings", Key: "r.csv"}})))).To(Succeed())
		Expect(k8sClient.Create(ctx, newRequest(ns, "nokey", "", withData(vizv1.DataSource{
			ConfigMapKeyRef: &vizv1.ConfigMapKeyReference{Name: "readings", Key: "other.csv"}})))).To(Succeed())
		Expect(k8sClient.Create(ctx, newRequest(ns, "badcsv", "", withData(vizv1.DataSource{
			CSV: ptr.To("a,b\n1,2,3\n")})))).To(Succeed())

		Eventually(phaseOf(ctx, ns, "csv"), 30*time.Second).Should(Equal(vizv1.PhaseSucceeded))
		Expect(get(ctx, Default, ns, "csv").Status.CodeGeneration.Code).To(ContainSubstring("hb"))
		Eventually(readyReason(ctx, ns, "nokey"), 30*time.Second).Should(Equal(vizv1.ReasonDataNotFound))
		Eventually(readyReason(ctx, ns, "badcsv"), 30*time.Second).Should(Equal(vizv1.ReasonInvalidData))
		Expect(fake.Executions(ns + "/nokey")).To(BeZero())
		Expect(fake.Executions(ns + "/badcsv")).To(BeZero())
	})
})
