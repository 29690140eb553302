package controller

import (
	"context"
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	vizv1 "github.com/vizops/viz-operator/api/v1alpha1"
	"github.com/vizops/viz-operator/internal/backends"
)

// +kubebuilder:rbac:groups=viz.vizops.io,resources=sandboxclasses,verbs=get;list;watch

// Built-in per-sandbox limits, for fields neither the pool nor its class's
// defaultResources set: a pool never runs without limits.
var builtinResources = vizv1.SandboxResources{
	CPU:     ptr.To(resource.MustParse("1")),
	Memory:  ptr.To(resource.MustParse("1Gi")),
	Pids:    ptr.To(int32(128)),
	Scratch: ptr.To(resource.MustParse("64Mi")),
}

// resolveClass finds the pool's SandboxClass (spec.className, else the default class)
// and checks that it admits the pool's namespace. A class that cannot be used is a
// backends.SettingsError (its reason becomes the pool's Ready reason); other errors are
// passing (the API server) and retried.
func (r *SandboxPoolReconciler) resolveClass(ctx context.Context, sp *vizv1.SandboxPool) (*vizv1.SandboxClass, error) {
	class := &vizv1.SandboxClass{}
	if name := sp.Spec.ClassName; name != "" {
		if err := r.Get(ctx, types.NamespacedName{Name: name}, class); err != nil {
			if apierrors.IsNotFound(err) {
				return nil, &backends.SettingsError{Reason: vizv1.ReasonClassNotFound, Message: fmt.Sprintf(
					"SandboxClass %q named in spec.className does not exist; list the classes with kubectl get sandboxclasses, or ask the platform team for one", name)}
			}
			return nil, err
		}
	} else {
		def, err := defaultClass(ctx, r.Client)
		if err != nil {
			return nil, err
		}
		if def == nil {
			return nil, &backends.SettingsError{Reason: vizv1.ReasonClassNotFound, Message: fmt.Sprintf(
				"the pool names no class (spec.className) and no SandboxClass is annotated %s=true; name a class (kubectl get sandboxclasses), or ask the platform team to mark a default",
				vizv1.AnnotationDefaultClass)}
		}
		class = def
	}
	if sel := class.Spec.NamespaceSelector; sel != nil {
		s, err := metav1.LabelSelectorAsSelector(sel)
		ok := err == nil
		if ok {
			ns := &corev1.Namespace{}
			if err := r.Get(ctx, types.NamespacedName{Name: sp.Namespace}, ns); err != nil {
				return nil, err
			}
			ok = s.Matches(labels.Set(ns.Labels))
		}
		if !ok {
			return nil, &backends.SettingsError{Reason: vizv1.ReasonClassForbidsNamespace, Message: fmt.Sprintf(
				"SandboxClass %q does not admit pools in namespace %q (its spec.namespaceSelector); use another class, or ask the platform team to admit the namespace", class.Name, sp.Namespace)}
		}
	}
	return class, nil
}

// defaultClass is the class annotated as the default; of several, the newest (then
// by name), as the API server picks a default StorageClass. nil when there is none.
func defaultClass(ctx context.Context, c client.Reader) (*vizv1.SandboxClass, error) {
	var list vizv1.SandboxClassList
	if err := c.List(ctx, &list); err != nil {
		return nil, err
	}
	var best *vizv1.SandboxClass
	for i := range list.Items {
		sc := &list.Items[i]
		if sc.Annotations[vizv1.AnnotationDefaultClass] != "true" {
			continue
		}
		if best == nil || sc.CreationTimestamp.After(best.CreationTimestamp.Time) ||
			(sc.CreationTimestamp.Equal(&best.CreationTimestamp) && sc.Name < best.Name) {
			best = sc
		}
	}
	return best, nil
}

// effectiveResources is what each sandbox of the pool gets: the pool's field, else the
// class's default, else the built-in one; and never more than the class's maximum.
func effectiveResources(sp *vizv1.SandboxPool, class *vizv1.SandboxClass) (vizv1.SandboxResources, error) {
	out := vizv1.SandboxResources{}
	var def, maxR vizv1.SandboxResources
	if class != nil {
		def, maxR = class.Spec.DefaultResources, class.Spec.MaxResources
	}
	pick := func(p, d, b *resource.Quantity) *resource.Quantity {
		for _, q := range []*resource.Quantity{p, d, b} {
			if q != nil {
				return ptr.To(q.DeepCopy())
			}
		}
		return nil
	}
	res := sp.Spec.Resources
	out.CPU = pick(res.CPU, def.CPU, builtinResources.CPU)
	out.Memory = pick(res.Memory, def.Memory, builtinResources.Memory)
	out.Scratch = pick(res.Scratch, def.Scratch, builtinResources.Scratch)
	out.Pids = res.Pids
	if out.Pids == nil {
		out.Pids = def.Pids
	}
	if out.Pids == nil {
		out.Pids = builtinResources.Pids
	}
	var over []string
	check := func(field string, v, limit *resource.Quantity) {
		if limit != nil && v.Cmp(*limit) > 0 {
			over = append(over, fmt.Sprintf("%s %s > %s", field, v.String(), limit.String()))
		}
	}
	check("cpu", out.CPU, maxR.CPU)
	check("memory", out.Memory, maxR.Memory)
	check("scratch", out.Scratch, maxR.Scratch)
	if maxR.Pids != nil && *out.Pids > *maxR.Pids {
		over = append(over, fmt.Sprintf("pids %d > %d", *out.Pids, *maxR.Pids))
	}
	if len(over) > 0 {
		name := ""
		if class != nil {
			name = class.Name
		}
		return out, &backends.SettingsError{Reason: vizv1.ReasonResourcesExceedClass, Message: fmt.Sprintf(
			"spec.resources asks for more than SandboxClass %q allows (%s); lower them, or use a class with higher maxResources", name, strings.Join(over, ", "))}
	}
	return out, nil
}

// poolsForClass wakes every pool when a class changes: classes change rarely, and a
// pool without spec.className may have just gained or lost its default.
func (r *SandboxPoolReconciler) poolsForClass(ctx context.Context, _ client.Object) []ctrl.Request {
	var list vizv1.SandboxPoolList
	if err := r.List(ctx, &list); err != nil {
		return nil
	}
	out := make([]ctrl.Request, 0, len(list.Items))
	for i := range list.Items {
		out = append(out, ctrl.Request{NamespacedName: client.ObjectKeyFromObject(&list.Items[i])})
	}
	return out
}
