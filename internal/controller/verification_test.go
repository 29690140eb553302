package controller

import (
	"context"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	vizv1 "github.com/vizops/viz-operator/api/v1alpha1"
	"github.com/vizops/viz-operator/internal/chartdata"
	"github.com/vizops/viz-operator/internal/models"
	"github.com/vizops/viz-operator/internal/models/modelstest"
	"github.com/vizops/viz-operator/internal/sandbox"
	"github.com/vizops/viz-operator/internal/sandbox/sandboxtest"
)

var _ = Describe("Chart data and verification", func() {
	ctx := context.Background()

	It("records each figure's chart and alt text, dataSource, and a Verified condition that never fails the request", func() {
		ns := newNamespace(ctx, nil)
		fake := sandboxtest.NewPool(2)
		// The fake reports what the runner would read back from a figure: the LDH
		// line whenever the code holds LDH values, nothing otherwise.
		ldh := chartdata.Chart{Type: chartdata.TypeLine, Library: "matplotlib", Figure: "figure_1", Title: "LDH", XLabel: "Days",
			Series: []chartdata.Series{{Name: "LDH", Type: chartdata.TypeLine, X: []float64{1, 3, 5, 7}, Y: []float64{520, 480, 430, 390}}}}
		fake.SetBehavior(func(_ context.Context, req sandbox.Request) (*sandbox.Result, error) {
			res := &sandbox.Result{Success: true, Files: []sandbox.Artifact{{Name: "figure_1.png", MIMEType: "image/png", Data: sandboxtest.PNG}}}
			if strings.Contains(req.Code, "LDH") {
				res.Charts = []chartdata.Chart{ldh}
			}
			return res, nil
		})
		h := startManager([]string{ns}, harnessOptions{factory: fakeFactory(fake)})
		defer h.stop()
		Expect(k8sClient.Create(ctx, newPool(ns, "default", 2))).To(Succeed())
		prompts := map[string]string{
			"good": "Line chart of LDH at days 1, 3, 5, 7: 520, 480, 430, 390",
			"bad":  "Line chart of LDH at days 2, 4, 6, 8: 521, 481, 431, 391",
			"none": "Bar chart of visits: A 1, B 2, C 3",
		}
		for name, p := range prompts {
			Expect(k8sClient.Create(ctx, newRequest(ns, name, "", func(vr *vizv1.VisualizationRequest) { vr.Spec.Prompt = p }))).To(Succeed())
		}
		want := map[string]struct {
			status metav1.ConditionStatus
			reason string
		}{
			"good": {metav1.ConditionTrue, vizv1.ReasonChartVerified},
			"bad":  {metav1.ConditionFalse, vizv1.ReasonDataMismatch},
			"none": {metav1.ConditionUnknown, vizv1.ReasonNotVerifiable},
		}
		for name, w := range want {
			Eventually(phaseOf(ctx, ns, name), 30*time.Second).Should(Equal(vizv1.PhaseSucceeded), name)
			vr := get(ctx, Default, ns, name)
			c := meta.FindStatusCondition(vr.Status.Conditions, vizv1.ConditionVerified)
			Expect(c).NotTo(BeNil(), name)
			Expect(c.Status).To(Equal(w.status), name+": "+c.Message)
			Expect(c.Reason).To(Equal(w.reason), name)
			Expect(vr.Status.CodeGeneration.DataSource).To(Equal(vizv1.DataSourcePrompt), name)
			Expect(vr.Status.Artifacts).To(HaveLen(1), name)
		}
		good := get(ctx, Default, ns, "good")
		a := good.Status.Artifacts[0]
		Expect(a.Chart).NotTo(BeNil())
		Expect(a.Chart.Type).To(Equal("line"))
		Expect(a.Chart.Series).To(HaveLen(1))
		Expect(a.Chart.Series[0].X).To(Equal([]string{"1", "3", "5", "7"}))
		Expect(a.Chart.Series[0].Y).To(Equal([]string{"520", "480", "430", "390"}))
		Expect(a.AltText).To(Equal("Line chart 'LDH': LDH at days 1, 3, 5, 7: 520, 480, 430, 390."))
		bad := meta.FindStatusCondition(get(ctx, Default, ns, "bad").Status.Conditions, vizv1.ConditionVerified)
		Expect(bad.Message).To(ContainSubstring("missing: 521, 481, 431, 391"))
		Expect(get(ctx, Default, ns, "none").Status.Artifacts[0].Chart).To(BeNil())
	})

	It("fails a request whose data the templates cannot read, naming the numbers, without running it", func() {
		ns := newNamespace(ctx, nil)
		fake := sandboxtest.NewPool(1)
		ran := make(chan string, 4)
		fake.SetBehavior(func(_ context.Context, req sandbox.Request) (*sandbox.Result, error) {
			ran <- req.Code
			return &sandbox.Result{Success: true, Files: []sandbox.Artifact{{Name: "figure_1.png", MIMEType: "image/png", Data: sandboxtest.PNG}}}, nil
		})
		h := startManager([]string{ns}, harnessOptions{factory: fakeFactory(fake)})
		defer h.stop()
		Expect(k8sClient.Create(ctx, newPool(ns, "default", 1))).To(Succeed())
		// A value in the prose: the templates read only the list after it.
		prompt := "Line chart of LDH, which fell from 520 to 480, then 430 and finally 390"
		Expect(k8sClient.Create(ctx, newRequest(ns, "unread", "", func(vr *vizv1.VisualizationRequest) { vr.Spec.Prompt = prompt }))).To(Succeed())
		Eventually(phaseOf(ctx, ns, "unread"), 30*time.Second).Should(Equal(vizv1.PhaseFailed))
		vr := get(ctx, Default, ns, "unread")
		ready := meta.FindStatusCondition(vr.Status.Conditions, vizv1.ConditionReady)
		Expect(ready).NotTo(BeNil())
		Expect(ready.Reason).To(Equal(vizv1.ReasonDataNotUnderstood))
		Expect(ready.Message).To(ContainSubstring("the request gives 520,"))
		Expect(ready.Message).To(ContainSubstring("spec.model"))
		Expect(vr.Status.Artifacts).To(BeEmpty())
		Expect(ran).To(BeEmpty(), "no chart is drawn")
	})

	It("gives a model's chart that drops a value one repair round with the verifier's message, then fails with DataNotAccounted", func() {
		ns := newNamespace(ctx, nil)
		const dropped = "```python\nimport matplotlib.pyplot as plt\nplt.bar(['Hydroxyurea', 'Voxelotor'], [85, 70])\nplt.title('Treatment effectiveness')\nplt.show()\n```"
		srv := modelstest.NewOpenAI(GinkgoT(),
			modelstest.Reply{Content: `{"visualization": true, "tool": "CodeInterpreter", "chartType": "bar"}`},
			modelstest.Reply{Content: dropped}, modelstest.Reply{Content: dropped})
		reg := models.NewRegistry(&models.Config{Providers: []models.ProviderConfig{{
			Name: "local", Type: models.TypeOpenAI, BaseURL: srv.BaseURL(), DefaultModel: "qwen",
			APIKeySecretRef: &models.SecretRef{Name: "keys", Key: "local"},
		}}}, models.Options{Secrets: func(context.Context, string, string) (string, error) { return "sk-test", nil }})
		fake := sandboxtest.NewPool(1)
		// The fake reads back what the model's code draws: two of the three bars.
		fake.SetBehavior(func(_ context.Context, req sandbox.Request) (*sandbox.Result, error) {
			res := &sandbox.Result{Success: true, Files: []sandbox.Artifact{{Name: "figure_1.png", MIMEType: "image/png", Data: sandboxtest.PNG}}}
			if strings.Contains(req.Code, "[85, 70]") {
				res.Charts = []chartdata.Chart{{Type: chartdata.TypeBar, Library: "matplotlib", Figure: "figure_1", Title: "Treatment effectiveness",
					Series: []chartdata.Series{{Type: chartdata.TypeBar, Labels: []string{"Hydroxyurea", "Voxelotor"}, Y: []float64{85, 70}}}}}
			}
			return res, nil
		})
		h := startManager([]string{ns}, harnessOptions{factory: fakeFactory(fake), pipeline: CodegenPipeline{Models: reg}})
		defer h.stop()
		Expect(k8sClient.Create(ctx, newPool(ns, "default", 1))).To(Succeed())
		Expect(k8sClient.Create(ctx, newRequest(ns, "dropped", "", func(vr *vizv1.VisualizationRequest) {
			vr.Spec.Prompt = "Create a bar chart of SCD treatment effectiveness: Hydroxyurea (85%), Voxelotor (70%), Crizanlizumab (75%)"
			vr.Spec.Model = "local/"
		}))).To(Succeed())
		Eventually(phaseOf(ctx, ns, "dropped"), 30*time.Second).Should(Equal(vizv1.PhaseFailed))
		vr := get(ctx, Default, ns, "dropped")
		ready := meta.FindStatusCondition(vr.Status.Conditions, vizv1.ConditionReady)
		Expect(ready.Reason).To(Equal(vizv1.ReasonDataNotAccounted))
		Expect(ready.Message).To(ContainSubstring("after a repair round"))
		Expect(ready.Message).To(ContainSubstring("75"))
		Expect(vr.Status.Artifacts).To(BeEmpty())
		calls := srv.Calls()
		Expect(calls).To(HaveLen(3), "refinement, the code, one repair: no more")
		Expect(calls[2].User).To(ContainSubstring("ChartMismatch"))
		Expect(calls[2].User).To(ContainSubstring("Crizanlizumab"))
	})
})
