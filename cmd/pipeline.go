package main

import (
	"context"
	"fmt"
	"os"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/vizops/viz-operator/internal/controller"
	"github.com/vizops/viz-operator/internal/models"
)

// +kubebuilder:rbac:groups="",namespace=system,resources=secrets,verbs=get

// newPipeline returns the code pipeline: templates only without a providers file, else
// models whose API keys are read from Secrets in the operator's namespace. The reads go
// straight to the API server (no cache), so the operator never holds every Secret.
func newPipeline(providersConfig, namespace string, reader client.Reader) (controller.Pipeline, error) {
	if providersConfig == "" {
		return controller.CodegenPipeline{}, nil
	}
	cfg, err := models.LoadConfig(providersConfig)
	if err != nil {
		return nil, err
	}
	secrets := func(ctx context.Context, name, key string) (string, error) {
		s := &corev1.Secret{}
		if err := reader.Get(ctx, types.NamespacedName{Namespace: namespace, Name: name}, s); err != nil {
			return "", fmt.Errorf("reading Secret %s/%s: %w", namespace, name, err)
		}
		v, ok := s.Data[key]
		if !ok {
			return "", fmt.Errorf("the Secret %s/%s has no key %q", namespace, name, key)
		}
		return strings.TrimSpace(string(v)), nil
	}
	return controller.CodegenPipeline{Models: models.NewRegistry(cfg, models.Options{Secrets: secrets})}, nil
}

// operatorNamespace is where provider Secrets live: --operator-namespace, else the
// POD_NAMESPACE the Deployment sets, else the service account's namespace.
func operatorNamespace(flagValue string) string {
	if flagValue != "" {
		return flagValue
	}
	if ns := os.Getenv("POD_NAMESPACE"); ns != "" {
		return ns
	}
	if b, err := os.ReadFile("/var/run/secrets/kubernetes.io/serviceaccount/namespace"); err == nil {
		return strings.TrimSpace(string(b))
	}
	return "default"
}
