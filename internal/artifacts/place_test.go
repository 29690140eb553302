package artifacts

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"k8s.io/apimachinery/pkg/util/validation"
)

// sized is an artifact of n bytes (Place only looks at names, formats and sizes).
func sized(name, format string, n int64) Artifact {
	return Artifact{Name: name, Format: format, SizeBytes: n}
}

func TestPlace(t *testing.T) {
	const KiB, MiB = 1 << 10, 1 << 20
	tests := map[string]struct {
		arts    []Artifact
		storage Storage
		want    Placement
		wantErr string
	}{
		"auto, small: status":         {arts: []Artifact{sized("a.png", "png", 100*KiB)}, storage: StorageAuto, want: Placement{InStatus: true}},
		"auto, empty storage: status": {arts: []Artifact{sized("a.png", "png", 100*KiB)}, storage: "", want: Placement{InStatus: true}},
		"auto, none: status":          {storage: StorageAuto, want: Placement{InStatus: true}},
		"auto, exactly the inline limit: status": {
			arts: []Artifact{sized("a.png", "png", InlineLimitBytes)}, storage: StorageAuto, want: Placement{InStatus: true},
		},
		"auto, one byte over inline: ConfigMap": {
			arts: []Artifact{sized("a.png", "png", InlineLimitBytes+1)}, storage: StorageAuto, want: Placement{InStatus: false},
		},
		"auto, exactly the ConfigMap budget, keys counted": {
			arts: []Artifact{sized("a.png", "png", ConfigMapBudgetBytes-5)}, storage: StorageAuto, want: Placement{InStatus: false},
		},
		"auto, one byte over the ConfigMap budget": {
			arts:    []Artifact{sized("a.png", "png", ConfigMapBudgetBytes-4)},
			storage: StorageAuto,
			wantErr: "ArtifactTooLarge: the PNG a.png is 992 KiB (1015804 bytes); a ConfigMap holds 992 KiB (1015803 bytes) of artifacts. Lower the figure's dpi, or choose svg.",
		},
		"auto, several formats too large": {
			arts:    []Artifact{sized("chart.png", "png", 12*MiB/10), sized("chart.html", "html", 200*KiB)},
			storage: StorageAuto,
			wantErr: "ArtifactTooLarge: the artifacts total 1.4 MiB (largest: chart.png, 1.2 MiB); a ConfigMap holds 992 KiB of artifacts. Lower the figure's dpi, load plotly.js from a URL instead of inlining it, ask for fewer formats, or choose svg.",
		},
		"auto, inlined plotly.js": {
			arts:    []Artifact{sized("chart.html", "html", 7*MiB/2)},
			storage: StorageAuto,
			wantErr: "ArtifactTooLarge: the HTML chart.html is 3.5 MiB; a ConfigMap holds 992 KiB of artifacts. Load plotly.js from a URL instead of inlining it.",
		},
		"configmap, too large svg": {
			arts:    []Artifact{sized("chart.svg", "svg", 2*MiB)},
			storage: StorageConfigMap,
			wantErr: "ArtifactTooLarge: the SVG chart.svg is 2 MiB; a ConfigMap holds 992 KiB of artifacts. Plot fewer points or write smaller files.",
		},
		"configmap, small: ConfigMap": {arts: []Artifact{sized("a.png", "png", 10)}, storage: StorageConfigMap, want: Placement{InStatus: false}},
		"status, small: status":       {arts: []Artifact{sized("a.png", "png", 10)}, storage: StorageStatus, want: Placement{InStatus: true}},
		"status, over 256 KiB": {
			arts:    []Artifact{sized("a.png", "png", 300*KiB)},
			storage: StorageStatus,
			wantErr: "ArtifactTooLarge: the PNG a.png is 300 KiB; status holds at most 256 KiB inline. Set artifactStorage to ConfigMap or Auto.",
		},
		"status, too large for a ConfigMap too": {
			arts:    []Artifact{sized("a.png", "png", 2*MiB)},
			storage: StorageStatus,
			wantErr: "ArtifactTooLarge: the PNG a.png is 2 MiB; status holds at most 256 KiB inline. Set artifactStorage to ConfigMap or Auto (a ConfigMap holds 992 KiB, so also make the figure smaller: lower the figure's dpi, or choose svg).",
		},
		"unknown storage": {storage: "S3", wantErr: `unknown artifact storage "S3": use Auto, Status or ConfigMap`},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got, err := Place(tc.arts, tc.storage)
			if tc.wantErr != "" {
				if err == nil {
					t.Fatalf("want error %q, got %+v", tc.wantErr, got)
				}
				if diff := cmp.Diff(tc.wantErr, err.Error()); diff != "" {
					t.Errorf("error (-want +got):\n%s", diff)
				}
				var tl *TooLargeError
				if isTooLarge := errors.As(err, &tl); isTooLarge != strings.HasPrefix(tc.wantErr, "ArtifactTooLarge") {
					t.Errorf("errors.As TooLargeError = %v", isTooLarge)
				} else if isTooLarge && tl.Reason() != "ArtifactTooLarge" {
					t.Errorf("Reason() = %q", tl.Reason())
				}
				return
			}
			if err != nil {
				t.Fatalf("unexpected error: %v", err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("placement (-want +got):\n%s", diff)
			}
		})
	}
}

func TestConfigMapKey(t *testing.T) {
	tests := map[string]struct{ name, want string }{
		"prepared name kept": {"chart-2.png", "chart-2.png"},
		"slashes":            {"a/b.png", "a_b.png"},
		"dot":                {".", "_"},
		"dot-dot":            {"..", "_."},
		"leading dots":       {"..x", "_.x"},
		"empty":              {"", "artifact"},
		"unicode":            {"é.svg", "_.svg"},
		"long":               {strings.Repeat("a", 300), strings.Repeat("a", 253)},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got := ConfigMapKey(Artifact{Name: tc.name})
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
			if errs := validation.IsConfigMapKey(got); len(errs) > 0 {
				t.Errorf("%q: %v", got, errs)
			}
		})
	}
}

func TestHumanBytes(t *testing.T) {
	for n, want := range map[int64]string{0: "0 B", 1023: "1023 B", 1024: "1 KiB", 1536: "1.5 KiB", 1 << 20: "1 MiB", 1468006: "1.4 MiB"} {
		if got := humanBytes(n); got != want {
			t.Errorf("humanBytes(%d) = %q, want %q", n, got, want)
		}
	}
}
