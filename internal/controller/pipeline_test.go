package controller

import (
	"context"
	"strings"
	"sync"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	vizv1 "github.com/vizops/viz-operator/api/v1alpha1"
	"github.com/vizops/viz-operator/internal/chartdata"
	"github.com/vizops/viz-operator/internal/detect"
	"github.com/vizops/viz-operator/internal/pipeline"
	"github.com/vizops/viz-operator/internal/sandbox"
	"github.com/vizops/viz-operator/internal/sandbox/sandboxtest"
)

// decidedVerdict is the production pipeline with the verdict replaced by one that
// verifying the charts again would never give: what status shows must be this one.
type decidedVerdict struct{ verdict chartdata.Verdict }

func (p decidedVerdict) Run(ctx context.Context, req pipeline.Request, exec pipeline.Exec) (pipeline.Result, error) {
	res, err := CodegenPipeline{}.Run(ctx, req, exec)
	if err == nil && res.Verdict.Reason != "" {
		res.Verdict = p.verdict
	}
	return res, err
}

var _ = Describe("One pipeline result from detection to status", func() {
	ctx := context.Background()
	okResult := func(charts ...chartdata.Chart) *sandbox.Result {
		return &sandbox.Result{Success: true, Charts: charts, Files: []sandbox.Artifact{{Name: "figure_1.png", MIMEType: "image/png", Data: sandboxtest.PNG}}}
	}

	It("runs detection once per request, at intake, and the pipeline draws from it, also after a wait in the queue", func() {
		ns := newNamespace(ctx, nil)
		var mu sync.Mutex
		calls := map[string]int{}
		// Counts, and decides "pie" for a bar chart prompt: a pipeline that detected
		// again would draw a bar chart.
		counting := func(p string) detect.Result {
			mu.Lock()
			calls[p]++
			mu.Unlock()
			d := detect.Detect(p)
			if d.Visualization {
				d.ChartType = detect.ChartPie
			}
			return d
		}
		release := make(chan struct{})
		fake := sandboxtest.NewPool(1)
		fake.SetBehavior(func(ctx context.Context, req sandbox.Request) (*sandbox.Result, error) {
			if strings.Contains(req.Code, "Monday") {
				select { // the first request holds the pool's one slot until released
				case <-release:
				case <-ctx.Done():
					return nil, ctx.Err()
				}
			}
			return okResult(), nil
		})
		h := startManager([]string{ns}, harnessOptions{factory: fakeFactory(fake), detect: counting})
		defer h.stop()
		Expect(k8sClient.Create(ctx, newPool(ns, "default", 1))).To(Succeed())
		prompts := map[string]string{
			"first":  "Bar chart of visits: Monday 3, Tuesday 5, Wednesday 4",
			"second": "Bar chart of admissions: Ward A 7, Ward B 2, Ward C 9",
		}
		Expect(k8sClient.Create(ctx, newRequest(ns, "first", "", func(vr *vizv1.VisualizationRequest) { vr.Spec.Prompt = prompts["first"] }))).To(Succeed())
		Eventually(phaseOf(ctx, ns, "first"), 30*time.Second).Should(Equal(vizv1.PhaseRunning))
		Expect(k8sClient.Create(ctx, newRequest(ns, "second", "", func(vr *vizv1.VisualizationRequest) { vr.Spec.Prompt = prompts["second"] }))).To(Succeed())
		// spec.code with a prompt: its one detection is the one its chart is verified against.
		Expect(k8sClient.Create(ctx, newRequest(ns, "code", "import matplotlib.pyplot as plt\nplt.pie([1, 2])\nplt.show()\n",
			func(vr *vizv1.VisualizationRequest) { vr.Spec.Prompt = "Pie chart of beds: free 1, taken 2" }))).To(Succeed())
		Eventually(phaseOf(ctx, ns, "second"), 30*time.Second).Should(Equal(vizv1.PhaseQueued))
		close(release)
		for _, name := range []string{"first", "second", "code"} {
			Eventually(phaseOf(ctx, ns, name), 30*time.Second).Should(Equal(vizv1.PhaseSucceeded), name)
		}
		for _, name := range []string{"first", "second"} {
			vr := get(ctx, Default, ns, name)
			Expect(vr.Status.Detection.ChartType).To(Equal("pie"), name)
			Expect(vr.Status.CodeGeneration.Template).To(Equal("pie"), name+": the pipeline drew the detection decided at intake")
		}
		code := get(ctx, Default, ns, "code")
		Expect(code.Status.Detection.Source).To(Equal(string(detect.SourceUser)))
		Expect(meta.FindStatusCondition(code.Status.Conditions, vizv1.ConditionVerified)).NotTo(BeNil())
		mu.Lock()
		defer mu.Unlock()
		Expect(calls).To(Equal(map[string]int{prompts["first"]: 1, prompts["second"]: 1, "Pie chart of beds: free 1, taken 2": 1}))
	})

	It("records the verdict the pipeline decided, not one of its own", func() {
		ns := newNamespace(ctx, nil)
		ldh := chartdata.Chart{Type: chartdata.TypeLine, Library: "matplotlib", Figure: "figure_1", Title: "LDH", XLabel: "Days",
			Series: []chartdata.Series{{Name: "LDH", Type: chartdata.TypeLine, X: []float64{1, 3, 5, 7}, Y: []float64{520, 480, 430, 390}}}}
		fake := sandboxtest.NewPool(1)
		fake.SetBehavior(func(context.Context, sandbox.Request) (*sandbox.Result, error) { return okResult(ldh), nil })
		// Verifying this chart against the prompt gives ChartVerified; the pipeline
		// decided otherwise.
		decided := chartdata.Verdict{Reason: chartdata.ReasonSeriesMismatch, Message: "decided once, by the pipeline: series 2 is missing"}
		h := startManager([]string{ns}, harnessOptions{factory: fakeFactory(fake), pipeline: decidedVerdict{decided}})
		defer h.stop()
		Expect(k8sClient.Create(ctx, newPool(ns, "default", 1))).To(Succeed())
		Expect(k8sClient.Create(ctx, newRequest(ns, "ldh", "", func(vr *vizv1.VisualizationRequest) {
			vr.Spec.Prompt = "Line chart of LDH at days 1, 3, 5, 7: 520, 480, 430, 390"
		}))).To(Succeed())
		Eventually(phaseOf(ctx, ns, "ldh"), 30*time.Second).Should(Equal(vizv1.PhaseSucceeded))
		c := meta.FindStatusCondition(get(ctx, Default, ns, "ldh").Status.Conditions, vizv1.ConditionVerified)
		Expect(c).NotTo(BeNil())
		Expect([]string{string(c.Status), c.Reason, c.Message}).To(Equal(
			[]string{string(metav1.ConditionFalse), vizv1.ReasonSeriesMismatch, decided.Message}))
	})
})
