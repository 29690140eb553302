package controller

import (
	"context"
	"fmt"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"github.com/prometheus/client_golang/prometheus/testutil"

	vizv1 "github.com/vizops/viz-operator/api/v1alpha1"
	"github.com/vizops/viz-operator/internal/metrics"
	"github.com/vizops/viz-operator/internal/sandbox/sandboxtest"
)

var _ = Describe("Admission", func() {
	ctx := context.Background()

	It("never runs more than the pool's cap: 30 requests, cap 3", func() {
		ns := newNamespace(ctx, nil)
		fake := sandboxtest.NewPool(3)
		fake.Hold()
		h := startManager([]string{ns}, harnessOptions{factory: fakeFactory(fake)})
		defer h.stop()
		Expect(k8sClient.Create(ctx, newPool(ns, "default", 3))).To(Succeed())
		for i := 0; i < 30; i++ {
			Expect(k8sClient.Create(ctx, newRequest(ns, fmt.Sprintf("r%02d", i), "print(1)"))).To(Succeed())
		}
		Eventually(fake.Busy, 30*time.Second).Should(Equal(3))
		Eventually(func() float64 { return testutil.ToFloat64(metrics.QueueDepth) }, 30*time.Second).Should(Equal(27.0))
		Expect(testutil.ToFloat64(metrics.ExecutionsInFlight)).To(Equal(3.0))
		// Let them finish one at a time; the cap must hold throughout.
		for i := 0; i < 30; i++ {
			stepCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
			Expect(fake.Step(stepCtx)).To(Succeed(), "execution %d never started", i)
			cancel()
		}
		Eventually(func(g Gomega) {
			var list vizv1.VisualizationRequestList
			g.Expect(k8sClient.List(ctx, &list, inNamespace(ns))).To(Succeed())
			for _, vr := range list.Items {
				g.Expect(vr.Status.Phase).To(Equal(vizv1.PhaseSucceeded), vr.Name)
			}
		}, 60*time.Second).Should(Succeed())
		Expect(fake.MaxBusy()).To(Equal(3), "the maximum observed concurrency")
		Eventually(func() float64 { return testutil.ToFloat64(metrics.QueueDepth) }, 10*time.Second).Should(BeZero())
		Eventually(func() float64 { return testutil.ToFloat64(metrics.ExecutionsInFlight) }, 10*time.Second).Should(BeZero())
	})

	It("holds the operator-wide cap across pools", func() {
		ns := newNamespace(ctx, nil)
		fake := sandboxtest.NewPool(10)
		fake.Hold()
		h := startManager([]string{ns}, harnessOptions{factory: fakeFactory(fake), globalCap: 2})
		defer h.stop()
		Expect(k8sClient.Create(ctx, newPool(ns, "a", 5))).To(Succeed())
		Expect(k8sClient.Create(ctx, newPool(ns, "b", 5))).To(Succeed())
		for i := 0; i < 6; i++ {
			pool := []string{"a", "b"}[i%2]
			vr := newRequest(ns, fmt.Sprintf("r%d", i), "print(1)", func(vr *vizv1.VisualizationRequest) {
				vr.Spec.SandboxPoolRef.Name = pool
			})
			Expect(k8sClient.Create(ctx, vr)).To(Succeed())
		}
		Eventually(fake.Busy, 30*time.Second).Should(Equal(2))
		Consistently(fake.Busy, 2*time.Second).Should(Equal(2))
		fake.Open()
		Eventually(func(g Gomega) {
			var list vizv1.VisualizationRequestList
			g.Expect(k8sClient.List(ctx, &list, inNamespace(ns))).To(Succeed())
			for _, vr := range list.Items {
				g.Expect(vr.Status.Phase).To(Equal(vizv1.PhaseSucceeded), vr.Name)
			}
		}, 60*time.Second).Should(Succeed())
		Expect(fake.MaxBusy()).To(Equal(2))
	})

	It("serves a pool first come first served and shows queue positions", func() {
		ns := newNamespace(ctx, nil)
		fake := sandboxtest.NewPool(1)
		fake.Hold()
		h := startManager([]string{ns}, harnessOptions{factory: fakeFactory(fake)})
		defer h.stop()
		Expect(k8sClient.Create(ctx, newPool(ns, "default", 1))).To(Succeed())
		// Creation timestamps have one-second resolution: space the requests out so
		// their order is defined by creation time, not by name.
		names := []string{"c-first", "b-second", "a-third"}
		for _, n := range names {
			Expect(k8sClient.Create(ctx, newRequest(ns, n, "print(1)"))).To(Succeed())
			time.Sleep(1100 * time.Millisecond)
		}
		Eventually(func(g Gomega) {
			g.Expect(get(ctx, g, ns, "c-first").Status.Phase).To(Equal(vizv1.PhaseRunning))
			second := get(ctx, g, ns, "b-second")
			g.Expect(second.Status.Phase).To(Equal(vizv1.PhaseQueued))
			g.Expect(second.Status.QueuePosition).To(HaveValue(Equal(int32(1))))
			third := get(ctx, g, ns, "a-third")
			g.Expect(third.Status.QueuePosition).To(HaveValue(Equal(int32(2))))
		}, 30*time.Second).Should(Succeed())
		var order []string
		for range names {
			Eventually(fake.Started(), 30*time.Second).Should(Receive(Satisfy(func(owner string) bool {
				order = append(order, owner)
				return true
			})))
			stepCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
			Expect(fake.Step(stepCtx)).To(Succeed())
			cancel()
		}
		Expect(order).To(Equal([]string{ns + "/c-first", ns + "/b-second", ns + "/a-third"}))
		Eventually(func(g Gomega) {
			third := get(ctx, g, ns, "a-third")
			g.Expect(third.Status.Phase).To(Equal(vizv1.PhaseSucceeded))
			g.Expect(third.Status.QueuePosition).To(BeNil())
		}, 30*time.Second).Should(Succeed())
	})
})

func inNamespace(ns string) *clientListNamespace { return &clientListNamespace{ns: ns} }
