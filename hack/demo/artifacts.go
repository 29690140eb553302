package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"sigs.k8s.io/controller-runtime/pkg/client"

	vizv1 "github.com/vizops/viz-operator/api/v1alpha1"
	"github.com/vizops/viz-operator/internal/vizclient"
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
		data, err := vizclient.ArtifactData(ctx, c, vr.Namespace, a)
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
