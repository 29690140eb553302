package controller

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	vizv1 "github.com/vizops/viz-operator/api/v1alpha1"
	"github.com/vizops/viz-operator/internal/sandbox"
	"github.com/vizops/viz-operator/internal/sandbox/sandboxtest"
)

// capSampler watches fake pools' live executions and remembers the worst it saw.
type capSampler struct {
	stop     chan struct{}
	done     chan struct{}
	maxTotal atomic.Int64
	samples  atomic.Int64
	pools    map[string]*sandboxtest.Pool
	poolMax  sync.Map // name -> int
}

func sampleCaps(pools map[string]*sandboxtest.Pool) *capSampler {
	s := &capSampler{stop: make(chan struct{}), done: make(chan struct{}), pools: pools}
	go func() {
		defer close(s.done)
		t := time.NewTicker(2 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-s.stop:
				return
			case <-t.C:
			}
			total := 0
			for name, p := range pools {
				b := p.Busy()
				total += b
				if old, ok := s.poolMax.Load(name); !ok || b > old.(int) {
					s.poolMax.Store(name, b)
				}
			}
			if int64(total) > s.maxTotal.Load() {
				s.maxTotal.Store(int64(total))
			}
			s.samples.Add(1)
		}
	}()
	return s
}

func (s *capSampler) finish() { close(s.stop); <-s.done }

// createAll creates objects with a few parallel writers, as a burst of clients would.
func createAll(ctx context.Context, objs []client.Object) {
	work := make(chan client.Object)
	var wg sync.WaitGroup
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer GinkgoRecover()
			defer wg.Done()
			for o := range work {
				Expect(k8sClient.Create(ctx, o)).To(Succeed())
			}
		}()
	}
	for _, o := range objs {
		work <- o
	}
	close(work)
	wg.Wait()
}

var _ = Describe("Load", Label("load"), func() {
	ctx := context.Background()

	It("finishes 2,000 cheap requests and 500 charts over 3 namespaces and 2 pools, within the caps, writing status in proportion to the work", func() {
		const cheap, charts, globalCap = 2000, 500, 4
		bigPNG := noisePNG(340)
		label := map[string]string{"vizops-load": fmt.Sprint(GinkgoRandomSeed())}
		nss := []string{newNamespace(ctx, label), newNamespace(ctx, label), newNamespace(ctx, label)}
		caps := map[string]int{"a": 1, "b": 3}
		fakes := map[string]*sandboxtest.Pool{}
		byCap := map[int]*sandboxtest.Pool{}
		for name, c := range caps {
			f := sandboxtest.NewPool(c)
			fakes[name] = f
			byCap[c] = f
			f.SetBehavior(func(ctx context.Context, req sandbox.Request) (*sandbox.Result, error) {
				time.Sleep(2 * time.Millisecond) // a little work, so executions overlap
				data := sandboxtest.PNG
				if strings.Contains(req.Code, "# big") { // one chart in ten spills into a ConfigMap
					data = bigPNG
				}
				return &sandbox.Result{Success: true, Stdout: "ok\n",
					Files: []sandbox.Artifact{{Name: "figure-1.png", MIMEType: "image/png", Data: data}}}, nil
			})
		}
		var patches atomic.Int64
		funcs := interceptor.Funcs{SubResourceUpdate: func(ctx context.Context, c client.Client, sub string, obj client.Object, opts ...client.SubResourceUpdateOption) error {
			patches.Add(1)
			return c.SubResource(sub).Update(ctx, obj, opts...)
		}}
		factory := func(cfg sandbox.PoolConfig) (sandbox.Pool, error) {
			f := byCap[cfg.MaxSandboxes]
			_ = f.Resize(cfg.MinReady, cfg.MaxSandboxes)
			return f, nil
		}
		h := startManager(nss, harnessOptions{factory: factory, globalCap: globalCap, intercept: &funcs})
		defer h.stop()
		for name, c := range caps {
			Expect(k8sClient.Create(ctx, newPool(nss[0], name, int32(c), func(p *vizv1.SandboxPool) {
				p.Spec.MinReady = ptr.To(int32(1))
				p.Spec.NamespaceSelector = &metav1.LabelSelector{MatchLabels: label}
			}))).To(Succeed())
		}
		Eventually(func(g Gomega) {
			for name := range caps {
				sp := &vizv1.SandboxPool{}
				g.Expect(k8sClient.Get(ctx, keyOf(nss[0], name), sp)).To(Succeed())
				g.Expect(sp.Status.Ready).To(Equal(int32(1)))
			}
		}, 30*time.Second).Should(Succeed())

		var objs []client.Object
		for i := 0; i < charts; i++ {
			pool := []string{"a", "b"}[i%2]
			code := fmt.Sprintf("print(%d)", i)
			if i%10 == 0 {
				code += "  # big" // see the behavior
			}
			objs = append(objs, newRequest(nss[i%3], fmt.Sprintf("chart-%03d", i), code, func(vr *vizv1.VisualizationRequest) {
				vr.Spec.SandboxPoolRef = vizv1.SandboxPoolReference{Namespace: nss[0], Name: pool}
			}))
		}
		for i := 0; i < cheap; i++ {
			objs = append(objs, newRequest(nss[i%3], fmt.Sprintf("question-%04d", i), "", func(vr *vizv1.VisualizationRequest) {
				vr.Spec.Prompt = "What is the recommended hydroxyurea starting dose for adults?"
				vr.Spec.SandboxPoolRef = vizv1.SandboxPoolReference{Namespace: nss[0], Name: []string{"a", "b"}[i%2]}
			}))
		}
		sampler := sampleCaps(fakes)
		createAll(ctx, objs)

		Eventually(func(g Gomega) {
			finished := 0
			for _, ns := range nss {
				for _, vr := range listRequests(ctx, g, ns) {
					if vr.Status.Phase.Finished() {
						finished++
					}
				}
			}
			g.Expect(finished).To(Equal(cheap+charts), "finished requests")
		}, 15*time.Minute, time.Second).Should(Succeed())
		sampler.finish()

		spilled := 0
		owners := map[string]bool{}
		for _, ns := range nss {
			for _, vr := range listRequests(ctx, Default, ns) {
				expectSettled(Default, &vr)
				if vr.Spec.Code == "" {
					Expect(vr.Status.Phase).To(Equal(vizv1.PhaseSkipped), vr.Name)
					continue
				}
				Expect(vr.Status.Phase).To(Equal(vizv1.PhaseSucceeded), vr.Name)
				Expect(vr.Status.Attempts).To(Equal(int32(1)), vr.Name)
				Expect(vr.Status.Artifacts).To(HaveLen(1), vr.Name)
				if ref := vr.Status.Artifacts[0].ConfigMapKeyRef; ref != nil {
					spilled++
					cm := &corev1.ConfigMap{}
					Expect(k8sClient.Get(ctx, keyOf(ns, ref.Name), cm)).To(Succeed())
					Expect(metav1.GetControllerOf(cm).UID).To(Equal(vr.UID))
					owners[string(vr.UID)] = true
				}
				total := fakes["a"].Executions(ns+"/"+vr.Name) + fakes["b"].Executions(ns+"/"+vr.Name)
				Expect(total).To(Equal(1), "%s/%s ran %d times", ns, vr.Name, total)
			}
		}
		Expect(spilled).To(Equal(charts / 10))
		// No orphaned ConfigMap: every artifact ConfigMap belongs to a live request.
		for _, ns := range nss {
			var cms corev1.ConfigMapList
			Expect(k8sClient.List(ctx, &cms, client.InNamespace(ns), client.HasLabels{vizv1.LabelRequestUID})).To(Succeed())
			Expect(countIn(cms.Items, owners)).To(Equal(len(cms.Items)))
		}
		By(fmt.Sprintf("caps sampled %d times", sampler.samples.Load()))
		Expect(sampler.maxTotal.Load()).To(BeNumerically("<=", globalCap))
		for name, c := range caps {
			Expect(fakes[name].MaxBusy()).To(BeNumerically("<=", c), "pool %s", name)
		}
		// Writes scale with the work: a handful per chart (queue positions in buckets),
		// one or two per question. Per-waiter-per-completion writes would be ~10^5.
		By(fmt.Sprintf("%d status patches for %d requests", patches.Load(), cheap+charts))
		Expect(patches.Load()).To(BeNumerically("<", int64(charts*30+cheap*3)))
		expectDrained(h)
		// Every pool is back to its warm target, idle.
		Eventually(func(g Gomega) {
			for name := range caps {
				sp := &vizv1.SandboxPool{}
				g.Expect(k8sClient.Get(ctx, keyOf(nss[0], name), sp)).To(Succeed())
				g.Expect(sp.Status.Busy).To(BeZero())
				g.Expect(sp.Status.Ready).To(Equal(int32(1)))
			}
		}, 30*time.Second).Should(Succeed())
	})

	It("drains 300 charts at a cap of 1 across a restart midway, running none twice", func() {
		ns := newNamespace(ctx, nil)
		const n = 300
		first := sandboxtest.NewPool(1)
		h1 := startManager([]string{ns}, harnessOptions{factory: fakeFactory(first)})
		Expect(k8sClient.Create(ctx, newPool(ns, "default", 1))).To(Succeed())
		var objs []client.Object
		for i := 0; i < n; i++ {
			objs = append(objs, newRequest(ns, fmt.Sprintf("r-%03d", i), "print(1)"))
		}
		createAll(ctx, objs)
		Eventually(func(g Gomega) int {
			done := 0
			for _, vr := range listRequests(ctx, g, ns) {
				if vr.Status.Phase.Finished() {
					done++
				}
			}
			return done
		}, 5*time.Minute, 200*time.Millisecond).Should(BeNumerically(">=", n/3))
		h1.stop() // mid-drain

		second := sandboxtest.NewPool(1)
		h2 := startManager([]string{ns}, harnessOptions{factory: fakeFactory(second), clock: h1.clock})
		defer h2.stop()
		lost := 0
		Eventually(func(g Gomega) {
			lost = 0
			for _, vr := range listRequests(ctx, g, ns) {
				if vr.Status.NextRetryTime != nil {
					// An execution the restart interrupted: its retry is due now.
					h2.clock.Step(10 * time.Second)
					poke(ctx, ns, vr.Name)
				}
				g.Expect(vr.Status.Phase).To(Equal(vizv1.PhaseSucceeded), vr.Name)
			}
		}, 10*time.Minute, time.Second).Should(Succeed())
		for i := 0; i < n; i++ {
			owner := fmt.Sprintf("%s/r-%03d", ns, i)
			vr := get(ctx, Default, ns, fmt.Sprintf("r-%03d", i))
			expectSettled(Default, vr)
			runs := first.Executions(owner) + second.Executions(owner)
			if vr.Status.Attempts == 2 {
				lost++ // interrupted by the restart, then run again
				Expect(runs).To(BeNumerically("<=", 2))
				continue
			}
			Expect(vr.Status.Attempts).To(Equal(int32(1)), owner)
			Expect(runs).To(Equal(1), "%s ran %d times", owner, runs)
		}
		Expect(lost).To(BeNumerically("<=", 1), "at most the one running execution is lost")
		Expect(first.MaxBusy()).To(Equal(1))
		Expect(second.MaxBusy()).To(Equal(1))
		expectDrained(h2)
	})
})

func countIn(cms []corev1.ConfigMap, owners map[string]bool) int {
	n := 0
	for _, cm := range cms {
		if c := metav1.GetControllerOf(&cm); c != nil && owners[string(c.UID)] {
			n++
		}
	}
	return n
}
