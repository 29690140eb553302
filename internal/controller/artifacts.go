package controller

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	vizv1 "github.com/vizops/viz-operator/api/v1alpha1"
	"github.com/vizops/viz-operator/internal/artifacts"
	"github.com/vizops/viz-operator/internal/sandbox"
)

// storeArtifacts sanitizes the files and puts them in status or in a ConfigMap owned
// by the request (garbage-collected with it). Inline artifacts are placed against the
// room the request's size budget leaves, so Auto spills to the ConfigMap before the
// status could outgrow etcd. The ConfigMap has a fixed name: a retried store of the same
// request overwrites its own ConfigMap, and a ConfigMap of that name owned by anything
// else is never adopted or overwritten.
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
		s.events = append(s.events, eventRecord{kind: corev1.EventTypeWarning, reason: vizv1.ReasonArtifactDropped, action: vizv1.ConditionArtifactsStored, message: truncate(w, 1024)})
	}
	s.vr.Status.Artifacts = nil
	if len(arts) == 0 {
		return nil
	}
	place, err := artifacts.PlaceWithin(arts, artifacts.Storage(s.vr.Spec.ArtifactStorage), int64(r.roomForStatus(s.vr)-objectSize(statusOnly(s.vr))))
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
		conflict, err := r.writeArtifactConfigMap(ctx, s.vr, name, arts)
		if err != nil {
			return err
		}
		if conflict != "" {
			s.setCondition(vizv1.ConditionArtifactsStored, metav1.ConditionFalse, vizv1.ReasonArtifactConfigMapConflict, conflict, true)
			s.finish(vizv1.PhaseFailed, vizv1.ReasonArtifactConfigMapConflict, conflict)
			return nil
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
	s.setCondition(vizv1.ConditionArtifactsStored, metav1.ConditionTrue, vizv1.ReasonArtifactsStored,
		fmt.Sprintf("%d artifact(s) stored %s", len(arts), where), false)
	return nil
}

// writeArtifactConfigMap creates the request's artifact ConfigMap, or overwrites it when
// this request (its UID) already owns it. A ConfigMap of that name owned by something
// else is a conflict (returned as a message for the user), except one left by a deleted
// request of the same name that the garbage collector has not removed yet: that one is
// deleted, with a UID precondition, and replaced.
func (r *VisualizationRequestReconciler) writeArtifactConfigMap(ctx context.Context, vr *vizv1.VisualizationRequest, name string, arts []artifacts.Artifact) (string, error) {
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{
		Namespace: vr.Namespace, Name: name,
		Labels: map[string]string{vizv1.LabelRequestUID: string(vr.UID)},
	}}
	cm.BinaryData = map[string][]byte{}
	for _, a := range arts {
		cm.BinaryData[artifacts.ConfigMapKey(a)] = a.Data
	}
	if err := controllerutil.SetControllerReference(vr, cm, r.Scheme()); err != nil {
		return "", err
	}
	for try := 0; try < 2; try++ {
		err := r.Create(ctx, cm)
		if err == nil || !apierrors.IsAlreadyExists(err) {
			return "", err
		}
		existing := &corev1.ConfigMap{}
		// Uncached: the ConfigMap may carry none of our labels.
		if err := r.APIReader.Get(ctx, client.ObjectKeyFromObject(cm), existing); err != nil {
			if apierrors.IsNotFound(err) {
				continue // deleted meanwhile: create again
			}
			return "", err
		}
		owner := metav1.GetControllerOf(existing)
		switch {
		case owner != nil && owner.UID == vr.UID:
			existing.BinaryData, existing.Data = cm.BinaryData, nil
			if existing.Labels == nil {
				existing.Labels = map[string]string{}
			}
			existing.Labels[vizv1.LabelRequestUID] = string(vr.UID)
			return "", r.Update(ctx, existing)
		case owner != nil && owner.Kind == vizv1.KindVisualizationRequest && owner.Name == vr.Name:
			// An earlier request of this name (another UID) is gone or going; its
			// ConfigMap awaits the garbage collector.
			uid := existing.UID
			err := r.Delete(ctx, existing, client.Preconditions{UID: &uid})
			if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
				return "", err
			}
			continue
		}
		return fmt.Sprintf("ConfigMap %s/%s already exists and does not belong to this request, so its artifacts were not written there (vizops never adopts or overwrites a ConfigMap it did not create); delete or rename that ConfigMap, or re-create this request under another name",
			vr.Namespace, name), nil
	}
	return "", fmt.Errorf("ConfigMap %s/%s kept reappearing while it was being replaced", vr.Namespace, name)
}

// statusOnly is the request with only its status (and without artifacts): what the
// status already takes before artifacts are added.
func statusOnly(vr *vizv1.VisualizationRequest) *vizv1.VisualizationRequest {
	st := vr.Status.DeepCopy()
	st.Artifacts = nil
	return &vizv1.VisualizationRequest{Status: *st}
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
