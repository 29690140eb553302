package controller

import (
	"context"
	"fmt"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/types"

	vizv1 "github.com/vizops/viz-operator/api/v1alpha1"
	"github.com/vizops/viz-operator/internal/sandbox"
	"github.com/vizops/viz-operator/internal/sandbox/sandboxtest"
)

// degradedPool is a fake pool whose backend could not give each sandbox its own
// cgroup.
type degradedPool struct{ *sandboxtest.Pool }

func (d degradedPool) Status() sandbox.PoolStatus {
	st := d.Pool.Status()
	st.Degraded = "sandbox limits degraded: memory is RLIMIT_AS per process, not per sandbox"
	return st
}

// Issue 10, findings 2 and 10, as the SandboxPool's Ready condition shows them.
var _ = Describe("SandboxPool hardening", func() {
	ctx := context.Background()

	poolReady := func(ns, name string) func(g Gomega) string {
		return func(g Gomega) string {
			sp := &vizv1.SandboxPool{}
			g.Expect(k8sClient.Get(ctx, types.NamespacedName{Namespace: ns, Name: name}, sp)).To(Succeed())
			c := meta.FindStatusCondition(sp.Status.Conditions, vizv1.PoolConditionReady)
			if c == nil {
				return ""
			}
			return c.Reason + ": " + c.Message
		}
	}

	It("says which limits are degraded in the Ready condition", func() {
		ns := newNamespace(ctx, nil)
		h := startManager([]string{ns}, harnessOptions{factory: fakeFactory(degradedPool{sandboxtest.NewPool(1)})})
		defer h.stop()
		Expect(k8sClient.Create(ctx, newPool(ns, "default", 1))).To(Succeed())
		Eventually(poolReady(ns, "default"), 30*time.Second).Should(And(
			HavePrefix(vizv1.ReasonPoolReady+": "), ContainSubstring("memory is RLIMIT_AS per process")))
	})

	It("reports QuotaExceeded for a pool over the operator's quotas", func() {
		ns := newNamespace(ctx, nil)
		factory := func(cfg sandbox.PoolConfig) (sandbox.Pool, error) {
			if cfg.MinReady > 1 {
				return nil, fmt.Errorf("%w: minReady %d would keep %d warm sandboxes across all Local pools; this operator allows 1 (--max-warm-sandboxes)", sandbox.ErrQuotaExceeded, cfg.MinReady, cfg.MinReady)
			}
			return sandboxtest.NewPool(1), nil
		}
		h := startManager([]string{ns}, harnessOptions{factory: factory})
		defer h.stop()
		Expect(k8sClient.Create(ctx, newPool(ns, "greedy", 100, func(p *vizv1.SandboxPool) {
			p.Spec.MinReady = new(int32)
			*p.Spec.MinReady = 100
		}))).To(Succeed())
		Eventually(poolReady(ns, "greedy"), 30*time.Second).Should(And(
			HavePrefix(vizv1.ReasonQuotaExceeded+": "), ContainSubstring("--max-warm-sandboxes")))
	})

	// Issue 10, finding 5: a report the sandbox could not read is a failure with its own
	// reason, never a success.
	It("ends a request whose output overflowed with OutputLimitExceeded", func() {
		ns := newNamespace(ctx, nil)
		fake := sandboxtest.NewPool(1)
		fake.SetBehavior(func(context.Context, sandbox.Request) (*sandbox.Result, error) {
			return &sandbox.Result{Error: &sandbox.ExecError{Name: vizv1.ReasonOutputLimitExceeded,
				Value: "the job's report (6000000 bytes or more) did not fit"}}, nil
		})
		h := startManager([]string{ns}, harnessOptions{factory: fakeFactory(fake)})
		defer h.stop()
		Expect(k8sClient.Create(ctx, newPool(ns, "default", 1))).To(Succeed())
		Expect(k8sClient.Create(ctx, newRequest(ns, "loud", "print(1)"))).To(Succeed())
		Eventually(readyReason(ctx, ns, "loud"), 30*time.Second).Should(Equal(vizv1.ReasonOutputLimitExceeded))
		msg := meta.FindStatusCondition(get(ctx, Default, ns, "loud").Status.Conditions, vizv1.ConditionReady).Message
		Expect(msg).To(ContainSubstring("did not fit"))
	})

	DescribeTable("bounds each sandbox's memory and scratch",
		func(memory, scratch, wantMsg string) {
			ns := newNamespace(ctx, nil)
			p := newPool(ns, "bounded", 1, func(p *vizv1.SandboxPool) {
				if memory != "" {
					q := resource.MustParse(memory)
					p.Spec.Resources.Memory = &q
				}
				if scratch != "" {
					q := resource.MustParse(scratch)
					p.Spec.Resources.Scratch = &q
				}
			})
			err := k8sClient.Create(ctx, p)
			if wantMsg == "" {
				Expect(err).NotTo(HaveOccurred())
				return
			}
			Expect(err).To(HaveOccurred())
			Expect(err.Error()).To(ContainSubstring(wantMsg))
		},
		Entry("within the bounds", "8Gi", "1Gi", ""),
		Entry("64Gi of memory", "64Gi", "", "memory must be between 256Mi and 8Gi"),
		Entry("64Mi of memory", "64Mi", "", "memory must be between 256Mi and 8Gi"),
		Entry("10Gi of scratch", "", "10Gi", "scratch must be between 1Mi and 1Gi"),
	)
})
