package e2e

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	vizv1 "github.com/vizops/viz-operator/api/v1alpha1"
	"github.com/vizops/viz-operator/internal/gateway"
	"github.com/vizops/viz-operator/test/conformance"
	"github.com/vizops/viz-operator/test/e2e/cluster"
)

// gatewayDomain is the gateway's sandbox domain (the clients' E2B_DOMAIN, with the
// gateway's port). test/conformance/e2b-js/resolve-test-domain.cjs, preloaded into
// Node, resolves every name under it to 127.0.0.1, where the gateway listens, as a
// wildcard DNS record would point them at the gateway's Service.
const gatewayDomain = "e2b.vizops.test"

var _ = Describe("E2B's official client through the gateway on a real node", Label("e2e"), func() {
	It("creates a sandbox Pod, draws a matplotlib PNG, keeps notebook state, refuses a wrong key and kills it", func(ctx SpecContext) {
		node, dir := e2bJSClient()
		ns := newNamespace(ctx)

		// The tenant's API key: a labelled Secret in its namespace, where its
		// sandboxes run.
		apiKey := "e2b_" + randomHex(20)
		Expect(k8sClient.Create(ctx, &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Name: "app-key", Namespace: ns, Labels: map[string]string{vizv1.LabelGatewayAPIKey: "true"}},
			Data:       map[string][]byte{vizv1.GatewayAPIKeyDataKey: []byte(apiKey)},
		})).To(Succeed())
		// The class the SDK's default template (code-interpreter-v1) selects: the
		// cluster's default class, admitting only this namespace, half a core per
		// sandbox (the node has two).
		class := kubernetesClass(ns+"-gateway", sandboxImage, poolOptions{})
		class.Annotations = map[string]string{vizv1.AnnotationDefaultClass: "true"}
		class.Spec.NamespaceSelector = &metav1.LabelSelector{MatchLabels: map[string]string{corev1.LabelMetadataName: ns}}
		class.Spec.DefaultResources = vizv1.SandboxResources{CPU: ptr.To(mustQuantity("500m")), Memory: ptr.To(mustQuantity("512Mi"))}
		Expect(k8sClient.Create(ctx, class)).To(Succeed())
		DeferCleanup(func() { _ = k8sClient.Delete(context.Background(), class) })

		gw := startGateway(ctx)
		pods := watchGatewayPods(ctx, ns)

		cctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
		defer cancel()
		run := conformance.GatewayClient{Domain: gatewayDomain, Port: gw.port, APIKey: apiKey, CAFile: gw.caFile}.Command(cctx, node, dir)
		start := time.Now()
		out, err := run.CombinedOutput()
		took := time.Since(start)
		GinkgoWriter.Printf("gateway.mjs through the gateway at %s:%s:\n%s\n", gatewayDomain, gw.port, out)
		Expect(err).NotTo(HaveOccurred(), "E2B's JS client failed through the gateway; see the FAIL lines")
		passed, id := conformance.ParseOutput(out)
		Expect(passed).To(Equal(conformance.GatewayChecks))
		Expect(id).NotTo(BeEmpty(), "the script named no sandbox")
		record("gateway: gateway.mjs, 10 checks", took, "create, PNG, state, stream, contexts, list, 401, connect, token, kill")

		// The sandbox was a real Pod of the key's namespace: on the node, its IP on the
		// CNI bridge (the gateway reached its agent there), its container from containerd.
		pod := pods.get(id)
		Expect(pod).NotTo(BeNil(), "no sandbox Pod %q was seen running in %s", id, ns)
		Expect(pod.Spec.NodeName).To(Equal(nodeName))
		_, cidr, err := net.ParseCIDR(podCIDR)
		Expect(err).NotTo(HaveOccurred())
		Expect(cidr.Contains(net.ParseIP(pod.Status.PodIP))).To(BeTrue(), "Pod IP %s is not on the bridge's %s", pod.Status.PodIP, podCIDR)
		Expect(pod.Spec.Containers[0].Image).To(Equal(sandboxImage))
		Expect(pod.Status.ContainerStatuses).NotTo(BeEmpty())
		Expect(pod.Status.ContainerStatuses[0].ContainerID).To(HavePrefix("containerd://"))
		if ok, ready := podReady(pod); ok {
			record("gateway: sandbox Pod create → Ready", ready.Sub(pod.CreationTimestamp.Time), "cold Pod, during Sandbox.create")
		}

		// After kill: the Pod is gone (the kubelet confirmed its end), and with it its
		// token Secret and NetworkPolicy (the garbage collector, by owner references).
		var secretName string
		for _, v := range pod.Spec.Volumes {
			if v.Secret != nil {
				secretName = v.Secret.SecretName
			}
		}
		Expect(secretName).NotTo(BeEmpty())
		Eventually(func(g Gomega) {
			for _, obj := range []client.Object{
				&corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: id}},
				&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: secretName}},
				&networkingv1.NetworkPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: id + "-sandbox"}},
			} {
				err := k8sClient.Get(ctx, client.ObjectKeyFromObject(obj), obj)
				g.Expect(apierrors.IsNotFound(err)).To(BeTrue(), "%T %s after kill: %v", obj, obj.GetName(), err)
			}
		}).WithContext(ctx).WithTimeout(2 * time.Minute).WithPolling(500 * time.Millisecond).Should(Succeed())
	})
})

// gatewayProcess is the gateway binary running against the cluster.
type gatewayProcess struct {
	port   string // its HTTPS port on 127.0.0.1
	caFile string // the CA its certificate is signed by
}

// startGateway runs the real gateway binary (bin/gateway, cmd/gateway) on this node as
// a process, as startManager runs the manager: HTTPS on a free loopback port with a
// self-signed certificate for *.<gatewayDomain> (read by the binary from files, as it
// reads a mounted TLS Secret), the Pods' agents reached at their Pod IPs on the
// bridge. kube-router admits the node's own addresses to every Pod, so the sandboxes'
// NetworkPolicy (only the gateway's Pods in the operator's namespace) does not stop it.
// It returns once /health answers over TLS; the spec's cleanup stops it.
func startGateway(ctx context.Context) *gatewayProcess {
	dir := GinkgoT().TempDir()
	caPEM, certPEM, keyPEM, err := gateway.SelfSigned("*."+gatewayDomain, "api."+gatewayDomain)
	Expect(err).NotTo(HaveOccurred())
	files := map[string][]byte{"ca.pem": caPEM, "tls.crt": certPEM, "tls.key": keyPEM, "token-key": []byte(randomHex(32))}
	for name, data := range files {
		Expect(os.WriteFile(filepath.Join(dir, name), data, 0o600)).To(Succeed())
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	Expect(err).NotTo(HaveOccurred())
	port := strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
	Expect(ln.Close()).To(Succeed())

	logPath := filepath.Join(logDir, fmt.Sprintf("gateway-%d.log", GinkgoParallelProcess()))
	proc, err := clus.StartManager(env("E2E_GATEWAY", filepath.Join(root, "bin", "gateway")), logPath,
		"--listen=127.0.0.1:"+port,
		"--domain="+gatewayDomain,
		"--tls-cert-file="+filepath.Join(dir, "tls.crt"),
		"--tls-key-file="+filepath.Join(dir, "tls.key"),
		"--token-key-file="+filepath.Join(dir, "token-key"),
		"--gateway-namespace="+operatorNamespace)
	Expect(err).NotTo(HaveOccurred())
	DeferCleanup(func() {
		if CurrentSpecReport().Failed() {
			GinkgoWriter.Printf("gateway log:\n%s\n", cluster.Tail(logPath, 40))
		}
		Expect(proc.Stop(20 * time.Second)).To(Succeed())
	})

	roots := x509.NewCertPool()
	Expect(roots.AppendCertsFromPEM(caPEM)).To(BeTrue())
	hc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: roots, ServerName: "api." + gatewayDomain, MinVersion: tls.VersionTLS12},
	}}
	defer hc.CloseIdleConnections()
	Eventually(func(g Gomega) {
		g.Expect(proc.Exited()).To(BeFalse(), "the gateway exited:\n%s", cluster.Tail(logPath, 20))
		resp, err := hc.Get("https://127.0.0.1:" + port + "/health")
		g.Expect(err).NotTo(HaveOccurred())
		resp.Body.Close()
		g.Expect(resp.StatusCode).To(Equal(http.StatusOK))
	}).WithContext(ctx).WithTimeout(time.Minute).WithPolling(250 * time.Millisecond).Should(Succeed())
	return &gatewayProcess{port: port, caFile: filepath.Join(dir, "ca.pem")}
}

// gatewayPods remembers the gateway's sandbox Pods of a namespace as last seen running
// with an IP (the spec looks at them after kill has deleted them).
type gatewayPods struct {
	mu   sync.Mutex
	seen map[string]*corev1.Pod
}

// watchGatewayPods polls the namespace's gateway Pods until the spec ends.
func watchGatewayPods(ctx context.Context, ns string) *gatewayPods {
	w := &gatewayPods{seen: map[string]*corev1.Pod{}}
	wctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	DeferCleanup(func() { cancel(); <-done })
	go func() {
		defer GinkgoRecover()
		defer close(done)
		for wctx.Err() == nil {
			var list corev1.PodList
			if err := k8sClient.List(wctx, &list, client.InNamespace(ns), client.HasLabels{vizv1.LabelGatewaySandbox}); err == nil {
				w.mu.Lock()
				for i := range list.Items {
					if p := &list.Items[i]; p.Status.PodIP != "" && p.DeletionTimestamp == nil {
						w.seen[p.Name] = p.DeepCopy()
					}
				}
				w.mu.Unlock()
			}
			select {
			case <-wctx.Done():
			case <-time.After(200 * time.Millisecond):
			}
		}
	}()
	return w
}

func (w *gatewayPods) get(name string) *corev1.Pod {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.seen[name]
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
