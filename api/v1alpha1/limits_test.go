package v1alpha1

import (
	"os"
	"path/filepath"
	"testing"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"sigs.k8s.io/yaml"
)

// The limits clients read (limits.go) are the ones the generated CRD enforces.
func TestLimitsMatchCRD(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("..", "..", "config", "crd", "bases", "viz.vizops.io_visualizationrequests.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	crd := &apiextensionsv1.CustomResourceDefinition{}
	if err := yaml.Unmarshal(data, crd); err != nil {
		t.Fatal(err)
	}
	var spec apiextensionsv1.JSONSchemaProps
	for _, v := range crd.Spec.Versions {
		if v.Name == GroupVersion.Version {
			spec = v.Schema.OpenAPIV3Schema.Properties["spec"]
		}
	}
	p := spec.Properties
	tests := map[string]struct {
		got  *int64
		want int64
	}{
		"spec.prompt maxLength":       {p["prompt"].MaxLength, MaxPromptLength},
		"spec.code maxLength":         {p["code"].MaxLength, MaxCodeLength},
		"spec.data.csv maxLength":     {p["data"].Properties["csv"].MaxLength, MaxInlineCSVLength},
		"spec.outputFormats maxItems": {p["outputFormats"].MaxItems, MaxOutputFormats},
		"spec.timeoutSeconds minimum": {floatToInt(p["timeoutSeconds"].Minimum), MinTimeoutSeconds},
		"spec.timeoutSeconds maximum": {floatToInt(p["timeoutSeconds"].Maximum), MaxTimeoutSeconds},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if tc.got == nil || *tc.got != tc.want {
				t.Errorf("the CRD says %v, the constant %d", tc.got, tc.want)
			}
		})
	}
}

func floatToInt(f *float64) *int64 {
	if f == nil {
		return nil
	}
	i := int64(*f)
	return &i
}
