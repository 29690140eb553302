package controller

import (
	"context"
	"errors"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	vizv1 "github.com/vizops/viz-operator/api/v1alpha1"
	"github.com/vizops/viz-operator/internal/codegen"
	"github.com/vizops/viz-operator/internal/metrics"
	"github.com/vizops/viz-operator/internal/pipeline"
	"github.com/vizops/viz-operator/internal/sandbox"
)

// Pipeline runs one request's pipeline (detection as decided, code generation with
// repair and fallback, execution with exec, verification) and returns its one Result.
// Errors that internal/requeststatus calls terminal end the request; others are
// transient (retried).
type Pipeline interface {
	Run(ctx context.Context, req pipeline.Request, exec pipeline.Exec) (pipeline.Result, error)
}

// reconcileExecution starts the request's execution once it holds a slot, or notices
// that an execution status says is running is not running here (the operator
// restarted mid-run) and retries it with the attempt counted.
func (r *VisualizationRequestReconciler) reconcileExecution(ctx context.Context, s *scope) (bool, error) {
	key, uid := reqKey(s.vr), s.vr.UID
	if r.Executor.Running(uid) {
		return true, nil
	}
	st := &s.vr.Status
	if meta.IsStatusConditionTrue(st.Conditions, vizv1.ConditionAdmitted) {
		// Status says running, but no execution exists in this process.
		r.retryOrFail(s, vizv1.ReasonSandboxLost, errors.New("the operator restarted while the code was running"))
		return true, nil
	}

	pk := poolKey(s.vr)
	pool, backend, ok := r.Pools.Get(pk.String())
	if !ok {
		return r.poolNotLive(ctx, s, pk)
	}
	// Inputs are read before the attempt is counted: a passing API error costs no
	// attempt and writes nothing (the slot goes back, keeping the request's place).
	files, reason, err := r.inputFiles(ctx, s.vr)
	if err != nil {
		if reason == "" {
			return true, err
		}
		msg := err.Error()
		s.setCondition(vizv1.ConditionExecuted, metav1.ConditionFalse, reason, msg, true)
		s.finish(vizv1.PhaseFailed, reason, msg)
		return true, nil
	}

	st.Attempts++
	st.NextRetryTime = nil
	now := metav1.NewTime(s.now)
	if st.StartTime == nil {
		st.StartTime = &now
	}
	st.Execution = &vizv1.ExecutionStatus{Backend: backend, StartTime: &now}
	s.setCondition(vizv1.ConditionAdmitted, metav1.ConditionTrue, vizv1.ReasonAdmitted,
		fmt.Sprintf("running in pool %s (attempt %d of %d)", pk, st.Attempts, s.vr.Spec.MaxAttempts), false)
	s.setCondition(vizv1.ConditionExecuted, metav1.ConditionUnknown, vizv1.ReasonRunning, "the code is being generated and run", false)

	req := r.request(s.vr, s.pool, files)
	owner := key.String()
	timeout := secondsDuration(s.vr.Spec.TimeoutSeconds)
	formats := sandboxFormats(s.vr.Spec.OutputFormats)
	attempt := st.Attempts
	claimant := sandbox.Claimant{Key: owner, UID: string(uid), Attempt: attempt}
	exec := func(ctx context.Context, code string) (*sandbox.Result, error) {
		// Backends whose claims outlive this process record who claimed, and for
		// which attempt (Kubernetes: in the Pod), to tell a live claim from a lost one.
		ctx = sandbox.WithClaimant(ctx, claimant)
		start := time.Now()
		sb, err := pool.Acquire(ctx, owner)
		metrics.SandboxAcquireSeconds.WithLabelValues(backend).Observe(time.Since(start).Seconds())
		if err != nil {
			return nil, err
		}
		defer pool.Release(sb)
		res, err := sb.Execute(ctx, sandbox.Request{Code: code, Files: files, Timeout: timeout, Formats: formats})
		if err == nil {
			outcome := resultOutcome(res)
			metrics.ExecutionSeconds.WithLabelValues(backend, outcome).Observe(res.ExecutionTime.Seconds())
		}
		return res, err
	}
	pl := r.Pipeline
	s.afterPatch = append(s.afterPatch, func() {
		r.Executor.Submit(uid, key, attempt, func(ctx context.Context) (pipeline.Result, error) {
			return pl.Run(ctx, req, exec)
		})
	})
	logf.FromContext(ctx).V(1).Info("execution starting", "pool", pk.String(), "attempt", attempt, "backend", backend)
	return true, nil
}

// poolNotLive handles an admitted request whose pool has no live sandboxes behind it:
// still starting (wait; the slot goes back), or its backend failed (a failed attempt,
// so it cannot wait forever).
func (r *VisualizationRequestReconciler) poolNotLive(ctx context.Context, s *scope, pk types.NamespacedName) (bool, error) {
	pool := &vizv1.SandboxPool{}
	if err := r.Get(ctx, pk, pool); err != nil {
		return true, client.IgnoreNotFound(err)
	}
	ready, msg := poolReady(pool)
	c := meta.FindStatusCondition(pool.Status.Conditions, vizv1.PoolConditionReady)
	if ready || c == nil {
		// The pool controller has not made it yet; it wakes us when it does.
		s.setCondition(vizv1.ConditionAdmitted, metav1.ConditionFalse, vizv1.ReasonPoolNotReady,
			fmt.Sprintf("waiting for SandboxPool %s to start its sandboxes", pk), false)
		s.keepPlace = true
		s.result.RequeueAfter = 2 * time.Second
		return true, nil
	}
	if c.Reason == vizv1.ReasonBackendNotImplemented {
		// No retry can help: say so at once.
		s.setCondition(vizv1.ConditionAdmitted, metav1.ConditionFalse, c.Reason, msg, true)
		s.finish(vizv1.PhaseFailed, c.Reason, fmt.Sprintf("SandboxPool %s cannot run code: %s", pk, msg))
		return true, nil
	}
	s.vr.Status.Attempts++
	r.retryOrFail(s, c.Reason, fmt.Errorf("SandboxPool %s is not ready: %s", pk, msg))
	return true, nil
}

// request builds the pipeline's request from the spec, the request's detection as
// decided at intake (r.detection: not detected again) and the pool's packages.
func (r *VisualizationRequestReconciler) request(vr *vizv1.VisualizationRequest, pool *vizv1.SandboxPool, files []sandbox.File) pipeline.Request {
	in := codegen.Input{Prompt: vr.Spec.Prompt}
	switch {
	case vr.Spec.Prompt != "":
		// Status keeps a summary; templates and verification need the full result
		// (labels, values). With spec.code it is what the chart is verified against.
		in.Detection = r.detection(vr)
	case vr.Spec.Code != "":
		in.Detection = userDetection
	}
	for _, f := range files {
		if f.Name == codegen.DataFile {
			in.CSV = f.Data
		}
	}
	for _, f := range vr.Spec.OutputFormats {
		in.Formats = append(in.Formats, string(f))
	}
	if pool != nil {
		in.Packages = pool.Spec.PythonPackages
	}
	return pipeline.Request{Input: in, Model: vr.Spec.Model, Code: vr.Spec.Code}
}

// inputFiles loads spec.data as data.csv. A missing ConfigMap or key, or a CSV that
// cannot be read, is a terminal failure (the reason is returned with the error); other
// errors are API errors to retry.
func (r *VisualizationRequestReconciler) inputFiles(ctx context.Context, vr *vizv1.VisualizationRequest) ([]sandbox.File, string, error) {
	d := vr.Spec.Data
	var data []byte
	switch {
	case d == nil:
		return nil, "", nil
	case d.CSV != nil:
		data = []byte(*d.CSV)
	case d.ConfigMapKeyRef != nil:
		ref := d.ConfigMapKeyRef
		cm := &corev1.ConfigMap{}
		// Uncached: the manager never holds the cluster's ConfigMaps in memory.
		if err := r.APIReader.Get(ctx, types.NamespacedName{Namespace: vr.Namespace, Name: ref.Name}, cm); err != nil {
			if apierrors.IsNotFound(err) {
				return nil, vizv1.ReasonDataNotFound, fmt.Errorf("ConfigMap %s/%s named in spec.data.configMapKeyRef does not exist; create it with the CSV under key %q", vr.Namespace, ref.Name, ref.Key)
			}
			return nil, "", err
		}
		if r.RequireDataLabel && cm.Labels[vizv1.LabelData] != "true" {
			return nil, vizv1.ReasonDataNotAllowed, fmt.Errorf("ConfigMap %s/%s is not labelled %s=true, and this operator reads only ConfigMaps so labelled for spec.data; label it (kubectl label configmap %s %s=true) if it is meant to be charted", vr.Namespace, ref.Name, vizv1.LabelData, ref.Name, vizv1.LabelData)
		}
		if v, ok := cm.Data[ref.Key]; ok {
			data = []byte(v)
		} else if v, ok := cm.BinaryData[ref.Key]; ok {
			data = v
		} else {
			return nil, vizv1.ReasonDataNotFound, fmt.Errorf("ConfigMap %s/%s has no key %q (spec.data.configMapKeyRef.key)", vr.Namespace, ref.Name, ref.Key)
		}
	}
	if _, err := codegen.SummarizeCSV(data, 0); err != nil {
		return nil, vizv1.ReasonInvalidData, fmt.Errorf("spec.data is not a CSV the chart can use: %w; fix the data (a header row, then rows with the same number of fields)", err)
	}
	return []sandbox.File{{Name: codegen.DataFile, Data: data}}, "", nil
}

func sandboxFormats(in []vizv1.OutputFormat) []sandbox.Format {
	out := make([]sandbox.Format, 0, len(in))
	for _, f := range in {
		out = append(out, sandbox.Format(f))
	}
	if len(out) == 0 {
		out = append(out, sandbox.FormatPNG)
	}
	return out
}

func resultOutcome(res *sandbox.Result) string {
	switch {
	case res == nil:
		return "error"
	case res.TimedOut:
		return "timeout"
	case res.Success:
		return "success"
	default:
		return "code_error"
	}
}

func secondsDuration(s int32) time.Duration { return time.Duration(s) * time.Second }
