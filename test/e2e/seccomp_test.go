package e2e

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
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

// The pids limit is RLIMIT_NPROC, which Linux counts per user in a user namespace.
// Every sandbox Pod runs as uid 65532 (hostUsers is true here: containerd 1.6), so
// under RuntimeDefault one Pod's processes count against every other Pod's limit on
// the node; under the profile each kernel has a user namespace of its own and its
// own count. Pool A's code forks until its limit refuses and holds its processes;
// meanwhile pool B's code starts a few.
var _ = Describe("the pids limit across sandbox Pods", Label("e2e"), func() {
	const limit = 40
	run := func(ctx SpecContext, profile string) (bomb, other *vizv1.VisualizationRequest) {
		ns := newNamespace(ctx)
		a := createKubernetesPool(ctx, ns, "bomb", sandboxImage, poolOptions{minReady: 1, maxSandboxes: 1, seccompProfile: profile, pids: limit})
		b := createKubernetesPool(ctx, ns, "other", sandboxImage, poolOptions{minReady: 1, maxSandboxes: 1, seccompProfile: profile, pids: limit})
		waitPoolReady(ctx, a, 1)
		waitPoolReady(ctx, b, 1)
		// RLIMIT_NPROC counts tasks (threads too). Under RuntimeDefault A stops when
		// the node's tasks of the sandbox user reach the limit; under the profile
		// when its own namespace's do (its kernel and its children).
		want := limit - 1
		if profile != "" {
			want = sandboxUserTasks() + limit - 5
		}
		va := newRequest(ctx, ns, "bomb", a.Name, vizv1.VisualizationRequestSpec{Code: forkUntilRefused, TimeoutSeconds: 120})
		// A's processes are on the node (seen from the host) before B starts.
		Eventually(sandboxUserTasks).WithContext(ctx).WithTimeout(2*time.Minute).WithPolling(200*time.Millisecond).
			Should(BeNumerically(">=", want), "pool A's processes never came up")
		vb := newRequest(ctx, ns, "other", b.Name, vizv1.VisualizationRequestSpec{Code: startFifteen, MaxAttempts: 1})
		other = waitFinished(ctx, vb, 2*time.Minute)
		bomb = waitFinished(ctx, va, 3*time.Minute)
		GinkgoWriter.Printf("profile %q:\n  A: %s\n  B: %s\n", profile, brief(bomb), brief(other))
		for _, p := range []*vizv1.SandboxPool{a, b} {
			Expect(k8sClient.Delete(context.Background(), p)).To(Succeed())
		}
		return bomb, other
	}
	It("is shared by every Pod of the node under RuntimeDefault, and per context under the agent's profile", func(ctx SpecContext) {
		_, other := run(ctx, "")
		// B's code cannot fork (or B's agent, unable to make a thread, is lost).
		Expect(other.Status.Phase != vizv1.PhaseSucceeded || !strings.Contains(other.Status.Execution.Stdout, "started 15\n")).
			To(BeTrue(), "RuntimeDefault: pool A's processes count against pool B's limit: %s", brief(other))

		bomb, other := run(ctx, seccompprofile.LocalhostProfile)
		Expect(bomb.Status.Phase).To(Equal(vizv1.PhaseSucceeded), brief(bomb))
		Expect(bomb.Status.Execution.Stdout).To(ContainSubstring("fork refused: errno=11"), "pool A reached its own limit: %s", brief(bomb))
		Expect(other.Status.Phase).To(Equal(vizv1.PhaseSucceeded), brief(other))
		Expect(other.Status.Execution.Stdout).To(ContainSubstring("started 15\n"), "the profile: pool B's kernel counts only its own processes: %s", brief(other))
	})
})

// sandboxUserTasks counts the node's tasks (threads included, as RLIMIT_NPROC counts
// them) of the sandbox user, uid 65532.
func sandboxUserTasks() int {
	n := 0
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "status"))
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n") {
			if f := strings.Fields(line); len(f) > 1 && f[0] == "Uid:" && f[1] == "65532" {
				tasks, _ := os.ReadDir(filepath.Join("/proc", e.Name(), "task"))
				n += len(tasks)
			}
		}
	}
	return n
}

// forkUntilRefused forks children that sleep until the limit refuses, holds them for
// a while, and says where it stopped.
const forkUntilRefused = `import os, time
n = 0
try:
    while n < 1000:
        if os.fork() == 0:
            time.sleep(40)
            os._exit(0)
        n += 1
except OSError as e:
    print("fork refused: errno=%d after %d" % (e.errno, n))
time.sleep(30)
print("held %d" % n)
`

// startFifteen starts fifteen short-lived children, or says why it could not.
const startFifteen = `import os, time
ok = 0
for i in range(15):
    try:
        pid = os.fork()
    except OSError as e:
        print("fork refused: errno=%d after %d" % (e.errno, ok))
        break
    if pid == 0:
        time.sleep(1)
        os._exit(0)
    ok += 1
print("started %d" % ok)
`
