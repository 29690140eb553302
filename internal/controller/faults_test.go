package controller

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	vizv1 "github.com/vizops/viz-operator/api/v1alpha1"
	"github.com/vizops/viz-operator/internal/sandbox"
	"github.com/vizops/viz-operator/internal/sandbox/sandboxtest"
)

// expectSettled checks what every finished request must show: no condition still in
// progress, no slot held, and no queue position.
func expectSettled(g Gomega, vr *vizv1.VisualizationRequest) {
	g.Expect(vr.Status.Phase.Finished()).To(BeTrue(), "%s is %s", vr.Name, vr.Status.Phase)
	g.Expect(vr.Status.QueuePosition).To(BeNil(), vr.Name)
	for _, c := range vr.Status.Conditions {
		if c.Type == vizv1.ConditionVerified {
			continue // Unknown there is an answer ("could not be verified"), not progress
		}
		g.Expect(c.Status).NotTo(Equal(metav1.ConditionUnknown), "%s: condition %s still in progress (%s)", vr.Name, c.Type, c.Reason)
		if c.Type == vizv1.ConditionAdmitted {
			g.Expect(c.Status).To(Equal(metav1.ConditionFalse), "%s still holds a slot", vr.Name)
		}
	}
}

// expectDrained checks that the manager holds nothing for finished work.
func expectDrained(h *harness) {
	EventuallyWithOffset(1, func(g Gomega) {
		g.Expect(h.queue.Depth()).To(BeZero(), "requests left waiting in memory")
		total, _ := h.queue.Running("")
		g.Expect(total).To(BeZero(), "slots still held")
		g.Expect(h.executor.Len()).To(BeZero(), "executions still held")
	}, 30*time.Second).Should(Succeed())
}

func listRequests(ctx context.Context, g Gomega, ns string) []vizv1.VisualizationRequest {
	var list vizv1.VisualizationRequestList
	g.Expect(k8sClient.List(ctx, &list, inNamespace(ns))).To(Succeed())
	return list.Items
}

var _ = Describe("Faults", func() {
	ctx := context.Background()

	It("keeps a cap of 1 flowing when every chart spills into a ConfigMap", func() {
		ns := newNamespace(ctx, nil)
		fake := sandboxtest.NewPool(1)
		fake.SetBehavior(returnsPNG(noisePNG(340))) // about 340 KiB: Auto puts it in a ConfigMap
		h := startManager([]string{ns}, harnessOptions{factory: fakeFactory(fake)})
		defer h.stop()
		Expect(k8sClient.Create(ctx, newPool(ns, "default", 1))).To(Succeed())
		const n = 20
		for i := 0; i < n; i++ {
			Expect(k8sClient.Create(ctx, newRequest(ns, fmt.Sprintf("big-%02d", i), "print(1)"))).To(Succeed())
		}
		Eventually(func(g Gomega) {
			for _, vr := range listRequests(ctx, g, ns) {
				g.Expect(vr.Status.Phase).To(Equal(vizv1.PhaseSucceeded), vr.Name)
				g.Expect(vr.Status.Artifacts).To(HaveLen(1))
				g.Expect(vr.Status.Artifacts[0].ConfigMapKeyRef).NotTo(BeNil())
				expectSettled(g, &vr)
			}
		}, 120*time.Second).Should(Succeed())
		for i := 0; i < n; i++ {
			Expect(fake.Executions(fmt.Sprintf("%s/big-%02d", ns, i))).To(Equal(1))
		}
		Expect(fake.MaxBusy()).To(Equal(1))
		expectDrained(h)
		// The cache holds the artifact ConfigMaps (labelled) and nothing else.
		var cached corev1.ConfigMapList
		Expect(h.cache.List(ctx, &cached, client.InNamespace(ns))).To(Succeed())
		Expect(cached.Items).To(HaveLen(n))
	})

	It("gives a name re-used by a new request a fresh start, and stops the old one's job", func() {
		ns := newNamespace(ctx, nil)
		fake := sandboxtest.NewPool(1)
		fake.Hold()
		h := startManager([]string{ns}, harnessOptions{factory: fakeFactory(fake)})
		defer h.stop()
		Expect(k8sClient.Create(ctx, newPool(ns, "default", 1))).To(Succeed())
		Expect(k8sClient.Create(ctx, newRequest(ns, "same", "print(1)"))).To(Succeed())
		Eventually(fake.Busy, 30*time.Second).Should(Equal(1))
		old := get(ctx, Default, ns, "same")
		// Delete and re-create at once, as kubectl replace --force does.
		Expect(k8sClient.Delete(ctx, old)).To(Succeed())
		Expect(k8sClient.Create(ctx, newRequest(ns, "same", "print(2)"))).To(Succeed())
		fresh := get(ctx, Default, ns, "same")
		Expect(fresh.UID).NotTo(Equal(old.UID))
		// The old job is cancelled (the held execution ends), the new one runs under the
		// cap of 1.
		Eventually(func() int { return fake.Executions(ns + "/same") }, 30*time.Second).Should(Equal(2))
		fake.Open()
		Eventually(func(g Gomega) {
			vr := get(ctx, g, ns, "same")
			g.Expect(vr.UID).To(Equal(fresh.UID))
			g.Expect(vr.Status.Phase).To(Equal(vizv1.PhaseSucceeded))
			g.Expect(vr.Status.Attempts).To(Equal(int32(1)))
		}, 30*time.Second).Should(Succeed())
		Expect(fake.MaxBusy()).To(Equal(1))
		expectDrained(h)
	})

	It("cancels the execution of a request its pool stops admitting mid-run, and frees the slot", func() {
		poolNS := newNamespace(ctx, nil)
		reqNS := newNamespace(ctx, map[string]string{"team": "charts"})
		fake := sandboxtest.NewPool(1)
		fake.Hold()
		h := startManager([]string{poolNS, reqNS}, harnessOptions{factory: fakeFactory(fake), globalCap: 1})
		defer h.stop()
		pool := newPool(poolNS, "shared", 1, func(p *vizv1.SandboxPool) {
			p.Spec.NamespaceSelector = &metav1.LabelSelector{MatchLabels: map[string]string{"team": "charts"}}
		})
		Expect(k8sClient.Create(ctx, pool)).To(Succeed())
		Expect(k8sClient.Create(ctx, newPool(poolNS, "own", 1))).To(Succeed())
		Expect(k8sClient.Create(ctx, newRequest(reqNS, "tenant", "print(1)", func(vr *vizv1.VisualizationRequest) {
			vr.Spec.SandboxPoolRef = vizv1.SandboxPoolReference{Namespace: poolNS, Name: "shared"}
		}))).To(Succeed())
		Eventually(fake.Busy, 30*time.Second).Should(Equal(1))
		// Under the operator-wide cap of 1, this one waits for the tenant's slot.
		Expect(k8sClient.Create(ctx, newRequest(poolNS, "local", "print(2)", func(vr *vizv1.VisualizationRequest) {
			vr.Spec.SandboxPoolRef.Name = "own"
		}))).To(Succeed())
		Eventually(phaseOf(ctx, poolNS, "local"), 10*time.Second).Should(Equal(vizv1.PhaseQueued))

		Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(pool), pool)).To(Succeed())
		pool.Spec.NamespaceSelector = &metav1.LabelSelector{MatchLabels: map[string]string{"team": "nobody"}}
		Expect(k8sClient.Update(ctx, pool)).To(Succeed())
		Eventually(readyReason(ctx, reqNS, "tenant"), 30*time.Second).Should(Equal(vizv1.ReasonPoolNotAllowed))
		// Its held execution was cancelled, not left running past the global cap.
		Eventually(func() int { return fake.Executions(poolNS + "/local") }, 30*time.Second).Should(Equal(1))
		Expect(fake.MaxBusy()).To(Equal(1))
		fake.Open()
		Eventually(phaseOf(ctx, poolNS, "local"), 30*time.Second).Should(Equal(vizv1.PhaseSucceeded))
		expectSettled(Default, get(ctx, Default, reqNS, "tenant"))
		expectDrained(h)
	})

	It("spills, then fails with StatusTooLarge naming the sizes, when a status cannot fit", func() {
		ns := newNamespace(ctx, nil)
		fake := sandboxtest.NewPool(1)
		png := noisePNG(200) // about 117 KiB: inline under the 256 KiB rule
		big := strings.Repeat("x", 100<<10)
		fake.SetBehavior(func(context.Context, sandbox.Request) (*sandbox.Result, error) {
			return &sandbox.Result{Success: true, Stdout: big, Stderr: big,
				Files: []sandbox.Artifact{{Name: "figure-1.png", MIMEType: "image/png", Data: png}}}, nil
		})
		// A small budget stands in for etcd's limit, so the sizes stay quick to test.
		h := startManager([]string{ns}, harnessOptions{factory: fakeFactory(fake), statusBudget: 300 << 10})
		defer h.stop()
		Expect(k8sClient.Create(ctx, newPool(ns, "default", 1))).To(Succeed())
		annotated := func(vr *vizv1.VisualizationRequest) {
			vr.Annotations = map[string]string{"example.com/notes": strings.Repeat("n", 150<<10)}
		}
		// Auto: the PNG does not fit beside the annotations, so it goes to a ConfigMap.
		Expect(k8sClient.Create(ctx, newRequest(ns, "auto", "print(1)", annotated))).To(Succeed())
		// Status: nothing may move; the request fails, and says why.
		Expect(k8sClient.Create(ctx, newRequest(ns, "inline", "print(1)", annotated, func(vr *vizv1.VisualizationRequest) {
			vr.Spec.ArtifactStorage = vizv1.ArtifactStorageStatus
		}))).To(Succeed())
		// Behind them under the cap of 1: it must run, so the slot was freed.
		Expect(k8sClient.Create(ctx, newRequest(ns, "after", "print(1)"))).To(Succeed())

		Eventually(phaseOf(ctx, ns, "auto"), 30*time.Second).Should(Equal(vizv1.PhaseSucceeded))
		vr := get(ctx, Default, ns, "auto")
		Expect(vr.Status.Artifacts[0].ConfigMapKeyRef).NotTo(BeNil())
		Expect(vr.Status.Execution.Stdout).To(ContainSubstring("truncated"))

		Eventually(readyReason(ctx, ns, "inline"), 30*time.Second).Should(Equal(vizv1.ReasonStatusTooLarge))
		vr = get(ctx, Default, ns, "inline")
		msg := meta.FindStatusCondition(vr.Status.Conditions, vizv1.ConditionReady).Message
		Expect(msg).To(ContainSubstring("KiB"))
		Expect(msg).To(ContainSubstring("metadata and spec"))
		expectSettled(Default, vr)
		Eventually(phaseOf(ctx, ns, "after"), 30*time.Second).Should(Equal(vizv1.PhaseSucceeded))
		expectDrained(h)
	})

	It("counts no attempt and writes no admission when reading the data fails for a moment", func() {
		ns := newNamespace(ctx, nil)
		fake := sandboxtest.NewPool(1)
		var failures atomic.Int32
		failures.Store(3)
		var admittedWhileFailing atomic.Bool
		h := startManager([]string{ns}, harnessOptions{
			factory: fakeFactory(fake),
			apiReader: func(r client.Reader) client.Reader {
				return readerFunc(func(ctx context.Context, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
					if _, ok := obj.(*corev1.ConfigMap); ok && failures.Load() > 0 {
						failures.Add(-1)
						if vr := (&vizv1.VisualizationRequest{}); k8sClient.Get(ctx, keyOf(ns, "data"), vr) == nil &&
							meta.IsStatusConditionTrue(vr.Status.Conditions, vizv1.ConditionAdmitted) {
							admittedWhileFailing.Store(true)
						}
						return apierrors.NewServiceUnavailable("etcd is busy")
					}
					return r.Get(ctx, key, obj, opts...)
				}, r)
			},
		})
		defer h.stop()
		Expect(k8sClient.Create(ctx, newPool(ns, "default", 1))).To(Succeed())
		Expect(k8sClient.Create(ctx, &corev1.ConfigMap{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "readings"},
			Data:       map[string]string{"r.csv": "month,value\nJan,3\nFeb,2\n"},
		})).To(Succeed())
		Expect(k8sClient.Create(ctx, newRequest(ns, "data", "print(1)", func(vr *vizv1.VisualizationRequest) {
			vr.Spec.Data = &vizv1.DataSource{ConfigMapKeyRef: &vizv1.ConfigMapKeyReference{Name: "readings", Key: "r.csv"}}
		}))).To(Succeed())
		Eventually(phaseOf(ctx, ns, "data"), 60*time.Second).Should(Equal(vizv1.PhaseSucceeded))
		Expect(failures.Load()).To(BeZero(), "the failures were injected")
		Expect(get(ctx, Default, ns, "data").Status.Attempts).To(Equal(int32(1)))
		Expect(admittedWhileFailing.Load()).To(BeFalse())
		expectDrained(h)
	})

	It("reads spec.data only from labelled ConfigMaps when the operator requires it", func() {
		ns := newNamespace(ctx, nil)
		h := startManager([]string{ns}, harnessOptions{factory: fakeFactory(sandboxtest.NewPool(1)), requireDataLabel: true})
		defer h.stop()
		Expect(k8sClient.Create(ctx, newPool(ns, "default", 1))).To(Succeed())
		csv := map[string]string{"r.csv": "month,value\nJan,3\n"}
		Expect(k8sClient.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "private"}, Data: csv})).To(Succeed())
		Expect(k8sClient.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "shared",
			Labels: map[string]string{vizv1.LabelData: "true"}}, Data: csv})).To(Succeed())
		for _, name := range []string{"private", "shared"} {
			Expect(k8sClient.Create(ctx, newRequest(ns, name, "print(1)", func(vr *vizv1.VisualizationRequest) {
				vr.Spec.Data = &vizv1.DataSource{ConfigMapKeyRef: &vizv1.ConfigMapKeyReference{Name: name, Key: "r.csv"}}
			}))).To(Succeed())
		}
		Eventually(readyReason(ctx, ns, "private"), 30*time.Second).Should(Equal(vizv1.ReasonDataNotAllowed))
		Expect(meta.FindStatusCondition(get(ctx, Default, ns, "private").Status.Conditions, vizv1.ConditionReady).Message).
			To(ContainSubstring("kubectl label configmap private " + vizv1.LabelData + "=true"))
		Eventually(phaseOf(ctx, ns, "shared"), 30*time.Second).Should(Equal(vizv1.PhaseSucceeded))
		// Neither data ConfigMap is in the manager's cache.
		var cached corev1.ConfigMapList
		Expect(h.cache.List(ctx, &cached, client.InNamespace(ns))).To(Succeed())
		Expect(cached.Items).To(BeEmpty())
	})

	It("never adopts or overwrites a ConfigMap it does not own, but replaces one a deleted request of the name left", func() {
		ns := newNamespace(ctx, nil)
		fake := sandboxtest.NewPool(1)
		fake.SetBehavior(returnsPNG(noisePNG(340)))
		h := startManager([]string{ns}, harnessOptions{factory: fakeFactory(fake)})
		defer h.stop()
		Expect(k8sClient.Create(ctx, newPool(ns, "default", 1))).To(Succeed())
		foreign := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: artifactConfigMapName("taken")},
			Data: map[string]string{"app.conf": "keep me"}}
		Expect(k8sClient.Create(ctx, foreign)).To(Succeed())
		Expect(k8sClient.Create(ctx, newRequest(ns, "taken", "print(1)"))).To(Succeed())
		Eventually(readyReason(ctx, ns, "taken"), 30*time.Second).Should(Equal(vizv1.ReasonArtifactConfigMapConflict))
		Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(foreign), foreign)).To(Succeed())
		Expect(foreign.Data).To(Equal(map[string]string{"app.conf": "keep me"}))
		Expect(foreign.OwnerReferences).To(BeEmpty())
		Expect(meta.FindStatusCondition(get(ctx, Default, ns, "taken").Status.Conditions, vizv1.ConditionReady).Message).
			To(ContainSubstring("never adopts"))

		// envtest runs no garbage collector: a deleted request's ConfigMap stays, as it
		// does for a moment in a real cluster. The next request of the name replaces it.
		Expect(k8sClient.Create(ctx, newRequest(ns, "again", "print(1)"))).To(Succeed())
		Eventually(phaseOf(ctx, ns, "again"), 30*time.Second).Should(Equal(vizv1.PhaseSucceeded))
		first := get(ctx, Default, ns, "again")
		Expect(k8sClient.Delete(ctx, first)).To(Succeed())
		Eventually(func() bool {
			return apierrors.IsNotFound(k8sClient.Get(ctx, keyOf(ns, "again"), &vizv1.VisualizationRequest{}))
		}, 10*time.Second).Should(BeTrue())
		Expect(k8sClient.Create(ctx, newRequest(ns, "again", "print(2)"))).To(Succeed())
		Eventually(phaseOf(ctx, ns, "again"), 30*time.Second).Should(Equal(vizv1.PhaseSucceeded))
		second := get(ctx, Default, ns, "again")
		cm := &corev1.ConfigMap{}
		Expect(k8sClient.Get(ctx, keyOf(ns, artifactConfigMapName("again")), cm)).To(Succeed())
		Expect(metav1.GetControllerOf(cm).UID).To(Equal(second.UID))
	})

	It("loses nothing when status writes conflict and the API server stops answering for a while", func() {
		ns := newNamespace(ctx, nil)
		fake := sandboxtest.NewPool(2)
		var calls, conflicts atomic.Int64
		var down atomic.Bool
		funcs := interceptor.Funcs{
			Get: func(ctx context.Context, c client.WithWatch, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
				if down.Load() {
					return errors.New("dial tcp 127.0.0.1:6443: connect: connection refused")
				}
				return c.Get(ctx, key, obj, opts...)
			},
			SubResourceUpdate: func(ctx context.Context, c client.Client, sub string, obj client.Object, opts ...client.SubResourceUpdateOption) error {
				if down.Load() {
					return errors.New("dial tcp 127.0.0.1:6443: connect: connection refused")
				}
				// Every third status write conflicts, as with another writer.
				if calls.Add(1)%3 == 0 {
					conflicts.Add(1)
					return apierrors.NewConflict(schema.GroupResource{Group: vizv1.GroupVersion.Group, Resource: "visualizationrequests"}, obj.GetName(), errors.New("injected"))
				}
				return c.SubResource(sub).Update(ctx, obj, opts...)
			},
		}
		h := startManager([]string{ns}, harnessOptions{factory: fakeFactory(fake), intercept: &funcs})
		defer h.stop()
		Expect(k8sClient.Create(ctx, newPool(ns, "default", 2))).To(Succeed())
		const n = 60
		for i := 0; i < n; i++ {
			Expect(k8sClient.Create(ctx, newRequest(ns, fmt.Sprintf("c-%02d", i), "print(1)"))).To(Succeed())
			if i == n/2 {
				down.Store(true)
				time.Sleep(3 * time.Second) // an outage, not a timing assertion
				down.Store(false)
			}
		}
		Eventually(func(g Gomega) {
			for _, vr := range listRequests(ctx, g, ns) {
				g.Expect(vr.Status.Phase).To(Equal(vizv1.PhaseSucceeded), vr.Name)
				expectSettled(g, &vr)
			}
		}, 180*time.Second).Should(Succeed())
		Expect(conflicts.Load()).To(BeNumerically(">", 0))
		for i := 0; i < n; i++ {
			Expect(fake.Executions(fmt.Sprintf("%s/c-%02d", ns, i))).To(Equal(1), "c-%02d ran more than once", i)
		}
		Expect(fake.MaxBusy()).To(BeNumerically("<=", 2))
		expectDrained(h)
	})
})

// readerFunc adapts a Get function to client.Reader (List goes to the wrapped reader).
type readerFuncT struct {
	get  func(ctx context.Context, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error
	next client.Reader
}

func readerFunc(get func(ctx context.Context, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error, next client.Reader) client.Reader {
	return readerFuncT{get: get, next: next}
}

func (r readerFuncT) Get(ctx context.Context, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
	return r.get(ctx, key, obj, opts...)
}

func (r readerFuncT) List(ctx context.Context, list client.ObjectList, opts ...client.ListOption) error {
	return r.next.List(ctx, list, opts...)
}
