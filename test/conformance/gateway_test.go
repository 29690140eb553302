package conformance

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	vizv1 "github.com/vizops/viz-operator/api/v1alpha1"
	"github.com/vizops/viz-operator/internal/gateway"
	"github.com/vizops/viz-operator/internal/gateway/kube"
	"github.com/vizops/viz-operator/internal/sandbox/agent"
	"github.com/vizops/viz-operator/internal/sandbox/kubernetes"
)

// testDomain is the gateway's sandbox domain in the test; the Node preload
// (e2b-js/resolve-test-domain.cjs) resolves every name under it to 127.0.0.1.
const testDomain = "e2b.vizops.test"

// TestE2BJSClientThroughGateway runs E2B's official JS client (@e2b/code-interpreter,
// unmodified, normal mode: E2B_API_URL, E2B_DOMAIN, E2B_API_KEY) against the gateway
// over HTTPS, on a real API server (envtest): the API key is a labelled Secret of a
// tenant namespace, Sandbox.create makes a sandbox Pod there from the default
// SandboxClass, runCode draws a matplotlib chart and keeps notebook state, a wrong key
// is refused, and kill deletes the Pod.
//
// No kubelet runs in envtest: a fake kubelet starts, for each sandbox Pod, the real
// agent (internal/sandbox/agent, isolation none as in a Pod) on loopback with the token
// of the Pod's own Secret, and marks the Pod Ready with the IP 127.0.0.1; the gateway's
// AgentURL maps the Pod to that agent's port. What this does not cover: image pulls,
// the kubelet's probes, NetworkPolicy enforcement, real DNS and a real ingress.
func TestE2BJSClientThroughGateway(t *testing.T) {
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skip("node is not installed, so E2B's official JS client cannot run: install Node.js >= 20.18.1 and npm (make conformance-deps) to run this test")
	}
	if testing.Short() {
		t.Skip("-short: this test starts an API server, agents and the JS client")
	}
	dir, err := filepath.Abs("e2b-js")
	if err != nil {
		t.Fatal(err)
	}
	installClient(t, dir)
	env := startGatewayEnv(t)
	ctx := t.Context()

	runCtx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	run := GatewayClient{Domain: testDomain, Port: env.port, APIKey: env.apiKey, CAFile: env.caFile}.Command(runCtx, node, dir)
	out, err := run.CombinedOutput()
	t.Logf("gateway.mjs:\n%s", out)
	if err != nil {
		t.Errorf("E2B's JS client failed through the gateway (%v); see the FAIL lines above%s", err, nodeVersionNote(node))
	}
	passed, id := ParseOutput(out)
	if passed != GatewayChecks {
		t.Errorf("%d checks passed, want %d", passed, GatewayChecks)
	}
	if id == "" {
		t.Fatal("the script named no sandbox")
	}
	seen := env.kubelet.pod(id)
	if seen == nil {
		t.Fatalf("no sandbox Pod %q was ever made", id)
	}
	if seen.Namespace != env.namespace {
		t.Errorf("the sandbox Pod is in %q, want the API key's namespace %q", seen.Namespace, env.namespace)
	}
	if c := seen.Spec.Containers[0]; c.SecurityContext == nil || !*c.SecurityContext.ReadOnlyRootFilesystem || c.Image != env.image {
		t.Errorf("the sandbox Pod is not the class's hardened sandbox Pod: %+v", c)
	}
	err = env.client.Get(ctx, client.ObjectKey{Namespace: env.namespace, Name: id}, &corev1.Pod{})
	if !apierrors.IsNotFound(err) {
		t.Errorf("after kill, the sandbox Pod is still there (Get: %v)", err)
	}
}

// TestGatewayRestartAndReaper: a key's cap (its Secret's annotation) is a 429; the
// sandbox Pod's Secret and NetworkPolicy are owned by it and admit only the gateway. The
// state of a sandbox is its Pod: a second Store (a restarted gateway with the same key
// and no memory) finds the sandbox with the same tokens, and its reaper deletes the Pod
// once the end time has passed, not before.
func TestGatewayRestartAndReaper(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: this test starts an API server")
	}
	env := startGatewayEnv(t)
	ctx := t.Context()

	// The key may have one sandbox at once (its Secret's annotation).
	key := &corev1.Secret{}
	must(t, env.client.Get(ctx, client.ObjectKey{Namespace: env.namespace, Name: "app-key"}, key))
	key.Annotations = map[string]string{vizv1.AnnotationGatewayMaxSandboxes: "1"}
	must(t, env.client.Update(ctx, key))

	c := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: env.caPool, ServerName: "api." + testDomain}}}
	create := func() (int, []byte) {
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, env.url+"/sandboxes", strings.NewReader(`{"templateID":"code-interpreter-v1","timeout":600,"metadata":{"k":"v"}}`))
		req.Header.Set("X-API-Key", env.apiKey)
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := readAll(resp)
		return resp.StatusCode, body
	}
	var created struct {
		SandboxID, EnvdAccessToken, TrafficAccessToken string
	}
	deadline := time.Now().Add(30 * time.Second)
	code, body := create()
	for code == http.StatusTooManyRequests && time.Now().Before(deadline) { // the cache has not seen the annotation
		time.Sleep(100 * time.Millisecond)
		code, body = create()
	}
	if code != http.StatusCreated || json.Unmarshal(body, &created) != nil {
		t.Fatalf("create: %d %s", code, body)
	}
	if code, body := create(); code != http.StatusTooManyRequests || !strings.Contains(string(body), `"code":429`) {
		t.Errorf("a second sandbox over the key's cap of 1: %d %s", code, body)
	}

	// The Pod's token Secret and NetworkPolicy are the Pod's (the garbage collector
	// removes them with it), and only the gateway's Pods may reach its agent.
	pod := &corev1.Pod{}
	must(t, env.client.Get(ctx, client.ObjectKey{Namespace: env.namespace, Name: created.SandboxID}, pod))
	sec := &corev1.Secret{}
	must(t, env.client.Get(ctx, client.ObjectKey{Namespace: env.namespace, Name: pod.Spec.Volumes[1].Secret.SecretName}, sec))
	np := &networkingv1.NetworkPolicy{}
	must(t, env.client.Get(ctx, client.ObjectKey{Namespace: env.namespace, Name: created.SandboxID + "-sandbox"}, np))
	for _, o := range []metav1.Object{sec, np} {
		if refs := o.GetOwnerReferences(); len(refs) != 1 || refs[0].UID != pod.UID {
			t.Errorf("%s is not owned by the sandbox Pod: %v", o.GetName(), refs)
		}
	}
	if from := np.Spec.Ingress[0].From[0]; from.PodSelector.MatchLabels["app.kubernetes.io/name"] != "vizops-gateway" ||
		from.NamespaceSelector.MatchLabels["kubernetes.io/metadata.name"] != "vizops-system" ||
		!labels.SelectorFromSet(np.Spec.PodSelector.MatchLabels).Matches(labels.Set(pod.Labels)) {
		t.Errorf("the NetworkPolicy does not admit only the gateway to the Pod: %+v", np.Spec)
	}

	restarted := &kube.Store{Client: env.client, TokenKey: env.tokenKey}
	sb, err := restarted.Get(ctx, created.SandboxID)
	if err != nil {
		t.Fatalf("a restarted gateway does not find sandbox %s: %v", created.SandboxID, err)
	}
	if sb.EnvdToken != created.EnvdAccessToken || sb.TrafficToken != created.TrafficAccessToken || sb.Metadata["k"] != "v" || sb.Namespace != env.namespace {
		t.Errorf("a restarted gateway reads the sandbox differently: %+v", sb)
	}
	if n, err := restarted.Reap(ctx, sb.EndAt.Add(-time.Second)); err != nil || n != 0 {
		t.Fatalf("reaped %d (%v) before the end time", n, err)
	}
	if n, err := restarted.Reap(ctx, sb.EndAt); err != nil || n != 1 {
		t.Fatalf("reaped %d (%v) at the end time, want 1", n, err)
	}
	err = env.client.Get(ctx, client.ObjectKey{Namespace: env.namespace, Name: sb.ID}, &corev1.Pod{})
	if !apierrors.IsNotFound(err) {
		t.Errorf("the reaped sandbox's Pod is still there (Get: %v)", err)
	}
}

type gatewayEnv struct {
	client    client.Client // uncached
	namespace string
	apiKey    string
	tokenKey  []byte
	image     string
	caFile    string
	caPool    *x509.CertPool
	url       string // https://127.0.0.1:<port>
	port      string // the gateway's
	kubelet   *fakeKubelet
}

// startGatewayEnv starts an API server, a tenant namespace with an API key Secret, a
// default Kubernetes SandboxClass that admits it, the fake kubelet, and the gateway
// (the cached client cmd/gateway uses, over HTTPS with a test CA).
func startGatewayEnv(t *testing.T) *gatewayEnv {
	t.Helper()
	if os.Getenv("KUBEBUILDER_ASSETS") == "" {
		out, err := exec.Command("../../hack/envtest-assets.sh").Output()
		if err != nil {
			t.Fatalf("KUBEBUILDER_ASSETS is not set and hack/envtest-assets.sh failed (%v): set it to the envtest binaries", err)
		}
		t.Setenv("KUBEBUILDER_ASSETS", strings.TrimSpace(string(out)))
	}
	scheme := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(scheme))
	utilruntime.Must(vizv1.AddToScheme(scheme))
	testEnv := &envtest.Environment{
		CRDDirectoryPaths:     []string{filepath.Join("..", "..", "config", "crd", "bases")},
		ErrorIfCRDPathMissing: true,
	}
	cfg, err := testEnv.Start()
	if err != nil {
		t.Fatalf("start envtest: %v", err)
	}
	t.Cleanup(func() { _ = testEnv.Stop() })
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	c, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		t.Fatal(err)
	}

	env := &gatewayEnv{client: c, namespace: "tenant-a", image: "ghcr.io/vizops/viz-sandbox:test"}
	env.apiKey = "e2b_" + randomHex(20)
	env.tokenKey = []byte(randomHex(32))
	must(t, c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: env.namespace, Labels: map[string]string{"vizops.io/tenant": "a"}}}))
	must(t, c.Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "app-key", Namespace: env.namespace, Labels: map[string]string{vizv1.LabelGatewayAPIKey: "true"}},
		Data:       map[string][]byte{vizv1.GatewayAPIKeyDataKey: []byte(env.apiKey)},
	}))
	must(t, c.Create(ctx, &vizv1.SandboxClass{
		ObjectMeta: metav1.ObjectMeta{Name: "python", Annotations: map[string]string{vizv1.AnnotationDefaultClass: "true"}},
		Spec: vizv1.SandboxClassSpec{
			Backend:           vizv1.BackendKubernetes,
			NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"vizops.io/tenant": "a"}},
			Kubernetes:        &vizv1.KubernetesClass{Image: env.image},
		},
	}))

	env.kubelet = &fakeKubelet{client: c, t: t}
	go env.kubelet.run(ctx, env.namespace)
	t.Cleanup(env.kubelet.close)

	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme: scheme, Cache: kube.CacheOptions(),
		Metrics: metricsserver.Options{BindAddress: "0"}, HealthProbeBindAddress: "0",
	})
	if err != nil {
		t.Fatal(err)
	}
	mgrDone := make(chan struct{})
	go func() { defer close(mgrDone); _ = mgr.Start(ctx) }()
	t.Cleanup(func() { cancel(); <-mgrDone })
	if !mgr.GetCache().WaitForCacheSync(ctx) {
		t.Fatal("the gateway's cache did not sync")
	}
	store := &kube.Store{
		Client: mgr.GetClient(), TokenKey: env.tokenKey, ReadyTimeout: time.Minute,
		Gateway:  kubernetes.ManagerPeer{Namespace: "vizops-system", PodLabels: map[string]string{"app.kubernetes.io/name": "vizops-gateway"}},
		AgentURL: env.kubelet.agentURL,
	}

	caPEM, certPEM, keyPEM := testCertificates(t, "*."+testDomain, "api."+testDomain)
	env.caFile = filepath.Join(t.TempDir(), "ca.pem")
	must(t, os.WriteFile(env.caFile, caPEM, 0o600))
	env.caPool = x509.NewCertPool()
	env.caPool.AppendCertsFromPEM(caPEM)
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	must(t, err)
	srv := httptest.NewUnstartedServer(gateway.New(gateway.Options{
		Backend: store, Domain: testDomain, Logf: t.Logf,
	}))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	srv.EnableHTTP2 = true // as cmd/gateway's server: the SDKs negotiate HTTP/2 over TLS
	srv.StartTLS()
	t.Cleanup(srv.Close)
	env.url = srv.URL
	env.port = srv.URL[strings.LastIndex(srv.URL, ":")+1:]
	return env
}

// fakeKubelet runs the namespace's gateway sandbox Pods: once a Pod's token Secret
// exists, it starts a real agent with that token on loopback and marks the Pod
// Running and Ready with the IP 127.0.0.1.
type fakeKubelet struct {
	client client.Client
	t      *testing.T
	mu     sync.Mutex
	urls   map[string]string // Pod UID → agent URL
	pods   map[string]*corev1.Pod
	stop   []func()
}

func (k *fakeKubelet) run(ctx context.Context, ns string) {
	for ctx.Err() == nil {
		var pods corev1.PodList
		if err := k.client.List(ctx, &pods, client.InNamespace(ns), client.HasLabels{vizv1.LabelGatewaySandbox}); err == nil {
			for i := range pods.Items {
				k.start(ctx, &pods.Items[i])
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (k *fakeKubelet) start(ctx context.Context, p *corev1.Pod) {
	if p.Status.PodIP != "" || p.DeletionTimestamp != nil {
		return
	}
	var secretName string
	for _, v := range p.Spec.Volumes {
		if v.Secret != nil {
			secretName = v.Secret.SecretName
		}
	}
	sec := &corev1.Secret{}
	if err := k.client.Get(ctx, client.ObjectKey{Namespace: p.Namespace, Name: secretName}, sec); err != nil {
		return // the kubelet waits for the volume's Secret
	}
	k.mu.Lock()
	if k.urls == nil {
		k.urls, k.pods = map[string]string{}, map[string]*corev1.Pod{}
	}
	if _, ok := k.urls[string(p.UID)]; !ok {
		dir, err := os.MkdirTemp("", "gateway-pod-agent-")
		if err != nil {
			k.mu.Unlock()
			return
		}
		srv, err := agent.NewServer(agent.Options{Token: string(sec.Data[kubernetes.TokenKey]), Isolation: agent.IsolationNone, WorkDir: dir})
		if err != nil {
			k.t.Logf("fake kubelet: start the agent: %v", err)
			k.mu.Unlock()
			return
		}
		ts := httptest.NewServer(srv)
		k.stop = append(k.stop, func() { ts.Close(); _ = srv.Close(); _ = os.RemoveAll(dir) })
		k.urls[string(p.UID)] = ts.URL
		k.pods[p.Name] = p.DeepCopy()
	}
	k.mu.Unlock()
	now := metav1.Now()
	p.Status.Phase = corev1.PodRunning
	p.Status.PodIP = "127.0.0.1"
	p.Status.Conditions = []corev1.PodCondition{
		{Type: corev1.PodScheduled, Status: corev1.ConditionTrue, LastTransitionTime: now},
		{Type: corev1.PodReady, Status: corev1.ConditionTrue, LastTransitionTime: now},
	}
	_ = k.client.Status().Update(ctx, p) // a conflict: next round
}

// agentURL maps a Pod (production: http://<podIP>:49999) to its loopback agent.
func (k *fakeKubelet) agentURL(p *corev1.Pod) string {
	k.mu.Lock()
	defer k.mu.Unlock()
	if u, ok := k.urls[string(p.UID)]; ok {
		return u
	}
	return "http://127.0.0.1:1"
}

// pod is the sandbox Pod the kubelet started under that name, or nil.
func (k *fakeKubelet) pod(name string) *corev1.Pod {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.pods[name]
}

func (k *fakeKubelet) close() {
	k.mu.Lock()
	defer k.mu.Unlock()
	for _, f := range k.stop {
		f()
	}
}

// testCertificates makes a CA and a server certificate for names, signed by it.
func testCertificates(t *testing.T, names ...string) (caPEM, certPEM, keyPEM []byte) {
	t.Helper()
	caPEM, certPEM, keyPEM, err := gateway.SelfSigned(names...)
	must(t, err)
	return caPEM, certPEM, keyPEM
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func readAll(resp *http.Response) ([]byte, error) {
	defer resp.Body.Close()
	var b bytes.Buffer
	_, err := b.ReadFrom(resp.Body)
	return b.Bytes(), err
}
