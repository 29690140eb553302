// Command gateway is vizops's E2B-compatible gateway: E2B's control API and sandbox
// routing over sandbox Pods, so programs written for E2B's SDKs run on the cluster by
// setting E2B_API_URL, E2B_DOMAIN and E2B_API_KEY (docs/gateway.md). Flags and wiring
// only; the API is internal/gateway, the Pods internal/gateway/kube.
package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"os"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	vizv1 "github.com/vizops/viz-operator/api/v1alpha1"
	"github.com/vizops/viz-operator/internal/gateway"
	"github.com/vizops/viz-operator/internal/gateway/kube"
	"github.com/vizops/viz-operator/internal/sandbox/kubernetes"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "gateway:", err)
		os.Exit(1)
	}
}

func run() error {
	var (
		listen, domain, advertise, certFile, keyFile, tokenKeyFile, gwNamespace, gwLabels, plotlyJS, probeAddr, metricsAddr string
		maxSandboxes                                                                                                        int
		maxTimeout, readyTimeout, reapEvery                                                                                 time.Duration
	)
	flag.StringVar(&listen, "listen", ":8443", "address of the API and the sandbox traffic")
	flag.StringVar(&domain, "domain", "", "the sandbox domain (E2B_DOMAIN of the clients): <port>-<sandboxID>.<domain> is sandbox traffic. Required")
	flag.StringVar(&advertise, "advertise-domain", "", "the domain returned with each sandbox (the SDKs then use it instead of their E2B_DOMAIN); empty: none")
	flag.StringVar(&certFile, "tls-cert-file", "", "TLS certificate (a mounted kubernetes.io/tls Secret, reread when it changes); empty: plain HTTP, for behind an ingress that terminates TLS")
	flag.StringVar(&keyFile, "tls-key-file", "", "TLS key, with --tls-cert-file")
	flag.StringVar(&tokenKeyFile, "token-key-file", "", "file holding the key sandbox tokens are derived from (a mounted Secret; keep it across restarts). Required")
	flag.StringVar(&gwNamespace, "gateway-namespace", os.Getenv("POD_NAMESPACE"), "the gateway's namespace: sandboxes accept connections only from the gateway's Pods there")
	flag.StringVar(&gwLabels, "gateway-pod-labels", "app.kubernetes.io/name=vizops-gateway", "labels of the gateway's Pods (k=v,k2=v2), for the sandboxes' NetworkPolicy")
	flag.StringVar(&plotlyJS, "plotly-js-url", "", "where the sandboxes' plotly HTML loads plotly.js from (default the CDN; \"inline\" embeds it)")
	flag.StringVar(&probeAddr, "health-probe-bind-address", ":8081", "the health probes' address")
	flag.StringVar(&metricsAddr, "metrics-bind-address", "0", "the metrics address (0: off)")
	flag.IntVar(&maxSandboxes, "max-sandboxes-per-key", 20, "sandboxes one API key may have at once unless its Secret's "+vizv1.AnnotationGatewayMaxSandboxes+" annotation says otherwise (over it: 429)")
	flag.DurationVar(&maxTimeout, "max-timeout", time.Hour, "the longest timeout a sandbox may have")
	flag.DurationVar(&readyTimeout, "ready-timeout", 2*time.Minute, "how long creating a sandbox waits for its Pod")
	flag.DurationVar(&reapEvery, "reap-interval", 5*time.Second, "how often sandboxes past their end time are deleted")
	opts := zap.Options{}
	opts.BindFlags(flag.CommandLine)
	flag.Parse()
	ctrl.SetLogger(zap.New(zap.UseFlagOptions(&opts)))
	log := ctrl.Log.WithName("gateway")

	if domain == "" || tokenKeyFile == "" {
		return errors.New("--domain and --token-key-file are required")
	}
	if (certFile == "") != (keyFile == "") {
		return errors.New("--tls-cert-file and --tls-key-file go together")
	}
	key, err := os.ReadFile(tokenKeyFile)
	if err != nil {
		return err
	}
	if key = []byte(strings.TrimSpace(string(key))); len(key) < 32 {
		return fmt.Errorf("the token key in %s has %d bytes; use at least 32 random bytes", tokenKeyFile, len(key))
	}
	podLabels := map[string]string{}
	for _, kv := range strings.Split(gwLabels, ",") {
		if k, v, ok := strings.Cut(kv, "="); ok {
			podLabels[strings.TrimSpace(k)] = strings.TrimSpace(v)
		}
	}

	scheme := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(scheme))
	utilruntime.Must(vizv1.AddToScheme(scheme))
	mgr, err := ctrl.NewManager(ctrl.GetConfigOrDie(), ctrl.Options{
		Scheme:                 scheme,
		Cache:                  kube.CacheOptions(),
		Metrics:                metricsserver.Options{BindAddress: metricsAddr},
		HealthProbeBindAddress: probeAddr,
	})
	if err != nil {
		return err
	}
	store := &kube.Store{
		Client: mgr.GetClient(), TokenKey: key, ReadyTimeout: readyTimeout, PlotlyJSURL: plotlyJS,
		Gateway: kubernetes.ManagerPeer{Namespace: gwNamespace, PodLabels: podLabels},
	}
	handler := gateway.New(gateway.Options{
		Backend: store, Domain: domain, AdvertiseDomain: advertise,
		DefaultMaxSandboxes: maxSandboxes, MaxTimeout: maxTimeout,
		Logf: func(format string, args ...any) { log.Info(fmt.Sprintf(format, args...)) },
	})
	srv := &http.Server{Addr: listen, Handler: handler, ReadHeaderTimeout: 30 * time.Second, IdleTimeout: gateway.IdleTimeout}
	if certFile != "" {
		srv.TLSConfig = &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: (&gateway.CertFiles{CertFile: certFile, KeyFile: keyFile}).GetCertificate}
	}
	if err := mgr.AddHealthzCheck("ping", func(*http.Request) error { return nil }); err != nil {
		return err
	}
	if err := mgr.AddReadyzCheck("ping", func(*http.Request) error { return nil }); err != nil {
		return err
	}
	// The API and the reaper start once the cache has synced.
	if err := mgr.Add(manager.RunnableFunc(func(ctx context.Context) error {
		errc := make(chan error, 1)
		go func() {
			if srv.TLSConfig != nil {
				errc <- srv.ListenAndServeTLS("", "")
			} else {
				errc <- srv.ListenAndServe()
			}
		}()
		log.Info("serving", "address", listen, "domain", domain, "tls", srv.TLSConfig != nil)
		select {
		case err := <-errc:
			return err
		case <-ctx.Done():
			sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			return srv.Shutdown(sctx)
		}
	})); err != nil {
		return err
	}
	if err := mgr.Add(manager.RunnableFunc(func(ctx context.Context) error {
		t := time.NewTicker(reapEvery)
		defer t.Stop()
		for {
			if n, err := store.Reap(ctx, time.Now()); err != nil {
				log.Error(err, "reap sandboxes past their end time")
			} else if n > 0 {
				log.Info("deleted sandboxes past their end time", "count", n)
			}
			select {
			case <-ctx.Done():
				return nil
			case <-t.C:
			}
		}
	})); err != nil {
		return err
	}
	return mgr.Start(ctrl.SetupSignalHandler())
}
