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
})
