package controller

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/manager"

	vizv1 "github.com/vizops/viz-operator/api/v1alpha1"
	"github.com/vizops/viz-operator/internal/backends"
	"github.com/vizops/viz-operator/internal/sandbox"
	"github.com/vizops/viz-operator/internal/sandbox/sandboxtest"
)

// fourthOptions are the test backend's own typed options, resolved from the class.
type fourthOptions struct {
	Class string
}

var errFourthRefused = errors.New("the fourth backend's provider refuses this pool")

// fourthBackend is a backend that exists only in this test: it implements Backend and
// every optional interface, and records what the SandboxPool controller asks of it. It
// is registered under the name Local (the API's enum lists three backends; the
// controller only looks the class's name up in what is registered), in place of the
// harness's Local backend.
type fourthBackend struct {
	mu           sync.Mutex
	pool         *sandboxtest.Pool
	made         []fourthOptions
	watched      bool
	failWith     error
	stuck        bool
	finalized    int
	finalizeDone bool
}

var (
	_ backends.Finalizer      = (*fourthBackend)(nil)
	_ backends.Watcher        = (*fourthBackend)(nil)
	_ backends.Throttler      = (*fourthBackend)(nil)
	_ backends.ReadyOverrider = (*fourthBackend)(nil)
)

const fourthFinalizer = "test.vizops.io/fourth-backend"

func (f *fourthBackend) Name() vizv1.Backend { return vizv1.BackendLocal }

func (f *fourthBackend) Ensure(_ context.Context, in backends.Input) (backends.Ensured, error) {
	f.mu.Lock()
	fail := f.failWith
	f.mu.Unlock()
	if fail != nil {
		return backends.Ensured{}, fmt.Errorf("fourth: %w", fail)
	}
	p, err := sandbox.Ensure(in.Pools, in.Key, "Fourth", in.Config, fourthOptions{Class: in.Class.Name},
		func(_ sandbox.PoolConfig, o fourthOptions) (sandbox.Pool, error) {
			f.mu.Lock()
			defer f.mu.Unlock()
			f.made = append(f.made, o)
			return f.pool, nil
		})
	return backends.Ensured{Pool: p}, err
}

func (f *fourthBackend) Reason(err error) string {
	if errors.Is(err, errFourthRefused) {
		return vizv1.ReasonProviderForbidden
	}
	return ""
}

func (f *fourthBackend) FinalizerName() string { return fourthFinalizer }

func (f *fourthBackend) Finalize(context.Context, *vizv1.SandboxPool, sandbox.PoolConfig) (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.finalized++
	return f.finalizeDone, nil
}

func (f *fourthBackend) Watch(_ manager.Manager, b *builder.Builder) (*builder.Builder, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.watched = true
	return b, nil
}

func (f *fourthBackend) Throttles() bool { return true }

func (f *fourthBackend) NotReady(_ backends.Input, _ sandbox.PoolStatus, _ error) (string, string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.stuck {
		return vizv1.ReasonSandboxStartFailed, "every sandbox of the fourth backend is stuck"
	}
	return "", ""
}

func (f *fourthBackend) set(change func(*fourthBackend)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	change(f)
}

// The plugin shape: a backend the controller has never heard of gets its watches set
// up, its options resolved and its pool made, its finalizer put on and run, its errors
// mapped to its reasons and its Ready and Throttled conditions written.
var _ = Describe("A backend plugged in", func() {
	ctx := context.Background()

	It("is driven through its interfaces alone: pool, reasons, conditions, finalizer", func() {
		ns := newNamespace(ctx, nil)
		fb := &fourthBackend{pool: sandboxtest.NewPool(2)}
		h := startManager([]string{ns}, harnessOptions{backends: []backends.Backend{fb}})
		defer h.stop()
		Eventually(func() bool { fb.mu.Lock(); defer fb.mu.Unlock(); return fb.watched }, 30*time.Second).Should(BeTrue())

		Expect(k8sClient.Create(ctx, newPool(ns, "fourth", 2))).To(Succeed())
		key := types.NamespacedName{Namespace: ns, Name: "fourth"}
		Eventually(poolCondition(ctx, ns, "fourth", vizv1.PoolConditionReady), 30*time.Second).Should(HavePrefix("True/" + vizv1.ReasonPoolReady + ": Local pool of class " + localClassName))
		Eventually(poolCondition(ctx, ns, "fourth", vizv1.PoolConditionThrottled), 30*time.Second).Should(HavePrefix("False/" + vizv1.ReasonNotThrottled + ": "))
		sp := &vizv1.SandboxPool{}
		Expect(k8sClient.Get(ctx, key, sp)).To(Succeed())
		Expect(sp.Finalizers).To(ContainElement(fourthFinalizer))
		fb.mu.Lock()
		Expect(fb.made).To(ConsistOf(fourthOptions{Class: localClassName}))
		fb.mu.Unlock()
		live, backend, ok := h.pools.Get(key.String())
		Expect(ok).To(BeTrue())
		Expect(backend).To(Equal("Fourth"))
		Expect(live).To(BeIdenticalTo(sandbox.Pool(fb.pool)))

		By("its status override")
		fb.set(func(f *fourthBackend) { f.stuck = true })
		Eventually(poolCondition(ctx, ns, "fourth", vizv1.PoolConditionReady), 30*time.Second).Should(Equal(
			"False/" + vizv1.ReasonSandboxStartFailed + ": every sandbox of the fourth backend is stuck"))
		fb.set(func(f *fourthBackend) { f.stuck = false })
		Eventually(poolCondition(ctx, ns, "fourth", vizv1.PoolConditionReady), 30*time.Second).Should(HavePrefix("True/" + vizv1.ReasonPoolReady + ": "))

		By("its own error, mapped to its reason")
		fb.set(func(f *fourthBackend) { f.failWith = errFourthRefused })
		Eventually(poolCondition(ctx, ns, "fourth", vizv1.PoolConditionReady), 30*time.Second).Should(Equal(
			"False/" + vizv1.ReasonProviderForbidden + ": fourth: " + errFourthRefused.Error()))
		fb.set(func(f *fourthBackend) { f.failWith = nil })
		Eventually(poolCondition(ctx, ns, "fourth", vizv1.PoolConditionReady), 30*time.Second).Should(HavePrefix("True/" + vizv1.ReasonPoolReady + ": "))

		By("its finalizer, which holds the pool until it is done")
		Expect(k8sClient.Delete(ctx, sp)).To(Succeed())
		Eventually(func() int { fb.mu.Lock(); defer fb.mu.Unlock(); return fb.finalized }, 30*time.Second).Should(BeNumerically(">=", 2))
		Expect(k8sClient.Get(ctx, key, sp)).To(Succeed())
		Expect(sp.DeletionTimestamp).NotTo(BeNil())
		_, _, ok = h.pools.Get(key.String())
		Expect(ok).To(BeFalse(), "a deleted pool's live pool is dropped before its finalizer runs")
		fb.set(func(f *fourthBackend) { f.finalizeDone = true })
		Eventually(func() bool { return apierrors.IsNotFound(k8sClient.Get(ctx, key, &vizv1.SandboxPool{})) }, 30*time.Second).Should(BeTrue())
	})
})
