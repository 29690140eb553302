package e2e

import (
	"context"
	"fmt"
	"net"
	"os/exec"
	"regexp"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	vizv1 "github.com/vizops/viz-operator/api/v1alpha1"
	"github.com/vizops/viz-operator/test/e2e/cluster"
)

// The NetworkPolicies the manager renders for each pool (internal/sandbox/kubernetes:
// ingress only from the manager's Pods on the agent port, egress only to the class's
// allow-list, never to the metadata address) are enforced on the node by kube-router's
// firewall (test/e2e/cluster/netpol.go). These specs show that they hold: each would
// pass the connection it checks for refusal if nothing enforced them.

// probeCode connects to each target (name=host:port) with a 5 s timeout and prints
// "name: ok <banner>", "name: errno=N" or "name: timeout". tries > 1 retries a failed
// connection (once a second) until one succeeds: a refusal must hold every time.
func probeCode(tries int, targets ...string) string {
	var b strings.Builder
	fmt.Fprintf(&b, `import socket, time
def probe(name, host, port, tries):
    out = ""
    for i in range(tries):
        if i:
            time.sleep(1)
        try:
            s = socket.create_connection((host, port), timeout=5)
        except socket.timeout:
            out = "timeout"
            continue
        except OSError as e:
            out = "errno=%%s" %% e.errno
            continue
        try:
            s.settimeout(2)
            data = s.recv(64).decode(errors="replace").strip()
        except OSError:
            data = ""  # connected; the agent says nothing first
        s.close()
        out = ("ok " + data).strip()
        break
    print("%%s: %%s" %% (name, out), flush=True)
    return "%%s: %%s\n" %% (name, out)
result = ""
`)
	for _, t := range targets {
		name, addr, _ := strings.Cut(t, "=")
		host, port, _ := net.SplitHostPort(addr)
		fmt.Fprintf(&b, "result += probe(%q, %q, %s, %d)\n", name, host, port, tries)
	}
	return b.String()
}

// refused is a probe's outcome when the connection was not made.
const refused = `(errno=\d+|timeout)`

// banner is what the node's test servers write to whoever connects.
const banner = "vizops-e2e-egress"

// listenOnNode serves banner on the node's own address (the host, reached from Pods
// through the bridge's gateway), on a port outside the NodePort range (which
// kube-router's firewall always admits to the node), until the spec ends.
func listenOnNode(ip string) string {
	for {
		ln, err := net.Listen("tcp", net.JoinHostPort(ip, "0"))
		Expect(err).NotTo(HaveOccurred())
		if port := ln.Addr().(*net.TCPAddr).Port; port >= 30000 && port <= 32767 {
			DeferCleanup(ln.Close) // keep it taken, so the next try gets another port
			continue
		}
		DeferCleanup(ln.Close)
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				_, _ = c.Write([]byte(banner + "\n"))
				_ = c.Close()
			}
		}()
		return ln.Addr().String()
	}
}

// nodeIP is the node's InternalIP (this machine's address).
func nodeIP(ctx context.Context) string {
	var n corev1.Node
	Expect(k8sClient.Get(ctx, client.ObjectKey{Name: nodeName}, &n)).To(Succeed())
	for _, a := range n.Status.Addresses {
		if a.Type == corev1.NodeInternalIP && net.ParseIP(a.Address).To4() != nil {
			return a.Address
		}
	}
	Fail(fmt.Sprintf("node %s has no IPv4 InternalIP: %+v", nodeName, n.Status.Addresses))
	return ""
}

// poolPolicy is the NetworkPolicy the manager made for pool.
func poolPolicy(ctx context.Context, pool *vizv1.SandboxPool) *networkingv1.NetworkPolicy {
	var np networkingv1.NetworkPolicy
	Eventually(func(g Gomega) {
		var list networkingv1.NetworkPolicyList
		g.Expect(k8sClient.List(ctx, &list, client.InNamespace(pool.Namespace))).To(Succeed())
		var mine []networkingv1.NetworkPolicy
		for _, p := range list.Items {
			for _, o := range p.OwnerReferences {
				if o.UID == pool.UID {
					mine = append(mine, p)
				}
			}
		}
		g.Expect(mine).To(HaveLen(1), "the pool's NetworkPolicy")
		np = mine[0]
	}).WithContext(ctx).WithTimeout(time.Minute).Should(Succeed())
	return &np
}

// waitEnforced waits until kube-router has the pool's policy in force for pod.
func waitEnforced(ctx context.Context, pod *corev1.Pod, np *networkingv1.NetworkPolicy) {
	t := time.Now()
	Eventually(func() bool { return cluster.PodFirewalled(pod.Namespace, pod.Name, np.Name) }).
		WithContext(ctx).WithTimeout(2*time.Minute).WithPolling(250*time.Millisecond).
		Should(BeTrue(), "kube-router puts Pod %s/%s behind NetworkPolicy %s", pod.Namespace, pod.Name, np.Name)
	record("NetworkPolicy in force for a Pod", time.Since(t), "after the Pod was Ready (kube-router's sync)")
}

// probeFromNetns runs probeCode as root in pod's own network namespace (nsenter):
// the policy applies to every process of the Pod, not only to the agent's kernels.
func probeFromNetns(ctx context.Context, pod *corev1.Pod, targets ...string) string {
	ns, err := cluster.NetnsOf(pod.Status.PodIP)
	Expect(err).NotTo(HaveOccurred())
	cctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	out, err := exec.CommandContext(cctx, "nsenter", "--net=/var/run/netns/"+ns, "/usr/bin/python3", "-c", probeCode(1, targets...)).CombinedOutput()
	Expect(err).NotTo(HaveOccurred(), "%s", out)
	return string(out)
}

// runProbeRequest runs probeCode in a sandbox of pool as a request's code and returns
// its stdout.
func runProbeRequest(ctx context.Context, pool *vizv1.SandboxPool, name string, targets ...string) string {
	vr := newRequest(ctx, pool.Namespace, name, pool.Name, vizv1.VisualizationRequestSpec{
		Code: probeCode(1, targets...) + "import matplotlib.pyplot as plt\nplt.bar(['probed'], [1])\n", MaxAttempts: 1,
	})
	got := waitFinished(ctx, vr, 3*time.Minute)
	Expect(got.Status.Phase).To(Equal(vizv1.PhaseSucceeded), brief(got))
	GinkgoWriter.Printf("request %s in pool %s:\n%s\n", name, pool.Name, got.Status.Execution.Stdout)
	return got.Status.Execution.Stdout
}

// line is the probe's line for name.
func line(out, name string) string {
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(name) + `: .*$`).FindString(out)
	Expect(m).NotTo(BeEmpty(), "no line for %q in:\n%s", name, out)
	return m
}

// probePod runs probeCode in a plain Pod (the sandbox image, its Python, restricted
// Pod Security) in namespace with labels, and returns what it printed.
func probePod(ctx context.Context, namespace, name string, labels map[string]string, targets ...string) string {
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: namespace, Labels: labels},
		Spec: corev1.PodSpec{
			RestartPolicy: corev1.RestartPolicyNever,
			SecurityContext: &corev1.PodSecurityContext{
				RunAsNonRoot: ptr.To(true), RunAsUser: ptr.To(int64(65532)),
				SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
			},
			Containers: []corev1.Container{{
				Name: "probe", Image: sandboxImage, ImagePullPolicy: corev1.PullNever,
				Command: []string{"/usr/bin/python3", "-c", probeCode(10, targets...) +
					"open('/dev/termination-log', 'w').write(result)\n"},
				SecurityContext: &corev1.SecurityContext{
					AllowPrivilegeEscalation: ptr.To(false),
					Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
				},
				Resources: corev1.ResourceRequirements{
					Requests: corev1.ResourceList{corev1.ResourceCPU: mustQuantity("100m"), corev1.ResourceMemory: mustQuantity("64Mi")},
					Limits:   corev1.ResourceList{corev1.ResourceCPU: mustQuantity("100m"), corev1.ResourceMemory: mustQuantity("64Mi")},
				},
			}},
		},
	}
	Expect(k8sClient.Create(ctx, pod)).To(Succeed())
	DeferCleanup(func(ctx context.Context) {
		_ = k8sClient.Delete(ctx, pod, client.GracePeriodSeconds(0))
	})
	var got corev1.Pod
	Eventually(func(g Gomega) {
		g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(pod), &got)).To(Succeed())
		g.Expect(got.Status.Phase).To(BeElementOf(corev1.PodSucceeded, corev1.PodFailed), "probe Pod %s/%s: %+v", namespace, name, got.Status)
	}).WithContext(ctx).WithTimeout(3 * time.Minute).WithPolling(500 * time.Millisecond).Should(Succeed())
	Expect(got.Status.Phase).To(Equal(corev1.PodSucceeded), "probe Pod %s/%s: %+v", namespace, name, got.Status.ContainerStatuses)
	Expect(got.Status.ContainerStatuses).To(HaveLen(1))
	term := got.Status.ContainerStatuses[0].State.Terminated
	Expect(term).NotTo(BeNil())
	GinkgoWriter.Printf("probe Pod %s/%s (%s):\n%s\n", namespace, name, got.Status.PodIP, term.Message)
	return term.Message
}

var _ = Describe("NetworkPolicy of sandbox Pods, enforced on a real node", Label("e2e"), func() {
	It("refuses a sandbox's egress beyond its class's allow-list, and all of it without one", func(ctx SpecContext) {
		ip := nodeIP(ctx)
		listed := listenOnNode(ip)   // the allow-list's port
		unlisted := listenOnNode(ip) // same address, another port
		_, listedPort, _ := net.SplitHostPort(listed)
		var port int32
		_, err := fmt.Sscan(listedPort, &port)
		Expect(err).NotTo(HaveOccurred())
		targets := []string{"listed=" + listed, "unlisted=" + unlisted}

		ns := newNamespace(ctx)
		// The allow-list names the node's address on one port: the only difference
		// between the two connections is the policy's port.
		narrow := createKubernetesPool(ctx, ns, "narrow", sandboxImage, poolOptions{minReady: 1, maxSandboxes: 1, cpu: "250m",
			egress: []vizv1.EgressRule{{CIDR: ip + "/32", Ports: []int32{port}}}})
		closed := createKubernetesPool(ctx, ns, "closed", sandboxImage, poolOptions{minReady: 1, maxSandboxes: 1, cpu: "250m"})
		narrowPod := waitPoolReady(ctx, narrow, 1)[0]
		closedPod := waitPoolReady(ctx, closed, 1)[0]
		narrowNP, closedNP := poolPolicy(ctx, narrow), poolPolicy(ctx, closed)
		Expect(closedNP.Spec.Egress).To(BeEmpty(), "no allow-list: a policy of type Egress without rules")
		Expect(closedNP.Spec.PolicyTypes).To(ContainElement(networkingv1.PolicyTypeEgress))
		waitEnforced(ctx, &narrowPod, narrowNP)
		waitEnforced(ctx, &closedPod, closedNP)

		// From each Pod's own network (any process of the Pod, as root): the policy alone.
		out := probeFromNetns(ctx, &narrowPod, targets...)
		Expect(line(out, "listed")).To(Equal("listed: ok "+banner), "the allow-list's address and port are reachable:\n%s", out)
		Expect(line(out, "unlisted")).To(MatchRegexp("^unlisted: "+refused+"$"), "another port of the same address is refused:\n%s", out)
		out = probeFromNetns(ctx, &closedPod, targets...)
		Expect(line(out, "listed")).To(MatchRegexp("^listed: "+refused+"$"), "no allow-list, no egress:\n%s", out)
		Expect(line(out, "unlisted")).To(MatchRegexp("^unlisted: "+refused+"$"), "no allow-list, no egress:\n%s", out)

		// The request's own code, in the sandbox: the same outcome. Without an allow-list
		// the agent's kernels also get no IP sockets at all (network None: its seccomp
		// filter allows AF_UNIX only, EAFNOSUPPORT = 97), a second wall behind the policy.
		out = runProbeRequest(ctx, narrow, "egress-narrow", targets...)
		Expect(line(out, "listed")).To(Equal("listed: ok "+banner), out)
		Expect(line(out, "unlisted")).To(MatchRegexp("^unlisted: "+refused+"$"), out)
		out = runProbeRequest(ctx, closed, "egress-closed", targets...)
		Expect(line(out, "listed")).To(MatchRegexp("^listed: "+refused+"$"), out)
		Expect(line(out, "unlisted")).To(MatchRegexp("^unlisted: "+refused+"$"), out)
	})

	It("admits connections to the agent only from the manager", func(ctx SpecContext) {
		ns := newNamespace(ctx)
		other := newNamespace(ctx)
		pool := createKubernetesPool(ctx, ns, "guarded", sandboxImage, poolOptions{minReady: 1, maxSandboxes: 1, cpu: "250m"})
		pod := waitPoolReady(ctx, pool, 1)[0]
		waitEnforced(ctx, &pod, poolPolicy(ctx, pool))
		agent := "agent=" + net.JoinHostPort(pod.Status.PodIP, "49999")
		// The manager's Pod labels (cmd --manager-pod-labels' default).
		managerLabels := map[string]string{"control-plane": "controller-manager"}

		// Another namespace, even with the manager's labels: refused.
		Expect(line(probePod(ctx, other, "intruder", managerLabels, agent), "agent")).To(MatchRegexp("^agent: " + refused + "$"))
		// The sandbox's own namespace, without them: refused.
		Expect(line(probePod(ctx, ns, "neighbour", nil, agent), "agent")).To(MatchRegexp("^agent: " + refused + "$"))
		// A Pod the policy admits (the manager's labels in the operator's namespace):
		// the path through the bridge is open, so the refusals above are the policy's.
		Expect(line(probePod(ctx, operatorNamespace, "manager-like", managerLabels, agent), "agent")).To(Equal("agent: ok"))

		// The manager itself, a process on the node here (as the kubelet's probes are),
		// is admitted by kube-router's rule for the node's own addresses: it runs a request.
		vr := newRequest(ctx, ns, "through-policy", pool.Name, vizv1.VisualizationRequestSpec{Prompt: "Bar chart of apples (3), pears (5)"})
		got := waitFinished(ctx, vr, 3*time.Minute)
		Expect(got.Status.Phase).To(Equal(vizv1.PhaseSucceeded), brief(got))
	})

	It("never allows the cloud metadata address, even under an allow-list of 0.0.0.0/0", func(ctx SpecContext) {
		ip := nodeIP(ctx)
		anywhere := listenOnNode(ip)
		ns := newNamespace(ctx)
		pool := createKubernetesPool(ctx, ns, "wide", sandboxImage, poolOptions{minReady: 1, maxSandboxes: 1, cpu: "250m",
			egress: []vizv1.EgressRule{{CIDR: "0.0.0.0/0"}}})
		pod := waitPoolReady(ctx, pool, 1)[0]
		np := poolPolicy(ctx, pool)
		Expect(np.Spec.Egress).To(HaveLen(1))
		Expect(np.Spec.Egress[0].To).To(HaveLen(1))
		block := np.Spec.Egress[0].To[0].IPBlock
		Expect(block).NotTo(BeNil())
		Expect(block.CIDR).To(Equal("0.0.0.0/0"))
		Expect(block.Except).To(ContainElement("169.254.169.254/32"))
		waitEnforced(ctx, &pod, np)
		// kube-router made the except a nomatch entry of the rule's destination set.
		Eventually(cluster.IPSets).WithContext(ctx).WithTimeout(time.Minute).
			Should(MatchRegexp(`(?m)^169\.254\.169\.254(/32)? .*nomatch`), "kube-router's ipsets")
		// The wide rule itself holds: any address and port of the node is reachable.
		// (Connecting to 169.254.169.254 is not tried: if the policy failed, the packet
		// would leave the machine.)
		out := runProbeRequest(ctx, pool, "egress-wide", "anywhere="+anywhere)
		Expect(line(out, "anywhere")).To(Equal("anywhere: ok "+banner), out)
	})
})
