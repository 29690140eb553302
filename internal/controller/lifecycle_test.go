package controller

import (
	"bytes"
	"context"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"math/rand"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	vizv1 "github.com/vizops/viz-operator/api/v1alpha1"
	"github.com/vizops/viz-operator/internal/sandbox"
	"github.com/vizops/viz-operator/internal/sandbox/sandboxtest"
)

// poke triggers a reconcile without changing the spec, after a fake-clock step.
func poke(ctx context.Context, ns, name string) {
	vr := &vizv1.VisualizationRequest{}
	ExpectWithOffset(1, k8sClient.Get(ctx, keyOf(ns, name), vr)).To(Succeed())
	patch := client.MergeFrom(vr.DeepCopy())
	if vr.Annotations == nil {
		vr.Annotations = map[string]string{}
	}
	vr.Annotations["test.vizops.io/poke"] = fmt.Sprint(time.Now().UnixNano())
	ExpectWithOffset(1, k8sClient.Patch(ctx, vr, patch)).To(Succeed())
}

func readyReason(ctx context.Context, ns, name string) func(g Gomega) string {
	return func(g Gomega) string {
		c := meta.FindStatusCondition(get(ctx, g, ns, name).Status.Conditions, vizv1.ConditionReady)
		if c == nil {
			return ""
		}
		return c.Reason
	}
}

// noisePNG is an incompressible PNG of about side*side*3 bytes.
func noisePNG(side int) []byte {
	img := image.NewRGBA(image.Rect(0, 0, side, side))
	rng := rand.New(rand.NewSource(int64(side)))
	for y := 0; y < side; y++ {
		for x := 0; x < side; x++ {
			img.Set(x, y, color.RGBA{uint8(rng.Intn(256)), uint8(rng.Intn(256)), uint8(rng.Intn(256)), 255})
		}
	}
	var buf bytes.Buffer
	Expect(png.Encode(&buf, img)).To(Succeed())
	return buf.Bytes()
}

func returnsPNG(data []byte) sandboxtest.Behavior {
	return func(context.Context, sandbox.Request) (*sandbox.Result, error) {
		return &sandbox.Result{Success: true, Files: []sandbox.Artifact{{Name: "figure-1.png", MIMEType: "image/png", Data: data}}}, nil
	}
}

var _ = Describe("Lifecycle", func() {
	ctx := context.Background()

	It("retries transient failures with backoff from status, then fails with BackoffLimitExceeded", func() {
		ns := newNamespace(ctx, nil)
		fake := sandboxtest.NewPool(1)
		fake.SetBehavior(func(context.Context, sandbox.Request) (*sandbox.Result, error) {
			return nil, fmt.Errorf("%w: the sandbox process died", sandbox.ErrSandboxLost)
		})
		h := startManager([]string{ns}, harnessOptions{factory: fakeFactory(fake)})
		defer h.stop()
		Expect(k8sClient.Create(ctx, newPool(ns, "default", 1))).To(Succeed())
		Expect(k8sClient.Create(ctx, newRequest(ns, "flaky", "print(1)"))).To(Succeed())

		for attempt, wait := range []time.Duration{5 * time.Second, 10 * time.Second} {
			Eventually(func(g Gomega) {
				vr := get(ctx, g, ns, "flaky")
				g.Expect(vr.Status.Attempts).To(Equal(int32(attempt + 1)))
				g.Expect(vr.Status.Phase).To(Equal(vizv1.PhasePending))
				g.Expect(vr.Status.NextRetryTime).NotTo(BeNil())
				g.Expect(vr.Status.NextRetryTime.Time).To(BeTemporally("~", h.clock.Now().Add(wait), time.Second))
				c := meta.FindStatusCondition(vr.Status.Conditions, vizv1.ConditionExecuted)
				g.Expect(c.Reason).To(Equal(vizv1.ReasonSandboxFailed))
				g.Expect(c.Message).To(ContainSubstring("the sandbox process died"))
			}, 30*time.Second).Should(Succeed())
			// Before the retry time nothing runs, however often it is reconciled.
			poke(ctx, ns, "flaky")
			Consistently(func(g Gomega) int32 { return get(ctx, g, ns, "flaky").Status.Attempts }, time.Second).Should(Equal(int32(attempt + 1)))
			h.clock.Step(wait)
			poke(ctx, ns, "flaky")
		}
		Eventually(readyReason(ctx, ns, "flaky"), 30*time.Second).Should(Equal(vizv1.ReasonBackoffLimit))
		vr := get(ctx, Default, ns, "flaky")
		Expect(vr.Status.Phase).To(Equal(vizv1.PhaseFailed))
		Expect(vr.Status.Attempts).To(Equal(int32(3)))
		Expect(fake.Executions(ns + "/flaky")).To(Equal(3))
		Expect(meta.FindStatusCondition(vr.Status.Conditions, vizv1.ConditionReady).Message).To(ContainSubstring("gave up after 3 of 3 attempts"))
		Eventually(func(g Gomega) []string {
			var evs eventsv1.EventList
			g.Expect(k8sClient.List(ctx, &evs, inNamespace(ns))).To(Succeed())
			var reasons []string
			for _, e := range evs.Items {
				if e.Regarding.Name == "flaky" {
					reasons = append(reasons, e.Type+"/"+e.Reason)
				}
			}
			return reasons
		}, 10*time.Second).Should(ContainElements(corev1.EventTypeWarning+"/"+vizv1.ReasonSandboxFailed, corev1.EventTypeWarning+"/"+vizv1.ReasonBackoffLimit))
	})

	It("finishes exactly once when the operator restarts mid-execution", func() {
		ns := newNamespace(ctx, nil)
		first := sandboxtest.NewPool(1)
		first.Hold()
		h1 := startManager([]string{ns}, harnessOptions{factory: fakeFactory(first)})
		Expect(k8sClient.Create(ctx, newPool(ns, "default", 1))).To(Succeed())
		Expect(k8sClient.Create(ctx, newRequest(ns, "interrupted", "print(1)"))).To(Succeed())
		Eventually(first.Busy, 30*time.Second).Should(Equal(1))
		Eventually(phaseOf(ctx, ns, "interrupted"), 10*time.Second).Should(Equal(vizv1.PhaseRunning))
		// Created only now: two requests created in one second tie on creation time,
		// and either could take the slot first.
		Expect(k8sClient.Create(ctx, newRequest(ns, "waiting", "print(2)"))).To(Succeed())
		Eventually(phaseOf(ctx, ns, "waiting"), 10*time.Second).Should(Equal(vizv1.PhaseQueued))
		h1.stop() // the operator dies mid-execution

		second := sandboxtest.NewPool(1)
		second.Hold()
		h2 := startManager([]string{ns}, harnessOptions{factory: fakeFactory(second), clock: h1.clock})
		defer h2.stop()
		// The new operator counts the interrupted run as a lost attempt, and the cap of
		// 1 still holds: the queued request does not jump in while the slot is held.
		Eventually(func(g Gomega) {
			vr := get(ctx, g, ns, "interrupted")
			g.Expect(vr.Status.Attempts).To(Equal(int32(1)))
			g.Expect(vr.Status.NextRetryTime).NotTo(BeNil())
			c := meta.FindStatusCondition(vr.Status.Conditions, vizv1.ConditionExecuted)
			g.Expect(c.Reason).To(Equal(vizv1.ReasonSandboxLost))
		}, 30*time.Second).Should(Succeed())
		second.Open()
		h2.clock.Step(6 * time.Second)
		poke(ctx, ns, "interrupted")
		Eventually(phaseOf(ctx, ns, "interrupted"), 30*time.Second).Should(Equal(vizv1.PhaseSucceeded))
		Eventually(phaseOf(ctx, ns, "waiting"), 30*time.Second).Should(Equal(vizv1.PhaseSucceeded))
		vr := get(ctx, Default, ns, "interrupted")
		Expect(vr.Status.Attempts).To(Equal(int32(2)))
		Expect(vr.Status.Artifacts).To(HaveLen(1))
		Expect(second.Executions(ns+"/interrupted")).To(Equal(1), "ran exactly once after the restart")
		Expect(second.MaxBusy()).To(Equal(1))
	})

	It("deletes a finished request after its TTL, using the fake clock", func() {
		ns := newNamespace(ctx, nil)
		fake := sandboxtest.NewPool(1)
		h := startManager([]string{ns}, harnessOptions{factory: fakeFactory(fake)})
		defer h.stop()
		Expect(k8sClient.Create(ctx, newPool(ns, "default", 1))).To(Succeed())
		Expect(k8sClient.Create(ctx, newRequest(ns, "ttl", "print(1)", func(vr *vizv1.VisualizationRequest) {
			vr.Spec.TTLSecondsAfterFinished = ptr.To(int32(60))
		}))).To(Succeed())
		Eventually(phaseOf(ctx, ns, "ttl"), 30*time.Second).Should(Equal(vizv1.PhaseSucceeded))
		h.clock.Step(30 * time.Second)
		poke(ctx, ns, "ttl")
		Consistently(phaseOf(ctx, ns, "ttl"), time.Second).Should(Equal(vizv1.PhaseSucceeded), "deleted before its TTL")
		h.clock.Step(31 * time.Second)
		poke(ctx, ns, "ttl")
		Eventually(func() bool {
			return apierrors.IsNotFound(k8sClient.Get(ctx, keyOf(ns, "ttl"), &vizv1.VisualizationRequest{}))
		}, 30*time.Second).Should(BeTrue())
	})

	It("spills large artifacts into an owned ConfigMap, and fails with ArtifactTooLarge past 1 MiB", func() {
		ns := newNamespace(ctx, nil)
		fake := sandboxtest.NewPool(2)
		h := startManager([]string{ns}, harnessOptions{factory: fakeFactory(fake)})
		defer h.stop()
		Expect(k8sClient.Create(ctx, newPool(ns, "default", 2))).To(Succeed())

		medium := noisePNG(330) // about 320 KiB: over the 256 KiB inline limit
		Expect(len(medium)).To(BeNumerically(">", 256<<10))
		fake.SetBehavior(returnsPNG(medium))
		Expect(k8sClient.Create(ctx, newRequest(ns, "spill", "print(1)"))).To(Succeed())
		Eventually(phaseOf(ctx, ns, "spill"), 30*time.Second).Should(Equal(vizv1.PhaseSucceeded))
		vr := get(ctx, Default, ns, "spill")
		Expect(vr.Status.Artifacts).To(HaveLen(1))
		a := vr.Status.Artifacts[0]
		Expect(a.Data).To(BeEmpty())
		Expect(a.ConfigMapKeyRef).NotTo(BeNil())
		cm := &corev1.ConfigMap{}
		Expect(k8sClient.Get(ctx, keyOf(ns, a.ConfigMapKeyRef.Name), cm)).To(Succeed())
		Expect(cm.BinaryData[a.ConfigMapKeyRef.Key]).To(Equal(medium))
		Expect(cm.OwnerReferences).To(HaveLen(1))
		Expect(cm.OwnerReferences[0].UID).To(Equal(vr.UID))
		Expect(cm.OwnerReferences[0].Controller).To(HaveValue(BeTrue()))

		fake.SetBehavior(returnsPNG(noisePNG(640))) // about 1.2 MiB
		Expect(k8sClient.Create(ctx, newRequest(ns, "huge", "print(1)"))).To(Succeed())
		Eventually(readyReason(ctx, ns, "huge"), 30*time.Second).Should(Equal(vizv1.ReasonArtifactTooLarge))
		vr = get(ctx, Default, ns, "huge")
		Expect(vr.Status.Phase).To(Equal(vizv1.PhaseFailed))
		msg := meta.FindStatusCondition(vr.Status.Conditions, vizv1.ConditionReady).Message
		Expect(msg).To(ContainSubstring("MiB"))
		Expect(msg).To(ContainSubstring("Lower the figure's dpi"))
		Expect(k8sClient.Get(ctx, keyOf(ns, artifactConfigMapName("huge")), &corev1.ConfigMap{})).
			To(Satisfy(apierrors.IsNotFound), "no ConfigMap for artifacts that do not fit")
	})

	It("stops a running execution when its request is deleted, and frees the slot", func() {
		ns := newNamespace(ctx, nil)
		fake := sandboxtest.NewPool(1)
		fake.Hold()
		h := startManager([]string{ns}, harnessOptions{factory: fakeFactory(fake)})
		defer h.stop()
		Expect(k8sClient.Create(ctx, newPool(ns, "default", 1))).To(Succeed())
		Expect(k8sClient.Create(ctx, newRequest(ns, "doomed", "print(1)"))).To(Succeed())
		Eventually(fake.Busy, 30*time.Second).Should(Equal(1))
		Expect(k8sClient.Create(ctx, newRequest(ns, "next", "print(2)"))).To(Succeed())
		Eventually(phaseOf(ctx, ns, "next"), 10*time.Second).Should(Equal(vizv1.PhaseQueued))
		Expect(k8sClient.Delete(ctx, newRequest(ns, "doomed", ""))).To(Succeed())
		// The held execution is cancelled (not finished by Step) and the queued one runs.
		Eventually(func() int { return fake.Executions(ns + "/next") }, 30*time.Second).Should(Equal(1))
		fake.Open()
		Eventually(phaseOf(ctx, ns, "next"), 30*time.Second).Should(Equal(vizv1.PhaseSucceeded))
		Expect(fake.MaxBusy()).To(Equal(1))
	})

	It("retries, then fails with PoolNotFound, when its pool is deleted mid-run", func() {
		ns := newNamespace(ctx, nil)
		fake := sandboxtest.NewPool(1)
		fake.Hold()
		h := startManager([]string{ns}, harnessOptions{factory: fakeFactory(fake)})
		defer h.stop()
		pool := newPool(ns, "default", 1)
		Expect(k8sClient.Create(ctx, pool)).To(Succeed())
		Expect(k8sClient.Create(ctx, newRequest(ns, "stranded", "print(1)"))).To(Succeed())
		Eventually(fake.Busy, 30*time.Second).Should(Equal(1))
		Expect(k8sClient.Delete(ctx, pool)).To(Succeed())
		// The pool's sandboxes go; the execution is lost and scheduled for a retry.
		Eventually(func(g Gomega) string {
			c := meta.FindStatusCondition(get(ctx, g, ns, "stranded").Status.Conditions, vizv1.ConditionExecuted)
			g.Expect(c).NotTo(BeNil())
			return c.Reason
		}, 30*time.Second).Should(Equal(vizv1.ReasonSandboxFailed))
		h.clock.Step(time.Minute)
		poke(ctx, ns, "stranded")
		Eventually(readyReason(ctx, ns, "stranded"), 30*time.Second).Should(Equal(vizv1.ReasonPoolNotFound))
		Expect(fake.Busy()).To(BeZero())
	})

	It("fails with PoolNotFound after the grace period", func() {
		ns := newNamespace(ctx, nil)
		h := startManager([]string{ns}, harnessOptions{factory: fakeFactory(sandboxtest.NewPool(1))})
		defer h.stop()
		Expect(k8sClient.Create(ctx, newRequest(ns, "orphan", "print(1)", func(vr *vizv1.VisualizationRequest) {
			vr.Spec.SandboxPoolRef.Name = "missing"
		}))).To(Succeed())
		Eventually(func(g Gomega) string {
			c := meta.FindStatusCondition(get(ctx, g, ns, "orphan").Status.Conditions, vizv1.ConditionAdmitted)
			if c == nil {
				return ""
			}
			return c.Reason
		}, 30*time.Second).Should(Equal(vizv1.ReasonWaitingForPool))
		h.clock.Step(time.Minute)
		poke(ctx, ns, "orphan")
		Eventually(readyReason(ctx, ns, "orphan"), 30*time.Second).Should(Equal(vizv1.ReasonPoolNotFound))
		msg := meta.FindStatusCondition(get(ctx, Default, ns, "orphan").Status.Conditions, vizv1.ConditionReady).Message
		Expect(msg).To(ContainSubstring("SandboxPool " + ns + "/missing not found"))
	})

	It("enforces the pool's namespaceSelector", func() {
		poolNS := newNamespace(ctx, nil)
		allowed := newNamespace(ctx, map[string]string{"vizops.io/charts": "yes"})
		denied := newNamespace(ctx, nil)
		fake := sandboxtest.NewPool(2)
		h := startManager([]string{poolNS, allowed, denied}, harnessOptions{factory: fakeFactory(fake)})
		defer h.stop()
		Expect(k8sClient.Create(ctx, newPool(poolNS, "shared", 2, func(p *vizv1.SandboxPool) {
			p.Spec.NamespaceSelector = &metav1.LabelSelector{MatchLabels: map[string]string{"vizops.io/charts": "yes"}}
		}))).To(Succeed())
		ref := func(vr *vizv1.VisualizationRequest) {
			vr.Spec.SandboxPoolRef = vizv1.SandboxPoolReference{Name: "shared", Namespace: poolNS}
		}
		Expect(k8sClient.Create(ctx, newRequest(allowed, "ok", "print(1)", ref))).To(Succeed())
		Expect(k8sClient.Create(ctx, newRequest(denied, "no", "print(1)", ref))).To(Succeed())
		Eventually(phaseOf(ctx, allowed, "ok"), 30*time.Second).Should(Equal(vizv1.PhaseSucceeded))
		Eventually(readyReason(ctx, denied, "no"), 30*time.Second).Should(Equal(vizv1.ReasonPoolNotAllowed))
		Expect(fake.Executions(denied + "/no")).To(BeZero())
	})

	It("fails clearly on a backend this operator does not run", func() {
		ns := newNamespace(ctx, nil)
		h := startManager([]string{ns}, harnessOptions{factory: fakeFactory(sandboxtest.NewPool(1))})
		defer h.stop()
		class := &vizv1.SandboxClass{ObjectMeta: metav1.ObjectMeta{Name: ns + "-e2b"}, Spec: vizv1.SandboxClassSpec{
			Backend: vizv1.BackendE2B, E2B: &vizv1.E2BClass{APIKeySecretRef: vizv1.SecretKeyReference{Name: "e2b", Key: "key"}}}}
		Expect(k8sClient.Create(ctx, class)).To(Succeed())
		DeferCleanup(func() { _ = k8sClient.Delete(context.Background(), class) })
		Expect(k8sClient.Create(ctx, newPool(ns, "default", 1, func(p *vizv1.SandboxPool) {
			p.Spec.ClassName = class.Name
		}))).To(Succeed())
		Expect(k8sClient.Create(ctx, newRequest(ns, "k8s", "print(1)"))).To(Succeed())
		Eventually(readyReason(ctx, ns, "k8s"), 30*time.Second).Should(Equal(vizv1.ReasonBackendNotImplemented))
		msg := meta.FindStatusCondition(get(ctx, Default, ns, "k8s").Status.Conditions, vizv1.ConditionReady).Message
		Expect(msg).To(ContainSubstring(`backend "E2B" is not available in this operator (available: Local); use one of the available backends`))
	})
})
