package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"

	vizv1 "github.com/vizops/viz-operator/api/v1alpha1"
	"github.com/vizops/viz-operator/internal/vizclient"
)

// clusterOptions are the flags every cluster command takes, read like kubectl reads
// them: --kubeconfig, else $KUBECONFIG, else ~/.kube/config; --context; and
// -n/--namespace, else the context's namespace, else "default".
type clusterOptions struct {
	kubeconfig string
	context    string
	namespace  string
}

func (o *clusterOptions) addFlags(cmd *cobra.Command) {
	f := cmd.Flags()
	f.StringVar(&o.kubeconfig, "kubeconfig", "", "path of the kubeconfig file (default: $KUBECONFIG, else ~/.kube/config)")
	f.StringVar(&o.context, "context", "", "kubeconfig context to use (default: the current context)")
	f.StringVarP(&o.namespace, "namespace", "n", "", "namespace (default: the context's namespace, else default)")
}

// cluster is a client for the vizops API and the namespace the command works in.
type cluster struct {
	client.Client
	namespace string
}

var clusterScheme = func() *runtime.Scheme {
	s := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(s))
	utilruntime.Must(vizv1.AddToScheme(s))
	return s
}()

// clientConfig resolves the kubeconfig the way kubectl does.
func (o *clusterOptions) clientConfig() clientcmd.ClientConfig {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	if o.kubeconfig != "" {
		rules.ExplicitPath = o.kubeconfig
	}
	overrides := &clientcmd.ConfigOverrides{CurrentContext: o.context}
	if o.namespace != "" {
		overrides.Context.Namespace = o.namespace
	}
	return clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, overrides)
}

// connect makes the client. It does not contact the server.
func (o *clusterOptions) connect() (*cluster, error) {
	cc := o.clientConfig()
	ns, _, err := cc.Namespace()
	if err != nil {
		return nil, kubeconfigError(err)
	}
	cfg, err := cc.ClientConfig()
	if err != nil {
		return nil, kubeconfigError(err)
	}
	cfg.UserAgent = "kubectl-viz"
	c, err := client.New(cfg, client.Options{Scheme: clusterScheme})
	if err != nil {
		return nil, fmt.Errorf("connecting to %s: %w", cfg.Host, err)
	}
	return &cluster{Client: c, namespace: ns}, nil
}

func kubeconfigError(err error) error {
	if clientcmd.IsEmptyConfig(err) {
		return errors.New("no cluster configured: pass --kubeconfig, set KUBECONFIG, or write ~/.kube/config")
	}
	return fmt.Errorf("reading the kubeconfig: %w", err)
}

// apiError turns API errors into one line that names the object and the namespace.
func apiError(err error, kind, name, ns string) error {
	switch {
	case err == nil:
		return nil
	case apierrors.IsNotFound(err):
		return fmt.Errorf("%s %q not found in namespace %q", kind, name, ns)
	case meta.IsNoMatchError(err):
		return fmt.Errorf("the vizops CRDs are not installed in this cluster (%s): run `make install`, or apply config/crd/bases", kind)
	case apierrors.IsForbidden(err):
		return fmt.Errorf("not allowed: %s", oneLine(err.Error()))
	}
	return errors.New(oneLine(err.Error()))
}

// getRequest reads one VisualizationRequest.
func (c *cluster) getRequest(ctx context.Context, name string) (*vizv1.VisualizationRequest, error) {
	vr := &vizv1.VisualizationRequest{}
	if err := c.Get(ctx, client.ObjectKey{Namespace: c.namespace, Name: name}, vr); err != nil {
		return nil, apiError(err, "visualizationrequest", name, c.namespace)
	}
	return vr, nil
}

// savedArtifact is one artifact written to disk.
type savedArtifact struct {
	vizv1.ArtifactStatus
	Path string
}

// saveArtifacts downloads every artifact of vr into dir, after checking them all.
func saveArtifacts(ctx context.Context, c client.Reader, vr *vizv1.VisualizationRequest, dir string) ([]savedArtifact, error) {
	type file struct {
		a    vizv1.ArtifactStatus
		path string
		data []byte
	}
	var files []file
	for _, a := range vr.Status.Artifacts {
		data, err := vizclient.ArtifactData(ctx, c, vr.Namespace, a)
		if err != nil {
			return nil, err
		}
		path, err := artifactPath(dir, a.Name)
		if err != nil {
			return nil, err
		}
		files = append(files, file{a, path, data})
	}
	var out []savedArtifact
	for _, f := range files {
		if err := os.MkdirAll(filepath.Dir(f.path), 0o755); err != nil {
			return out, err
		}
		if err := os.WriteFile(f.path, f.data, 0o644); err != nil {
			return out, err
		}
		out = append(out, savedArtifact{ArtifactStatus: f.a, Path: f.path})
	}
	return out, nil
}

func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

// readyCondition returns the Ready condition or nil.
func readyCondition(conds []metav1.Condition) *metav1.Condition {
	return meta.FindStatusCondition(conds, vizv1.ConditionReady)
}
