package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	vizv1 "github.com/vizops/viz-operator/api/v1alpha1"
)

// writeArtifacts writes every artifact of vr to outDir/<request>/<artifact name>,
// reading it from status or from the ConfigMap that holds it, after checking its
// sha256 and size against status. It returns the paths written.
func writeArtifacts(ctx context.Context, c client.Reader, vr *vizv1.VisualizationRequest, outDir string) ([]string, error) {
	dir := filepath.Join(outDir, vr.Name)
	if err := os.RemoveAll(dir); err != nil {
		return nil, err
	}
	if len(vr.Status.Artifacts) == 0 {
		return nil, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	var paths []string
	for _, a := range vr.Status.Artifacts {
		data, err := artifactData(ctx, c, vr.Namespace, a)
		if err != nil {
			return paths, fmt.Errorf("%s: %w", vr.Name, err)
		}
		name := filepath.Base(filepath.Clean("/" + a.Name))
		if name == "/" || name == "." || strings.HasPrefix(name, "..") {
			return paths, fmt.Errorf("%s: artifact name %q is not a file name", vr.Name, a.Name)
		}
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, data, 0o644); err != nil {
			return paths, err
		}
		paths = append(paths, path)
	}
	return paths, nil
}

// artifactData returns an artifact's bytes, checked against its sha256 and size.
func artifactData(ctx context.Context, c client.Reader, ns string, a vizv1.ArtifactStatus) ([]byte, error) {
	data := a.Data
	if ref := a.ConfigMapKeyRef; ref != nil {
		cm := &corev1.ConfigMap{}
		if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: ref.Name}, cm); err != nil {
			return nil, fmt.Errorf("artifact %s: reading ConfigMap %s: %w", a.Name, ref.Name, err)
		}
		var ok bool
		if data, ok = cm.BinaryData[ref.Key]; !ok {
			s, ok := cm.Data[ref.Key]
			if !ok {
				return nil, fmt.Errorf("artifact %s: ConfigMap %s has no key %q", a.Name, ref.Name, ref.Key)
			}
			data = []byte(s)
		}
	}
	sum := sha256.Sum256(data)
	if got := hex.EncodeToString(sum[:]); !strings.EqualFold(got, a.SHA256) {
		return nil, fmt.Errorf("artifact %s: sha256 mismatch: status says %s, the %d bytes hash to %s", a.Name, a.SHA256, len(data), got)
	}
	if int64(len(data)) != a.SizeBytes {
		return nil, fmt.Errorf("artifact %s: status says %d bytes, got %d", a.Name, a.SizeBytes, len(data))
	}
	return data, nil
}
