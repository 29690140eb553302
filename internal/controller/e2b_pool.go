package controller

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"

	vizv1 "github.com/vizops/viz-operator/api/v1alpha1"
	"github.com/vizops/viz-operator/internal/sandbox"
	"github.com/vizops/viz-operator/internal/sandbox/e2b"
)

// The E2B API key is read from the operator's own namespace (a Role, not a
// ClusterRole), one Secret by name, uncached: the manager never caches Secrets, and
// reads none in tenants' namespaces.
// +kubebuilder:rbac:groups="",namespace=system,resources=secrets,verbs=get

// poolSettingsError is a backend's settings that cannot be resolved; its reason
// becomes the pool's Ready condition's. It wraps sandbox.ErrUnavailable.
type poolSettingsError struct {
	reason, msg string
}

func (e *poolSettingsError) Error() string { return e.msg }
func (e *poolSettingsError) Unwrap() error { return sandbox.ErrUnavailable }

// backendSettings resolves the backend's own settings for the registry (nil for
// backends that have none). When they cannot be (the Secret went away), the live
// pool goes too: it must not keep running on settings that no longer exist.
func (r *SandboxPoolReconciler) backendSettings(ctx context.Context, sp *vizv1.SandboxPool, class *vizv1.SandboxClass) (any, error) {
	if class.Spec.Backend != vizv1.BackendE2B {
		return nil, nil
	}
	settings, err := r.e2bSettings(ctx, sp, class)
	var se *poolSettingsError
	if errors.As(err, &se) {
		_ = r.Pools.Remove(types.NamespacedName{Namespace: sp.Namespace, Name: sp.Name}.String())
	}
	return settings, err
}

// e2bSettings reads the API key from the Secret the class's spec.e2b.apiKeySecretRef
// names in the operator's namespace, and fills in the defaults. The URL the key goes
// to is the class's: a tenant chooses neither.
func (r *SandboxPoolReconciler) e2bSettings(ctx context.Context, sp *vizv1.SandboxPool, class *vizv1.SandboxClass) (any, error) {
	spec := class.Spec.E2B
	if spec == nil {
		return nil, &poolSettingsError{vizv1.ReasonAPIKeyMissing, fmt.Sprintf("SandboxClass %s has backend E2B but no spec.e2b.apiKeySecretRef naming the Secret that holds the E2B API key", class.Name)}
	}
	ns := r.OperatorNamespace
	ref := spec.APIKeySecretRef
	source := fmt.Sprintf("Secret %s/%s, key %q (SandboxClass %s)", ns, ref.Name, ref.Key, class.Name)
	reader := r.APIReader
	if reader == nil {
		reader = r.Client
	}
	sec := &corev1.Secret{}
	if err := reader.Get(ctx, types.NamespacedName{Namespace: ns, Name: ref.Name}, sec); err != nil {
		switch {
		case apierrors.IsNotFound(err):
			return nil, &poolSettingsError{vizv1.ReasonAPIKeyMissing, fmt.Sprintf(
				"Secret %s/%s named in SandboxClass %s's spec.e2b.apiKeySecretRef does not exist; the platform team creates it in the operator's namespace with the E2B API key under key %q and labels it %s=true "+
					"(kubectl -n %s create secret generic %s --from-literal=%s=e2b_...; kubectl -n %s label secret %s %s=true)",
				ns, ref.Name, class.Name, ref.Key, vizv1.LabelE2BAPIKey, ns, ref.Name, ref.Key, ns, ref.Name, vizv1.LabelE2BAPIKey)}
		case apierrors.IsForbidden(err):
			return nil, &poolSettingsError{vizv1.ReasonAPIKeyMissing, fmt.Sprintf(
				"the operator may not read Secret %s/%s named in SandboxClass %s; its Role in the operator's namespace grants get on Secrets", ns, ref.Name, class.Name)}
		}
		return nil, err
	}
	if sec.Labels[vizv1.LabelE2BAPIKey] != "true" {
		return nil, &poolSettingsError{vizv1.ReasonAPIKeyMissing, fmt.Sprintf(
			"Secret %s/%s named in SandboxClass %s is not labelled %s=true, and the operator sends only so labelled Secrets to E2B; label it (kubectl -n %s label secret %s %s=true) if it is meant for E2B",
			ns, ref.Name, class.Name, vizv1.LabelE2BAPIKey, ns, ref.Name, vizv1.LabelE2BAPIKey)}
	}
	key := strings.TrimSpace(string(sec.Data[ref.Key]))
	if key == "" {
		return nil, &poolSettingsError{vizv1.ReasonAPIKeyMissing, fmt.Sprintf(
			"Secret %s/%s has no key %q (SandboxClass %s's spec.e2b.apiKeySecretRef.key), or it is empty; put the E2B API key there", ns, ref.Name, ref.Key, class.Name)}
	}
	pe := ptr.Deref(sp.Spec.E2B, vizv1.E2BPool{})
	if pe.SandboxTimeoutSeconds == 0 {
		pe.SandboxTimeoutSeconds = 300
	}
	if pe.MaxCreatesPerSecond == 0 {
		pe.MaxCreatesPerSecond = 1
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
		c.APIURL = "https://api.e2b.app"
	}
	if c.Domain == "" {
		c.Domain = "e2b.app"
	}
	if c.TemplateID == "" {
		c.TemplateID = "code-interpreter-v1"
	}
	return c, nil
}

// backendReason is the Ready condition's reason for a backend's own failure ("" for
// the generic BackendUnavailable).
func backendReason(err error) string {
	var se *poolSettingsError
	var rej *e2b.KeyRejectedError
	var fe *e2b.ForbiddenError
	var pl *e2b.PlanLimitError
	switch {
	case errors.As(err, &se):
		return se.reason
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

// setThrottled writes the Throttled condition of a pool whose provider may throttle
// it (E2B), with an Event when it changes.
func (r *SandboxPoolReconciler) setThrottled(sp *vizv1.SandboxPool, backend vizv1.Backend, throttled string, now metav1.Time) {
	prev := meta.FindStatusCondition(sp.Status.Conditions, vizv1.PoolConditionThrottled)
	if backend != vizv1.BackendE2B && prev == nil && throttled == "" {
		return
	}
	cond := metav1.Condition{Type: vizv1.PoolConditionThrottled, ObservedGeneration: sp.Generation, LastTransitionTime: now,
		Status: metav1.ConditionFalse, Reason: vizv1.ReasonNotThrottled, Message: "sandboxes are created at full rate"}
	if throttled != "" {
		cond.Status, cond.Reason, cond.Message = metav1.ConditionTrue, vizv1.ReasonRateLimited, throttled
	}
	if prev != nil && prev.Status != cond.Status {
		kind := "Normal"
		if cond.Status == metav1.ConditionTrue {
			kind = "Warning"
		}
		r.Recorder.Eventf(sp, nil, kind, cond.Reason, "Reconcile", "%s", cond.Message)
	} else if prev == nil && cond.Status == metav1.ConditionTrue {
		r.Recorder.Eventf(sp, nil, "Warning", cond.Reason, "Reconcile", "%s", cond.Message)
	}
	meta.SetStatusCondition(&sp.Status.Conditions, cond)
}
