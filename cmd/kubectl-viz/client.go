package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"

	vizv1 "github.com/vizops/viz-operator/api/v1alpha1"
)

// clientFactory makes the clients of the cluster commands from kubectl's flags, read the
// way kubectl reads them: --kubeconfig, else every file of $KUBECONFIG merged, else
// ~/.kube/config; --context, --cluster, --user; -n/--namespace, else the context's
// namespace, else "default"; --as/--as-group/--as-uid, --token, --server,
// --request-timeout and the TLS flags.
type clientFactory struct {
	config  *genericclioptions.ConfigFlags
	streams genericiooptions.IOStreams
}

// cluster is a client for the vizops API and the namespace the command works in.
type cluster struct {
	client.WithWatch
	namespace string
}

var clusterScheme = func() *runtime.Scheme {
	s := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(s))
	utilruntime.Must(vizv1.AddToScheme(s))
	return s
}()

// clusterMapper maps the kinds the plugin reads to their resources without asking the
// server (no discovery round trip on each command, and an error such as a refused
// impersonation is the request's own, with its message).
var clusterMapper = func() meta.RESTMapper {
	m := meta.NewDefaultRESTMapper(nil)
	for _, gvk := range []schema.GroupVersionKind{
		vizv1.GroupVersion.WithKind(vizv1.KindVisualizationRequest),
		vizv1.GroupVersion.WithKind("SandboxPool"),
		corev1.SchemeGroupVersion.WithKind("ConfigMap"),
	} {
		m.Add(gvk, meta.RESTScopeNamespace)
	}
	m.Add(corev1.SchemeGroupVersion.WithKind("Namespace"), meta.RESTScopeRoot)
	return m
}()

// connect makes the client. It does not contact the server.
func (f *clientFactory) connect() (*cluster, error) {
	loader := f.config.ToRawKubeConfigLoader()
	ns, _, err := loader.Namespace()
	if err != nil {
		return nil, kubeconfigError(err)
	}
	// kubectl falls back to localhost:8080 when nothing is configured; say so instead,
	// unless --server is given or the command runs in a Pod (in-cluster config).
	if raw, err := loader.RawConfig(); err == nil && len(raw.Clusters) == 0 && *f.config.APIServer == "" && os.Getenv("KUBERNETES_SERVICE_HOST") == "" {
		return nil, kubeconfigError(clientcmd.ErrEmptyConfig)
	}
	cfg, err := f.config.ToRESTConfig()
	if err != nil {
		return nil, kubeconfigError(err)
	}
	cfg.UserAgent = "kubectl-viz"
	c, err := client.NewWithWatch(cfg, client.Options{Scheme: clusterScheme, Mapper: clusterMapper})
	if err != nil {
		return nil, fmt.Errorf("connecting to %s: %w", cfg.Host, err)
	}
	return &cluster{WithWatch: c, namespace: ns}, nil
}

func kubeconfigError(err error) error {
	if clientcmd.IsEmptyConfig(err) {
		return errors.New("no cluster configured: pass --kubeconfig, set KUBECONFIG, or write ~/.kube/config")
	}
	return fmt.Errorf("reading the kubeconfig: %s", oneLine(err.Error()))
}

// apiError turns API errors into one line that names the object and the namespace.
func apiError(err error, kind, name, ns string) error {
	switch {
	case err == nil:
		return nil
	case apierrors.IsNotFound(err) && name != "" && !missingResource(err):
		return fmt.Errorf("%s %q not found in namespace %q", kind, name, ns)
	case meta.IsNoMatchError(err) || missingResource(err):
		return fmt.Errorf("the vizops CRDs are not installed in this cluster (%s): run `make install`, or apply config/crd/bases", kind)
	case apierrors.IsForbidden(err):
		return fmt.Errorf("not allowed: %s", oneLine(err.Error()))
	case errors.Is(err, context.DeadlineExceeded) || apierrors.IsTimeout(err):
		return fmt.Errorf("the API server did not answer in time (%s): raise --request-timeout, or check the connection", oneLine(err.Error()))
	case apierrors.IsUnauthorized(err):
		return fmt.Errorf("the cluster did not accept the credentials (%s): check --kubeconfig, --context, --user or --token", oneLine(err.Error()))
	}
	return errors.New(oneLine(err.Error()))
}

// missingResource reports a 404 for the resource type itself (the CRD is not
// installed), which, unlike a missing object, carries no object name.
func missingResource(err error) bool {
	var status apierrors.APIStatus
	if !apierrors.IsNotFound(err) || !errors.As(err, &status) {
		return false
	}
	d := status.Status().Details
	return d == nil || d.Name == ""
}

// getRequest reads one VisualizationRequest.
func (c *cluster) getRequest(ctx context.Context, name string) (*vizv1.VisualizationRequest, error) {
	vr := &vizv1.VisualizationRequest{}
	if err := c.Get(ctx, client.ObjectKey{Namespace: c.namespace, Name: name}, vr); err != nil {
		return nil, apiError(err, "visualizationrequest", name, c.namespace)
	}
	return vr, nil
}

func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

// readyCondition returns the Ready condition or nil.
func readyCondition(conds []metav1.Condition) *metav1.Condition {
	return meta.FindStatusCondition(conds, vizv1.ConditionReady)
}
