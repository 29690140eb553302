package controller

import (
	"bytes"
	"context"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"k8s.io/apimachinery/pkg/api/meta"

	vizv1 "github.com/vizops/viz-operator/api/v1alpha1"
	"github.com/vizops/viz-operator/internal/metrics"
	"github.com/vizops/viz-operator/internal/sandbox"
	"github.com/vizops/viz-operator/internal/sandbox/local"
)

const seedBarChart = `import matplotlib.pyplot as plt
import numpy as np

treatments = ['Hydroxyurea', 'Voxelotor', 'Crizanlizumab']
effectiveness = [85, 70, 75]
plt.bar(treatments, effectiveness)
plt.ylabel('Effectiveness (%)')
plt.title('SCD Treatment Effectiveness')
plt.show()
`

var pngSignature = []byte{0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'}

// The vertical slice: real bubblewrap sandboxes behind the real controller.
var _ = Describe("A request end to end in the Local sandbox", Ordered, func() {
	ctx := context.Background()
	var ns string
	var h *harness

	BeforeAll(func() {
		ns = newNamespace(ctx, nil)
		h = startManager([]string{ns}, harnessOptions{factory: func(cfg sandbox.PoolConfig) (sandbox.Pool, error) {
			return local.NewPool(cfg, local.Options{})
		}})
		Expect(k8sClient.Create(ctx, newPool(ns, "default", 2))).To(Succeed())
	})
	AfterAll(func() { h.stop() })

	It("runs spec.code and stores the PNG in status", func() {
		Expect(k8sClient.Create(ctx, newRequest(ns, "bar", seedBarChart))).To(Succeed())
		Eventually(phaseOf(ctx, ns, "bar"), 90*time.Second, 200*time.Millisecond).Should(Equal(vizv1.PhaseSucceeded))
		vr := get(ctx, Default, ns, "bar")
		Expect(vr.Status.Artifacts).To(HaveLen(1))
		a := vr.Status.Artifacts[0]
		Expect(a.Format).To(Equal("png"))
		Expect(a.MIMEType).To(Equal("image/png"))
		Expect(bytes.HasPrefix(a.Data, pngSignature)).To(BeTrue(), "not a PNG")
		Expect(a.SizeBytes).To(BeNumerically(">", 5000))
		Expect(a.SizeBytes).To(Equal(int64(len(a.Data))))
		Expect(a.SHA256).To(HaveLen(64))
		Expect(vr.Status.Execution.Backend).To(Equal("Local"))
		Expect(vr.Status.CodeGeneration.Source).To(Equal(vizv1.CodeGenerationSource("User")))
		Expect(vr.Status.Attempts).To(Equal(int32(1)))
		Expect(meta.IsStatusConditionTrue(vr.Status.Conditions, vizv1.ConditionReady)).To(BeTrue())
		for _, c := range vr.Status.Conditions {
			Expect(c.ObservedGeneration).To(Equal(vr.Generation), c.Type)
		}
	})

	It("turns a prompt without a model into the right chart from a template", func() {
		vr := newRequest(ns, "prompt", "")
		vr.Spec.Prompt = "Show a bar chart of treatment effectiveness: Hydroxyurea (85%), Voxelotor (70%), Crizanlizumab (75%)"
		Expect(k8sClient.Create(ctx, vr)).To(Succeed())
		Eventually(phaseOf(ctx, ns, "prompt"), 90*time.Second, 200*time.Millisecond).Should(Equal(vizv1.PhaseSucceeded))
		vr = get(ctx, Default, ns, "prompt")
		Expect(vr.Status.Detection.ChartType).To(Equal("bar"))
		Expect(vr.Status.CodeGeneration.Source).To(Equal(vizv1.CodeGenerationSource("Template")))
		Expect(vr.Status.CodeGeneration.Path).To(Equal("Template"))
		Expect(vr.Status.CodeGeneration.Code).To(ContainSubstring("Hydroxyurea"))
		Expect(vr.Status.Artifacts).NotTo(BeEmpty())
		Expect(bytes.HasPrefix(vr.Status.Artifacts[0].Data, pngSignature)).To(BeTrue())
	})

	It("keeps partial results and reports CodeError with the traceback", func() {
		code := seedBarChart + "\n1/0\n"
		Expect(k8sClient.Create(ctx, newRequest(ns, "broken", code))).To(Succeed())
		Eventually(phaseOf(ctx, ns, "broken"), 90*time.Second, 200*time.Millisecond).Should(Equal(vizv1.PhaseFailed))
		vr := get(ctx, Default, ns, "broken")
		c := meta.FindStatusCondition(vr.Status.Conditions, vizv1.ConditionReady)
		Expect(c.Reason).To(Equal(vizv1.ReasonCodeError))
		Expect(c.Message).To(ContainSubstring("ZeroDivisionError"))
		Expect(vr.Status.Execution.Error.Name).To(Equal("ZeroDivisionError"))
		Expect(vr.Status.Execution.Error.Traceback).NotTo(BeEmpty())
		Expect(vr.Status.Artifacts).To(HaveLen(1), "the figure made before the error is kept")
		Expect(vr.Status.Attempts).To(Equal(int32(1)), "code errors are not retried blindly")
	})

	It("stops code at its timeout, kills it, keeps what it drew, and reports Timeout", func() {
		code := seedBarChart + "\nimport time\nwhile True:\n    time.sleep(1)\n"
		Expect(k8sClient.Create(ctx, newRequest(ns, "slow", code, func(vr *vizv1.VisualizationRequest) {
			vr.Spec.TimeoutSeconds = 2
		}))).To(Succeed())
		Eventually(phaseOf(ctx, ns, "slow"), 90*time.Second, 200*time.Millisecond).Should(Equal(vizv1.PhaseFailed))
		vr := get(ctx, Default, ns, "slow")
		c := meta.FindStatusCondition(vr.Status.Conditions, vizv1.ConditionReady)
		Expect(c.Reason).To(Equal(vizv1.ReasonTimeout))
		Expect(c.Message).To(ContainSubstring("spec.timeoutSeconds (2s)"))
		Expect(vr.Status.Attempts).To(Equal(int32(1)), "a timeout is not retried")
		Expect(vr.Status.Execution.DurationMillis).To(BeNumerically("<", 30_000))
		Expect(vr.Status.Artifacts).To(HaveLen(1), "the figure shown before the loop is kept")
	})

	It("ends Skipped with the tool when the prompt is not a visualization", func() {
		vr := newRequest(ns, "question", "")
		vr.Spec.Prompt = "What does the latest literature say about hydroxyurea dosing in children?"
		Expect(k8sClient.Create(ctx, vr)).To(Succeed())
		Eventually(phaseOf(ctx, ns, "question"), 30*time.Second).Should(Equal(vizv1.PhaseSkipped))
		vr = get(ctx, Default, ns, "question")
		Expect(vr.Status.Detection.Visualization).To(BeFalse())
		Expect(vr.Status.Detection.Tool).To(Equal("PubMedSearch"))
		c := meta.FindStatusCondition(vr.Status.Conditions, vizv1.ConditionReady)
		Expect(c.Reason).To(Equal(vizv1.ReasonNotAVisualization))
		Expect(c.Message).To(ContainSubstring("PubMedSearch"))
	})

	It("records what the seed asks to track in Prometheus metrics", func() {
		Expect(testutil.ToFloat64(metrics.RequestsTotal.WithLabelValues("Succeeded", "Succeeded"))).To(BeNumerically(">=", 2))
		Expect(testutil.ToFloat64(metrics.RequestsTotal.WithLabelValues("Failed", "CodeError"))).To(BeNumerically(">=", 1))
		Expect(testutil.ToFloat64(metrics.CodegenTotal.WithLabelValues("Template"))).To(BeNumerically(">=", 1))
		Expect(testutil.ToFloat64(metrics.ChartRequestsTotal.WithLabelValues("bar", "CodeInterpreter"))).To(BeNumerically(">=", 1))
		Expect(testutil.CollectAndCount(metrics.ExecutionSeconds)).To(BeNumerically(">=", 1))
		Expect(testutil.CollectAndCount(metrics.SandboxAcquireSeconds)).To(BeNumerically(">=", 1))
		Expect(testutil.CollectAndCount(metrics.SandboxCreationSeconds)).To(BeNumerically(">=", 1))
		lint, err := testutil.CollectAndLint(metrics.RequestsTotal)
		Expect(err).NotTo(HaveOccurred())
		Expect(lint).To(BeEmpty())
	})

	It("shows the live pool in SandboxPool status", func() {
		Eventually(func(g Gomega) {
			p := &vizv1.SandboxPool{}
			g.Expect(k8sClient.Get(ctx, keyOf(ns, "default"), p)).To(Succeed())
			g.Expect(meta.IsStatusConditionTrue(p.Status.Conditions, vizv1.PoolConditionReady)).To(BeTrue())
			g.Expect(p.Status.ObservedGeneration).To(Equal(p.Generation))
		}, 30*time.Second).Should(Succeed())
	})
})
