package e2b

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	vizv1 "github.com/vizops/viz-operator/api/v1alpha1"
	"github.com/vizops/viz-operator/internal/backends"
	"github.com/vizops/viz-operator/internal/sandbox/e2b"
)

func TestOptions(t *testing.T) {
	const ns = "vizops-system"
	secret := func(name string, labelled bool, data map[string]string) *corev1.Secret {
		s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Data: map[string][]byte{}}
		if labelled {
			s.Labels = map[string]string{vizv1.LabelE2BAPIKey: "true"}
		}
		for k, v := range data {
			s.Data[k] = []byte(v)
		}
		return s
	}
	scheme := runtime.NewScheme()
	if err := corev1.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	reader := fake.NewClientBuilder().WithScheme(scheme).WithObjects(
		secret("good", true, map[string]string{"api-key": " e2b_key \n"}),
		secret("unlabelled", false, map[string]string{"api-key": "e2b_key"}),
		secret("empty", true, map[string]string{"other": "x"}),
	).Build()
	b := &Backend{Reader: reader, Namespace: ns}
	sp := &vizv1.SandboxPool{ObjectMeta: metav1.ObjectMeta{Namespace: "team", Name: "p", UID: "uid-1"}}
	class := func(e *vizv1.E2BClass) *vizv1.SandboxClass {
		return &vizv1.SandboxClass{ObjectMeta: metav1.ObjectMeta{Name: "e2b"}, Spec: vizv1.SandboxClassSpec{Backend: vizv1.BackendE2B, E2B: e}}
	}
	ref := func(name string) *vizv1.E2BClass {
		return &vizv1.E2BClass{APIKeySecretRef: vizv1.SecretKeyReference{Name: name, Key: "api-key"}}
	}
	for name, tc := range map[string]struct {
		class   *vizv1.SandboxClass
		pool    *vizv1.SandboxPool
		want    e2b.Config
		wantErr string
	}{
		"no spec.e2b":       {class: class(nil), wantErr: "no spec.e2b.apiKeySecretRef"},
		"no Secret":         {class: class(ref("missing")), wantErr: "vizops-system/missing named in SandboxClass e2b's spec.e2b.apiKeySecretRef does not exist"},
		"an unlabelled one": {class: class(ref("unlabelled")), wantErr: "is not labelled " + vizv1.LabelE2BAPIKey + "=true"},
		"no key in it":      {class: class(ref("empty")), wantErr: `has no key "api-key"`},
		"defaults": {class: class(ref("good")), want: e2b.Config{
			APIURL: DefaultAPIURL, Domain: DefaultDomain, TemplateID: DefaultTemplateID, APIKey: "e2b_key",
			KeySource:      `Secret vizops-system/good, key "api-key" (SandboxClass e2b)`,
			SandboxTimeout: DefaultSandboxTimeoutSeconds * time.Second, MaxCreatesPerSecond: DefaultMaxCreatesPerSecond,
			PoolKey: "team/p", PoolUID: "uid-1",
		}},
		"the class's and the pool's fields": {
			class: class(&vizv1.E2BClass{APIKeySecretRef: vizv1.SecretKeyReference{Name: "good", Key: "api-key"},
				APIURL: "http://e2b.internal", AllowHTTP: ptr.To(true), Domain: "e2b.internal", TemplateID: "mine"}),
			pool: &vizv1.SandboxPool{ObjectMeta: sp.ObjectMeta, Spec: vizv1.SandboxPoolSpec{E2B: &vizv1.E2BPool{SandboxTimeoutSeconds: 60, MaxCreatesPerSecond: 5}}},
			want: e2b.Config{
				APIURL: "http://e2b.internal", AllowHTTP: true, Domain: "e2b.internal", TemplateID: "mine", APIKey: "e2b_key",
				KeySource:      `Secret vizops-system/good, key "api-key" (SandboxClass e2b)`,
				SandboxTimeout: time.Minute, MaxCreatesPerSecond: 5, PoolKey: "team/p", PoolUID: "uid-1",
			}},
	} {
		t.Run(name, func(t *testing.T) {
			pool := tc.pool
			if pool == nil {
				pool = sp
			}
			got, err := b.Options(context.Background(), pool, tc.class)
			if tc.wantErr != "" {
				var se *backends.SettingsError
				if !errors.As(err, &se) || se.Reason != vizv1.ReasonAPIKeyMissing || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want an APIKeyMissing settings error saying %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("Options (-want +got):\n%s", diff)
			}
		})
	}
}

func TestReason(t *testing.T) {
	b := &Backend{}
	for name, tc := range map[string]struct {
		err  error
		want string
	}{
		"key rejected":     {&e2b.KeyRejectedError{Source: "s", Code: 401}, vizv1.ReasonAPIKeyRejected},
		"team blocked":     {&e2b.ForbiddenError{Kind: e2b.ForbiddenTeam}, vizv1.ReasonTeamBlocked},
		"template refused": {fmt.Errorf("create: %w", &e2b.ForbiddenError{Kind: e2b.ForbiddenTemplate}), vizv1.ReasonTemplateForbidden},
		"other 403":        {&e2b.ForbiddenError{}, vizv1.ReasonProviderForbidden},
		"plan limit":       {&e2b.PlanLimitError{Requested: 2 * time.Hour, Max: time.Hour}, vizv1.ReasonPlanLimitExceeded},
		"anything else":    {errors.New("timeout"), ""},
	} {
		t.Run(name, func(t *testing.T) {
			if got := b.Reason(tc.err); got != tc.want {
				t.Errorf("Reason = %q, want %q", got, tc.want)
			}
		})
	}
}
