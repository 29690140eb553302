package e2e

import (
	"context"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"

	vizv1 "github.com/vizops/viz-operator/api/v1alpha1"
	"github.com/vizops/viz-operator/internal/sandbox/seccompprofile"
)

// The runtime's default seccomp profile refuses the agent a user namespace, so each
// context's kernel runs without a PID namespace of its own and can read the Pod's
// token; vizops's Localhost profile (installed in the kubelet's seccomp directory by
// the e2e cluster, as docs/security.md tells platform teams) gives it one. Both pools
// run the same code in a restricted namespace, so the spec sees the difference the
// profile makes on a real runtime.
var _ = Describe("the agent's Localhost seccomp profile", Label("e2e"), func() {
	It("gives each context a PID namespace of its own and hides the token, where RuntimeDefault cannot", func(ctx SpecContext) {
		ns := newNamespace(ctx)
		run := func(name, profile string) string {
			pool := createKubernetesPool(ctx, ns, name, sandboxImage, poolOptions{minReady: 1, maxSandboxes: 1, seccompProfile: profile})
			pods := waitPoolReady(ctx, pool, 1)
			sp := pods[0].Spec.Containers[0].SecurityContext.SeccompProfile
			if profile == "" {
				Expect(sp.Type).To(Equal(corev1.SeccompProfileTypeRuntimeDefault))
			} else {
				Expect(sp.Type).To(Equal(corev1.SeccompProfileTypeLocalhost))
				Expect(*sp.LocalhostProfile).To(Equal(profile))
			}
			vr := newRequest(ctx, ns, name, pool.Name, vizv1.VisualizationRequestSpec{Code: isolationCode})
			got := waitFinished(ctx, vr, 3*time.Minute)
			Expect(got.Status.Phase).To(Equal(vizv1.PhaseSucceeded), brief(got))
			// Done with this pool: its Pods leave the node's CPU to the next one.
			Expect(k8sClient.Delete(context.Background(), pool)).To(Succeed())
			return got.Status.Execution.Stdout
		}
		out := run("runtime-default", "")
		Expect(out).NotTo(ContainSubstring("pid=1\n"), "stdout:\n%s", out)
		Expect(out).To(ContainSubstring("token dir: token"), "RuntimeDefault: the kernel shares the agent's view:\n%s", out)

		out = run("agent-profile", seccompprofile.LocalhostProfile)
		Expect(out).To(ContainSubstring("pid=1\n"), "the kernel is PID 1 of its own namespace:\n%s", out)
		Expect(out).To(ContainSubstring("token dir: \n"), "the token directory is covered:\n%s", out)
		Expect(out).To(ContainSubstring("Seccomp:\t2"), "and the code still runs under a seccomp filter:\n%s", out)
		Expect(out).To(ContainSubstring("unshare: errno=1"), "which refuses it new namespaces:\n%s", out)
	})
})

// isolationCode prints what the kernel's namespaces show: its PID, the agent's token
// directory, its seccomp mode, and whether it may make a namespace of its own.
const isolationCode = `import ctypes, os
import matplotlib.pyplot as plt

print("pid=%d" % os.getpid())
try:
    print("token dir: " + ",".join(sorted(n for n in os.listdir("/var/run/vizops/agent") if not n.startswith("."))))
except OSError as e:
    print("token dir: errno=%d" % e.errno)
with open("/proc/self/status") as f:
    for line in f:
        if line.startswith("Seccomp:"):
            print(line.rstrip())
libc = ctypes.CDLL(None, use_errno=True)
if libc.unshare(0x10000000) != 0:  # CLONE_NEWUSER
    print("unshare: errno=%d" % ctypes.get_errno())
else:
    print("unshare: ok")
plt.plot([1, 2, 3])
`
