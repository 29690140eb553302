package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"sigs.k8s.io/controller-runtime/pkg/client"

	vizv1 "github.com/vizops/viz-operator/api/v1alpha1"
	"github.com/vizops/viz-operator/internal/artifacts"
	"github.com/vizops/viz-operator/internal/vizclient"
)

// writeArtifacts writes every artifact of vr to outDir/<request>/<artifact name>,
// reading it from status or from the ConfigMap that holds it, after checking its
// sha256 and size against status, through the writer kubectl viz uses (operator name
// rules, no symlink followed). Interactive charts get the local plotly.js beside them
// (lib; nil keeps the CDN), so they open offline. It returns the paths written.
func writeArtifacts(ctx context.Context, c client.Reader, vr *vizv1.VisualizationRequest, outDir string, lib []byte) ([]string, error) {
	dir := filepath.Join(outDir, vr.Name)
	if err := os.RemoveAll(dir); err != nil {
		return nil, err
	}
	if len(vr.Status.Artifacts) == 0 {
		return nil, nil
	}
	var files []artifacts.File
	for _, a := range vr.Status.Artifacts {
		data, err := vizclient.ArtifactData(ctx, c, vr.Namespace, a)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", vr.Name, err)
		}
		if err := artifacts.CheckName(a.Name); err != nil {
			return nil, fmt.Errorf("%s: %w", vr.Name, err)
		}
		files = append(files, artifacts.File{Name: a.Name, Data: data})
	}
	if lib != nil {
		var err error
		if files, err = artifacts.LocalizePlotly(files, lib); err != nil {
			return nil, fmt.Errorf("%s: %w", vr.Name, err)
		}
	}
	return artifacts.WriteFiles(dir, files, true)
}
