// Package vizclient holds what clients of the vizops API share (the kubectl plugin, the
// demo, in-cluster services): reading a request's artifacts and checking them.
package vizclient

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"

	vizv1 "github.com/vizops/viz-operator/api/v1alpha1"
)

// ArtifactData returns an artifact's bytes, from status or from the ConfigMap that
// holds it, checked against the sha256 and size recorded in status.
func ArtifactData(ctx context.Context, c client.Reader, ns string, a vizv1.ArtifactStatus) ([]byte, error) {
	data := a.Data
	if ref := a.ConfigMapKeyRef; ref != nil {
		cm := &corev1.ConfigMap{}
		if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: ref.Name}, cm); err != nil {
			if apierrors.IsNotFound(err) {
				return nil, fmt.Errorf("artifact %s: configmap %q not found in namespace %q", a.Name, ref.Name, ns)
			}
			return nil, fmt.Errorf("artifact %s: reading ConfigMap %s/%s: %w", a.Name, ns, ref.Name, err)
		}
		var ok bool
		if data, ok = cm.BinaryData[ref.Key]; !ok {
			s, ok := cm.Data[ref.Key]
			if !ok {
				return nil, fmt.Errorf("artifact %s: ConfigMap %s/%s has no key %q", a.Name, ns, ref.Name, ref.Key)
			}
			data = []byte(s)
		}
	} else if len(data) == 0 && a.SizeBytes > 0 {
		return nil, fmt.Errorf("artifact %s has neither data nor a configMapKeyRef in status", a.Name)
	}
	sum := sha256.Sum256(data)
	if got := hex.EncodeToString(sum[:]); !strings.EqualFold(got, a.SHA256) {
		return nil, fmt.Errorf("artifact %s: sha256 mismatch: status says %s, the %d bytes hash to %s; the artifact is corrupt or was changed", a.Name, a.SHA256, len(data), got)
	}
	if int64(len(data)) != a.SizeBytes {
		return nil, fmt.Errorf("artifact %s: status says %d bytes, got %d", a.Name, a.SizeBytes, len(data))
	}
	return data, nil
}
