// Package e2e runs the operator against a real one-node cluster (test/e2e/cluster):
// sandbox Pods started by a real kubelet with containerd and runc, from the sandbox
// image built from Dockerfile.sandbox's recipe (hack/images/build). `make e2e` builds
// and caches every part, then runs these specs (Ginkgo label e2e). Outside `make e2e`
// (VIZOPS_E2E unset, as in `make test`) the suite skips. docs/e2e.md describes it.
//
// Network: the specs talk only to the API server on loopback and to Pod IPs on the
// cluster's own CNI bridge on this machine.
package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"

	vizv1 "github.com/vizops/viz-operator/api/v1alpha1"
	"github.com/vizops/viz-operator/test/e2e/cluster"
)

// Names and addresses of the e2e cluster.
const (
	nodeName          = "vizops-e2e"
	podCIDR           = "10.244.77.0/24"
	bridge            = "vizops-e2e0"
	operatorNamespace = "vizops-system"
)

var (
	root         string
	sandboxImage string
	clus         *cluster.Cluster
	k8sClient    client.Client
	scheme       = runtime.NewScheme()
	manager      *cluster.Manager
	managerBin   string
	managerRuns  int
	logDir       string
	report       *os.File
)

func TestE2E(t *testing.T) {
	RegisterFailHandler(Fail)
	RunSpecs(t, "e2e Suite")
}

func env(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

var _ = BeforeSuite(func(ctx SpecContext) {
	if os.Getenv("VIZOPS_E2E") != "1" {
		Skip("the e2e suite runs a real cluster; run it with `make e2e` (VIZOPS_E2E=1)")
	}
	Expect(clientgoscheme.AddToScheme(scheme)).To(Succeed())
	Expect(vizv1.AddToScheme(scheme)).To(Succeed())
	var err error
	root, err = filepath.Abs(filepath.Join("..", ".."))
	Expect(err).NotTo(HaveOccurred())
	images := env("E2E_IMAGES", filepath.Join(root, "bin", "e2e", "images"))
	logDir = env("E2E_LOG_DIR", filepath.Join(root, "bin", "e2e", "logs"))
	Expect(os.MkdirAll(logDir, 0o755)).To(Succeed())
	report, err = os.Create(filepath.Join(logDir, "report.txt"))
	Expect(err).NotTo(HaveOccurred())
	sandboxImage = env("E2E_SANDBOX_IMAGE", "ghcr.io/vizops/sandbox:e2e")
	managerBin = env("E2E_MANAGER", filepath.Join(root, "bin", "manager"))
	need := func(name string) string {
		v := os.Getenv(name)
		Expect(v).NotTo(BeEmpty(), "%s is not set: run the suite with `make e2e`", name)
		return v
	}
	clus, err = cluster.Start(ctx, cluster.Options{
		Assets:            need("KUBEBUILDER_ASSETS"),
		Kubelet:           need("E2E_KUBELET"),
		Scheduler:         need("E2E_KUBE_SCHEDULER"),
		ControllerManager: need("E2E_KUBE_CONTROLLER_MANAGER"),
		KubeRouter:        need("E2E_KUBE_ROUTER"),
		CRDs:              filepath.Join(root, "config", "crd", "bases"),
		Images:            []string{filepath.Join(images, "pause.tar"), filepath.Join(images, "sandbox.tar")},
		PauseImage:        env("E2E_PAUSE_IMAGE", "vizops.local/pause:e2e"),
		StateDir:          env("E2E_STATE_DIR", "/var/lib/vizops-e2e"),
		RunDir:            filepath.Join(env("E2E_RUN_DIR", "/run/vizops-e2e"), fmt.Sprint(os.Getpid())),
		LogDir:            logDir,
		NodeName:          nodeName,
		PodCIDR:           podCIDR,
		Bridge:            bridge,
		Log:               func(f string, a ...any) { fmt.Fprintf(GinkgoWriter, "cluster: "+f+"\n", a...) },
	})
	Expect(err).NotTo(HaveOccurred())
	k8sClient, err = client.New(clus.Config, client.Options{Scheme: scheme})
	Expect(err).NotTo(HaveOccurred())
	Expect(k8sClient.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: operatorNamespace}})).To(Succeed())
	startManager()
}, NodeTimeout(15*time.Minute))

var _ = AfterSuite(func() {
	if manager != nil {
		_ = manager.Stop(20 * time.Second)
	}
	if clus != nil {
		clus.Stop()
	}
	if report != nil {
		report.Close()
	}
})

// startManager runs the real manager binary (bin/manager) against the cluster, as a
// Deployment would run it, with the Local backend off.
func startManager() {
	managerRuns++
	var err error
	manager, err = clus.StartManager(managerBin,
		filepath.Join(logDir, fmt.Sprintf("manager-%d.log", managerRuns)),
		"--operator-namespace="+operatorNamespace, "--local-backend=false")
	Expect(err).NotTo(HaveOccurred())
}

// stopManager stops it (SIGTERM), as a rollout would.
func stopManager() {
	Expect(manager.Stop(20 * time.Second)).To(Succeed())
	manager = nil
}

// record writes a measurement to the report (bin/e2e/logs/report.txt) and the spec's report.
func record(name string, d time.Duration, note string) {
	line := fmt.Sprintf("%-40s %8.2f s  %s", name, d.Seconds(), note)
	fmt.Fprintln(report, line)
	AddReportEntry(name, line)
}

// dump prints the cluster's Pods and the manager's log tail when a spec fails.
func dump() {
	if !CurrentSpecReport().Failed() || clus == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	fmt.Fprintf(GinkgoWriter, "pods:\n%s\nmanager log:\n%s\n", clus.Pods(ctx),
		cluster.Tail(filepath.Join(logDir, fmt.Sprintf("manager-%d.log", managerRuns)), 40))
	fmt.Fprintf(GinkgoWriter, "kubelet log:\n%s\n", cluster.Tail(filepath.Join(logDir, "kubelet.log"), 30))
}

var _ = JustAfterEach(dump)

var nsCounter int

// newNamespace makes a namespace for one spec, enforcing the restricted Pod Security
// level: every sandbox Pod must pass it or the API server refuses it.
func newNamespace(ctx context.Context) string {
	nsCounter++
	name := fmt.Sprintf("e2e-%d-%d", os.Getpid()%1000, nsCounter)
	Expect(k8sClient.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{
		Name: name,
		Labels: map[string]string{
			"pod-security.kubernetes.io/enforce":         "restricted",
			"pod-security.kubernetes.io/enforce-version": "latest",
		},
	}})).To(Succeed())
	// Deleting the namespace ends its Pods (the namespace controller deletes them, the
	// kubelet stops them), so they do not hold the node's CPU for the next spec.
	DeferCleanup(func(ctx context.Context) {
		_ = k8sClient.Delete(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}})
	})
	return name
}

// poolOptions are what specs vary in a Kubernetes pool.
type poolOptions struct {
	minReady, maxSandboxes int32
	memory, cpu            string
	// egress is the class's allow-list (none: no network at all).
	egress []vizv1.EgressRule
	// seccompProfile is the class's Localhost seccomp profile; "" for RuntimeDefault.
	seccompProfile string
	// pids is the pool's process limit per sandbox (0: the default).
	pids int32
}

// createKubernetesPool makes a Kubernetes SandboxClass of the pool's own running image
// (kubernetesClass) and a SandboxPool on it. With kubernetesClass it is the one place
// that knows how a pool gets its image.
func createKubernetesPool(ctx context.Context, ns, name, image string, o poolOptions) *vizv1.SandboxPool {
	if o.maxSandboxes == 0 {
		o.maxSandboxes = 2
	}
	if o.memory == "" {
		o.memory = "512Mi"
	}
	mem := mustQuantity(o.memory)
	// Half a core: the node has 2, and a spec's warm and busy Pods must fit beside
	// the next spec's (requests equal limits, so the Pods are Guaranteed).
	if o.cpu == "" {
		o.cpu = "500m"
	}
	cpu := mustQuantity(o.cpu)
	class := kubernetesClass(ns+"-"+name, image, o)
	Expect(k8sClient.Create(ctx, class)).To(Succeed())
	DeferCleanup(func() { _ = k8sClient.Delete(context.Background(), class) })
	p := &vizv1.SandboxPool{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: vizv1.SandboxPoolSpec{
			ClassName:    class.Name,
			MinReady:     &o.minReady,
			MaxSandboxes: o.maxSandboxes,
			Resources:    vizv1.SandboxResources{CPU: &cpu, Memory: &mem},
		},
	}
	if o.pids > 0 {
		p.Spec.Resources.Pids = &o.pids
	}
	Expect(k8sClient.Create(ctx, p)).To(Succeed())
	return p
}

// kubernetesClass is a Kubernetes SandboxClass of image (hostUsers true: containerd
// 1.6 runs no Pod in a user namespace) with o's egress and seccomp profile, for a pool
// or the gateway; the caller creates it.
func kubernetesClass(name, image string, o poolOptions) *vizv1.SandboxClass {
	hostUsers := true
	class := &vizv1.SandboxClass{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: vizv1.SandboxClassSpec{
			Backend:    vizv1.BackendKubernetes,
			Egress:     o.egress,
			Kubernetes: &vizv1.KubernetesClass{Image: image, MaxExecutionsPerSandbox: 1, HostUsers: &hostUsers},
		},
	}
	if o.seccompProfile != "" {
		class.Spec.Kubernetes.SeccompProfile = &vizv1.SandboxSeccompProfile{Type: vizv1.SeccompLocalhost, LocalhostProfile: o.seccompProfile}
	}
	return class
}

// sandboxPods are the Pods of a pool.
func sandboxPods(ctx context.Context, g Gomega, p *vizv1.SandboxPool) []corev1.Pod {
	var pods corev1.PodList
	g.Expect(k8sClient.List(ctx, &pods, client.InNamespace(p.Namespace),
		client.MatchingLabels{vizv1.LabelSandboxPoolUID: string(p.UID)})).To(Succeed())
	return pods.Items
}

func podReady(p *corev1.Pod) (bool, time.Time) {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue {
			return true, c.LastTransitionTime.Time
		}
	}
	return false, time.Time{}
}

// waitPoolReady waits for the pool's Ready condition and returns its ready Pods.
func waitPoolReady(ctx context.Context, p *vizv1.SandboxPool, want int) []corev1.Pod {
	var ready []corev1.Pod
	Eventually(func(g Gomega) {
		var got vizv1.SandboxPool
		g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(p), &got)).To(Succeed())
		g.Expect(got.Status.Ready).To(BeNumerically(">=", want), "pool status %+v", got.Status)
		ready = nil
		for _, pod := range sandboxPods(ctx, g, p) {
			if ok, _ := podReady(&pod); ok && pod.DeletionTimestamp == nil {
				ready = append(ready, pod)
			}
		}
		g.Expect(len(ready)).To(BeNumerically(">=", want))
	}).WithContext(ctx).WithTimeout(4 * time.Minute).WithPolling(500 * time.Millisecond).Should(Succeed())
	return ready
}

// newRequest makes a VisualizationRequest on pool.
func newRequest(ctx context.Context, ns, name, pool string, spec vizv1.VisualizationRequestSpec) *vizv1.VisualizationRequest {
	spec.SandboxPoolRef = vizv1.SandboxPoolReference{Name: pool}
	vr := &vizv1.VisualizationRequest{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns}, Spec: spec}
	Expect(k8sClient.Create(ctx, vr)).To(Succeed())
	return vr
}

// waitFinished waits for a request to reach Succeeded or Failed and returns it.
func waitFinished(ctx context.Context, vr *vizv1.VisualizationRequest, timeout time.Duration) *vizv1.VisualizationRequest {
	var got vizv1.VisualizationRequest
	Eventually(func(g Gomega) {
		g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(vr), &got)).To(Succeed())
		g.Expect(got.Status.Phase).To(BeElementOf(vizv1.PhaseSucceeded, vizv1.PhaseFailed), "status %s", brief(&got))
	}).WithContext(ctx).WithTimeout(timeout).WithPolling(500 * time.Millisecond).Should(Succeed())
	return &got
}

func brief(vr *vizv1.VisualizationRequest) string {
	var b strings.Builder
	fmt.Fprintf(&b, "phase=%s attempts=%d", vr.Status.Phase, vr.Status.Attempts)
	for _, c := range vr.Status.Conditions {
		fmt.Fprintf(&b, " [%s=%s %s: %.200s]", c.Type, c.Status, c.Reason, c.Message)
	}
	if e := vr.Status.Execution; e != nil {
		fmt.Fprintf(&b, " sandbox=%s stdout=%.300q stderr=%.300q", e.SandboxID, e.Stdout, e.Stderr)
		if e.Error != nil {
			fmt.Fprintf(&b, " error=%s: %.200s", e.Error.Name, e.Error.Value)
		}
	}
	return b.String()
}
