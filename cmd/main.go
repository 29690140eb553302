// Command manager runs the vizops operator: the VisualizationRequest and SandboxPool
// controllers, the admission queue and the executor. Flags and wiring only.
package main

import (
	"context"
	"crypto/tls"
	"flag"
	"os"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	vizv1 "github.com/vizops/viz-operator/api/v1alpha1"
	"github.com/vizops/viz-operator/internal/admission"
	"github.com/vizops/viz-operator/internal/backends"
	e2bbackend "github.com/vizops/viz-operator/internal/backends/e2b"
	kubebackend "github.com/vizops/viz-operator/internal/backends/kubernetes"
	localbackend "github.com/vizops/viz-operator/internal/backends/local"
	"github.com/vizops/viz-operator/internal/controller"
	"github.com/vizops/viz-operator/internal/metrics"
	"github.com/vizops/viz-operator/internal/sandbox"
	"github.com/vizops/viz-operator/internal/sandbox/agent"
	"github.com/vizops/viz-operator/internal/sandbox/e2b"
	"github.com/vizops/viz-operator/internal/sandbox/kubernetes"
	"github.com/vizops/viz-operator/internal/sandbox/local"
)

var scheme = runtime.NewScheme()

func init() {
	utilruntime.Must(clientgoscheme.AddToScheme(scheme))
	utilruntime.Must(vizv1.AddToScheme(scheme))
}

func main() {
	agent.RunIfReexec() // every Local sandbox runs this binary as its sandbox-agent
	var (
		metricsAddr, probeAddr string
		leaderElect            bool
		globalCap              int
		providersConfig        string
		python, bwrap          string
		plotlyJSURL            string
		maxDegraded, maxWarm   int
		maxSandboxMemory       string
		namespace              string
		requireDataLabel       bool
		plotlyJSAddr           string
		plotlyJSFile           string
		managerPodLabels       string
		tokenKeySecret         string
		localBackend           bool
		localEngine            string
		kubeAPIQPS             float64
		kubeAPIBurst           int
		pprofAddr              string
		watchNamespaces        string
		requestWorkers         int
	)
	flag.StringVar(&metricsAddr, "metrics-bind-address", ":8080", "Address the Prometheus metrics endpoint binds to; \"0\" disables it.")
	flag.StringVar(&probeAddr, "health-probe-bind-address", ":8081", "Address the health and readiness probes bind to.")
	flag.BoolVar(&leaderElect, "leader-elect", false, "Enable leader election, so only one replica runs executions.")
	flag.IntVar(&globalCap, "max-concurrent-executions", 10, "Operator-wide cap on executions running at once, across all pools.")
	flag.StringVar(&providersConfig, "providers-config", "", "Path of the model providers file (YAML). Empty: built-in templates only.")
	flag.StringVar(&namespace, "operator-namespace", "", "Namespace of the operator: the only one whose Secrets it reads (model providers' keys, E2B keys that SandboxClasses name). Default: POD_NAMESPACE, else the service account's namespace.")
	flag.StringVar(&python, "python", "/usr/bin/python3", "Python interpreter of Local sandboxes (must have matplotlib, numpy, pandas, seaborn, plotly).")
	flag.StringVar(&bwrap, "bwrap", "bwrap", "bubblewrap binary for Local sandboxes.")
	flag.StringVar(&plotlyJSURL, "plotlyjs-url", "", "Default URL interactive charts load plotly.js from (a pool's spec.plotlyJSURL overrides it). Empty: the public CDN.")
	flag.StringVar(&plotlyJSAddr, "plotlyjs-bind-address", "0", "Address to serve the plotly.js this image carries on (GET /plotly-<version>.min.js, cached for a year; /plotly.min.js), for in-cluster UIs and air-gapped clusters: point --plotlyjs-url or a pool's spec.plotlyJSURL at it. \"0\" disables it.")
	flag.StringVar(&plotlyJSFile, "plotlyjs-file", "", "plotly.js file to serve. Empty: the local plotly installation's (Debian: /usr/share/python3-plotly/plotly.js).")
	flag.BoolVar(&requireDataLabel, "data-configmap-label-required", false, "Read spec.data.configMapKeyRef only from ConfigMaps labelled viz.vizops.io/data=true. Off: any ConfigMap of the request's namespace, as a Pod may mount any ConfigMap of its namespace.")
	flag.StringVar(&managerPodLabels, "manager-pod-labels", "control-plane=controller-manager", "Labels of the manager's Pods (k=v,k=v): the NetworkPolicy of each Kubernetes pool admits connections to its sandbox Pods only from Pods so labelled in the operator's namespace.")
	flag.StringVar(&localEngine, "local-engine", local.EngineAgent, "Deprecated, no effect: every Local sandbox runs the sandbox-agent (this binary re-executed, driven by the same client as Pods; docs/sandbox-agent.md). Only \"agent\" is accepted; the zygote engine was removed.")
	flag.BoolVar(&localBackend, "local-backend", true, "Run Local pools (bubblewrap in the manager's own container), which needs the privileged settings of docs/deploy.md. Off: Local pools report BackendNotImplemented, and the manager runs under the restricted Pod Security level.")
	flag.StringVar(&tokenKeySecret, "sandbox-token-key-secret", "viz-operator-sandbox-token-key", "Secret in the operator's namespace holding the key that Kubernetes pools' access tokens are derived from; made on first start.")
	flag.IntVar(&requestWorkers, "request-workers", controller.DefaultRequestWorkers, "VisualizationRequests reconciled at once. A reconcile mostly waits for its status patch, so this bounds how fast a burst of new requests is read and queued.")
	opts := zap.Options{}
	flag.IntVar(&maxDegraded, "max-degraded-sandboxes", 1, "Local sandboxes that may exist at once, across all pools, where no per-sandbox cgroup can be made (memory and processes then bounded per process, CPU not rate-limited); 0: no cap.")
	flag.IntVar(&maxWarm, "max-warm-sandboxes", -1, "Warm sandboxes (sum of minReady) across all Local pools; a pool over it gets Ready=False, QuotaExceeded. -1: derived from the container's memory limit (limit minus 512Mi, over 160Mi per warm sandbox); 0: no cap.")
	flag.StringVar(&maxSandboxMemory, "max-sandbox-memory", "", "Sandbox memory (sum of maxSandboxes x memory) across all Local pools, e.g. 4Gi; a pool over it gets QuotaExceeded. Empty: the container's memory limit minus 512Mi; 0: no cap.")
	flag.Float64Var(&kubeAPIQPS, "kube-api-qps", 0, "Client-side limit on the manager's API requests per second. 0: none (controller-runtime's default), the API server's Priority and Fairness governs; a positive value also needs --kube-api-burst.")
	flag.IntVar(&kubeAPIBurst, "kube-api-burst", 0, "Burst of API requests above --kube-api-qps. 0: twice --kube-api-qps.")
	flag.StringVar(&pprofAddr, "pprof-bind-address", "0", "Address to serve Go's pprof profiles on (/debug/pprof/), e.g. 127.0.0.1:6060, for profiling the manager; \"0\" disables it (the default).")
	flag.StringVar(&watchNamespaces, "watch-namespaces", "", "Comma-separated namespaces the manager watches and acts in (pools, requests, sandbox Pods, NetworkPolicies, token Secrets, artifact ConfigMaps); it lists and watches namespaced objects only there, so its rights on them may be Roles in these namespaces (the chart's watchNamespaces renders them), with only SandboxClasses and Namespaces read cluster-wide. Empty: every namespace, with a ClusterRole.")
	opts.BindFlags(flag.CommandLine)
	flag.Parse()
	ctrl.SetLogger(zap.New(zap.UseFlagOptions(&opts)))
	log := ctrl.Log.WithName("setup")

	restConfig := ctrl.GetConfigOrDie()
	if kubeAPIQPS > 0 {
		restConfig.QPS = float32(kubeAPIQPS)
		restConfig.Burst = kubeAPIBurst
		if restConfig.Burst <= 0 {
			restConfig.Burst = int(2 * kubeAPIQPS)
		}
	}
	pools := sandbox.NewRegistry()
	if err := local.CheckEngine(localEngine); err != nil {
		log.Error(err, "invalid --local-engine")
		os.Exit(1)
	}
	localOpts := local.Options{Python: python, Bwrap: bwrap}
	// Quotas over all Local pools: SandboxPool is namespaced, so tenants create them,
	// and every sandbox lives within this container's memory.
	quotaWarm, quotaMemory := local.DefaultQuotas(local.ContainerMemoryLimit("/sys/fs/cgroup"))
	if maxWarm >= 0 {
		quotaWarm = maxWarm
	}
	if maxSandboxMemory != "" {
		q, err := resource.ParseQuantity(maxSandboxMemory)
		if err != nil {
			log.Error(err, "invalid --max-sandbox-memory")
			os.Exit(1)
		}
		quotaMemory = q.Value()
	}
	localOpts.Quota = local.NewQuota(local.QuotaLimits{MaxWarm: quotaWarm, MaxMemory: quotaMemory, MaxDegraded: maxDegraded})
	log.Info("Local sandbox quotas", "maxWarmSandboxes", quotaWarm, "maxSandboxMemoryBytes", quotaMemory, "maxDegradedSandboxes", maxDegraded)
	// The backends this manager runs: one registration each (internal/backends).
	backendSet := backends.NewSet()
	if localBackend {
		backendSet.Register(localbackend.New(localOpts))
	}
	// E2B pools: each pool's API key is read from the Secret its class names, in the
	// operator's namespace, uncached (the manager's API reader, set below).
	e2bBackend := &e2bbackend.Backend{
		E2B: e2b.NewBackend(e2b.Options{
			Observe: func(op, code string) { metrics.E2BAPIRequestsTotal.WithLabelValues(op, code).Inc() },
			Log:     ctrl.Log.WithName("e2b"),
		}),
		Namespace: operatorNamespace(namespace),
	}
	backendSet.Register(e2bBackend)
	// A clean stop leaves Kubernetes pools' Pods to the next manager (a rollout keeps
	// its warm Pods); other pools are closed.
	defer func() { _ = pools.Shutdown() }()
	peerLabels, err := labels.ConvertSelectorToLabelsMap(managerPodLabels)
	if err != nil || len(peerLabels) == 0 {
		log.Error(err, "invalid --manager-pod-labels: want k=v[,k=v]", "value", managerPodLabels)
		os.Exit(1)
	}
	// Kubernetes pools: sandbox Pods made by the SandboxPool controller, reached at
	// http://<podIP>:49999 with the pool's token, derived from a key in the operator's
	// namespace (read uncached, before the manager's cache starts).
	direct, err := client.New(restConfig, client.Options{Scheme: scheme})
	if err != nil {
		log.Error(err, "unable to create a client")
		os.Exit(1)
	}
	keyCtx, keyCancel := context.WithTimeout(context.Background(), 30*time.Second)
	tokenKey, err := kubebackend.SandboxTokenKey(keyCtx, direct, operatorNamespace(namespace), tokenKeySecret)
	keyCancel()
	if err != nil {
		// Not fatal: Local pools still run; Kubernetes pools report BackendUnavailable.
		log.Error(err, "the Kubernetes sandbox backend has no token key; Kubernetes pools will not start")
	}
	// Its client and API reader are the manager's (set when the controller starts).
	backendSet.Register(&kubebackend.Backend{
		TokenKey:  tokenKey,
		Manager:   kubernetes.ManagerPeer{Namespace: operatorNamespace(namespace), PodLabels: peerLabels},
		NewRunner: kubernetes.AgentClient,
	})

	mgr, err := ctrl.NewManager(restConfig, ctrl.Options{
		Scheme: scheme,
		Metrics: metricsserver.Options{
			BindAddress: metricsAddr,
			// HTTP/2 is off: it has had rapid-reset CVEs, and metrics do not need it.
			TLSOpts: []func(*tls.Config){func(c *tls.Config) { c.NextProtos = []string{"http/1.1"} }},
		},
		HealthProbeBindAddress: probeAddr,
		PprofBindAddress:       pprofAddr,
		// The manager caches only the ConfigMaps it owns (artifact ConfigMaps carry the
		// request-uid label) and the Pods, Secrets and NetworkPolicies of Kubernetes
		// pools (labelled with their pool's UID), never every one of the cluster.
		// Data ConfigMaps are read uncached (mgr.GetAPIReader()).
		Cache:            cacheOptions(watchNamespaces, backendSet),
		LeaderElection:   leaderElect,
		LeaderElectionID: "viz-operator.vizops.io",
	})
	if err != nil {
		log.Error(err, "unable to create the manager")
		os.Exit(1)
	}

	e2bBackend.Reader = mgr.GetAPIReader()

	pipeline, err := newPipeline(providersConfig, operatorNamespace(namespace), mgr.GetAPIReader())
	if err != nil {
		log.Error(err, "invalid model providers configuration", "path", providersConfig)
		os.Exit(1)
	}

	if err := (&controller.SandboxPoolReconciler{
		Client:             mgr.GetClient(),
		Recorder:           mgr.GetEventRecorder("sandboxpool-controller"),
		Pools:              pools,
		Backends:           backendSet,
		DefaultPlotlyJSURL: plotlyJSURL,
	}).SetupWithManager(mgr); err != nil {
		log.Error(err, "unable to set up the SandboxPool controller")
		os.Exit(1)
	}
	if err := (&controller.VisualizationRequestReconciler{
		Client:             mgr.GetClient(),
		APIReader:          mgr.GetAPIReader(),
		Recorder:           mgr.GetEventRecorder("visualizationrequest-controller"),
		Pools:              pools,
		Queue:              admission.NewQueue(globalCap),
		Executor:           controller.NewExecutor(),
		Pipeline:           pipeline,
		RequireDataLabel:   requireDataLabel,
		DefaultPlotlyJSURL: plotlyJSURL,
		WatchNamespaces:    splitNamespaces(watchNamespaces),
		Workers:            requestWorkers,
	}).SetupWithManager(mgr); err != nil {
		log.Error(err, "unable to set up the VisualizationRequest controller")
		os.Exit(1)
	}

	if plotlyJSAddr != "0" && plotlyJSAddr != "" {
		if err := servePlotlyJS(mgr, plotlyJSAddr, plotlyJSFile); err != nil {
			log.Error(err, "unable to serve plotly.js")
			os.Exit(1)
		}
	}
	if err := mgr.AddHealthzCheck("healthz", healthz.Ping); err != nil {
		log.Error(err, "unable to set up the health check")
		os.Exit(1)
	}
	if err := mgr.AddReadyzCheck("readyz", healthz.Ping); err != nil {
		log.Error(err, "unable to set up the ready check")
		os.Exit(1)
	}
	log.Info("starting the manager", "maxConcurrentExecutions", globalCap)
	if err := mgr.Start(ctrl.SetupSignalHandler()); err != nil {
		log.Error(err, "the manager stopped with an error")
		os.Exit(1)
	}
}

// cacheOptions are the manager's cache options, restricted to the namespaces of
// --watch-namespaces when it names any (cluster-scoped SandboxClasses and Namespaces
// are cached cluster-wide either way).
func cacheOptions(watch string, bs *backends.Set) cache.Options {
	o := controller.CacheOptions(bs)
	for _, ns := range splitNamespaces(watch) {
		if o.DefaultNamespaces == nil {
			o.DefaultNamespaces = map[string]cache.Config{}
		}
		o.DefaultNamespaces[ns] = cache.Config{}
	}
	return o
}

// splitNamespaces reads --watch-namespaces: the names, without blanks; nil for none.
func splitNamespaces(watch string) []string {
	var out []string
	for _, ns := range strings.Split(watch, ",") {
		if ns = strings.TrimSpace(ns); ns != "" {
			out = append(out, ns)
		}
	}
	return out
}
