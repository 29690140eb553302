package controller

import (
	"context"
	"encoding/json"
	"net/http"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"github.com/prometheus/client_golang/prometheus/testutil"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	vizv1 "github.com/vizops/viz-operator/api/v1alpha1"
	"github.com/vizops/viz-operator/internal/admission"
	"github.com/vizops/viz-operator/internal/backends"
	e2bbackend "github.com/vizops/viz-operator/internal/backends/e2b"
	"github.com/vizops/viz-operator/internal/metrics"
	"github.com/vizops/viz-operator/internal/sandbox"
	"github.com/vizops/viz-operator/internal/sandbox/agent"
	"github.com/vizops/viz-operator/internal/sandbox/e2b"
	"github.com/vizops/viz-operator/internal/sandbox/e2b/e2btest"
)

const e2bTestKey = "e2b_feedfacefeedfacefeedfacefeedfacefeedface"

// e2bFake is the fake E2B API; each sandbox it creates runs a local sandbox-agent
// (bubblewrap-isolated Python), which the E2B backend reaches through the
// code-interpreter client, as it reaches E2B's own interpreter.
type e2bFake struct {
	*e2btest.Server
}

func newE2BFake() *e2bFake {
	return &e2bFake{e2btest.NewTLS(e2bTestKey, e2btest.Agents(agent.Options{}))}
}

func (f *e2bFake) backend() *e2b.Backend {
	return e2b.NewBackend(e2b.Options{
		SandboxURL:  f.SandboxURL,
		HTTP:        f.API.Client(), // trusts the fake's https API
		Observe:     func(op, code string) { metrics.E2BAPIRequestsTotal.WithLabelValues(op, code).Inc() },
		Log:         GinkgoLogr,
		BackoffBase: 200 * time.Millisecond,
	})
}

// startE2BManager is startManager with the E2B backend registered (and only it).
func startE2BManager(namespaces []string, b *e2b.Backend) *harness {
	nsMap := map[string]cache.Config{}
	for _, ns := range namespaces {
		nsMap[ns] = cache.Config{}
	}
	set := backends.NewSet(&e2bbackend.Backend{E2B: b, Namespace: namespaces[0]})
	cacheOpts := CacheOptions(set)
	cacheOpts.DefaultNamespaces = nsMap
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme: scheme, Metrics: metricsserver.Options{BindAddress: "0"}, Cache: cacheOpts, Controller: ctrlConfig(true),
	})
	Expect(err).NotTo(HaveOccurred())
	h := &harness{pools: sandbox.NewRegistry(), queue: admission.NewQueue(10), executor: NewExecutor(), done: make(chan struct{})}
	for _, be := range set.All() {
		be.(*e2bbackend.Backend).Reader = mgr.GetAPIReader()
	}
	Expect((&SandboxPoolReconciler{
		Client: mgr.GetClient(), Recorder: mgr.GetEventRecorder("sandboxpool-controller"),
		Pools: h.pools, StatusInterval: time.Second, Backends: set,
	}).SetupWithManager(mgr)).To(Succeed())
	Expect((&VisualizationRequestReconciler{
		Client: mgr.GetClient(), APIReader: mgr.GetAPIReader(), Recorder: mgr.GetEventRecorder("visualizationrequest-controller"),
		Pools: h.pools, Queue: h.queue, Executor: h.executor, Pipeline: CodegenPipeline{},
		PoolNotFoundGrace: 2 * time.Second, BackoffBase: time.Second, BackoffMax: 5 * time.Second,
		PositionInterval: 500 * time.Millisecond,
	}).SetupWithManager(mgr)).To(Succeed())
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel = cancel
	go func() {
		defer GinkgoRecover()
		defer close(h.done)
		Expect(mgr.Start(ctx)).To(Succeed())
	}()
	return h
}

func e2bSecret(ns, name, key string, labelled bool) *corev1.Secret {
	s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, StringData: map[string]string{"api-key": key}}
	if labelled {
		s.Labels = map[string]string{vizv1.LabelE2BAPIKey: "true"}
	}
	return s
}

// newE2BPool makes an E2B SandboxClass of its own (apiURL, the key in Secret "e2b" of
// the operator's namespace, which these specs' managers take to be ns; template, when
// given) and returns a pool on it.
func newE2BPool(ns, name, apiURL string, minReady int32, template ...string) *vizv1.SandboxPool {
	class := &vizv1.SandboxClass{ObjectMeta: metav1.ObjectMeta{Name: ns + "-" + name}, Spec: vizv1.SandboxClassSpec{
		Backend: vizv1.BackendE2B,
		E2B:     &vizv1.E2BClass{APIURL: apiURL, Domain: e2btest.Domain, APIKeySecretRef: vizv1.SecretKeyReference{Name: "e2b", Key: "api-key"}},
	}}
	if len(template) > 0 {
		class.Spec.E2B.TemplateID = template[0]
	}
	Expect(k8sClient.Create(context.Background(), class)).To(Succeed())
	DeferCleanup(func() { _ = k8sClient.Delete(context.Background(), class) })
	return newPool(ns, name, 3, func(p *vizv1.SandboxPool) {
		p.Spec.ClassName = class.Name
		p.Spec.MinReady = ptr.To(minReady)
		p.Spec.E2B = &vizv1.E2BPool{}
	})
}

func poolCondition(ctx context.Context, ns, name, typ string) func(g Gomega) string {
	return func(g Gomega) string {
		sp := &vizv1.SandboxPool{}
		g.Expect(k8sClient.Get(ctx, types.NamespacedName{Namespace: ns, Name: name}, sp)).To(Succeed())
		c := meta.FindStatusCondition(sp.Status.Conditions, typ)
		if c == nil {
			return ""
		}
		return string(c.Status) + "/" + c.Reason + ": " + c.Message
	}
}

func eventsOf(ctx context.Context, g Gomega, ns, name string) []string {
	var evs eventsv1.EventList
	g.Expect(k8sClient.List(ctx, &evs, client.InNamespace(ns))).To(Succeed())
	var out []string
	for _, e := range evs.Items {
		if e.Regarding.Name == name {
			out = append(out, e.Type+"/"+e.Reason+": "+e.Note)
		}
	}
	return out
}

// keyNowhere checks that the key is in no status, Event or condition of ns.
func keyNowhere(ctx context.Context, ns, key string) {
	var pools vizv1.SandboxPoolList
	Expect(k8sClient.List(ctx, &pools, client.InNamespace(ns))).To(Succeed())
	var reqs vizv1.VisualizationRequestList
	Expect(k8sClient.List(ctx, &reqs, client.InNamespace(ns))).To(Succeed())
	var evs eventsv1.EventList
	Expect(k8sClient.List(ctx, &evs, client.InNamespace(ns))).To(Succeed())
	for _, obj := range []any{pools, reqs, evs} {
		b, err := json.Marshal(obj)
		Expect(err).NotTo(HaveOccurred())
		Expect(string(b)).NotTo(ContainSubstring(key), "the API key appears in the namespace's objects")
	}
}

var _ = Describe("E2B backend", func() {
	ctx := context.Background()

	It("runs a request on an E2B pool to Succeeded with its PNG, and kills the sandbox after", func() {
		ns := newNamespace(ctx, nil)
		f := newE2BFake()
		defer f.Close()
		h := startE2BManager([]string{ns}, f.backend())
		defer h.stop()
		Expect(k8sClient.Create(ctx, e2bSecret(ns, "e2b", e2bTestKey, true))).To(Succeed())
		Expect(k8sClient.Create(ctx, newE2BPool(ns, "default", f.API.URL, 1))).To(Succeed())
		Eventually(poolCondition(ctx, ns, "default", vizv1.PoolConditionReady), 30*time.Second).Should(HavePrefix("True/" + vizv1.ReasonPoolReady))
		Eventually(poolCondition(ctx, ns, "default", vizv1.PoolConditionThrottled), 10*time.Second).Should(HavePrefix("False/" + vizv1.ReasonNotThrottled))
		Eventually(func() int { return len(f.Alive()) }, 10*time.Second).Should(Equal(1))
		warm := f.Alive()[0]
		Expect(warm.Metadata).To(HaveKeyWithValue(e2b.MetaPool, ns+"/default"))

		// The counter is global to the suite: a count, not an exact figure.
		Eventually(func() float64 {
			return testutil.ToFloat64(metrics.E2BAPIRequestsTotal.WithLabelValues(e2b.OpCreate, "201"))
		}, 10*time.Second).Should(BeNumerically(">=", 1))

		Expect(k8sClient.Create(ctx, newRequest(ns, "chart", "import matplotlib.pyplot as plt\nplt.bar(['a'], [1])\nplt.show()"))).To(Succeed())
		Eventually(phaseOf(ctx, ns, "chart"), 30*time.Second).Should(Equal(vizv1.PhaseSucceeded))
		vr := get(ctx, Default, ns, "chart")
		Expect(vr.Status.Artifacts).To(HaveLen(1))
		Expect(vr.Status.Artifacts[0].MIMEType).To(Equal("image/png"))
		Expect(vr.Status.Artifacts[0].SizeBytes).To(BeNumerically(">", 1000), "a figure matplotlib drew in the sandbox-agent")
		Expect(vr.Status.Execution).NotTo(BeNil())
		Expect(meta.FindStatusCondition(vr.Status.Conditions, vizv1.ConditionExecuted).Message).To(ContainSubstring(warm.ID))
		// The sandbox that ran it is killed (E2B bills by the second), and a new warm one made.
		Eventually(func() bool { return f.Killed(warm.ID) }, 10*time.Second).Should(BeTrue())
		Eventually(func() int { return len(f.Alive()) }, 10*time.Second).Should(Equal(1))
		Eventually(func() float64 {
			return testutil.ToFloat64(metrics.E2BAPIRequestsTotal.WithLabelValues(e2b.OpKill, "204"))
		}, 10*time.Second).Should(BeNumerically(">=", 1))
		keyNowhere(ctx, ns, e2bTestKey)

		// Deleting the pool kills its sandboxes.
		Expect(k8sClient.Delete(ctx, &vizv1.SandboxPool{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "default"}})).To(Succeed())
		Eventually(func() int { return len(f.Alive()) }, 10*time.Second).Should(BeZero())
	})

	It("says so when the pool's Secret is missing, and starts once it exists", func() {
		ns := newNamespace(ctx, nil)
		f := newE2BFake()
		defer f.Close()
		h := startE2BManager([]string{ns}, f.backend())
		defer h.stop()
		Expect(k8sClient.Create(ctx, newE2BPool(ns, "default", f.API.URL, 0))).To(Succeed())
		Eventually(poolCondition(ctx, ns, "default", vizv1.PoolConditionReady), 30*time.Second).Should(And(
			HavePrefix("False/"+vizv1.ReasonAPIKeyMissing+": "), ContainSubstring("Secret "+ns+"/e2b"), ContainSubstring("does not exist")))
		Eventually(func(g Gomega) []string { return eventsOf(ctx, g, ns, "default") }, 10*time.Second).Should(
			ContainElement(HavePrefix("Warning/" + vizv1.ReasonAPIKeyMissing + ": Secret " + ns + "/e2b")))
		// A request on it fails its attempts naming the Secret.
		Expect(k8sClient.Create(ctx, newRequest(ns, "orphan", "print(1)", func(vr *vizv1.VisualizationRequest) {
			vr.Spec.MaxAttempts = 1
		}))).To(Succeed())
		Eventually(phaseOf(ctx, ns, "orphan"), 30*time.Second).Should(Equal(vizv1.PhaseFailed))
		vr := get(ctx, Default, ns, "orphan")
		Expect(meta.FindStatusCondition(vr.Status.Conditions, vizv1.ConditionReady).Message).To(And(
			ContainSubstring(vizv1.ReasonAPIKeyMissing), ContainSubstring("Secret "+ns+"/e2b")))

		// An unlabelled Secret is not sent anywhere.
		sec := e2bSecret(ns, "e2b", e2bTestKey, false)
		Expect(k8sClient.Create(ctx, sec)).To(Succeed())
		Eventually(poolCondition(ctx, ns, "default", vizv1.PoolConditionReady), 30*time.Second).Should(ContainSubstring("is not labelled " + vizv1.LabelE2BAPIKey))
		Expect(f.KeysSeen()).To(BeEmpty())

		sec.Labels = map[string]string{vizv1.LabelE2BAPIKey: "true"}
		Expect(k8sClient.Update(ctx, sec)).To(Succeed())
		Eventually(poolCondition(ctx, ns, "default", vizv1.PoolConditionReady), 30*time.Second).Should(HavePrefix("True/" + vizv1.ReasonPoolReady))
		keyNowhere(ctx, ns, e2bTestKey)
	})

	It("says the key is wrong on a 401 and does not retry it in a loop", func() {
		ns := newNamespace(ctx, nil)
		f := newE2BFake()
		defer f.Close()
		h := startE2BManager([]string{ns}, f.backend())
		defer h.stop()
		const wrong = "e2b_0000000000000000000000000000000000000bad"
		Expect(k8sClient.Create(ctx, e2bSecret(ns, "e2b", wrong, true))).To(Succeed())
		Expect(k8sClient.Create(ctx, newE2BPool(ns, "default", f.API.URL, 1))).To(Succeed())
		Eventually(poolCondition(ctx, ns, "default", vizv1.PoolConditionReady), 30*time.Second).Should(And(
			HavePrefix("False/"+vizv1.ReasonAPIKeyRejected+": "), ContainSubstring("Secret "+ns+"/e2b"), ContainSubstring("401")))
		calls := f.Calls(e2btest.OpList) + f.Calls(e2btest.OpCreate)
		Expect(calls).To(Equal(1))
		// Reconciles go on (status refreshes); the rejected key is not sent again.
		Consistently(func() int { return f.Calls(e2btest.OpList) + f.Calls(e2btest.OpCreate) }, 3*time.Second).Should(Equal(1))
		keyNowhere(ctx, ns, wrong)

		// A corrected key is picked up.
		sec := &corev1.Secret{}
		Expect(k8sClient.Get(ctx, types.NamespacedName{Namespace: ns, Name: "e2b"}, sec)).To(Succeed())
		sec.Data = map[string][]byte{"api-key": []byte(e2bTestKey)}
		Expect(k8sClient.Update(ctx, sec)).To(Succeed())
		Eventually(poolCondition(ctx, ns, "default", vizv1.PoolConditionReady), 30*time.Second).Should(HavePrefix("True/" + vizv1.ReasonPoolReady))
	})

	It("tells a template of another team from a rejected key, and keeps the key for other pools", func() {
		ns := newNamespace(ctx, nil)
		f := newE2BFake()
		defer f.Close()
		f.ForbidTemplate("someone-else/private")
		h := startE2BManager([]string{ns}, f.backend())
		defer h.stop()
		Expect(k8sClient.Create(ctx, e2bSecret(ns, "e2b", e2bTestKey, true))).To(Succeed())
		foreign := newE2BPool(ns, "foreign", f.API.URL, 1, "someone-else/private")
		Expect(k8sClient.Create(ctx, foreign)).To(Succeed())
		Eventually(poolCondition(ctx, ns, "foreign", vizv1.PoolConditionReady), 30*time.Second).Should(And(
			HavePrefix("False/"+vizv1.ReasonTemplateForbidden+": "), ContainSubstring("someone-else/private")))
		// The same key with a template of its own team still works.
		Expect(k8sClient.Create(ctx, newE2BPool(ns, "default", f.API.URL, 1))).To(Succeed())
		Eventually(poolCondition(ctx, ns, "default", vizv1.PoolConditionReady), 30*time.Second).Should(HavePrefix("True/" + vizv1.ReasonPoolReady))
		keyNowhere(ctx, ns, e2bTestKey)
	})

	It("says the plan's limit when the sandbox timeout is above it, and does not retry", func() {
		ns := newNamespace(ctx, nil)
		f := newE2BFake()
		defer f.Close()
		f.SetPlan(time.Hour)
		h := startE2BManager([]string{ns}, f.backend())
		defer h.stop()
		Expect(k8sClient.Create(ctx, e2bSecret(ns, "e2b", e2bTestKey, true))).To(Succeed())
		sp := newE2BPool(ns, "default", f.API.URL, 1)
		sp.Spec.E2B.SandboxTimeoutSeconds = 7200
		Expect(k8sClient.Create(ctx, sp)).To(Succeed())
		Eventually(poolCondition(ctx, ns, "default", vizv1.PoolConditionReady), 30*time.Second).Should(And(
			HavePrefix("False/"+vizv1.ReasonPlanLimitExceeded+": "), ContainSubstring("3600"), ContainSubstring("sandboxTimeoutSeconds")))
		Consistently(func() int { return f.Calls(e2btest.OpCreate) }, 3*time.Second).Should(Equal(1))
	})

	It("slows creation through a 429 storm without failing requests", func() {
		ns := newNamespace(ctx, nil)
		f := newE2BFake()
		defer f.Close()
		f.Fail(e2btest.OpCreate, 3, http.StatusTooManyRequests, "1")
		h := startE2BManager([]string{ns}, f.backend())
		defer h.stop()
		Expect(k8sClient.Create(ctx, e2bSecret(ns, "e2b", e2bTestKey, true))).To(Succeed())
		Expect(k8sClient.Create(ctx, newE2BPool(ns, "default", f.API.URL, 0))).To(Succeed())
		Eventually(poolCondition(ctx, ns, "default", vizv1.PoolConditionReady), 30*time.Second).Should(HavePrefix("True/"))
		for _, name := range []string{"one", "two"} {
			Expect(k8sClient.Create(ctx, newRequest(ns, name, "print(1)"))).To(Succeed())
		}
		Eventually(poolCondition(ctx, ns, "default", vizv1.PoolConditionThrottled), 10*time.Second).Should(And(
			HavePrefix("True/"+vizv1.ReasonRateLimited+": "), ContainSubstring("429")))
		for _, name := range []string{"one", "two"} {
			Eventually(phaseOf(ctx, ns, name), 30*time.Second).Should(Equal(vizv1.PhaseSucceeded))
			Expect(get(ctx, Default, ns, name).Status.Attempts).To(Equal(int32(1)), "a 429 must not cost an attempt")
		}
		calls := f.CallTimes(e2btest.OpCreate)
		Expect(len(calls)).To(BeNumerically(">=", 5))
		for i := 1; i <= 3; i++ {
			Expect(calls[i].Sub(calls[i-1])).To(BeNumerically(">=", 900*time.Millisecond), "creation %d came before Retry-After", i)
		}
		Eventually(poolCondition(ctx, ns, "default", vizv1.PoolConditionThrottled), 10*time.Second).Should(HavePrefix("False/" + vizv1.ReasonNotThrottled))
		Eventually(func(g Gomega) []string { return eventsOf(ctx, g, ns, "default") }, 10*time.Second).Should(ContainElements(
			HavePrefix("Warning/"+vizv1.ReasonRateLimited), HavePrefix("Normal/"+vizv1.ReasonNotThrottled)))
	})

	It("kills the sandboxes an earlier manager left behind when it restarts", func() {
		ns := newNamespace(ctx, nil)
		f := newE2BFake()
		defer f.Close()
		h1 := startE2BManager([]string{ns}, f.backend())
		Expect(k8sClient.Create(ctx, e2bSecret(ns, "e2b", e2bTestKey, true))).To(Succeed())
		Expect(k8sClient.Create(ctx, newE2BPool(ns, "default", f.API.URL, 2))).To(Succeed())
		Eventually(func() int { return len(f.Alive()) }, 30*time.Second).Should(Equal(2))
		var old []string
		for _, sb := range f.Alive() {
			old = append(old, sb.ID)
		}
		// The manager dies without closing its pools (a crash): its sandboxes stay.
		h1.cancel()
		<-h1.done
		defer func() { _ = h1.pools.Close() }()
		Expect(f.Alive()).To(HaveLen(2))

		h2 := startE2BManager([]string{ns}, f.backend())
		defer h2.stop()
		Eventually(func() []bool { return []bool{f.Killed(old[0]), f.Killed(old[1])} }, 30*time.Second).Should(Equal([]bool{true, true}))
		Eventually(func(g Gomega) {
			alive := f.Alive()
			g.Expect(alive).To(HaveLen(2))
			for _, sb := range alive {
				g.Expect(old).NotTo(ContainElement(sb.ID))
			}
		}, 30*time.Second).Should(Succeed())
	})
})
