package e2e

import (
	"bytes"
	"net"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	vizv1 "github.com/vizops/viz-operator/api/v1alpha1"
)

func mustQuantity(s string) resource.Quantity { return resource.MustParse(s) }

var pngMagic = []byte("\x89PNG\r\n\x1a\n")

// artifact returns the request's artifact of format, with its data when it is
// inline (the specs' charts are small enough for the status).
func artifact(g Gomega, vr *vizv1.VisualizationRequest, format string) vizv1.ArtifactStatus {
	for _, a := range vr.Status.Artifacts {
		if a.Format == format {
			return a
		}
	}
	g.Expect(vr.Status.Artifacts).To(ContainElement(HaveField("Format", format)), "artifacts of %s", brief(vr))
	return vizv1.ArtifactStatus{}
}

func uids(pods []corev1.Pod) []types.UID {
	var out []types.UID
	for _, p := range pods {
		out = append(out, p.UID)
	}
	return out
}

var _ = Describe("Kubernetes sandbox Pods on a real node", Label("e2e"), func() {
	It("runs a pool of real Pods and requests that return a PNG and a plotly chart", func(ctx SpecContext) {
		ns := newNamespace(ctx)
		pool := createKubernetesPool(ctx, ns, "charts", sandboxImage, poolOptions{minReady: 1, maxSandboxes: 2})
		pods := waitPoolReady(ctx, pool, 1)
		_, cidr, err := net.ParseCIDR(podCIDR)
		Expect(err).NotTo(HaveOccurred())
		for _, p := range pods {
			Expect(p.Spec.NodeName).To(Equal(nodeName))
			Expect(cidr.Contains(net.ParseIP(p.Status.PodIP))).To(BeTrue(), "Pod IP %s is on the CNI bridge", p.Status.PodIP)
			Expect(p.Status.ContainerStatuses).To(HaveLen(1))
			Expect(p.Status.ContainerStatuses[0].ContainerID).To(HavePrefix("containerd://"))
			Expect(p.Status.ContainerStatuses[0].ImageID).NotTo(BeEmpty())
			_, readyAt := podReady(&p)
			record("cold start: Pod created -> Ready", readyAt.Sub(p.CreationTimestamp.Time), "(1 s resolution: API timestamps)")
		}

		for _, c := range []struct {
			name, prompt string
			format       vizv1.OutputFormat
			check        func(Gomega, []byte)
		}{
			{"bar", "Bar chart of SCD treatment effectiveness: Hydroxyurea (85%), Voxelotor (70%), Crizanlizumab (75%)", vizv1.FormatPNG,
				func(g Gomega, b []byte) { g.Expect(bytes.HasPrefix(b, pngMagic)).To(BeTrue(), "a PNG") }},
			{"pie", "Pie chart of pain crisis triggers: Cold (30), Dehydration (25), Stress (20), Infection (15), Other (10)", vizv1.FormatHTML,
				func(g Gomega, b []byte) { g.Expect(string(b)).To(ContainSubstring("plotly")) }},
		} {
			waitPoolReady(ctx, pool, 1) // warm: the previous request's Pod is replaced
			started := time.Now()
			vr := newRequest(ctx, ns, c.name, pool.Name, vizv1.VisualizationRequestSpec{Prompt: c.prompt, OutputFormats: []vizv1.OutputFormat{c.format}})
			got := waitFinished(ctx, vr, 3*time.Minute)
			Expect(got.Status.Phase).To(Equal(vizv1.PhaseSucceeded), brief(got))
			record("warm request end to end ("+string(c.format)+")", time.Since(started), "create -> Succeeded, seen by polling every 0.5 s")
			Expect(got.Status.Execution.Backend).To(Equal(string(vizv1.BackendKubernetes)))
			a := artifact(Default, got, string(c.format))
			Expect(a.Data).NotTo(BeEmpty(), "inline artifact %s", a.Name)
			c.check(Default, a.Data)
		}
	})

	It("runs sandboxes that are read-only, non-root and without capabilities, under restricted Pod Security", func(ctx SpecContext) {
		ns := newNamespace(ctx)
		// The namespace really enforces restricted: a privileged Pod is refused.
		bad := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: "privileged", Namespace: ns},
			Spec: corev1.PodSpec{Containers: []corev1.Container{{
				Name: "c", Image: sandboxImage,
				SecurityContext: &corev1.SecurityContext{Privileged: ptr.To(true)},
			}}},
		}
		err := k8sClient.Create(ctx, bad)
		Expect(apierrors.IsForbidden(err)).To(BeTrue(), "restricted refuses a privileged Pod: %v", err)

		pool := createKubernetesPool(ctx, ns, "hardened", sandboxImage, poolOptions{minReady: 1, maxSandboxes: 1})
		waitPoolReady(ctx, pool, 1)
		vr := newRequest(ctx, ns, "escape", pool.Name, vizv1.VisualizationRequestSpec{Code: escapeCode})
		got := waitFinished(ctx, vr, 3*time.Minute)
		Expect(got.Status.Phase).To(Equal(vizv1.PhaseSucceeded), brief(got))
		out := got.Status.Execution.Stdout
		for _, want := range []string{
			"write /: errno=30",              // EROFS: the root filesystem is read-only
			"write /usr/local/bin: errno=30", // the image's files too
			"setuid(0): errno=1",             // EPERM: no CAP_SETUID
			"nice(-5): errno=1",              // EPERM: no CAP_SYS_NICE
			"raise CAP_NET_RAW: errno=1",     // EPERM: not in the permitted set
			"chown to root: errno=1",         // EPERM: no CAP_CHOWN
			"uid=65532 euid=65532 gid=65532", // the image's user, not root
			"CapEff:\t0000000000000000",      // no capabilities at all
			"CapPrm:\t0000000000000000",
			"NoNewPrivs:\t1",    // allowPrivilegeEscalation: false
			"Seccomp:\t2",       // RuntimeDefault seccomp filter
			"write scratch: ok", // the emptyDir is writable
		} {
			Expect(out).To(ContainSubstring(want), "stdout:\n%s", out)
		}
		// Every other attempt is refused too. Raw sockets get EAFNOSUPPORT, before any
		// capability check: with network None the kernel's own seccomp filter
		// (internal/sandbox/pyrunner) allows only AF_UNIX sockets.
		for _, line := range strings.Split(out, "\n") {
			if strings.HasSuffix(line, ": ok") {
				Expect(line).To(Equal("write scratch: ok"), "stdout:\n%s", out)
			}
		}
	})

	It("ends a request past its time limit TimedOut and replaces its Pod", func(ctx SpecContext) {
		ns := newNamespace(ctx)
		pool := createKubernetesPool(ctx, ns, "slow", sandboxImage, poolOptions{minReady: 1, maxSandboxes: 1})
		before := uids(waitPoolReady(ctx, pool, 1))
		vr := newRequest(ctx, ns, "sleepy", pool.Name, vizv1.VisualizationRequestSpec{
			Code: "import time\ntime.sleep(120)\n", TimeoutSeconds: 3, MaxAttempts: 1,
		})
		got := waitFinished(ctx, vr, 3*time.Minute)
		Expect(got.Status.Phase).To(Equal(vizv1.PhaseFailed), brief(got))
		Expect(got.Status.Conditions).To(ContainElement(HaveField("Reason", vizv1.ReasonTimeout)), brief(got))
		after := waitPoolReady(ctx, pool, 1)
		Expect(uids(after)).NotTo(ContainElement(BeElementOf(before)), "the Pod that ran the job is replaced")
		Eventually(func(g Gomega) {
			var p corev1.Pod
			err := k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: got.Status.Execution.SandboxID}, &p)
			if err == nil {
				g.Expect(p.UID).NotTo(BeElementOf(before))
			} else {
				g.Expect(apierrors.IsNotFound(err)).To(BeTrue())
			}
		}).WithContext(ctx).WithTimeout(time.Minute).Should(Succeed())
	})

	// The kernel's OOM killer picks the largest process in the Pod's memory cgroup: the
	// Python kernel (the agent gives it oom_score_adj 1000), not the agent. The container
	// keeps running, so the kubelet reports no OOMKilled; the request fails with what
	// the agent saw (signal 9). docs/e2e.md has more.
	It("ends a request past its memory limit Failed, its kernel killed in the Pod's cgroup", func(ctx SpecContext) {
		ns := newNamespace(ctx)
		pool := createKubernetesPool(ctx, ns, "small", sandboxImage, poolOptions{minReady: 1, maxSandboxes: 1, memory: "256Mi"})
		waitPoolReady(ctx, pool, 1)
		vr := newRequest(ctx, ns, "hog", pool.Name, vizv1.VisualizationRequestSpec{
			Code: "blocks = []\nfor i in range(64):\n    blocks.append(b'x' * (16 << 20))\nprint('survived', len(blocks))\n", MaxAttempts: 1,
		})
		got := waitFinished(ctx, vr, 3*time.Minute)
		Expect(got.Status.Phase).To(Equal(vizv1.PhaseFailed), brief(got))
		Expect(got.Status.Execution.Stdout).NotTo(ContainSubstring("survived"), brief(got))
		GinkgoWriter.Printf("memory limit: %s\n", brief(got))
		Expect(got.Status.Conditions).To(ContainElement(And(HaveField("Type", vizv1.ConditionExecuted), HaveField("Reason", vizv1.ReasonCodeError))), brief(got))
		Expect(got.Status.Execution.Error).NotTo(BeNil(), brief(got))
		// Today the agent reports the signal; with /work/notes/21-agent-oom-reason.patch
		// (verified on this node) it reads the cgroup's OOM-kill count and says so.
		Expect(got.Status.Execution.Error.Value).To(Or(ContainSubstring("signal 9"), ContainSubstring("OOM killer")), brief(got))
		// The agent (PID 1 of the container) survived: the kubelet saw no restart.
		var pod corev1.Pod
		if err := k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: got.Status.Execution.SandboxID}, &pod); err == nil {
			for _, cs := range pod.Status.ContainerStatuses {
				Expect(cs.RestartCount).To(BeZero())
			}
		}
	})

	It("removes a pool's Pods when the pool is deleted", func(ctx SpecContext) {
		ns := newNamespace(ctx)
		pool := createKubernetesPool(ctx, ns, "gone", sandboxImage, poolOptions{minReady: 2, maxSandboxes: 2})
		waitPoolReady(ctx, pool, 2)
		Expect(k8sClient.Delete(ctx, pool)).To(Succeed())
		// The kubelet confirms each Pod's end before the API server forgets it.
		Eventually(func(g Gomega) {
			g.Expect(sandboxPods(ctx, g, pool)).To(BeEmpty())
			err := k8sClient.Get(ctx, client.ObjectKeyFromObject(pool), &vizv1.SandboxPool{})
			g.Expect(apierrors.IsNotFound(err)).To(BeTrue())
		}).WithContext(ctx).WithTimeout(2 * time.Minute).WithPolling(500 * time.Millisecond).Should(Succeed())
	})

	It("adopts running Pods after a manager restart", func(ctx SpecContext) {
		ns := newNamespace(ctx)
		pool := createKubernetesPool(ctx, ns, "kept", sandboxImage, poolOptions{minReady: 1, maxSandboxes: 1})
		before := uids(waitPoolReady(ctx, pool, 1))
		stopManager()
		startManager()
		after := uids(waitPoolReady(ctx, pool, 1))
		Expect(after).To(Equal(before), "the restarted manager keeps the running Pod")
		vr := newRequest(ctx, ns, "after-restart", pool.Name, vizv1.VisualizationRequestSpec{
			Prompt: "Bar chart of apples (3), pears (5)",
		})
		got := waitFinished(ctx, vr, 3*time.Minute)
		Expect(got.Status.Phase).To(Equal(vizv1.PhaseSucceeded), brief(got))
	})

	It("retries a request whose Pod is deleted with grace 0 mid-run", func(ctx SpecContext) {
		ns := newNamespace(ctx)
		pool := createKubernetesPool(ctx, ns, "fragile", sandboxImage, poolOptions{minReady: 1, maxSandboxes: 2})
		waitPoolReady(ctx, pool, 1)
		vr := newRequest(ctx, ns, "interrupted", pool.Name, vizv1.VisualizationRequestSpec{
			Code:           "import time, matplotlib.pyplot as plt\ntime.sleep(10)\nplt.bar(['a', 'b'], [1, 2])\n",
			TimeoutSeconds: 120, MaxAttempts: 3,
		})
		var busy corev1.Pod
		Eventually(func(g Gomega) {
			found := false
			for _, p := range sandboxPods(ctx, g, pool) {
				if p.Labels[vizv1.LabelSandboxState] != vizv1.SandboxWarm && p.DeletionTimestamp == nil {
					busy, found = p, true
				}
			}
			g.Expect(found).To(BeTrue(), "a busy Pod")
		}).WithContext(ctx).WithTimeout(2 * time.Minute).WithPolling(200 * time.Millisecond).Should(Succeed())
		Expect(k8sClient.Delete(ctx, &busy, client.GracePeriodSeconds(0))).To(Succeed())
		got := waitFinished(ctx, vr, 4*time.Minute)
		Expect(got.Status.Phase).To(Equal(vizv1.PhaseSucceeded), brief(got))
		Expect(got.Status.Attempts).To(BeNumerically(">=", 2), brief(got))
		a := artifact(Default, got, string(vizv1.FormatPNG))
		Expect(bytes.HasPrefix(a.Data, pngMagic)).To(BeTrue())
	})
})

// escapeCode tries what a hardened sandbox must refuse, and prints each outcome
// (errno) so the spec can tell a refusal by the kernel inside the Pod from a failure
// anywhere else.
const escapeCode = `import ctypes, os, socket
import matplotlib.pyplot as plt

def attempt(name, fn):
    try:
        fn()
        print(name + ": ok")
    except OSError as e:
        print(name + ": errno=%d" % e.errno)

def write(path):
    with open(path, "w") as f:
        f.write("x")

def prctl_raise():
    libc = ctypes.CDLL(None, use_errno=True)
    # PR_CAP_AMBIENT (47), PR_CAP_AMBIENT_RAISE (2), CAP_NET_RAW (13)
    if libc.prctl(47, 2, 13, 0, 0) != 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))

attempt("write /", lambda: write("/vizops-escape"))
attempt("write /usr/local/bin", lambda: write("/usr/local/bin/vizops-escape"))
attempt("setuid(0)", lambda: os.setuid(0))
attempt("packet socket", lambda: socket.socket(socket.AF_PACKET, socket.SOCK_RAW))
attempt("raw IP socket", lambda: socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP))
attempt("nice(-5)", lambda: os.nice(-5))
attempt("raise CAP_NET_RAW", prctl_raise)
write("mine")
attempt("write scratch", lambda: None)
attempt("chown to root", lambda: os.chown("mine", 0, 0))
print("uid=%d euid=%d gid=%d" % (os.getuid(), os.geteuid(), os.getgid()))
with open("/proc/self/status") as f:
    for line in f:
        if line.startswith(("CapEff", "CapPrm", "CapBnd", "NoNewPrivs", "Seccomp:")):
            print(line.rstrip("\n"))
# Diagnostics, not checked: what the container sees of its memory cgroup (where an
# agent could read the OOM-kill count, /work/notes/21-agent-oom-reason.patch).
for p in ("/sys/fs/cgroup/memory.events", "/sys/fs/cgroup/memory/memory.oom_control"):
    try:
        with open(p) as f:
            print(p, f.read().replace("\n", "; "))
    except OSError as e:
        print(p, "errno=%d" % e.errno)
plt.bar(["refused"], [1])
`
