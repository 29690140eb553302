// Package e2b is the E2B backend's adapter (internal/backends): it resolves a pool's
// E2B options (the API key, read from the Secret its class names in the operator's
// namespace, and the defaults of the class's and pool's fields) into an e2b.Config,
// runs the pool on internal/sandbox/e2b, maps E2B's refusals to the Ready condition's
// reasons and keeps the pool's Throttled condition.
package e2b

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	vizv1 "github.com/vizops/viz-operator/api/v1alpha1"
	"github.com/vizops/viz-operator/internal/backends"
	"github.com/vizops/viz-operator/internal/sandbox"
	"github.com/vizops/viz-operator/internal/sandbox/e2b"
)

// The E2B API key is read from the operator's own namespace (a Role, not a
// ClusterRole), one Secret by name, uncached: the manager never caches Secrets, and
// reads none in tenants' namespaces.
// +kubebuilder:rbac:groups="",namespace=system,resources=secrets,verbs=get

// Defaults of the class's and pool's E2B fields.
const (
	DefaultAPIURL                = "https://api.e2b.app"
	DefaultDomain                = "e2b.app"
	DefaultTemplateID            = "code-interpreter-v1"
	DefaultSandboxTimeoutSeconds = 300
	DefaultMaxCreatesPerSecond   = 1
)

// Backend is the E2B adapter.
type Backend struct {
	// E2B makes the pools.
	E2B *e2b.Backend
	// Reader reads the API key's Secret, uncached (the manager's API reader).
	Reader client.Reader
	// Namespace is the operator's: the only one Secrets are read from.
	Namespace string
}

var (
	_ backends.Backend   = (*Backend)(nil)
	_ backends.Throttler = (*Backend)(nil)
)

// Name is E2B.
func (b *Backend) Name() vizv1.Backend { return vizv1.BackendE2B }

// Throttles: E2B answers 429 when sandboxes are created too fast.
func (b *Backend) Throttles() bool { return true }

// Ensure reads the pool's options and makes or updates its live pool.
func (b *Backend) Ensure(ctx context.Context, in backends.Input) (backends.Ensured, error) {
	c, err := b.Options(ctx, in.Pool, in.Class)
	if err != nil {
		return backends.Ensured{}, err
	}
	p, err := sandbox.Ensure(in.Pools, in.Key, string(vizv1.BackendE2B), in.Config, c,
		func(cfg sandbox.PoolConfig, c e2b.Config) (sandbox.Pool, error) { return b.E2B.NewPool(cfg, c) })
	return backends.Ensured{Pool: p}, err
}

// Options reads the API key from the Secret the class's spec.e2b.apiKeySecretRef
// names in the operator's namespace, and fills in the defaults. The URL the key goes
// to is the class's: a tenant chooses neither.
func (b *Backend) Options(ctx context.Context, sp *vizv1.SandboxPool, class *vizv1.SandboxClass) (e2b.Config, error) {
	spec := class.Spec.E2B
	if spec == nil {
		return e2b.Config{}, &backends.SettingsError{Reason: vizv1.ReasonAPIKeyMissing, Message: fmt.Sprintf("SandboxClass %s has backend E2B but no spec.e2b.apiKeySecretRef naming the Secret that holds the E2B API key", class.Name)}
	}
	if b.Reader == nil {
		return e2b.Config{}, fmt.Errorf("%w: the E2B backend was registered without a reader for its Secrets", sandbox.ErrUnavailable)
	}
	ns := b.Namespace
	ref := spec.APIKeySecretRef
	source := fmt.Sprintf("Secret %s/%s, key %q (SandboxClass %s)", ns, ref.Name, ref.Key, class.Name)
	missing := func(format string, args ...any) error {
		return &backends.SettingsError{Reason: vizv1.ReasonAPIKeyMissing, Message: fmt.Sprintf(format, args...)}
	}
	sec := &corev1.Secret{}
	if err := b.Reader.Get(ctx, types.NamespacedName{Namespace: ns, Name: ref.Name}, sec); err != nil {
		switch {
		case apierrors.IsNotFound(err):
			return e2b.Config{}, missing(
				"Secret %s/%s named in SandboxClass %s's spec.e2b.apiKeySecretRef does not exist; the platform team creates it in the operator's namespace with the E2B API key under key %q and labels it %s=true "+
					"(kubectl -n %s create secret generic %s --from-literal=%s=e2b_...; kubectl -n %s label secret %s %s=true)",
				ns, ref.Name, class.Name, ref.Key, vizv1.LabelE2BAPIKey, ns, ref.Name, ref.Key, ns, ref.Name, vizv1.LabelE2BAPIKey)
		case apierrors.IsForbidden(err):
			return e2b.Config{}, missing(
				"the operator may not read Secret %s/%s named in SandboxClass %s; its Role in the operator's namespace grants get on Secrets", ns, ref.Name, class.Name)
		}
		return e2b.Config{}, err
	}
	if sec.Labels[vizv1.LabelE2BAPIKey] != "true" {
		return e2b.Config{}, missing(
			"Secret %s/%s named in SandboxClass %s is not labelled %s=true, and the operator sends only so labelled Secrets to E2B; label it (kubectl -n %s label secret %s %s=true) if it is meant for E2B",
			ns, ref.Name, class.Name, vizv1.LabelE2BAPIKey, ns, ref.Name, vizv1.LabelE2BAPIKey)
	}
	key := strings.TrimSpace(string(sec.Data[ref.Key]))
	if key == "" {
		return e2b.Config{}, missing(
			"Secret %s/%s has no key %q (SandboxClass %s's spec.e2b.apiKeySecretRef.key), or it is empty; put the E2B API key there", ns, ref.Name, ref.Key, class.Name)
	}
	pe := ptr.Deref(sp.Spec.E2B, vizv1.E2BPool{})
	if pe.SandboxTimeoutSeconds == 0 {
		pe.SandboxTimeoutSeconds = DefaultSandboxTimeoutSeconds
	}
	if pe.MaxCreatesPerSecond == 0 {
		pe.MaxCreatesPerSecond = DefaultMaxCreatesPerSecond
	}
	c := e2b.Config{
		APIURL:              spec.APIURL,
		AllowHTTP:           ptr.Deref(spec.AllowHTTP, false),
		Domain:              spec.Domain,
		TemplateID:          spec.TemplateID,
		APIKey:              e2b.APIKey(key),
		KeySource:           source,
		SandboxTimeout:      time.Duration(pe.SandboxTimeoutSeconds) * time.Second,
		MaxCreatesPerSecond: float64(pe.MaxCreatesPerSecond),
		PoolKey:             sp.Namespace + "/" + sp.Name,
		PoolUID:             string(sp.UID),
	}
	if c.APIURL == "" {
		c.APIURL = DefaultAPIURL
	}
	if c.Domain == "" {
		c.Domain = DefaultDomain
	}
	if c.TemplateID == "" {
		c.TemplateID = DefaultTemplateID
	}
	return c, nil
}

// Reason maps E2B's refusals to the Ready condition's reasons.
func (b *Backend) Reason(err error) string {
	var rej *e2b.KeyRejectedError
	var fe *e2b.ForbiddenError
	var pl *e2b.PlanLimitError
	switch {
	case errors.As(err, &rej):
		return vizv1.ReasonAPIKeyRejected
	case errors.As(err, &fe):
		switch fe.Kind {
		case e2b.ForbiddenTeam:
			return vizv1.ReasonTeamBlocked
		case e2b.ForbiddenTemplate:
			return vizv1.ReasonTemplateForbidden
		}
		return vizv1.ReasonProviderForbidden
	case errors.As(err, &pl):
		return vizv1.ReasonPlanLimitExceeded
	}
	return ""
}
