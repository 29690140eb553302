package controller

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"os"
	"sync"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	nodev1 "k8s.io/api/node/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	vizv1 "github.com/vizops/viz-operator/api/v1alpha1"
	kubebackend "github.com/vizops/viz-operator/internal/backends/kubernetes"
	"github.com/vizops/viz-operator/internal/sandbox"
	"github.com/vizops/viz-operator/internal/sandbox/agent"
	"github.com/vizops/viz-operator/internal/sandbox/codeinterpreter"
	"github.com/vizops/viz-operator/internal/sandbox/kubernetes"
	"github.com/vizops/viz-operator/internal/sandbox/sandboxtest"
)

// No kubelet, scheduler or garbage collector runs in envtest. fakeKubelet stands in for
// the kubelet: it marks every sandbox Pod of a namespace Running and Ready with a Pod
// IP of 127.0.0.1 (loopback), and fakeAgent stands in for the agent at that IP: the
// backend's NewRunner gets the Pod, whose IP and token the fake records, and answers
// as an agent would (a PNG figure), or holds the job until released. What this does not
// cover: a real agent process and its HTTP protocol (internal/sandbox/codeinterpreter's
// tests do), image pulls, probes, and NetworkPolicy enforcement (no CNI runs here; the
// policy is checked as rendered).
func fakeKubelet(ctx context.Context, ns string) {
	go func() {
		defer GinkgoRecover()
		for ctx.Err() == nil {
			var pods corev1.PodList
			if err := k8sClient.List(ctx, &pods, client.InNamespace(ns), client.HasLabels{vizv1.LabelSandboxPoolUID}); err == nil {
				for i := range pods.Items {
					p := &pods.Items[i]
					if p.Status.PodIP != "" || p.DeletionTimestamp != nil {
						continue
					}
					now := metav1.Now()
					p.Status.Phase = corev1.PodRunning
					p.Status.PodIP = "127.0.0.1"
					p.Status.Conditions = []corev1.PodCondition{
						{Type: corev1.PodScheduled, Status: corev1.ConditionTrue, LastTransitionTime: now},
						{Type: corev1.PodReady, Status: corev1.ConditionTrue, LastTransitionTime: now},
					}
					_ = k8sClient.Status().Update(ctx, p) // a conflict: next round
				}
			}
			time.Sleep(50 * time.Millisecond)
		}
	}()
}

// fakeAgent answers jobs for sandbox Pods, like the agent on the Pod's IP.
type fakeAgent struct {
	mu       sync.Mutex
	gate     chan struct{} // when set, jobs wait for a receive (or its close)
	runs     map[string]int
	busy     map[string]bool
	maxBusy  int
	tokens   map[string]bool
	ips      map[string]bool
	twice    []string // Pods that got a second job while busy
	behavior sandboxtest.Behavior
}

func newFakeAgent() *fakeAgent {
	return &fakeAgent{runs: map[string]int{}, busy: map[string]bool{}, tokens: map[string]bool{}, ips: map[string]bool{}}
}

func (a *fakeAgent) hold() { a.mu.Lock(); a.gate = make(chan struct{}); a.mu.Unlock() }

func (a *fakeAgent) open() {
	a.mu.Lock()
	g := a.gate
	a.gate = nil
	a.mu.Unlock()
	if g != nil {
		close(g)
	}
}

func (a *fakeAgent) busyNow() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.busy)
}

func (a *fakeAgent) runner(pod *corev1.Pod, token string) kubernetes.Runner {
	return agentRun(func(ctx context.Context, req sandbox.Request) (*sandbox.Result, error) {
		a.mu.Lock()
		name := string(pod.UID)
		if a.busy[name] {
			a.twice = append(a.twice, name)
		}
		a.busy[name] = true
		a.maxBusy = max(a.maxBusy, len(a.busy))
		a.runs[name]++
		a.tokens[token] = true
		a.ips[pod.Status.PodIP] = true
		g, b := a.gate, a.behavior
		a.mu.Unlock()
		defer func() { a.mu.Lock(); delete(a.busy, name); a.mu.Unlock() }()
		if g != nil {
			select {
			case <-g:
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}
		if b != nil {
			return b(ctx, req)
		}
		return &sandbox.Result{Success: true, Files: []sandbox.Artifact{{Name: "figure-1.png", MIMEType: "image/png", Data: sandboxtest.PNG, Figure: true}}}, nil
	})
}

type agentRun func(ctx context.Context, req sandbox.Request) (*sandbox.Result, error)

func (f agentRun) Run(ctx context.Context, req sandbox.Request) (*sandbox.Result, error) {
	return f(ctx, req)
}

// kubeletNamespace is a new namespace (with labels) whose Pods the fake kubelet runs
// until the spec ends.
func kubeletNamespace(ctx context.Context, labels map[string]string) string {
	ns := newNamespace(ctx, labels)
	kctx, stopKubelet := context.WithCancel(ctx)
	DeferCleanup(stopKubelet)
	fakeKubelet(kctx, ns)
	return ns
}

// waitPoolReady waits until the pool reports ready sandboxes.
func waitPoolReady(ctx context.Context, ns, name string, ready int32) {
	GinkgoHelper()
	Eventually(func(g Gomega) {
		g.Expect(getPool(ctx, g, ns, name).Status.Ready).To(Equal(ready))
	}, 30*time.Second).Should(Succeed())
}

// kubeClassName is the class newKubePool makes for pool name of ns.
func kubeClassName(ns, name string) string { return ns + "-" + name }

// newKubePool makes a Kubernetes SandboxClass of the pool's own (kubeClassName; the
// test image, hostUsers true as envtest has no node; mutate changes it first) and
// returns a pool on it.
func newKubePool(ns, name string, minReady, maxSandboxes int32, mutate ...func(*vizv1.SandboxClass)) *vizv1.SandboxPool {
	class := &vizv1.SandboxClass{ObjectMeta: metav1.ObjectMeta{Name: kubeClassName(ns, name)}, Spec: vizv1.SandboxClassSpec{
		Backend:    vizv1.BackendKubernetes,
		Kubernetes: &vizv1.KubernetesClass{Image: "ghcr.io/vizops/viz-sandbox:test"},
	}}
	for _, m := range mutate {
		m(class)
	}
	Expect(k8sClient.Create(context.Background(), class)).To(Succeed())
	DeferCleanup(func() { _ = k8sClient.Delete(context.Background(), class) })
	return newPool(ns, name, maxSandboxes, func(p *vizv1.SandboxPool) {
		p.Spec.ClassName = class.Name
		p.Spec.MinReady = ptr.To(minReady)
	})
}

// updateClass changes a class, retrying on conflicts.
func updateClass(ctx context.Context, name string, change func(*vizv1.SandboxClass)) {
	GinkgoHelper()
	Eventually(func(g Gomega) {
		c := &vizv1.SandboxClass{}
		g.Expect(k8sClient.Get(ctx, types.NamespacedName{Name: name}, c)).To(Succeed())
		change(c)
		g.Expect(k8sClient.Update(ctx, c)).To(Succeed())
	}, 10*time.Second).Should(Succeed())
}

func getClass(ctx context.Context, name string) *vizv1.SandboxClass {
	GinkgoHelper()
	c := &vizv1.SandboxClass{}
	Expect(k8sClient.Get(ctx, types.NamespacedName{Name: name}, c)).To(Succeed())
	return c
}

// sandboxPods lists a namespace's sandbox Pods from the API server (not a cache).
func sandboxPods(ctx context.Context, g Gomega, ns string) []corev1.Pod {
	var pods corev1.PodList
	g.Expect(k8sClient.List(ctx, &pods, client.InNamespace(ns), client.HasLabels{vizv1.LabelSandboxPoolUID})).To(Succeed())
	return pods.Items
}

func podsInState(pods []corev1.Pod, state string) []corev1.Pod {
	var out []corev1.Pod
	for _, p := range pods {
		if p.Labels[vizv1.LabelSandboxState] == state && p.DeletionTimestamp == nil {
			out = append(out, p)
		}
	}
	return out
}

func uids(pods []corev1.Pod) []string {
	var out []string
	for _, p := range pods {
		out = append(out, string(p.UID))
	}
	return out
}

func getPool(ctx context.Context, g Gomega, ns, name string) *vizv1.SandboxPool {
	sp := &vizv1.SandboxPool{}
	g.Expect(k8sClient.Get(ctx, keyOf(ns, name), sp)).To(Succeed())
	return sp
}

var _ = Describe("Kubernetes backend", func() {
	ctx := context.Background()

	It("keeps minReady hardened Pods warm behind a NetworkPolicy, with the token only in a mounted Secret, passing Pod Security restricted", func() {
		// The namespace enforces the restricted level: the API server's PodSecurity
		// admission refuses any Pod that does not pass it (checked below with one that
		// does not, so this test can fail).
		ns := kubeletNamespace(ctx, map[string]string{"pod-security.kubernetes.io/enforce": "restricted"})
		agent := newFakeAgent()
		h := startManager([]string{ns}, harnessOptions{factory: fakeFactory(sandboxtest.NewPool(1)), kubeRunner: agent.runner})
		defer h.stop()

		bad := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "root"},
			Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "x"}}}}
		err := k8sClient.Create(ctx, bad)
		Expect(err).To(HaveOccurred(), "PodSecurity admission must run in envtest for this test to mean anything")
		Expect(err.Error()).To(ContainSubstring("restricted"))

		// The API server refuses Pods of a RuntimeClass that does not exist.
		rc := &nodev1.RuntimeClass{ObjectMeta: metav1.ObjectMeta{Name: "gvisor-" + ns}, Handler: "runsc"}
		Expect(k8sClient.Create(ctx, rc)).To(Succeed())
		sp := newKubePool(ns, "warm", 2, 3, func(c *vizv1.SandboxClass) {
			c.Spec.Kubernetes.RuntimeClassName = rc.Name
			c.Spec.Kubernetes.NodeSelector = map[string]string{"sandbox": "true"}
			c.Spec.Kubernetes.Tolerations = []corev1.Toleration{{Key: "sandbox", Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule}}
		})
		Expect(k8sClient.Create(ctx, sp)).To(Succeed())
		Eventually(func(g Gomega) {
			st := getPool(ctx, g, ns, "warm").Status
			g.Expect(st.Ready).To(Equal(int32(2)))
			g.Expect(st.Total).To(Equal(int32(2)))
			g.Expect(st.Sandboxes).To(HaveLen(2))
			g.Expect(st.Sandboxes[0].State).To(Equal("Ready"))
		}, 30*time.Second).Should(Succeed())
		Consistently(func(g Gomega) int { return len(sandboxPods(ctx, g, ns)) }, 2*time.Second).Should(Equal(2), "no more than minReady")

		pods := sandboxPods(ctx, Default, ns)
		p := pods[0]
		Expect(p.OwnerReferences).To(ContainElement(HaveField("UID", sp.UID)))
		spec := p.Spec
		Expect(spec.AutomountServiceAccountToken).To(Equal(ptr.To(false)))
		Expect(spec.HostNetwork || spec.HostPID || spec.HostIPC).To(BeFalse())
		Expect(spec.RuntimeClassName).To(Equal(ptr.To(rc.Name)))
		Expect(spec.NodeSelector).To(Equal(map[string]string{"sandbox": "true"}))
		Expect(spec.Tolerations).To(ContainElement(HaveField("Key", "sandbox")))
		Expect(*spec.SecurityContext.RunAsNonRoot).To(BeTrue())
		Expect(spec.SecurityContext.SeccompProfile.Type).To(Equal(corev1.SeccompProfileTypeRuntimeDefault))
		c := spec.Containers[0]
		Expect(*c.SecurityContext.ReadOnlyRootFilesystem).To(BeTrue())
		Expect(*c.SecurityContext.AllowPrivilegeEscalation).To(BeFalse())
		Expect(c.SecurityContext.Capabilities.Drop).To(Equal([]corev1.Capability{"ALL"}))
		Expect(c.Resources.Limits.Memory().String()).To(Equal("1Gi"))
		Expect(c.Resources.Limits.Cpu().String()).To(Equal("1"))
		Expect(c.Ports[0].ContainerPort).To(Equal(int32(49999)))
		Expect(c.Args).To(ContainElement("--token-file=" + kubernetes.TokenDir + "/token"))
		var scratch *corev1.EmptyDirVolumeSource
		for _, v := range spec.Volumes {
			if v.EmptyDir != nil {
				scratch = v.EmptyDir
			}
		}
		Expect(scratch).NotTo(BeNil())
		Expect(scratch.SizeLimit.String()).To(Equal("64Mi"))

		// The token: each Pod's own, in its own Secret (the pool's), mounted as a file,
		// nowhere in the Pod.
		var secrets corev1.SecretList
		Expect(k8sClient.List(ctx, &secrets, client.InNamespace(ns), client.MatchingLabels{vizv1.LabelSandboxPoolUID: string(sp.UID)})).To(Succeed())
		Expect(secrets.Items).To(HaveLen(2))
		tokens := map[string]bool{}
		for _, pod := range pods {
			token := podSecretToken(ctx, Default, &pod)
			Expect(token).To(HaveLen(64))
			tokens[token] = true
			raw, err := json.Marshal(pod)
			Expect(err).NotTo(HaveOccurred())
			Expect(string(raw)).NotTo(ContainSubstring(token))
		}
		Expect(tokens).To(HaveLen(2), "two Pods, two tokens")
		Expect(secrets.Items[0].OwnerReferences).To(ContainElement(HaveField("UID", sp.UID)))
		Expect(c.Env).NotTo(ContainElement(HaveField("ValueFrom", Not(BeNil()))))

		var nps networkingv1.NetworkPolicyList
		Expect(k8sClient.List(ctx, &nps, client.InNamespace(ns))).To(Succeed())
		Expect(nps.Items).To(HaveLen(1))
		np := nps.Items[0].Spec
		Expect(np.PodSelector.MatchLabels).To(Equal(map[string]string{vizv1.LabelSandboxPoolUID: string(sp.UID)}))
		Expect(np.PolicyTypes).To(ConsistOf(networkingv1.PolicyTypeIngress, networkingv1.PolicyTypeEgress))
		Expect(np.Egress).To(BeEmpty(), "network None: no egress at all")
		Expect(np.Ingress).To(HaveLen(1))
		Expect(np.Ingress[0].Ports[0].Port.IntValue()).To(Equal(49999))
		Expect(np.Ingress[0].From[0].PodSelector.MatchLabels).To(Equal(map[string]string{"control-plane": "controller-manager"}))
		Expect(np.Ingress[0].From[0].NamespaceSelector.MatchLabels).To(Equal(map[string]string{"kubernetes.io/metadata.name": "vizops-system"}))

		// The class's egress allow-list opens egress, and the policy follows the class.
		updateClass(ctx, kubeClassName(ns, "warm"), func(c *vizv1.SandboxClass) {
			c.Spec.Egress = []vizv1.EgressRule{{CIDR: "0.0.0.0/0", Ports: []int32{443}}}
		})
		Eventually(func(g Gomega) []networkingv1.NetworkPolicyEgressRule {
			var nps networkingv1.NetworkPolicyList
			g.Expect(k8sClient.List(ctx, &nps, client.InNamespace(ns))).To(Succeed())
			g.Expect(nps.Items).To(HaveLen(1))
			return nps.Items[0].Spec.Egress
		}, 10*time.Second).Should(HaveLen(1))
	})

	It("runs a VisualizationRequest in a warm Pod, returns its PNG, and replaces the Pod (one job per Pod)", func() {
		ns := kubeletNamespace(ctx, nil)
		agent := newFakeAgent()
		h := startManager([]string{ns}, harnessOptions{factory: fakeFactory(sandboxtest.NewPool(1)), kubeRunner: agent.runner})
		defer h.stop()
		Expect(k8sClient.Create(ctx, newKubePool(ns, "default", 1, 2))).To(Succeed())
		var warm []corev1.Pod
		Eventually(func(g Gomega) {
			warm = podsInState(sandboxPods(ctx, g, ns), vizv1.SandboxWarm)
			g.Expect(warm).To(HaveLen(1))
			g.Expect(warm[0].Status.PodIP).NotTo(BeEmpty())
		}, 30*time.Second).Should(Succeed())

		token := podSecretToken(ctx, Default, &warm[0])
		Expect(k8sClient.Create(ctx, newRequest(ns, "chart", "import matplotlib.pyplot as plt\nplt.plot([1,2])\nplt.show()"))).To(Succeed())
		Eventually(phaseOf(ctx, ns, "chart"), 30*time.Second).Should(Equal(vizv1.PhaseSucceeded))
		vr := get(ctx, Default, ns, "chart")
		Expect(vr.Status.Execution.Backend).To(Equal(string(vizv1.BackendKubernetes)))
		Expect(vr.Status.Execution.SandboxID).To(Equal(warm[0].Name))
		Expect(vr.Status.Artifacts).To(HaveLen(1))
		Expect(vr.Status.Artifacts[0].Data).To(Equal(sandboxtest.PNG))
		Expect(agent.ips).To(HaveKey("127.0.0.1"), "the runner was made for the Pod's IP")

		// The Pod that ran it is gone, and a new warm one took its place.
		Eventually(func(g Gomega) {
			pods := sandboxPods(ctx, g, ns)
			g.Expect(pods).To(HaveLen(1))
			g.Expect(pods[0].UID).NotTo(Equal(warm[0].UID))
			g.Expect(pods[0].Labels[vizv1.LabelSandboxState]).To(Equal(vizv1.SandboxWarm))
		}, 30*time.Second).Should(Succeed())

		Expect(agent.tokens).To(Equal(map[string]bool{token: true}), "the agent got the token of the Pod's own Secret")
		// The Pod's token Secret went with it.
		Eventually(func() bool {
			return apierrors.IsNotFound(k8sClient.Get(ctx, keyOf(ns, warm[0].Spec.Volumes[1].Secret.SecretName), &corev1.Secret{}))
		}, 30*time.Second).Should(BeTrue())
	})

	It("never has more than maxSandboxes Pods, and gives each Pod one job at a time", func() {
		ns := kubeletNamespace(ctx, nil)
		agent := newFakeAgent()
		agent.hold()
		h := startManager([]string{ns}, harnessOptions{factory: fakeFactory(sandboxtest.NewPool(1)), kubeRunner: agent.runner, globalCap: 20})
		defer h.stop()
		Expect(k8sClient.Create(ctx, newKubePool(ns, "default", 0, 3))).To(Succeed())

		// Sample the Pods the API server holds (terminating ones included) all along.
		sctx, stopSampler := context.WithCancel(ctx)
		defer stopSampler()
		seen := 0
		var smu sync.Mutex
		go func() {
			defer GinkgoRecover()
			for sctx.Err() == nil {
				var pods corev1.PodList
				if err := k8sClient.List(sctx, &pods, client.InNamespace(ns), client.HasLabels{vizv1.LabelSandboxPoolUID}); err == nil {
					smu.Lock()
					seen = max(seen, len(pods.Items))
					smu.Unlock()
				}
				time.Sleep(20 * time.Millisecond)
			}
		}()
		for i := range 8 {
			Expect(k8sClient.Create(ctx, newRequest(ns, fmt.Sprintf("r%d", i), "print(1)"))).To(Succeed())
		}
		Eventually(agent.busyNow, 30*time.Second).Should(Equal(3))
		Consistently(func(g Gomega) int { return len(sandboxPods(ctx, g, ns)) }, 2*time.Second).Should(BeNumerically("<=", 3))
		agent.open()
		for i := range 8 {
			Eventually(phaseOf(ctx, ns, fmt.Sprintf("r%d", i)), 60*time.Second).Should(Equal(vizv1.PhaseSucceeded))
		}
		smu.Lock()
		defer smu.Unlock()
		Expect(seen).To(BeNumerically("<=", 3))
		Expect(seen).To(BeNumerically(">=", 1))
		agent.mu.Lock()
		defer agent.mu.Unlock()
		Expect(agent.twice).To(BeEmpty())
		Expect(agent.maxBusy).To(Equal(3))
		for pod, n := range agent.runs {
			Expect(n).To(Equal(1), "Pod %s ran more than one job", pod)
		}
		// minReady 0: once the work is done, no Pod stays.
		Eventually(func(g Gomega) []corev1.Pod { return sandboxPods(ctx, g, ns) }, 30*time.Second).Should(BeEmpty())
	})

	It("leaves a NetworkPolicy of the pool's name that the pool does not own alone, says so, and still finalizes", func() {
		ns := kubeletNamespace(ctx, nil)
		// Two pools made before the manager runs, and in their way a NetworkPolicy of
		// each one's name: one plain, one that even carries the pool's label (so the
		// manager's cache holds it), both owned by no pool.
		foreign := func(sp *vizv1.SandboxPool, labels map[string]string) *networkingv1.NetworkPolicy {
			s := kubernetes.Settings{Namespace: ns, PoolName: sp.Name, PoolUID: sp.UID}
			return &networkingv1.NetworkPolicy{
				ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: kubernetes.NetworkPolicyName(s), Labels: labels},
				Spec:       networkingv1.NetworkPolicySpec{PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress}},
			}
		}
		plain, labelled := newKubePool(ns, "plain", 0, 1), newKubePool(ns, "labelled", 0, 1)
		Expect(k8sClient.Create(ctx, plain)).To(Succeed())
		Expect(k8sClient.Create(ctx, labelled)).To(Succeed())
		theirs := []*networkingv1.NetworkPolicy{foreign(plain, nil), foreign(labelled, kubernetes.Selector(labelled.UID))}
		for _, np := range theirs {
			Expect(k8sClient.Create(ctx, np)).To(Succeed())
		}
		h := startManager([]string{ns}, harnessOptions{factory: fakeFactory(sandboxtest.NewPool(1)), kubeRunner: newFakeAgent().runner})
		defer h.stop()
		for _, name := range []string{"plain", "labelled"} {
			Eventually(func(g Gomega) {
				cond := meta.FindStatusCondition(getPool(ctx, g, ns, name).Status.Conditions, vizv1.PoolConditionReady)
				g.Expect(cond).NotTo(BeNil())
				g.Expect(cond.Status).To(Equal(metav1.ConditionFalse))
				g.Expect(cond.Message).To(And(ContainSubstring("NetworkPolicy"), ContainSubstring("not owned by this pool")))
			}, 30*time.Second).Should(Succeed(), name)
		}
		for _, np := range theirs {
			cur := &networkingv1.NetworkPolicy{}
			Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(np), cur)).To(Succeed())
			Expect(cur.Spec).To(Equal(np.Spec), "overwritten")
			Expect(cur.OwnerReferences).To(BeEmpty())
		}
		// Deleting the pools finalizes them, and leaves the NetworkPolicies alone.
		Expect(k8sClient.Delete(ctx, plain)).To(Succeed())
		Expect(k8sClient.Delete(ctx, labelled)).To(Succeed())
		Eventually(func() bool {
			return apierrors.IsNotFound(k8sClient.Get(ctx, client.ObjectKeyFromObject(plain), &vizv1.SandboxPool{})) &&
				apierrors.IsNotFound(k8sClient.Get(ctx, client.ObjectKeyFromObject(labelled), &vizv1.SandboxPool{}))
		}, 30*time.Second).Should(BeTrue())
		for _, np := range theirs {
			Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(np), &networkingv1.NetworkPolicy{})).To(Succeed(), "deleted by the finalizer")
		}
	})

	It("never hands one Pod to two claims, across two managers", func() {
		ns := kubeletNamespace(ctx, nil)
		h := startManager([]string{ns}, harnessOptions{factory: fakeFactory(sandboxtest.NewPool(1)), kubeRunner: newFakeAgent().runner})
		sp := newKubePool(ns, "race", 4, 4)
		Expect(k8sClient.Create(ctx, sp)).To(Succeed())
		waitPoolReady(ctx, ns, "race", 4)
		// The manager crashes, leaving its warm Pods; two managers (a leader handing
		// over to the next) then both adopt them. Only the claim's precondition write
		// keeps each Pod to one claim.
		h.crash()

		s := kubernetes.Settings{Namespace: ns, PoolName: sp.Name, PoolUID: sp.UID,
			Template: kubernetes.PoolTemplate(mustPoolConfig(sp), kubebackend.ClassOf(getClass(ctx, kubeClassName(ns, "race"))))}.WithTokenKey([]byte("envtest-sandbox-token-key"))
		var pools []*kubernetes.Pool
		for i := range 2 {
			// Each manager has a client of its own to the API server.
			c, err := client.New(cfg, client.Options{Scheme: scheme})
			Expect(err).NotTo(HaveOccurred())
			p, err := kubernetes.NewPool(sandbox.PoolConfig{MinReady: 4, MaxSandboxes: 4}, s,
				kubebackend.NewPodAPI(c, s), kubernetes.Options{Manager: fmt.Sprintf("m%d", i), Poll: 50 * time.Millisecond})
			Expect(err).NotTo(HaveOccurred())
			DeferCleanup(p.Detach) // the Pods are the namespace's to go with it
			pools = append(pools, p)
		}
		for _, p := range pools {
			Eventually(func() int { return p.Status().Ready }, 10*time.Second).Should(Equal(4), "each manager adopted the 4 warm Pods")
		}
		type win struct{ manager, owner, pod string }
		wins := make(chan win, 16)
		var wg sync.WaitGroup
		for i := range 12 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer GinkgoRecover()
				owner := fmt.Sprintf("%s/claim-%d", ns, i)
				cctx, cancel := context.WithTimeout(ctx, 3*time.Second)
				defer cancel()
				cctx = sandbox.WithClaimant(cctx, sandbox.Claimant{Key: owner, UID: fmt.Sprint(i), Attempt: 1})
				sb, err := pools[i%2].Acquire(cctx, owner)
				if err == nil {
					wins <- win{fmt.Sprintf("m%d", i%2), owner, sb.ID()}
				}
			}()
		}
		wg.Wait()
		close(wins)
		byPod := map[string]win{}
		for w := range wins {
			Expect(byPod).NotTo(HaveKey(w.pod), "Pod %s handed out twice", w.pod)
			byPod[w.pod] = w
		}
		// The 4 adopted Pods went to one claim each; a claim that lost a Pod to the other
		// manager left it alone and took a Pod its manager started.
		Expect(len(byPod)).To(BeNumerically(">=", 4))
		for _, p := range sandboxPods(ctx, Default, ns) {
			if _, ok := byPod[p.Name]; !ok {
				continue // a Pod started for a claim that had given up
			}
			c := kubernetes.ClaimOf(&p)
			Expect(c).NotTo(BeNil())
			Expect(p.Labels[vizv1.LabelSandboxState]).To(Equal(vizv1.SandboxBusy))
			Expect(c.Key).To(Equal(byPod[p.Name].owner), "the Pod's claim names the one winner")
			Expect(c.Manager).To(Equal(byPod[p.Name].manager))
		}
	})

	It("adopts its Pods after a restart: warm ones stay, a busy one whose job was lost is deleted and its request retried", func() {
		ns := kubeletNamespace(ctx, nil)
		first := newFakeAgent()
		first.hold()
		h1 := startManager([]string{ns}, harnessOptions{factory: fakeFactory(sandboxtest.NewPool(1)), kubeRunner: first.runner})
		Expect(k8sClient.Create(ctx, newKubePool(ns, "default", 2, 3))).To(Succeed())
		waitPoolReady(ctx, ns, "default", 2)
		Expect(k8sClient.Create(ctx, newRequest(ns, "interrupted", "print(1)"))).To(Succeed())
		Eventually(first.busyNow, 30*time.Second).Should(Equal(1))
		var busy, warm []corev1.Pod
		Eventually(func(g Gomega) {
			pods := sandboxPods(ctx, g, ns)
			busy, warm = podsInState(pods, vizv1.SandboxBusy), podsInState(pods, vizv1.SandboxWarm)
			g.Expect(busy).To(HaveLen(1))
			g.Expect(warm).To(HaveLen(2), "a new warm Pod replaced the claimed one")
			g.Expect(warm[0].Status.PodIP).NotTo(BeEmpty())
			g.Expect(warm[1].Status.PodIP).NotTo(BeEmpty())
		}, 30*time.Second).Should(Succeed())
		claim := kubernetes.ClaimOf(&busy[0])
		Expect(claim).NotTo(BeNil())
		Expect(claim.Key).To(Equal(ns + "/interrupted"))
		Expect(claim.Attempt).To(Equal(int32(1)))
		h1.crash() // the manager dies mid-job, its pools not closed: the job is lost

		second := newFakeAgent()
		second.hold()
		h2 := startManager([]string{ns}, harnessOptions{factory: fakeFactory(sandboxtest.NewPool(1)), kubeRunner: second.runner, clock: h1.clock})
		defer h2.stop()
		Eventually(func(g Gomega) {
			vr := get(ctx, g, ns, "interrupted")
			g.Expect(vr.Status.NextRetryTime).NotTo(BeNil())
			g.Expect(vr.Status.Attempts).To(Equal(int32(1)))
		}, 30*time.Second).Should(Succeed())
		// The lost job's Pod goes; the warm Pods are the same Pods as before.
		Eventually(func(g Gomega) {
			pods := sandboxPods(ctx, g, ns)
			g.Expect(uids(pods)).NotTo(ContainElement(string(busy[0].UID)))
			g.Expect(uids(podsInState(pods, vizv1.SandboxWarm))).To(ConsistOf(uids(warm)))
		}, 30*time.Second).Should(Succeed())
		second.open()
		h2.clock.Step(6 * time.Second)
		poke(ctx, ns, "interrupted")
		Eventually(phaseOf(ctx, ns, "interrupted"), 30*time.Second).Should(Equal(vizv1.PhaseSucceeded))
		vr := get(ctx, Default, ns, "interrupted")
		Expect(vr.Status.Attempts).To(Equal(int32(2)), "the lost attempt counted")
		Expect(uids(warm)).To(ContainElement(podUID(warm, vr.Status.Execution.SandboxID)), "the retry ran in a Pod the first manager made")
	})

	It("keeps its warm Pods across a clean stop (a rollout): the next manager adopts the same Pods", func() {
		ns := kubeletNamespace(ctx, nil)
		h1 := startManager([]string{ns}, harnessOptions{factory: fakeFactory(sandboxtest.NewPool(1)), kubeRunner: newFakeAgent().runner})
		Expect(k8sClient.Create(ctx, newKubePool(ns, "default", 2, 3))).To(Succeed())
		waitPoolReady(ctx, ns, "default", 2)
		var warm []corev1.Pod
		Eventually(func(g Gomega) {
			warm = podsInState(sandboxPods(ctx, g, ns), vizv1.SandboxWarm)
			g.Expect(warm).To(HaveLen(2))
		}, 30*time.Second).Should(Succeed())
		h1.shutdown()
		Expect(uids(podsInState(sandboxPods(ctx, Default, ns), vizv1.SandboxWarm))).To(ConsistOf(uids(warm)),
			"a clean stop deleted warm Pods")

		h2 := startManager([]string{ns}, harnessOptions{factory: fakeFactory(sandboxtest.NewPool(1)), kubeRunner: newFakeAgent().runner})
		defer h2.stop()
		Expect(k8sClient.Create(ctx, newRequest(ns, "after", "print(1)"))).To(Succeed())
		Eventually(phaseOf(ctx, ns, "after"), 30*time.Second).Should(Equal(vizv1.PhaseSucceeded))
		vr := get(ctx, Default, ns, "after")
		Expect(uids(warm)).To(ContainElement(podUID(warm, vr.Status.Execution.SandboxID)), "the request ran in a Pod the first manager made")
	})

	It("replaces warm Pods when the template changes, and lets a busy one finish its job first", func() {
		ns := kubeletNamespace(ctx, nil)
		agent := newFakeAgent()
		agent.hold()
		h := startManager([]string{ns}, harnessOptions{factory: fakeFactory(sandboxtest.NewPool(1)), kubeRunner: agent.runner})
		defer h.stop()
		Expect(k8sClient.Create(ctx, newKubePool(ns, "default", 2, 4))).To(Succeed())
		waitPoolReady(ctx, ns, "default", 2)
		Expect(k8sClient.Create(ctx, newRequest(ns, "long", "print(1)"))).To(Succeed())
		Eventually(agent.busyNow, 30*time.Second).Should(Equal(1))
		var busy []corev1.Pod
		Eventually(func(g Gomega) {
			busy = podsInState(sandboxPods(ctx, g, ns), vizv1.SandboxBusy)
			g.Expect(busy).To(HaveLen(1))
		}, 10*time.Second).Should(Succeed())
		oldHash := busy[0].Labels[vizv1.LabelTemplateHash]

		updateClass(ctx, kubeClassName(ns, "default"), func(c *vizv1.SandboxClass) {
			c.Spec.Kubernetes.Image = "ghcr.io/vizops/viz-sandbox:v2"
		})
		Eventually(func(g Gomega) {
			pods := sandboxPods(ctx, g, ns)
			warm := podsInState(pods, vizv1.SandboxWarm)
			g.Expect(warm).To(HaveLen(2))
			for _, p := range warm {
				g.Expect(p.Spec.Containers[0].Image).To(Equal("ghcr.io/vizops/viz-sandbox:v2"))
				g.Expect(p.Labels[vizv1.LabelTemplateHash]).NotTo(Equal(oldHash))
			}
			g.Expect(uids(podsInState(pods, vizv1.SandboxBusy))).To(Equal(uids(busy)), "the busy Pod is left to finish")
		}, 30*time.Second).Should(Succeed())
		agent.open()
		Eventually(phaseOf(ctx, ns, "long"), 30*time.Second).Should(Equal(vizv1.PhaseSucceeded))
		Expect(get(ctx, Default, ns, "long").Status.Attempts).To(Equal(int32(1)), "the template change cost the running request nothing")
		Eventually(func(g Gomega) []string { return uids(sandboxPods(ctx, g, ns)) }, 30*time.Second).ShouldNot(ContainElement(string(busy[0].UID)))
	})

	It("removes its Pods, NetworkPolicy and Secret when the pool is deleted", func() {
		ns := kubeletNamespace(ctx, nil)
		h := startManager([]string{ns}, harnessOptions{factory: fakeFactory(sandboxtest.NewPool(1)), kubeRunner: newFakeAgent().runner})
		defer h.stop()
		sp := newKubePool(ns, "gone", 2, 2)
		Expect(k8sClient.Create(ctx, sp)).To(Succeed())
		Eventually(func(g Gomega) {
			g.Expect(getPool(ctx, g, ns, "gone").Status.Ready).To(Equal(int32(2)))
			g.Expect(getPool(ctx, g, ns, "gone").Finalizers).To(ContainElement(vizv1.FinalizerSandboxPool))
		}, 30*time.Second).Should(Succeed())
		Expect(k8sClient.Delete(ctx, sp)).To(Succeed())
		Eventually(func() bool {
			return apierrors.IsNotFound(k8sClient.Get(ctx, keyOf(ns, "gone"), &vizv1.SandboxPool{}))
		}, 30*time.Second).Should(BeTrue())
		Expect(sandboxPods(ctx, Default, ns)).To(BeEmpty())
		var nps networkingv1.NetworkPolicyList
		Expect(k8sClient.List(ctx, &nps, client.InNamespace(ns))).To(Succeed())
		Expect(nps.Items).To(BeEmpty())
		var secrets corev1.SecretList
		Expect(k8sClient.List(ctx, &secrets, client.InNamespace(ns), client.HasLabels{vizv1.LabelSandboxPoolUID})).To(Succeed())
		Expect(secrets.Items).To(BeEmpty())
	})

	It("removes its Pods, NetworkPolicy and Secret when the pool becomes a Local pool", func() {
		ns := kubeletNamespace(ctx, nil)
		h := startManager([]string{ns}, harnessOptions{factory: fakeFactory(sandboxtest.NewPool(2)), kubeRunner: newFakeAgent().runner})
		defer h.stop()
		Expect(k8sClient.Create(ctx, newKubePool(ns, "switch", 2, 2))).To(Succeed())
		waitPoolReady(ctx, ns, "switch", 2)
		Eventually(func(g Gomega) {
			sp := getPool(ctx, g, ns, "switch")
			sp.Spec.ClassName = localClassName
			g.Expect(k8sClient.Update(ctx, sp)).To(Succeed())
		}, 10*time.Second).Should(Succeed())
		Eventually(func(g Gomega) {
			g.Expect(sandboxPods(ctx, g, ns)).To(BeEmpty())
			var nps networkingv1.NetworkPolicyList
			g.Expect(k8sClient.List(ctx, &nps, client.InNamespace(ns))).To(Succeed())
			g.Expect(nps.Items).To(BeEmpty())
			sp := getPool(ctx, g, ns, "switch")
			g.Expect(sp.Finalizers).NotTo(ContainElement(vizv1.FinalizerSandboxPool))
			g.Expect(sp.Status.Conditions).To(ContainElement(HaveField("Message", ContainSubstring("Local pool of class local running"))))
		}, 30*time.Second).Should(Succeed())
		Expect(k8sClient.Create(ctx, newRequest(ns, "local", "print(1)", func(vr *vizv1.VisualizationRequest) { vr.Spec.SandboxPoolRef.Name = "switch" }))).To(Succeed())
		Eventually(phaseOf(ctx, ns, "local"), 30*time.Second).Should(Equal(vizv1.PhaseSucceeded))
		Expect(get(ctx, Default, ns, "local").Status.Execution.Backend).To(Equal(string(vizv1.BackendLocal)))
	})

	It("reports Pods that cannot start as SandboxStartFailed", func() {
		ns := newNamespace(ctx, nil)
		h := startManager([]string{ns}, harnessOptions{factory: fakeFactory(sandboxtest.NewPool(1)), kubeRunner: newFakeAgent().runner})
		defer h.stop()
		Expect(k8sClient.Create(ctx, newKubePool(ns, "broken", 1, 1))).To(Succeed())
		// The kubelet cannot pull the image, of any Pod: the pool deletes each and tries
		// again after a backoff.
		kctx, stopKubelet := context.WithCancel(ctx)
		defer stopKubelet()
		go func() {
			defer GinkgoRecover()
			for kctx.Err() == nil {
				var pods corev1.PodList
				if err := k8sClient.List(kctx, &pods, client.InNamespace(ns), client.HasLabels{vizv1.LabelSandboxPoolUID}); err == nil {
					for i := range pods.Items {
						p := &pods.Items[i]
						if len(p.Status.ContainerStatuses) > 0 || p.DeletionTimestamp != nil {
							continue
						}
						p.Status.Phase = corev1.PodPending
						p.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: kubernetes.ContainerName,
							State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "ImagePullBackOff", Message: "manifest unknown"}}}}
						_ = k8sClient.Status().Update(kctx, p) // a conflict or a deleted Pod: next round
					}
				}
				time.Sleep(50 * time.Millisecond)
			}
		}()
		Eventually(func(g Gomega) {
			sp := getPool(ctx, g, ns, "broken")
			g.Expect(sp.Status.Conditions).To(ContainElement(And(
				HaveField("Reason", vizv1.ReasonSandboxStartFailed),
				HaveField("Message", ContainSubstring("ImagePullBackOff: manifest unknown")))))
			g.Expect(sp.Status.Sandboxes).NotTo(ContainElement(HaveField("State", "Ready")))
		}, 30*time.Second).Should(Succeed())
		// A Pod the API server refuses is reported too.
		Expect(k8sClient.Create(ctx, newKubePool(ns, "refused", 1, 1, func(c *vizv1.SandboxClass) {
			c.Spec.Kubernetes.RuntimeClassName = "no-such-runtime"
		}))).To(Succeed())
		Eventually(func(g Gomega) {
			g.Expect(getPool(ctx, g, ns, "refused").Status.Conditions).To(ContainElement(And(
				HaveField("Reason", vizv1.ReasonSandboxStartFailed),
				HaveField("Message", ContainSubstring(`RuntimeClass "no-such-runtime" not found`)))))
		}, 30*time.Second).Should(Succeed())
		// A request does not wait forever on it: its attempt fails as BackendUnavailable.
		Expect(k8sClient.Create(ctx, newRequest(ns, "stuck", "print(1)", func(vr *vizv1.VisualizationRequest) {
			vr.Spec.SandboxPoolRef.Name = "broken"
			vr.Spec.MaxAttempts = 1
		}))).To(Succeed())
		Eventually(phaseOf(ctx, ns, "stuck"), 30*time.Second).Should(Equal(vizv1.PhaseFailed))
		Expect(get(ctx, Default, ns, "stuck").Status.Conditions).To(ContainElement(And(
			HaveField("Type", vizv1.ConditionReady), HaveField("Message", ContainSubstring("ImagePullBackOff")))))
	})
})

func podUID(pods []corev1.Pod, name string) string {
	for _, p := range pods {
		if p.Name == name {
			return string(p.UID)
		}
	}
	return "not-one-of-them:" + name
}

func mustPoolConfig(sp *vizv1.SandboxPool) sandbox.PoolConfig {
	cfg, err := poolConfig(sp, nil, "")
	Expect(err).NotTo(HaveOccurred())
	return cfg
}

// The real agent (internal/sandbox/agent, as cmd/sandbox-agent serves it) on loopback,
// with isolation none as in a sandbox Pod: the fake kubelet gives each Pod the IP
// 127.0.0.1, and the test's NewRunner maps http://<podIP>:49999 (what production
// dials) to the loopback agent's port, which the test picks.
var _ = Describe("Kubernetes backend with the sandbox agent", func() {
	ctx := context.Background()

	It("ends VisualizationRequests Succeeded with the PNG of plt.show() and the HTML of a plotly figure", func() {
		ns := kubeletNamespace(ctx, nil)

		var dialed sync.Map // production URLs the runner was asked for
		agents := &podAgents{}
		defer agents.close()
		runner := func(pod *corev1.Pod, token string) kubernetes.Runner {
			c := kubernetes.AgentClient(pod, token).(*codeinterpreter.Client)
			dialed.Store(c.BaseURL, true)
			c.BaseURL = agents.url(ctx, pod)
			return c
		}
		h := startManager([]string{ns}, harnessOptions{factory: fakeFactory(sandboxtest.NewPool(1)), kubeRunner: runner})
		defer h.stop()
		sp := newKubePool(ns, "default", 1, 2)
		Expect(k8sClient.Create(ctx, sp)).To(Succeed())

		Expect(k8sClient.Create(ctx, newRequest(ns, "matplotlib", "import matplotlib.pyplot as plt\nplt.bar(['a', 'b'], [3, 5])\nplt.title('k8s')\nplt.show()"))).To(Succeed())
		Expect(k8sClient.Create(ctx, newRequest(ns, "plotly", "import plotly.express as px\nfig = px.bar(x=['a', 'b'], y=[3, 5])\nfig.show()",
			func(vr *vizv1.VisualizationRequest) { vr.Spec.OutputFormats = []vizv1.OutputFormat{vizv1.FormatHTML} }))).To(Succeed())
		for _, name := range []string{"matplotlib", "plotly"} {
			Eventually(phaseOf(ctx, ns, name), 2*time.Minute).Should(Equal(vizv1.PhaseSucceeded), name)
		}
		png := get(ctx, Default, ns, "matplotlib")
		Expect(png.Status.Execution.Backend).To(Equal(string(vizv1.BackendKubernetes)))
		Expect(png.Status.Artifacts).To(ContainElement(And(HaveField("Format", "png"),
			HaveField("Data", HavePrefix(string([]byte{0x89, 'P', 'N', 'G'}))))))
		html := get(ctx, Default, ns, "plotly")
		Expect(html.Status.Artifacts).To(ContainElement(And(HaveField("Format", "html"),
			HaveField("Data", WithTransform(func(b []byte) string { return string(b) }, ContainSubstring("plotly"))))))
		_, ok := dialed.Load("http://127.0.0.1:49999")
		Expect(ok).To(BeTrue(), "production code dials the Pod's IP on 49999")
	})

	It("gives each Pod its own token: one Pod's token is refused by another Pod's agent, and its Secret goes with the Pod", func() {
		ns := kubeletNamespace(ctx, nil)
		h := startManager([]string{ns}, harnessOptions{factory: fakeFactory(sandboxtest.NewPool(1)), kubeRunner: newFakeAgent().runner})
		defer h.stop()
		Expect(k8sClient.Create(ctx, newKubePool(ns, "default", 2, 2))).To(Succeed())
		waitPoolReady(ctx, ns, "default", 2)
		pods := sandboxPods(ctx, Default, ns)
		Expect(pods).To(HaveLen(2))
		a, b := &pods[0], &pods[1]
		tokenA, tokenB := podSecretToken(ctx, Default, a), podSecretToken(ctx, Default, b)
		Expect(tokenA).NotTo(Equal(tokenB))
		// The manager derives each Pod's token; it never reads the Secret back.
		Expect(kubernetes.PodToken(h.kube.TokenKey, a)).To(Equal(tokenA))

		// Pod B's agent, as the kubelet would start it with B's Secret.
		srv, err := agent.NewServer(agent.Options{Token: tokenB, Isolation: agent.IsolationNone, WorkDir: GinkgoT().TempDir(), WarmKernels: -1})
		Expect(err).NotTo(HaveOccurred())
		defer func() { _ = srv.Close() }()
		ts := httptest.NewServer(srv)
		defer ts.Close()
		_, err = (&codeinterpreter.Client{BaseURL: ts.URL, AccessToken: tokenA}).ListContexts(ctx)
		Expect(err).To(MatchError(codeinterpreter.ErrUnauthorized), "Pod A's token opens Pod B")
		_, err = (&codeinterpreter.Client{BaseURL: ts.URL, AccessToken: tokenB}).ListContexts(ctx)
		Expect(err).NotTo(HaveOccurred())

		// Pod A deleted by someone else: its token Secret goes too; B's stays.
		Expect(k8sClient.Delete(ctx, a)).To(Succeed())
		Eventually(func() bool {
			return apierrors.IsNotFound(k8sClient.Get(ctx, keyOf(ns, a.Spec.Volumes[1].Secret.SecretName), &corev1.Secret{}))
		}, 30*time.Second).Should(BeTrue())
		Expect(k8sClient.Get(ctx, keyOf(ns, b.Spec.Volumes[1].Secret.SecretName), &corev1.Secret{})).To(Succeed())
	})

	It("fails the attempt, and replaces the Pod, when the agent refuses the token", func() {
		ns := kubeletNamespace(ctx, nil)
		srv, err := agent.NewServer(agent.Options{Token: "another-pool's-token", Isolation: agent.IsolationNone, WorkDir: GinkgoT().TempDir(), WarmKernels: -1})
		Expect(err).NotTo(HaveOccurred())
		defer func() { _ = srv.Close() }()
		ts := httptest.NewServer(srv)
		defer ts.Close()
		runner := func(pod *corev1.Pod, token string) kubernetes.Runner {
			c := kubernetes.AgentClient(pod, token).(*codeinterpreter.Client)
			c.BaseURL = ts.URL
			return c
		}
		h := startManager([]string{ns}, harnessOptions{factory: fakeFactory(sandboxtest.NewPool(1)), kubeRunner: runner})
		defer h.stop()
		Expect(k8sClient.Create(ctx, newKubePool(ns, "default", 1, 1))).To(Succeed())
		var first []corev1.Pod
		Eventually(func(g Gomega) {
			first = podsInState(sandboxPods(ctx, g, ns), vizv1.SandboxWarm)
			g.Expect(first).To(HaveLen(1))
		}, 30*time.Second).Should(Succeed())
		Expect(k8sClient.Create(ctx, newRequest(ns, "refused", "print(1)", func(vr *vizv1.VisualizationRequest) { vr.Spec.MaxAttempts = 1 }))).To(Succeed())
		Eventually(phaseOf(ctx, ns, "refused"), 30*time.Second).Should(Equal(vizv1.PhaseFailed))
		Expect(get(ctx, Default, ns, "refused").Status.Conditions).To(ContainElement(And(
			HaveField("Type", vizv1.ConditionReady), HaveField("Message", ContainSubstring("access token")))))
		Eventually(func(g Gomega) []string { return uids(sandboxPods(ctx, g, ns)) }, 30*time.Second).ShouldNot(ContainElement(string(first[0].UID)))
	})
})

// podSecretToken reads the token a sandbox Pod's agent gets: the Secret its token
// volume names.
func podSecretToken(ctx context.Context, g Gomega, pod *corev1.Pod) string {
	var name string
	for _, v := range pod.Spec.Volumes {
		if v.Secret != nil {
			name = v.Secret.SecretName
		}
	}
	sec := &corev1.Secret{}
	g.Expect(k8sClient.Get(ctx, keyOf(pod.Namespace, name), sec)).To(Succeed())
	g.Expect(sec.OwnerReferences).To(ContainElement(HaveField("Name", pod.OwnerReferences[0].Name)))
	return string(sec.Data[kubernetes.TokenKey])
}

// podAgents runs one real agent per sandbox Pod, on loopback, started with the token
// of the Pod's Secret, as the kubelet would start the Pod's container.
type podAgents struct {
	mu   sync.Mutex
	urls map[string]string
	stop []func()
}

func (p *podAgents) url(ctx context.Context, pod *corev1.Pod) string {
	p.mu.Lock()
	defer p.mu.Unlock()
	if u, ok := p.urls[string(pod.UID)]; ok {
		return u
	}
	// Called from the manager's goroutines: failures make an unreachable agent (the
	// request then fails, and the spec with it), never a panic here.
	sec := &corev1.Secret{}
	if err := k8sClient.Get(ctx, keyOf(pod.Namespace, pod.Spec.Volumes[1].Secret.SecretName), sec); err != nil {
		return "http://127.0.0.1:1"
	}
	dir, err := os.MkdirTemp("", "pod-agent-")
	if err != nil {
		return "http://127.0.0.1:1"
	}
	srv, err := agent.NewServer(agent.Options{Token: string(sec.Data[kubernetes.TokenKey]), Isolation: agent.IsolationNone, WorkDir: dir})
	if err != nil {
		return "http://127.0.0.1:1"
	}
	ts := httptest.NewServer(srv)
	p.stop = append(p.stop, func() { ts.Close(); _ = srv.Close(); _ = os.RemoveAll(dir) })
	if p.urls == nil {
		p.urls = map[string]string{}
	}
	p.urls[string(pod.UID)] = ts.URL
	return ts.URL
}

func (p *podAgents) close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, f := range p.stop {
		f()
	}
}
