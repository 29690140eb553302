// Package crd_test checks the CRDs' CEL validation rules offline, with the API
// server's own CEL validator (k8s.io/apiextensions-apiserver), so a rule that does not
// compile or admits the wrong values fails here, without an API server.
package crd_test

import (
	"context"
	"os"
	"strings"
	"testing"

	"k8s.io/apiextensions-apiserver/pkg/apis/apiextensions"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apiextensions-apiserver/pkg/apiserver/schema"
	"k8s.io/apiextensions-apiserver/pkg/apiserver/schema/cel"
	celconfig "k8s.io/apiserver/pkg/apis/cel"
	"sigs.k8s.io/yaml"
)

func loadValidator(t *testing.T, path string) (*cel.Validator, *schema.Structural) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var crd apiextensionsv1.CustomResourceDefinition
	if err := yaml.Unmarshal(data, &crd); err != nil {
		t.Fatal(err)
	}
	var internal apiextensions.JSONSchemaProps
	if err := apiextensionsv1.Convert_v1_JSONSchemaProps_To_apiextensions_JSONSchemaProps(crd.Spec.Versions[0].Schema.OpenAPIV3Schema, &internal, nil); err != nil {
		t.Fatal(err)
	}
	s, err := schema.NewStructural(&internal)
	if err != nil {
		t.Fatal(err)
	}
	return cel.NewValidator(s, true, celconfig.PerCallLimit), s
}

// Issue 10, finding 10: memory and scratch per sandbox had no maximum.
func TestSandboxPoolResourceBounds(t *testing.T) {
	v, s := loadValidator(t, "bases/viz.vizops.io_sandboxpools.yaml")
	tests := map[string]struct {
		resources map[string]any
		wantErr   string // "" means valid
	}{
		"defaults":                   {map[string]any{"memory": "1Gi", "scratch": "64Mi"}, ""},
		"the largest allowed":        {map[string]any{"memory": "8Gi", "scratch": "1Gi"}, ""},
		"decimal units":              {map[string]any{"memory": "2G", "scratch": "500M"}, ""},
		"memory as a plain integer":  {map[string]any{"memory": int64(1 << 30)}, ""},
		"memory over 8Gi":            {map[string]any{"memory": "64Gi"}, "memory must be between 256Mi and 8Gi"},
		"memory over 8Gi as integer": {map[string]any{"memory": int64(64 << 30)}, "memory must be between 256Mi and 8Gi"},
		"memory under 256Mi":         {map[string]any{"memory": "64Mi"}, "memory must be between 256Mi and 8Gi"},
		"scratch over 1Gi":           {map[string]any{"scratch": "10Gi"}, "scratch must be between 1Mi and 1Gi"},
		"scratch under 1Mi":          {map[string]any{"scratch": "1Ki"}, "scratch must be between 1Mi and 1Gi"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			obj := map[string]any{
				"apiVersion": "viz.vizops.io/v1alpha1", "kind": "SandboxPool",
				"metadata": map[string]any{"name": "p", "namespace": "ns"},
				"spec":     map[string]any{"backend": "Local", "minReady": int64(1), "maxSandboxes": int64(4), "resources": tc.resources},
			}
			errs, _ := v.Validate(context.Background(), nil, s, obj, nil, celconfig.RuntimeCELCostBudget)
			got := errs.ToAggregate()
			switch {
			case tc.wantErr == "" && got != nil:
				t.Errorf("rejected: %v", got)
			case tc.wantErr != "" && (got == nil || !strings.Contains(got.Error(), tc.wantErr)):
				t.Errorf("error %v, want %q", got, tc.wantErr)
			}
		})
	}
}
