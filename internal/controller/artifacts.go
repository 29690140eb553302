package controller

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	vizv1 "github.com/vizops/viz-operator/api/v1alpha1"
	"github.com/vizops/viz-operator/internal/artifacts"
	"github.com/vizops/viz-operator/internal/sandbox"
)

// LabelRequest marks a request's artifact ConfigMap.
const LabelRequest = "viz.vizops.io/request"

// storeArtifacts sanitizes the files and puts them in status or in a ConfigMap owned
// by the request (garbage-collected with it). The ConfigMap has a fixed name, so a
// retried or restarted store overwrites rather than duplicates.
func (r *VisualizationRequestReconciler) storeArtifacts(ctx context.Context, s *scope, files []sandbox.Artifact) error {
	limits := artifacts.DefaultLimits()
	limits.PlotlyJSURL = r.DefaultPlotlyJSURL
	if s.pool != nil && s.pool.Spec.PlotlyJSURL != "" {
		limits.PlotlyJSURL = s.pool.Spec.PlotlyJSURL
	}
	arts, warnings, err := artifacts.Prepare(files, limits)
	if err != nil {
		return err
	}
	for _, w := range warnings {
		s.events = append(s.events, eventRecord{kind: "Warning", reason: "ArtifactDropped", action: vizv1.ConditionArtifactsStored, message: truncate(w, 1024)})
	}
	s.vr.Status.Artifacts = nil
	if len(arts) == 0 {
		return nil
	}
	place, err := artifacts.Place(arts, artifacts.Storage(s.vr.Spec.ArtifactStorage))
	if err != nil {
		if t, ok := asTerminal(err); ok {
			s.setCondition(vizv1.ConditionArtifactsStored, metav1.ConditionFalse, t.Reason(), t.Error(), true)
			s.finish(vizv1.PhaseFailed, t.Reason(), t.Error())
			return nil
		}
		return err
	}
	name := artifactConfigMapName(s.vr.Name)
	if !place.InStatus {
		cm := &corev1.ConfigMap{}
		cm.Namespace, cm.Name = s.vr.Namespace, name
		_, err := controllerutil.CreateOrUpdate(ctx, r.Client, cm, func() error {
			if cm.Labels == nil {
				cm.Labels = map[string]string{}
			}
			cm.Labels[LabelRequest] = s.vr.Name
			cm.BinaryData = map[string][]byte{}
			cm.Data = nil
			for _, a := range arts {
				cm.BinaryData[artifacts.ConfigMapKey(a)] = a.Data
			}
			return controllerutil.SetControllerReference(s.vr, cm, r.Scheme())
		})
		if err != nil {
			return fmt.Errorf("writing artifact ConfigMap %s: %w", name, err)
		}
	}
	for _, a := range arts {
		as := vizv1.ArtifactStatus{
			Name: a.Name, Format: a.Format, MIMEType: a.MIMEType,
			SizeBytes: a.SizeBytes, SHA256: a.SHA256, Note: truncate(a.Note, 256),
		}
		if place.InStatus {
			as.Data = a.Data
		} else {
			as.ConfigMapKeyRef = &vizv1.ConfigMapKeyReference{Name: name, Key: artifacts.ConfigMapKey(a)}
		}
		s.vr.Status.Artifacts = append(s.vr.Status.Artifacts, as)
	}
	where := "in status"
	if !place.InStatus {
		where = "in ConfigMap " + name
	}
	s.setCondition(vizv1.ConditionArtifactsStored, metav1.ConditionTrue, "ArtifactsStored",
		fmt.Sprintf("%d artifact(s) stored %s", len(arts), where), false)
	return nil
}

// artifactConfigMapName is "<request>-artifacts", shortened with a hash when the
// request's name is too long for that.
func artifactConfigMapName(req string) string {
	const suffix = "-artifacts"
	if len(req)+len(suffix) <= 253 {
		return req + suffix
	}
	h := sha256.Sum256([]byte(req))
	return req[:253-len(suffix)-9] + "-" + hex.EncodeToString(h[:4]) + suffix
}
