package backends_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	vizv1 "github.com/vizops/viz-operator/api/v1alpha1"
	"github.com/vizops/viz-operator/internal/backends"
	"github.com/vizops/viz-operator/internal/sandbox"
)

// named is a backend of a name that maps errOwn to its own reason.
type named struct{ name vizv1.Backend }

var errOwn = errors.New("refused by the provider")

func (n named) Name() vizv1.Backend { return n.name }
func (n named) Ensure(context.Context, backends.Input) (backends.Ensured, error) {
	return backends.Ensured{}, nil
}
func (n named) Reason(err error) string {
	if errors.Is(err, errOwn) {
		return "OwnReason"
	}
	return ""
}

// caching is a backend whose Pods the cache must hold.
type caching struct{ named }

func (caching) CacheObjects() map[client.Object]cache.ByObject {
	return map[client.Object]cache.ByObject{&corev1.Pod{}: {}}
}

func TestSet(t *testing.T) {
	s := backends.NewSet(named{"Local"}, named{"E2B"})
	s.Register(caching{named{"Kubernetes"}})
	s.Register(named{"Local"}) // a second registration of a name replaces the first
	var names []vizv1.Backend
	for _, b := range s.All() {
		names = append(names, b.Name())
	}
	if diff := cmp.Diff([]vizv1.Backend{"E2B", "Kubernetes", "Local"}, names); diff != "" {
		t.Errorf("All (-want +got):\n%s", diff)
	}
	if _, ok := s.Get("Other"); ok {
		t.Error("Get found a backend that is not registered")
	}
	if b, ok := s.Get("E2B"); !ok || b.Name() != "E2B" {
		t.Errorf("Get(E2B) = %v, %v", b, ok)
	}
	err := s.NotImplemented("Other")
	if !errors.Is(err, sandbox.ErrBackendNotImplemented) {
		t.Errorf("NotImplemented = %v, not ErrBackendNotImplemented", err)
	}
	if want := `backend "Other" is not available in this operator (available: E2B, Kubernetes, Local)`; err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("NotImplemented = %v, want it to name the available backends: %q", err, want)
	}
	by := s.CacheObjects(map[client.Object]cache.ByObject{&corev1.ConfigMap{}: {}})
	if len(by) != 2 {
		t.Errorf("CacheObjects = %v, want the ConfigMaps given and the Pods of the caching backend", by)
	}
	var none *backends.Set
	if _, ok := none.Get("Local"); ok || len(none.All()) != 0 {
		t.Error("a nil set has backends")
	}
}

func TestReasonOf(t *testing.T) {
	settings := &backends.SettingsError{Reason: vizv1.ReasonAPIKeyMissing, Message: "no key"}
	for name, tc := range map[string]struct {
		b    backends.Backend
		err  error
		want string
	}{
		"no error":                      {named{"E2B"}, nil, ""},
		"a settings error, any backend": {nil, fmt.Errorf("wrapped: %w", settings), vizv1.ReasonAPIKeyMissing},
		"the backend's own error":       {named{"E2B"}, fmt.Errorf("create: %w", errOwn), "OwnReason"},
		"an error the backend leaves":   {named{"E2B"}, errors.New("timeout"), ""},
		"no backend (no class)":         {nil, errOwn, ""},
	} {
		t.Run(name, func(t *testing.T) {
			if got := backends.ReasonOf(tc.b, tc.err); got != tc.want {
				t.Errorf("ReasonOf = %q, want %q", got, tc.want)
			}
		})
	}
	if !errors.Is(settings, sandbox.ErrUnavailable) {
		t.Error("a SettingsError is not sandbox.ErrUnavailable")
	}
}
