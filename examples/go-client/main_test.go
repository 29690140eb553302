package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	vizv1 "github.com/vizops/viz-operator/api/v1alpha1"
)

// The example against a real API server. No operator runs here: the test plays its
// part, writing the status an operator would.
func TestChartAgainstAnAPIServer(t *testing.T) {
	if os.Getenv("KUBEBUILDER_ASSETS") == "" {
		t.Skip("KUBEBUILDER_ASSETS is not set: run with `make test`, which finds or builds the envtest binaries")
	}
	env := &envtest.Environment{CRDDirectoryPaths: []string{filepath.Join("..", "..", "config", "crd", "bases")}, ErrorIfCRDPathMissing: true}
	cfg, err := env.Start()
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = env.Stop() }()
	c, err := NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	png := []byte("\x89PNG\r\n\x1a\n a chart")
	spilled := []byte("<svg>a larger chart</svg>")
	tests := map[string]struct {
		operator func(vr *vizv1.VisualizationRequest) error
		wantErr  string
		want     map[string][]byte
	}{
		"succeeds, one artifact inline and one in a ConfigMap": {
			operator: func(vr *vizv1.VisualizationRequest) error {
				if err := setPhase(ctx, c, vr, vizv1.PhaseRunning, nil); err != nil {
					return err
				}
				cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: vr.Namespace, Name: vr.Name + "-artifacts"},
					BinaryData: map[string][]byte{"figure_1.svg": spilled}}
				if err := c.Create(ctx, cm); err != nil {
					return err
				}
				return setPhase(ctx, c, vr, vizv1.PhaseSucceeded, []vizv1.ArtifactStatus{
					{Name: "figure_1.png", Format: string(vizv1.FormatPNG), MIMEType: "image/png", Data: png, SHA256: sum(png), SizeBytes: int64(len(png))},
					{Name: "figure_1.svg", Format: string(vizv1.FormatSVG), MIMEType: "image/svg+xml", SHA256: sum(spilled), SizeBytes: int64(len(spilled)),
						ConfigMapKeyRef: &vizv1.ConfigMapKeyReference{Name: cm.Name, Key: "figure_1.svg"}},
				})
			},
			want: map[string][]byte{"figure_1.png": png, "figure_1.svg": spilled},
		},
		"fails: the error names the reason": {
			operator: func(vr *vizv1.VisualizationRequest) error {
				return setPhase(ctx, c, vr, vizv1.PhaseFailed, nil)
			},
			wantErr: "ended Failed: " + vizv1.ReasonTimeout,
		},
		"deleted while waited on": {
			operator: func(vr *vizv1.VisualizationRequest) error { return c.Delete(ctx, vr) },
			wantErr:  "was deleted before it finished",
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "go-client-"}}
			if err := c.Create(ctx, ns); err != nil {
				t.Fatal(err)
			}
			operated := make(chan error, 1)
			go func() {
				// The operator's part, once the request exists.
				for ctx.Err() == nil {
					var list vizv1.VisualizationRequestList
					if err := c.List(ctx, &list, client.InNamespace(ns.Name)); err == nil && len(list.Items) == 1 {
						operated <- tc.operator(&list.Items[0])
						return
					}
					time.Sleep(50 * time.Millisecond)
				}
				operated <- ctx.Err()
			}()
			vr, err := Chart(ctx, c, ns.Name, "plot VOE episodes per month")
			// The operator's part has ended before this subtest does.
			if opErr := <-operated; opErr != nil {
				t.Fatalf("playing the operator: %v", opErr)
			}
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got := map[string][]byte{}
			for _, a := range vr.Status.Artifacts {
				data, err := Artifact(ctx, c, vr, a)
				if err != nil {
					t.Fatal(err)
				}
				got[a.Name] = data
			}
			if len(got) != len(tc.want) {
				t.Fatalf("got %d artifacts, want %d", len(got), len(tc.want))
			}
			for k, v := range tc.want {
				if string(got[k]) != string(v) {
					t.Errorf("%s: got %q, want %q", k, got[k], v)
				}
			}
			// A corrupted ConfigMap is caught by the checksum.
			a := vr.Status.Artifacts[1]
			a.SHA256 = sum([]byte("something else"))
			if _, err := Artifact(ctx, c, vr, a); err == nil {
				t.Error("a checksum mismatch was not reported")
			}
		})
	}
}

func setPhase(ctx context.Context, c client.Client, vr *vizv1.VisualizationRequest, phase vizv1.Phase, arts []vizv1.ArtifactStatus) error {
	patch := client.MergeFrom(vr.DeepCopy())
	vr.Status.Phase = phase
	vr.Status.Artifacts = arts
	if phase.Finished() {
		status, reason := metav1.ConditionTrue, vizv1.ReasonSucceeded
		if phase == vizv1.PhaseFailed {
			status, reason = metav1.ConditionFalse, vizv1.ReasonTimeout
		}
		vr.Status.Conditions = []metav1.Condition{{Type: vizv1.ConditionReady, Status: status, Reason: reason,
			Message: "as the operator would say", LastTransitionTime: metav1.Now()}}
	}
	return c.Status().Patch(ctx, vr, patch)
}

func sum(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}
