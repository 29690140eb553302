package controller

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	clocktesting "k8s.io/utils/clock/testing"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"
	"sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	vizv1 "github.com/vizops/viz-operator/api/v1alpha1"
	"github.com/vizops/viz-operator/internal/admission"
	"github.com/vizops/viz-operator/internal/backends"
	kubebackend "github.com/vizops/viz-operator/internal/backends/kubernetes"
	localbackend "github.com/vizops/viz-operator/internal/backends/local"
	"github.com/vizops/viz-operator/internal/detect"
	"github.com/vizops/viz-operator/internal/sandbox"
	"github.com/vizops/viz-operator/internal/sandbox/kubernetes"
)

var (
	testEnv   *envtest.Environment
	cfg       *rest.Config
	k8sClient client.Client
	scheme    = runtime.NewScheme()
	nsCounter atomic.Int32
)

func TestControllers(t *testing.T) {
	RegisterFailHandler(Fail)
	RunSpecs(t, "Controller Suite")
}

var _ = BeforeSuite(func() {
	logf.SetLogger(zap.New(zap.WriteTo(GinkgoWriter), zap.UseDevMode(true)))
	Expect(clientgoscheme.AddToScheme(scheme)).To(Succeed())
	Expect(vizv1.AddToScheme(scheme)).To(Succeed())
	Expect(os.Getenv("KUBEBUILDER_ASSETS")).NotTo(BeEmpty(),
		"KUBEBUILDER_ASSETS is not set: run the tests with `make test`, which finds or builds the envtest binaries")
	testEnv = &envtest.Environment{
		CRDDirectoryPaths:     []string{filepath.Join("..", "..", "config", "crd", "bases")},
		ErrorIfCRDPathMissing: true,
	}
	var err error
	cfg, err = testEnv.Start()
	Expect(err).NotTo(HaveOccurred())
	k8sClient, err = client.New(cfg, client.Options{Scheme: scheme})
	Expect(err).NotTo(HaveOccurred())
	ensureLocalClass(context.Background())
})

var _ = AfterSuite(func() {
	if testEnv != nil {
		Expect(testEnv.Stop()).To(Succeed())
	}
})

// newNamespace makes a namespace of its own for one test.
func newNamespace(ctx context.Context, labels map[string]string) string {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{
		Name:   fmt.Sprintf("t%d-%d", GinkgoParallelProcess(), nsCounter.Add(1)),
		Labels: labels,
	}}
	Expect(k8sClient.Create(ctx, ns)).To(Succeed())
	return ns.Name
}

// harness is one running manager with the controllers, over the given namespaces.
type harness struct {
	clock    *clocktesting.FakeClock
	pools    *sandbox.Registry
	queue    *admission.Queue
	executor *Executor
	kube     *kubebackend.Backend
	cache    cache.Cache
	cancel   context.CancelFunc
	done     chan struct{}
	stopped  sync.Once
	crashed  sync.Once
}

type harnessOptions struct {
	globalCap int
	factory   poolFactory // the "Local" backend
	// backends are registered after the Local and Kubernetes ones (a test backend
	// of the same name replaces one).
	backends []backends.Backend
	pipeline Pipeline
	clock    *clocktesting.FakeClock
	// intercept wraps the reconcilers' client (fault injection: conflicts, an API
	// server that stops answering).
	intercept *interceptor.Funcs
	// apiReader wraps the uncached reader (data ConfigMaps).
	apiReader func(client.Reader) client.Reader
	// statusBudget overrides the request size budget.
	statusBudget     int
	requireDataLabel bool
	workers          int
	// kubeRunner, when set, makes the Kubernetes backend available with this agent
	// client (tests point Pod IPs at a fake or a loopback agent).
	kubeRunner func(pod *corev1.Pod, token string) kubernetes.Runner
	// restConfig, when set, is the manager's instead of the suite's admin one (a
	// manager that impersonates its ServiceAccount, under the RBAC a test applied).
	restConfig *rest.Config
	// watchNamespaces is the request controller's WatchNamespaces (--watch-namespaces):
	// it refuses pools outside them.
	watchNamespaces []string
	// transport wraps the manager's HTTP transport (every client of the manager: the
	// cached client, the API reader, the Event recorder), to count its API requests.
	transport func(http.RoundTripper) http.RoundTripper
	// detect is the request controller's keyword detection (nil: detect.Detect).
	detect func(prompt string) detect.Result
}

func startManager(namespaces []string, o harnessOptions) *harness {
	if o.globalCap == 0 {
		o.globalCap = 10
	}
	if o.pipeline == nil {
		o.pipeline = CodegenPipeline{}
	}
	if o.clock == nil {
		o.clock = clocktesting.NewFakeClock(time.Now())
	}
	nsMap := map[string]cache.Config{}
	for _, ns := range namespaces {
		nsMap[ns] = cache.Config{}
	}
	set := backends.NewSet(&localbackend.Backend{NewPool: o.factory})
	var kube *kubebackend.Backend
	if o.kubeRunner != nil {
		kube = &kubebackend.Backend{
			Manager:   kubernetes.ManagerPeer{Namespace: "vizops-system", PodLabels: map[string]string{"control-plane": "controller-manager"}},
			NewRunner: o.kubeRunner,
			Poll:      100 * time.Millisecond,
			TokenKey:  []byte("envtest-sandbox-token-key"),
		}
		set.Register(kube)
	}
	for _, b := range o.backends {
		set.Register(b)
	}
	cacheOpts := CacheOptions(set)
	cacheOpts.DefaultNamespaces = nsMap
	skipNameValidation := true
	restCfg := cfg
	if o.restConfig != nil {
		restCfg = o.restConfig
	}
	if o.transport != nil {
		restCfg = rest.CopyConfig(restCfg)
		restCfg.Wrap(o.transport)
	}
	mgr, err := ctrl.NewManager(restCfg, ctrl.Options{
		Scheme:     scheme,
		Metrics:    metricsserver.Options{BindAddress: "0"},
		Cache:      cacheOpts,
		Controller: ctrlConfig(skipNameValidation),
	})
	Expect(err).NotTo(HaveOccurred())
	h := &harness{
		clock:    o.clock,
		pools:    sandbox.NewRegistry(),
		queue:    admission.NewQueue(o.globalCap),
		executor: NewExecutor(),
		kube:     kube,
		done:     make(chan struct{}),
	}
	h.cache = mgr.GetCache()
	c := mgr.GetClient()
	if o.intercept != nil {
		c = interceptor.NewClient(noWatch{c}, *o.intercept)
	}
	reader := mgr.GetAPIReader()
	if o.apiReader != nil {
		reader = o.apiReader(reader)
	}
	Expect((&SandboxPoolReconciler{
		Client: mgr.GetClient(), Recorder: mgr.GetEventRecorder("sandboxpool-controller"),
		Clock: o.clock, Pools: h.pools, StatusInterval: time.Second, Backends: set,
	}).SetupWithManager(mgr)).To(Succeed())
	Expect((&VisualizationRequestReconciler{
		Client: c, APIReader: reader, Recorder: mgr.GetEventRecorder("visualizationrequest-controller"),
		Clock: o.clock, Pools: h.pools, Queue: h.queue, Executor: h.executor, Pipeline: o.pipeline,
		PoolNotFoundGrace: 2 * time.Second, BackoffBase: 5 * time.Second, BackoffMax: time.Minute,
		StatusBudgetBytes: o.statusBudget, RequireDataLabel: o.requireDataLabel, Workers: o.workers,
		PositionInterval: 500 * time.Millisecond, WatchNamespaces: o.watchNamespaces,
		Detect: o.detect,
	}).SetupWithManager(mgr)).To(Succeed())
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel = cancel
	go func() {
		defer GinkgoRecover()
		defer close(h.done)
		Expect(mgr.Start(ctx)).To(Succeed())
	}()
	// A spec that fails before its own stop must not leave a manager running into the
	// next spec (or keep the API server from stopping in AfterSuite).
	DeferCleanup(h.stop)
	return h
}

// stop stops the manager and waits for it, and closes its pools, which destroys
// their sandboxes (a spec's cleanup). It is idempotent.
func (h *harness) stop() {
	h.stopped.Do(func() {
		h.crash()
		_ = h.pools.Close()
	})
}

// shutdown stops the manager and waits for it, as cmd/main.go stops cleanly (a
// rollout): pools that can detach (Kubernetes) leave their Pods to the next manager,
// the others are closed. It is idempotent, and a later stop does nothing.
func (h *harness) shutdown() {
	h.stopped.Do(func() {
		h.crash()
		_ = h.pools.Shutdown()
	})
}

// crash stops the manager and waits for it, as a crash would: its pools are not
// closed, so their sandboxes (Kubernetes Pods) outlive it. It is idempotent; a
// later stop closes the pools.
func (h *harness) crash() {
	h.crashed.Do(func() {
		h.cancel()
		<-h.done
	})
}

// poolFactory makes the pools of the harness's Local backend.
type poolFactory = func(sandbox.PoolConfig) (sandbox.Pool, error)

func fakeFactory(p sandbox.Pool) poolFactory {
	return func(sandbox.PoolConfig) (sandbox.Pool, error) { return p, nil }
}

func ctrlConfig(skip bool) config.Controller { return config.Controller{SkipNameValidation: &skip} }

// pool makes a SandboxPool.
func newPool(ns, name string, maxSandboxes int32, mutate ...func(*vizv1.SandboxPool)) *vizv1.SandboxPool {
	p := &vizv1.SandboxPool{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}
	p.Spec.MaxSandboxes = maxSandboxes // on the suite's default class: Local
	p.Spec.MinReady = ptr.To(int32(0))
	for _, m := range mutate {
		m(p)
	}
	return p
}

// newRequest makes a request that runs code (no detection, no codegen).
func newRequest(ns, name, code string, mutate ...func(*vizv1.VisualizationRequest)) *vizv1.VisualizationRequest {
	vr := &vizv1.VisualizationRequest{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}
	vr.Spec.Code = code
	for _, m := range mutate {
		m(vr)
	}
	return vr
}

func get(ctx context.Context, g Gomega, ns, name string) *vizv1.VisualizationRequest {
	vr := &vizv1.VisualizationRequest{}
	g.Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, vr)).To(Succeed())
	return vr
}

// phaseOf polls a request's phase.
func phaseOf(ctx context.Context, ns, name string) func() vizv1.Phase {
	return func() vizv1.Phase {
		vr := &vizv1.VisualizationRequest{}
		if err := k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, vr); err != nil {
			return ""
		}
		return vr.Status.Phase
	}
}

func keyOf(ns, name string) client.ObjectKey { return client.ObjectKey{Namespace: ns, Name: name} }

// clientListNamespace is client.InNamespace without importing it in every test file.
type clientListNamespace struct{ ns string }

func (c *clientListNamespace) ApplyToList(o *client.ListOptions) { o.Namespace = c.ns }

// noWatch lets interceptor wrap the manager's client, which has no Watch.
type noWatch struct{ client.Client }

func (noWatch) Watch(context.Context, client.ObjectList, ...client.ListOption) (watch.Interface, error) {
	return nil, fmt.Errorf("watch is not supported by the manager's client")
}

// localClassName is the suite's default class: the Local backend, no bounds. Every
// pool that names no class runs on it.
const localClassName = "local"

// ensureLocalClass makes the suite's default Local class (once; cluster-scoped).
func ensureLocalClass(ctx context.Context) {
	c := &vizv1.SandboxClass{ObjectMeta: metav1.ObjectMeta{Name: localClassName,
		Annotations: map[string]string{vizv1.AnnotationDefaultClass: "true"}}}
	c.Spec.Backend = vizv1.BackendLocal
	if err := k8sClient.Create(ctx, c); err != nil && !apierrors.IsAlreadyExists(err) {
		Expect(err).NotTo(HaveOccurred())
	}
}
