// Package kube keeps the gateway's sandboxes as Pods: it is internal/gateway's Backend
// on a Kubernetes API server. An API key is a labelled Secret in a tenant namespace; a
// sandbox is a Pod in that namespace, rendered by the Kubernetes sandbox backend
// (internal/sandbox/kubernetes.RenderPod) from the SandboxClass its template ID names,
// with its own token Secret and NetworkPolicy (both owned by the Pod). The Pod's name is
// the sandbox ID, and its labels and annotations hold everything else (key, template,
// metadata, end time), so a restarted gateway rebuilds its state from Pods and a reaper
// deletes every Pod past its end time: no sandbox outlives its timeout.
//
// Like internal/controller, this is the layer that talks to the API server (with
// controller-runtime's client); the decisions are internal/gateway's.
package kube

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/selection"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	vizv1 "github.com/vizops/viz-operator/api/v1alpha1"
	kubebackend "github.com/vizops/viz-operator/internal/backends/kubernetes"
	"github.com/vizops/viz-operator/internal/gateway"
	"github.com/vizops/viz-operator/internal/sandbox"
	"github.com/vizops/viz-operator/internal/sandbox/kubernetes"
)

// DefaultTemplates are the template IDs the SDKs use when a program names none
// (@e2b/code-interpreter's "code-interpreter-v1", e2b's "base"): they select the
// cluster's default SandboxClass.
var DefaultTemplates = []string{"code-interpreter-v1", "base"}

// builtinResources are a sandbox's sizes when its class sets no defaults (the same as
// a SandboxPool's built-in ones).
var builtinResources = vizv1.SandboxResources{
	CPU:     ptr.To(resource.MustParse("1")),
	Memory:  ptr.To(resource.MustParse("1Gi")),
	Pids:    ptr.To(int32(128)),
	Scratch: ptr.To(resource.MustParse("64Mi")),
}

// Store is the gateway's Backend on Kubernetes.
type Store struct {
	// Client reads Pods and Secrets from a label-filtered cache (CacheOptions) and
	// writes through the API server.
	Client client.Client
	// TokenKey is the gateway's key: Pods' agent tokens and the clients' tokens are
	// derived from it (a restarted gateway with the same key derives them again).
	TokenKey []byte
	// Gateway is where the gateway's Pods run: the only peer the sandboxes' NetworkPolicy
	// lets in.
	Gateway kubernetes.ManagerPeer
	// ReadyTimeout bounds how long Create waits for the Pod's agent.
	ReadyTimeout time.Duration
	// AgentURL is where a Pod's agent answers (nil: kubernetes.AgentURL, the Pod IP on
	// 49999; tests point it at a loopback agent).
	AgentURL func(pod *corev1.Pod) string
	// PlotlyJSURL is passed to the agents (as a SandboxPool's spec.plotlyJSURL is).
	PlotlyJSURL string
}

// CacheOptions are the gateway's cache filters: only its own Pods and the API key
// Secrets are cached, never every Pod or Secret of the cluster.
func CacheOptions() cache.Options {
	req, err := labels.NewRequirement(vizv1.LabelGatewaySandbox, selection.Exists, nil)
	if err != nil {
		panic(err) // a constant key: cannot fail
	}
	return cache.Options{ByObject: map[client.Object]cache.ByObject{
		&corev1.Pod{}:    {Label: labels.NewSelector().Add(*req)},
		&corev1.Secret{}: {Label: labels.SelectorFromSet(labels.Set{vizv1.LabelGatewayAPIKey: "true"})},
	}}
}

// Authenticate finds the key's Secret among the labelled ones (comparing hashes in
// constant time).
func (s *Store) Authenticate(ctx context.Context, apiKey string) (gateway.Tenant, error) {
	var list corev1.SecretList
	if err := s.Client.List(ctx, &list, client.MatchingLabels{vizv1.LabelGatewayAPIKey: "true"}); err != nil {
		return gateway.Tenant{}, err
	}
	want := sha256.Sum256([]byte(apiKey))
	for i := range list.Items {
		sec := &list.Items[i]
		key := sec.Data[vizv1.GatewayAPIKeyDataKey]
		if len(key) == 0 {
			continue
		}
		got := sha256.Sum256(key)
		if subtle.ConstantTimeCompare(got[:], want[:]) == 1 {
			n, _ := strconv.Atoi(sec.Annotations[vizv1.AnnotationGatewayMaxSandboxes])
			return gateway.Tenant{Namespace: sec.Namespace, KeyName: sec.Name, MaxSandboxes: n}, nil
		}
	}
	return gateway.Tenant{}, gateway.ErrUnauthorized
}

// Create renders the sandbox's Pod from its class, makes it with its token Secret and
// NetworkPolicy, and waits until the Pod is ready.
func (s *Store) Create(ctx context.Context, t gateway.Tenant, spec gateway.Spec) (gateway.Sandbox, error) {
	class, err := s.class(ctx, spec.TemplateID, t.Namespace)
	if err != nil {
		return gateway.Sandbox{}, err
	}
	res, err := resources(class)
	if err != nil {
		return gateway.Sandbox{}, err
	}
	settings := kubernetes.Settings{
		Namespace: t.Namespace, PoolName: spec.ID, PoolUID: types.UID("gateway-" + spec.ID),
		Template:      kubernetes.PoolTemplate(sandbox.PoolConfig{Resources: res, PlotlyJSURL: s.PlotlyJSURL}, kubebackend.ClassOf(class)),
		MaxExecutions: 1,
	}.WithTokenKey(s.TokenKey)
	pod := kubernetes.RenderPod(settings)(0)
	pod.Name = spec.ID
	pod.OwnerReferences = nil // the Pod is the sandbox: nothing owns it; the reaper ends it
	delete(pod.Labels, vizv1.LabelSandboxState)
	pod.Labels[vizv1.LabelGatewaySandbox] = spec.ID
	pod.Labels[vizv1.LabelGatewayKey] = t.KeyName
	md, err := json.Marshal(spec.Metadata)
	if err != nil {
		return gateway.Sandbox{}, err
	}
	pod.Annotations[vizv1.AnnotationGatewayEndTime] = spec.EndAt.UTC().Format(time.RFC3339)
	pod.Annotations[vizv1.AnnotationGatewayTemplate] = spec.TemplateID
	pod.Annotations[vizv1.AnnotationGatewayClass] = class.Name
	pod.Annotations[vizv1.AnnotationGatewayMetadata] = string(md)
	for i := range pod.Spec.Volumes {
		if v := &pod.Spec.Volumes[i]; v.Secret != nil {
			v.Secret.SecretName = kubernetes.PodTokenSecretName(pod) // the name follows the Pod's
		}
	}
	if err := s.Client.Create(ctx, pod); err != nil {
		return gateway.Sandbox{}, fmt.Errorf("create the sandbox Pod %s/%s: %w", pod.Namespace, pod.Name, err)
	}
	// The token Secret and the NetworkPolicy are the Pod's: the garbage collector
	// removes them with it. The agent does not start before its Secret exists (the
	// kubelet waits for the volume).
	owner := metav1.OwnerReference{APIVersion: "v1", Kind: "Pod", Name: pod.Name, UID: pod.UID, Controller: ptr.To(true), BlockOwnerDeletion: ptr.To(true)}
	sec := kubernetes.RenderTokenSecret(settings, pod)
	sec.OwnerReferences = []metav1.OwnerReference{owner}
	np := kubernetes.RenderNetworkPolicy(settings, s.Gateway)
	np.Name = pod.Name + "-sandbox"
	np.OwnerReferences = []metav1.OwnerReference{owner}
	for _, obj := range []client.Object{sec, np} {
		if err := s.Client.Create(ctx, obj); err != nil {
			_ = s.delete(context.WithoutCancel(ctx), pod)
			return gateway.Sandbox{}, fmt.Errorf("create %s of sandbox %s/%s: %w", obj.GetName(), pod.Namespace, pod.Name, err)
		}
	}
	sb, err := s.waitReady(ctx, pod)
	if err != nil {
		_ = s.delete(context.WithoutCancel(ctx), pod)
		return gateway.Sandbox{}, err
	}
	return sb, nil
}

// waitReady polls the Pod until it is Ready with an IP (its agent answers /health,
// the readiness probe), within ReadyTimeout.
func (s *Store) waitReady(ctx context.Context, pod *corev1.Pod) (gateway.Sandbox, error) {
	d := s.ReadyTimeout
	if d <= 0 {
		d = 2 * time.Minute
	}
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	for {
		cur := &corev1.Pod{}
		err := s.Client.Get(ctx, client.ObjectKeyFromObject(pod), cur)
		if err == nil && cur.UID == pod.UID {
			if cur.Status.Phase == corev1.PodFailed || cur.Status.Phase == corev1.PodSucceeded {
				return gateway.Sandbox{}, fmt.Errorf("the sandbox Pod %s/%s ended (%s) before it was ready", pod.Namespace, pod.Name, cur.Status.Phase)
			}
			if sb, ok := s.sandbox(cur); ok && sb.Ready {
				return sb, nil
			}
		} else if err != nil && !apierrors.IsNotFound(err) && ctx.Err() == nil {
			return gateway.Sandbox{}, err
		}
		select {
		case <-ctx.Done():
			return gateway.Sandbox{}, fmt.Errorf("the sandbox Pod %s/%s was not ready within %s (kubectl describe pod says why): %w", pod.Namespace, pod.Name, d, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// class resolves a template ID: a SandboxClass of that name, or the default class for
// the SDKs' default templates. The class must run Kubernetes sandboxes and admit the
// namespace.
func (s *Store) class(ctx context.Context, templateID, namespace string) (*vizv1.SandboxClass, error) {
	var list vizv1.SandboxClassList
	if err := s.Client.List(ctx, &list); err != nil {
		return nil, err
	}
	var class *vizv1.SandboxClass
	for i := range list.Items {
		sc := &list.Items[i]
		if sc.Name == templateID {
			class = sc
			break
		}
	}
	if class == nil && isDefaultTemplate(templateID) {
		for i := range list.Items {
			sc := &list.Items[i]
			if sc.Annotations[vizv1.AnnotationDefaultClass] != "true" {
				continue
			}
			if class == nil || sc.CreationTimestamp.After(class.CreationTimestamp.Time) ||
				(sc.CreationTimestamp.Equal(&class.CreationTimestamp) && sc.Name < class.Name) {
				class = sc
			}
		}
	}
	if class == nil {
		return nil, gateway.Errorf(http.StatusNotFound,
			"template %q not found: a template ID is a SandboxClass name (kubectl get sandboxclasses), and %v select the default class", templateID, DefaultTemplates)
	}
	if class.Spec.Backend != vizv1.BackendKubernetes || class.Spec.Kubernetes == nil {
		return nil, gateway.Errorf(http.StatusBadRequest,
			"template %q is SandboxClass %q of backend %s: the gateway runs only Kubernetes classes", templateID, class.Name, class.Spec.Backend)
	}
	if sel := class.Spec.NamespaceSelector; sel != nil {
		ls, err := metav1.LabelSelectorAsSelector(sel)
		ok := err == nil
		if ok {
			ns := &corev1.Namespace{}
			if err := s.Client.Get(ctx, types.NamespacedName{Name: namespace}, ns); err != nil {
				return nil, err
			}
			ok = ls.Matches(labels.Set(ns.Labels))
		}
		if !ok {
			return nil, gateway.Errorf(http.StatusForbidden,
				"SandboxClass %q (template %q) does not admit namespace %q, the API key's (its spec.namespaceSelector); use another template, or ask the platform team", class.Name, templateID, namespace)
		}
	}
	return class, nil
}

func isDefaultTemplate(id string) bool {
	for _, d := range DefaultTemplates {
		if id == d {
			return true
		}
	}
	return false
}

// resources are the class's default sizes (else the built-in ones), which must be
// within its maxResources: the E2B API has no sizes of its own to ask for.
func resources(class *vizv1.SandboxClass) (sandbox.Resources, error) {
	def, maxR := class.Spec.DefaultResources, class.Spec.MaxResources
	pick := func(d, b *resource.Quantity) resource.Quantity {
		if d != nil {
			return *d
		}
		return *b
	}
	cpu, mem, scratch := pick(def.CPU, builtinResources.CPU), pick(def.Memory, builtinResources.Memory), pick(def.Scratch, builtinResources.Scratch)
	pids := ptr.Deref(def.Pids, *builtinResources.Pids)
	over := func(v resource.Quantity, limit *resource.Quantity) bool { return limit != nil && v.Cmp(*limit) > 0 }
	if over(cpu, maxR.CPU) || over(mem, maxR.Memory) || over(scratch, maxR.Scratch) || (maxR.Pids != nil && pids > *maxR.Pids) {
		return sandbox.Resources{}, gateway.Errorf(http.StatusBadRequest,
			"SandboxClass %q has defaultResources (or the built-in cpu 1, memory 1Gi, scratch 64Mi, pids 128) above its maxResources; the platform team should set defaultResources within them", class.Name)
	}
	return sandbox.Resources{CPUMillis: cpu.MilliValue(), MemoryBytes: mem.Value(), Pids: int64(pids), ScratchBytes: scratch.Value()}, nil
}

// Get finds the sandbox's Pod by its label in any namespace (from the cache).
func (s *Store) Get(ctx context.Context, id string) (gateway.Sandbox, error) {
	var list corev1.PodList
	if err := s.Client.List(ctx, &list, client.MatchingLabels{vizv1.LabelGatewaySandbox: id}); err != nil {
		return gateway.Sandbox{}, err
	}
	for i := range list.Items {
		if sb, ok := s.sandbox(&list.Items[i]); ok {
			return sb, nil
		}
	}
	return gateway.Sandbox{}, gateway.ErrNotFound
}

// List is the sandboxes of a namespace.
func (s *Store) List(ctx context.Context, namespace string) ([]gateway.Sandbox, error) {
	return s.list(ctx, client.InNamespace(namespace), client.HasLabels{vizv1.LabelGatewaySandbox})
}

// All is every sandbox of the gateway (for the reaper).
func (s *Store) All(ctx context.Context) ([]gateway.Sandbox, error) {
	return s.list(ctx, client.HasLabels{vizv1.LabelGatewaySandbox})
}

func (s *Store) list(ctx context.Context, opts ...client.ListOption) ([]gateway.Sandbox, error) {
	var list corev1.PodList
	if err := s.Client.List(ctx, &list, opts...); err != nil {
		return nil, err
	}
	out := make([]gateway.Sandbox, 0, len(list.Items))
	for i := range list.Items {
		if sb, ok := s.sandbox(&list.Items[i]); ok {
			out = append(out, sb)
		}
	}
	return out, nil
}

// Delete deletes the sandbox's Pod (its Secret and NetworkPolicy go with it).
func (s *Store) Delete(ctx context.Context, sb gateway.Sandbox) error {
	pod := &corev1.Pod{}
	err := s.Client.Get(ctx, types.NamespacedName{Namespace: sb.Namespace, Name: sb.ID}, pod)
	if err == nil {
		err = s.delete(ctx, pod)
	}
	if apierrors.IsNotFound(err) {
		return gateway.ErrNotFound
	}
	return err
}

func (s *Store) delete(ctx context.Context, pod *corev1.Pod) error {
	opts := []client.DeleteOption{client.PropagationPolicy(metav1.DeletePropagationBackground)}
	if pod.UID != "" {
		opts = append(opts, client.Preconditions{UID: &pod.UID})
	}
	if err := s.Client.Delete(ctx, pod, opts...); err != nil {
		return err
	}
	// Without a garbage collector (envtest) or before it runs, the token Secret is
	// deleted here too: a token never outlives its sandbox for long.
	sec := &corev1.Secret{}
	for _, v := range pod.Spec.Volumes {
		if v.Secret != nil {
			sec.Name, sec.Namespace = v.Secret.SecretName, pod.Namespace
		}
	}
	if sec.Name != "" {
		_ = client.IgnoreNotFound(s.Client.Delete(ctx, sec))
	}
	return nil
}

// SetEnd moves the sandbox's end time (a patch of its annotation).
func (s *Store) SetEnd(ctx context.Context, sb gateway.Sandbox, end time.Time) error {
	patch, err := json.Marshal(map[string]any{"metadata": map[string]any{"annotations": map[string]string{
		vizv1.AnnotationGatewayEndTime: end.UTC().Format(time.RFC3339),
	}}})
	if err != nil {
		return err
	}
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: sb.Namespace, Name: sb.ID}}
	err = s.Client.Patch(ctx, pod, client.RawPatch(types.MergePatchType, patch))
	if apierrors.IsNotFound(err) {
		return gateway.ErrNotFound
	}
	return err
}

// Reap deletes every sandbox past its end time at now, and every one whose Pod ended
// (a crashed agent is never restarted), and returns how many it deleted.
func (s *Store) Reap(ctx context.Context, now time.Time) (int, error) {
	all, err := s.All(ctx)
	if err != nil {
		return 0, err
	}
	n := 0
	var errs []error
	for _, sb := range gateway.Expired(all, now) {
		if err := s.Delete(ctx, sb); err != nil && !errors.Is(err, gateway.ErrNotFound) {
			errs = append(errs, err)
			continue
		}
		n++
	}
	return n, errors.Join(errs...)
}

// sandbox reads a sandbox from its Pod; false for Pods that are going away or are not
// the gateway's.
func (s *Store) sandbox(pod *corev1.Pod) (gateway.Sandbox, bool) {
	id := pod.Labels[vizv1.LabelGatewaySandbox]
	if id == "" || id != pod.Name || pod.DeletionTimestamp != nil {
		return gateway.Sandbox{}, false
	}
	sb := gateway.Sandbox{
		ID: id, Namespace: pod.Namespace, KeyName: pod.Labels[vizv1.LabelGatewayKey],
		TemplateID: pod.Annotations[vizv1.AnnotationGatewayTemplate],
		StartedAt:  pod.CreationTimestamp.Time,
		AgentToken: kubernetes.PodToken(s.TokenKey, pod),
	}
	if end, err := time.Parse(time.RFC3339, pod.Annotations[vizv1.AnnotationGatewayEndTime]); err == nil {
		sb.EndAt = end
	} else {
		sb.EndAt = pod.CreationTimestamp.Time // no end time: already due
	}
	_ = json.Unmarshal([]byte(pod.Annotations[vizv1.AnnotationGatewayMetadata]), &sb.Metadata)
	sb.EnvdToken, sb.TrafficToken = gateway.Tokens(s.TokenKey, pod.Namespace, id, pod.Annotations[vizv1.AnnotationTokenNonce])
	for _, c := range pod.Spec.Containers {
		if c.Name == kubernetes.ContainerName {
			sb.CPUCount = int(max(1, c.Resources.Limits.Cpu().MilliValue()/1000))
			sb.MemoryMB = int(c.Resources.Limits.Memory().Value() >> 20)
		}
	}
	for _, v := range pod.Spec.Volumes {
		if v.EmptyDir != nil && v.EmptyDir.SizeLimit != nil {
			sb.DiskSizeMB = int(v.EmptyDir.SizeLimit.Value() >> 20)
		}
	}
	sb.Ended = pod.Status.Phase == corev1.PodFailed || pod.Status.Phase == corev1.PodSucceeded
	sb.Ready = !sb.Ended && pod.Status.PodIP != "" && podReady(pod)
	if sb.Ready {
		if s.AgentURL != nil {
			sb.AgentURL = s.AgentURL(pod)
		} else {
			sb.AgentURL = kubernetes.AgentURL(pod)
		}
	}
	return sb, true
}

func podReady(pod *corev1.Pod) bool {
	for _, c := range pod.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}
