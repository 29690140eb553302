package controller

import (
	"context"
	"fmt"
	"sync"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	vizv1 "github.com/vizops/viz-operator/api/v1alpha1"
	"github.com/vizops/viz-operator/internal/sandbox/sandboxtest"
)

var _ = Describe("Intake", func() {
	ctx := context.Background()

	// A reconcile of a new request mostly waits for its Queued patch; the intake of a
	// burst is as fast as the number of those patches in flight at once. The patches
	// are held here until DefaultRequestWorkers of them wait together (with 4
	// workers, 4 at most ever did).
	It("queues a burst of requests with DefaultRequestWorkers status patches in flight at once", func() {
		ns := newNamespace(ctx, nil)
		fake := sandboxtest.NewPool(1)
		fake.Hold()
		var (
			mu             sync.Mutex
			inFlight, peak int
			queuedPatches  = map[string]int{}
		)
		gate := make(chan struct{})
		peakOf := func() int { mu.Lock(); defer mu.Unlock(); return peak }
		funcs := interceptor.Funcs{SubResourceUpdate: func(ctx context.Context, c client.Client, sub string, obj client.Object, opts ...client.SubResourceUpdateOption) error {
			vr, ok := obj.(*vizv1.VisualizationRequest)
			queued := ok && vr.Namespace == ns && vr.Status.Phase == vizv1.PhaseQueued
			if !queued {
				return c.SubResource(sub).Update(ctx, obj, opts...)
			}
			mu.Lock()
			inFlight++
			peak = max(peak, inFlight)
			mu.Unlock()
			select {
			case <-gate:
			case <-time.After(20 * time.Second): // never wedge the manager if the spec fails
			}
			mu.Lock()
			inFlight--
			mu.Unlock()
			// Counted when written: a pass over a stale cached copy meets a conflict
			// (the optimistic lock) and writes nothing.
			err := c.SubResource(sub).Update(ctx, obj, opts...)
			if err == nil {
				mu.Lock()
				queuedPatches[vr.Name]++
				mu.Unlock()
			}
			return err
		}}
		h := startManager([]string{ns}, harnessOptions{factory: fakeFactory(fake), intercept: &funcs})
		defer h.stop()
		Expect(k8sClient.Create(ctx, newPool(ns, "default", 1))).To(Succeed())
		Eventually(poolCondition(ctx, ns, "default", vizv1.PoolConditionReady), 30*time.Second).Should(HavePrefix("True/"))
		Expect(k8sClient.Create(ctx, newRequest(ns, "first", "print(1)"))).To(Succeed())
		Eventually(fake.Busy, 30*time.Second).Should(Equal(1))

		burst := 2 * DefaultRequestWorkers
		for i := 0; i < burst; i++ {
			Expect(k8sClient.Create(ctx, newRequest(ns, fmt.Sprintf("burst-%02d", i), "print(2)"))).To(Succeed())
		}
		Eventually(peakOf, 30*time.Second).Should(Equal(DefaultRequestWorkers), "Queued patches in flight at once")
		close(gate)
		Eventually(func(g Gomega) {
			var list vizv1.VisualizationRequestList
			g.Expect(k8sClient.List(ctx, &list, inNamespace(ns))).To(Succeed())
			for _, vr := range list.Items {
				if vr.Name == "first" {
					continue
				}
				g.Expect(vr.Status.Phase).To(Equal(vizv1.PhaseQueued), vr.Name)
				g.Expect(vr.Status.QueuePosition).To(HaveValue(BeNumerically("<=", burst)), vr.Name)
			}
		}, 30*time.Second).Should(Succeed())
		Expect(peakOf()).To(Equal(DefaultRequestWorkers))
		mu.Lock()
		defer mu.Unlock()
		// One Queued patch each at intake; a place near the head written while others
		// were being queued may be corrected once by the position refresh.
		for name, n := range queuedPatches {
			Expect(n).To(BeNumerically("<=", 2), "%s was written Queued %d times", name, n)
		}
		Expect(queuedPatches).To(HaveLen(burst))
	})
})
