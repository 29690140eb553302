// Package kubernetes is the Kubernetes backend's adapter (internal/backends): the
// sandbox registry's pools of hardened Pods (internal/sandbox/kubernetes runs them on
// the warm-pool engine, creating and deleting its Pods; this package talks to the API
// server for it), their NetworkPolicy, the SandboxPool's finalizer that removes what is
// left, the Pod watch that tells the pools about their Pods, and the Ready
// condition's SandboxStartFailed when the Pods cannot start.
package kubernetes

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/selection"
	"k8s.io/apimachinery/pkg/types"
	toolscache "k8s.io/client-go/tools/cache"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/manager"

	vizv1 "github.com/vizops/viz-operator/api/v1alpha1"
	"github.com/vizops/viz-operator/internal/backends"
	"github.com/vizops/viz-operator/internal/metrics"
	"github.com/vizops/viz-operator/internal/sandbox"
	"github.com/vizops/viz-operator/internal/sandbox/kubernetes"
)

// +kubebuilder:rbac:groups="",resources=pods,verbs=get;list;watch;create;update;delete
// +kubebuilder:rbac:groups="",resources=secrets,verbs=create;delete
// +kubebuilder:rbac:groups="",namespace=system,resources=secrets,verbs=get;create
// +kubebuilder:rbac:groups=networking.k8s.io,resources=networkpolicies,verbs=get;list;watch;create;update;delete

// Backend is the Kubernetes backend's adapter: it makes Kubernetes pools in the
// registry, gives them a PodAPI over the manager's label-filtered cache, and runs the
// SandboxPool controller's steps for the Pods, token Secrets and NetworkPolicy of a
// pool. The decisions are internal/sandbox/kubernetes's.
type Backend struct {
	// Client is the manager's client; its cache holds only objects labelled
	// LabelSandboxPoolUID (CacheObjects). nil: Watch sets the manager's.
	Client client.Client
	// APIReader reads uncached, to tell an object of a pool's name that is not in the
	// cache yet from one that is not the pool's (nil: Watch sets the manager's).
	APIReader client.Reader
	// Manager is where the manager's Pods run: the NetworkPolicy admits only them.
	Manager kubernetes.ManagerPeer
	// NewRunner returns the client of a Pod's agent.
	NewRunner func(pod *corev1.Pod, token string) kubernetes.Runner
	// ID names this manager process in claims (the Pod's claim annotation).
	ID string
	// Poll is how often a starting Pod is looked at again without a Pod event.
	Poll time.Duration
	// TokenKey derives each sandbox Pod's own access token (kubernetes.PodToken), so
	// the manager writes the Pods' token Secrets but never needs to read a Secret
	// outside its own namespace (SandboxTokenKey).
	TokenKey []byte

	mu   sync.Mutex
	live map[types.UID]map[*kubePool]struct{} // pool objects by SandboxPool UID
}

var (
	_ backends.Backend        = (*Backend)(nil)
	_ backends.Finalizer      = (*Backend)(nil)
	_ backends.Watcher        = (*Backend)(nil)
	_ backends.Cacher         = (*Backend)(nil)
	_ backends.ReadyOverrider = (*Backend)(nil)
)

// Name is Kubernetes.
func (k *Backend) Name() vizv1.Backend { return vizv1.BackendKubernetes }

// kubePool is a kubernetes.Pool that the adapter tells about Pod events until closed.
type kubePool struct {
	*kubernetes.Pool
	k   *Backend
	uid types.UID
}

func (p *kubePool) Close() error {
	p.forget()
	return p.Pool.Close()
}

// Detach leaves the Pods to the next manager (sandbox.Detacher).
func (p *kubePool) Detach() {
	p.forget()
	p.Pool.Detach()
}

// forget stops telling this pool object about Pod events.
func (p *kubePool) forget() {
	p.k.mu.Lock()
	delete(p.k.live[p.uid], p)
	if len(p.k.live[p.uid]) == 0 {
		delete(p.k.live, p.uid)
	}
	p.k.mu.Unlock()
}

func (k *Backend) init() {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.live == nil {
		k.live = map[types.UID]map[*kubePool]struct{}{}
	}
	if k.ID == "" {
		var b [4]byte
		_, _ = rand.Read(b[:])
		k.ID = hex.EncodeToString(b[:])
	}
}

// newPool makes one Kubernetes pool object from its settings. The pool objects it
// replaces (a template change) are drained: their warm Pods go now, their busy ones
// when their job ends; the new object adopts none of their Pods.
func (k *Backend) newPool(cfg sandbox.PoolConfig, s kubernetes.Settings) (sandbox.Pool, error) {
	k.init()
	for _, old := range k.pools(s.PoolUID) {
		old.Drain()
	}
	p, err := kubernetes.NewPool(cfg, s, NewPodAPI(k.Client, s),
		kubernetes.Options{NewRunner: k.NewRunner, Manager: k.ID, Poll: k.Poll,
			Held: func(name string) bool { return k.holds(s.PoolUID, name) },
			Log:  logf.Log.WithName("kubernetes-pool").WithValues("pool", s.Namespace+"/"+s.PoolName)})
	if err != nil {
		return nil, err
	}
	kp := &kubePool{Pool: p, k: k, uid: s.PoolUID}
	k.mu.Lock()
	if k.live[s.PoolUID] == nil {
		k.live[s.PoolUID] = map[*kubePool]struct{}{}
	}
	k.live[s.PoolUID][kp] = struct{}{}
	k.mu.Unlock()
	return kp, nil
}

// Ensure resolves the pool's settings (its template, from its class; the key its
// Pods' tokens are derived from) and makes or updates its NetworkPolicy and live
// pool. The pool creates and deletes its Pods itself (on the warm-pool engine).
func (k *Backend) Ensure(ctx context.Context, in backends.Input) (backends.Ensured, error) {
	s, err := k.settings(in.Pool, in.Class, in.Config)
	if err != nil {
		return backends.Ensured{}, err
	}
	if err := k.reconcileNetworkPolicy(ctx, s); err != nil {
		return backends.Ensured{}, fmt.Errorf("the pool's NetworkPolicy cannot be made: %w", err)
	}
	pool, err := sandbox.Ensure(in.Pools, in.Key, string(vizv1.BackendKubernetes), in.Config, s, k.newPool)
	if err != nil {
		return backends.Ensured{}, err
	}
	return backends.Ensured{Pool: pool}, nil
}

// Reason: the Kubernetes backend's own failures are reported as BackendUnavailable,
// or through NotReady.
func (k *Backend) Reason(error) string { return "" }

// NotReady turns a running pool's Ready condition False when its Pods cannot start
// and none is ready or busy: the last start failed (an image that does not pull, a
// node that does not exist, a RuntimeClass, Pod Security level or quota of the
// namespace that refuses the Pod). The pool keeps trying, with a backoff; the
// condition holds until a start succeeds (a start in flight does not clear it).
func (k *Backend) NotReady(in backends.Input, st sandbox.PoolStatus, _ error) (reason, message string) {
	if st.Degraded != "" && st.Ready == 0 && st.Busy == 0 {
		return vizv1.ReasonSandboxStartFailed, st.Degraded + fmt.Sprintf("; the platform team fixes SandboxClass %s (image, runtimeClassName, nodeSelector, tolerations, hostUsers) or the cluster, then the Pods are replaced", in.Class.Name)
	}
	return "", ""
}

// ClassOf is the backend's own view of a class: its spec.kubernetes and spec.egress.
func ClassOf(class *vizv1.SandboxClass) kubernetes.Class {
	if class == nil {
		return kubernetes.Class{}
	}
	spec := ptr.Deref(class.Spec.Kubernetes, vizv1.KubernetesClass{})
	c := kubernetes.Class{
		Image: spec.Image, RuntimeClassName: spec.RuntimeClassName, NodeSelector: spec.NodeSelector,
		Tolerations: spec.Tolerations, HostUsers: spec.HostUsers,
	}
	if sp := spec.SeccompProfile; sp != nil && sp.Type == vizv1.SeccompLocalhost {
		c.SeccompLocalhostProfile = sp.LocalhostProfile
	}
	for _, e := range class.Spec.Egress {
		c.Egress = append(c.Egress, kubernetes.EgressRule{CIDR: e.CIDR, Except: e.Except, Ports: e.Ports})
	}
	return c
}

// notify tells the pool objects of a Pod's pool about the Pod (gone: deleted).
func (k *Backend) notify(obj any, gone bool) {
	if t, ok := obj.(toolscache.DeletedFinalStateUnknown); ok {
		obj, gone = t.Obj, true
	}
	pod, ok := obj.(*corev1.Pod)
	if !ok {
		return
	}
	for _, p := range k.pools(types.UID(pod.Labels[kubernetes.LabelPoolUID])) {
		p.PodChanged(pod, gone)
	}
}

// pools are the live pool objects of the SandboxPool of uid.
func (k *Backend) pools(uid types.UID) []*kubePool {
	k.mu.Lock()
	defer k.mu.Unlock()
	pools := make([]*kubePool, 0, len(k.live[uid]))
	for p := range k.live[uid] {
		pools = append(pools, p)
	}
	return pools
}

// holds reports whether a pool object of this manager holds the Pod (starting,
// ready or busy).
func (k *Backend) holds(uid types.UID, podName string) bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	for p := range k.live[uid] {
		if p.Holds(podName) {
			return true
		}
	}
	return false
}

// sandboxObjectsSelector selects the objects Kubernetes pools make.
func sandboxObjectsSelector() labels.Selector {
	req, err := labels.NewRequirement(kubernetes.LabelPoolUID, selection.Exists, nil)
	if err != nil {
		panic(err) // a constant key: cannot fail
	}
	return labels.NewSelector().Add(*req)
}

// settings resolves a Kubernetes pool's own settings: its template (from its class
// and sizes), and the key its Pods' tokens are derived from (each Pod's token Secret is
// made with the Pod).
func (k *Backend) settings(sp *vizv1.SandboxPool, class *vizv1.SandboxClass, cfg sandbox.PoolConfig) (kubernetes.Settings, error) {
	spec := ptr.Deref(class.Spec.Kubernetes, vizv1.KubernetesClass{})
	s := kubernetes.Settings{
		Namespace: sp.Namespace, PoolName: sp.Name, PoolUID: sp.UID,
		Template:      kubernetes.PoolTemplate(cfg, ClassOf(class)),
		MaxExecutions: int(max(spec.MaxExecutionsPerSandbox, 1)),
	}
	if len(k.TokenKey) == 0 {
		return s, fmt.Errorf("%w: the manager has no key to derive sandbox tokens from (its Secret in the operator's namespace could not be read or made at start; see the manager's log, check its Role, and restart it)", sandbox.ErrUnavailable)
	}
	return s.WithTokenKey(k.TokenKey), nil
}

// deleteTokenSecret deletes a sandbox Pod's token Secret if it is still the one made
// with the Pod (its UID, recorded on the Pod, matches).
func deleteTokenSecret(ctx context.Context, c client.Client, pod *corev1.Pod) error {
	uid := types.UID(pod.Annotations[vizv1.AnnotationTokenSecretUID])
	if uid == "" || pod.Annotations[vizv1.AnnotationTokenNonce] == "" {
		return nil // not made by this release's manager: nothing of ours to delete
	}
	sec := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: pod.Namespace, Name: kubernetes.PodTokenSecretName(pod)}}
	err := c.Delete(ctx, sec, client.Preconditions{UID: &uid})
	if apierrors.IsNotFound(err) || apierrors.IsConflict(err) {
		return nil // gone, or another object took the name: not ours
	}
	return err
}

// SandboxTokenKey reads the key the pools' tokens are derived from, from a Secret in
// the operator's namespace, making it on first start. Deleting that Secret changes
// every token: delete the pools' token Secrets (and so their Pods) with it.
func SandboxTokenKey(ctx context.Context, c client.Client, namespace, name string) ([]byte, error) {
	sec := &corev1.Secret{}
	err := c.Get(ctx, types.NamespacedName{Namespace: namespace, Name: name}, sec)
	if apierrors.IsNotFound(err) {
		var b [32]byte
		if _, err := rand.Read(b[:]); err != nil {
			return nil, err
		}
		sec = &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name, Labels: map[string]string{"app.kubernetes.io/managed-by": "viz-operator"}},
			Data:       map[string][]byte{"key": b[:]},
		}
		if err := c.Create(ctx, sec); err != nil {
			if !apierrors.IsAlreadyExists(err) {
				return nil, fmt.Errorf("creating the sandbox token key Secret %s/%s: %w", namespace, name, err)
			}
			return SandboxTokenKey(ctx, c, namespace, name) // another replica made it
		}
	} else if err != nil {
		return nil, fmt.Errorf("reading the sandbox token key Secret %s/%s: %w", namespace, name, err)
	}
	if len(sec.Data["key"]) < 16 {
		return nil, fmt.Errorf("the sandbox token key Secret %s/%s has no key of at least 16 bytes under \"key\"; delete it and the manager makes a new one", namespace, name)
	}
	return sec.Data["key"], nil
}

// ownedBy reports whether obj's controller is the pool of uid.
func ownedBy(obj metav1.Object, uid types.UID) bool {
	ref := metav1.GetControllerOfNoCopy(obj)
	return ref != nil && ref.UID == uid
}

// errNotOwned is an object of the name a pool uses that the pool does not own: the
// manager neither overwrites nor deletes it, and the pool reports it.
func errNotOwned(kind string, obj metav1.Object) error {
	return fmt.Errorf("a %s named %s exists in namespace %s and is not owned by this pool; the manager leaves it alone. Delete or rename it, or re-create the pool under another name", kind, obj.GetName(), obj.GetNamespace())
}

// checkOwned reads obj uncached (the cache did not have it) and says whether the
// pool owns it: nil when it does (the cache was behind), errNotOwned when not.
func (k *Backend) checkOwned(ctx context.Context, uid types.UID, kind string, obj client.Object) error {
	r := k.APIReader
	if r == nil {
		r = k.Client
	}
	if err := r.Get(ctx, client.ObjectKeyFromObject(obj), obj); err != nil {
		return err
	}
	if !ownedBy(obj, uid) {
		return errNotOwned(kind, obj)
	}
	return nil
}

// deleteOwned deletes obj (read from the cache) if the pool of uid owns it, with
// its UID as precondition; anything else of that name is left alone.
func (k *Backend) deleteOwned(ctx context.Context, uid types.UID, obj client.Object) error {
	if err := k.Client.Get(ctx, client.ObjectKeyFromObject(obj), obj); err != nil {
		return client.IgnoreNotFound(err) // not cached: not labelled as a pool's, so not ours
	}
	if !ownedBy(obj, uid) {
		logf.FromContext(ctx).Info("leaving an object the pool does not own", "kind", fmt.Sprintf("%T", obj), "name", obj.GetName())
		return nil
	}
	objUID := obj.GetUID()
	return client.IgnoreNotFound(k.Client.Delete(ctx, obj, client.Preconditions{UID: &objUID}))
}

// reconcileNetworkPolicy makes the pool's NetworkPolicy, or puts it back as rendered.
func (k *Backend) reconcileNetworkPolicy(ctx context.Context, s kubernetes.Settings) error {
	want := kubernetes.RenderNetworkPolicy(s, k.Manager)
	cur := &networkingv1.NetworkPolicy{}
	err := k.Client.Get(ctx, client.ObjectKeyFromObject(want), cur)
	switch {
	case apierrors.IsNotFound(err):
		if err := k.Client.Create(ctx, want); apierrors.IsAlreadyExists(err) {
			return k.checkOwned(ctx, s.PoolUID, "NetworkPolicy", &networkingv1.NetworkPolicy{ObjectMeta: want.ObjectMeta})
		} else if err != nil {
			return err
		}
		return nil
	case err != nil:
		return err
	case !ownedBy(cur, s.PoolUID):
		return errNotOwned("NetworkPolicy", cur)
	case equality.Semantic.DeepEqual(cur.Spec, want.Spec):
		return nil
	}
	cur.Spec = want.Spec
	return k.Client.Update(ctx, cur)
}

// deleteUnheld deletes the Pods of the pool of uid in ns that no pool object of this
// manager holds (those hold and delete their own), and returns how many Pods the
// cache holds.
func (k *Backend) deleteUnheld(ctx context.Context, ns string, uid types.UID) (int, error) {
	api := &podAPI{c: k.Client, ns: ns, uid: uid}
	pods, err := api.List(ctx)
	if err != nil {
		return 0, err
	}
	var errs []error
	for i := range pods {
		pod := &pods[i]
		if pod.DeletionTimestamp != nil || k.holds(uid, pod.Name) {
			continue
		}
		logf.FromContext(ctx).V(1).Info("deleting sandbox Pod", "pod", pod.Name, "why", "the pool is being deleted")
		pod.ResourceVersion = ""
		if err := api.Delete(ctx, pod); err != nil && !apierrors.IsConflict(err) {
			errs = append(errs, fmt.Errorf("deleting sandbox Pod %s: %w", pod.Name, err))
		}
	}
	return len(pods), errors.Join(errs...)
}

// FinalizerName is the finalizer of Kubernetes pools.
func (k *Backend) FinalizerName() string { return vizv1.FinalizerSandboxPool }

// Finalize removes what a Kubernetes pool made, when it is deleted or no longer a
// Kubernetes pool: its Pods, then its NetworkPolicy. Token Secrets go with their Pods.
// The controller has closed the live pool already (a deleted pool: its Close deleted
// its Pods); a pool object still live (a pool that became another backend's) is
// drained here: its warm Pods go now, its busy ones when their job ends. The Pods no
// pool object of this manager holds (left by an earlier manager) are deleted here.
func (k *Backend) Finalize(ctx context.Context, sp *vizv1.SandboxPool, cfg sandbox.PoolConfig) (done bool, err error) {
	s := kubernetes.Settings{Namespace: sp.Namespace, PoolName: sp.Name, PoolUID: sp.UID,
		Template: kubernetes.PoolTemplate(cfg, kubernetes.Class{})}
	for _, p := range k.pools(sp.UID) {
		p.Drain() // a live pool object (the pool became another backend's) keeps no Pod warm
	}
	remaining, err := k.deleteUnheld(ctx, sp.Namespace, sp.UID)
	if err != nil {
		return false, err
	}
	if remaining > 0 {
		return false, nil // their events bring us back
	}
	// The cache saw no Pod: confirm with the API server (uncached) before the
	// finalizer goes, so a cache that is behind cannot strand a Pod without its pool.
	r := k.APIReader
	if r == nil {
		r = k.Client
	}
	var left corev1.PodList
	if err := r.List(ctx, &left, client.InNamespace(sp.Namespace), client.MatchingLabels(kubernetes.Selector(sp.UID))); err != nil {
		return false, err
	}
	if len(left.Items) > 0 {
		return false, nil
	}
	// The NetworkPolicy goes only if it is this pool's (an object of the same name the
	// pool does not own is left alone). Token Secrets of Pods that went while the
	// manager was down, and the pool-wide token Secret of earlier releases, are the
	// pool's: the garbage collector removes them with it.
	if err := k.deleteOwned(ctx, sp.UID, &networkingv1.NetworkPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: sp.Namespace, Name: kubernetes.NetworkPolicyName(s)}}); err != nil {
		return false, err
	}
	return true, nil
}

// Watch watches sandbox Pods (only those of Kubernetes pools: the cache is label
// filtered) and tells each pool about its Pods (a start waits for Ready; a ready Pod
// deleted or failing is retired), records how long Pods took to become Ready, and has
// the SandboxPool controller own the pools' Pods and NetworkPolicies.
func (k *Backend) Watch(mgr manager.Manager, b *builder.Builder) (*builder.Builder, error) {
	k.init()
	if k.Client == nil {
		k.Client = mgr.GetClient()
	}
	if k.APIReader == nil {
		k.APIReader = mgr.GetAPIReader()
	}
	inf, err := mgr.GetCache().GetInformer(context.Background(), &corev1.Pod{})
	if err != nil {
		return nil, err
	}
	_, err = inf.AddEventHandler(toolscache.ResourceEventHandlerFuncs{
		AddFunc: func(obj any) { k.notify(obj, false) },
		UpdateFunc: func(o, n any) {
			if op, ok := o.(*corev1.Pod); ok {
				if np, ok := n.(*corev1.Pod); ok {
					if d, ok := kubernetes.BecameReady(op, np); ok {
						metrics.SandboxCreationSeconds.WithLabelValues(string(vizv1.BackendKubernetes)).Observe(d.Seconds())
					}
				}
			}
			k.notify(n, false)
		},
		DeleteFunc: func(obj any) {
			k.notify(obj, true)
			k.podGone(obj)
		},
	})
	if err != nil {
		return nil, err
	}
	return b.Owns(&corev1.Pod{}).
		Owns(&networkingv1.NetworkPolicy{}), nil
}

// podGone deletes the token Secret of a sandbox Pod that is gone, however it went
// (the pool's own deletes do it at once; this catches evictions and kubectl delete).
func (k *Backend) podGone(obj any) {
	if t, ok := obj.(toolscache.DeletedFinalStateUnknown); ok {
		obj = t.Obj
	}
	pod, ok := obj.(*corev1.Pod)
	if !ok || pod.Annotations[vizv1.AnnotationTokenSecretUID] == "" {
		return
	}
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = deleteTokenSecret(ctx, k.Client, pod)
	}()
}

// NewPodAPI is kubernetes.PodAPI over c for the Pods of the pool of s (its
// namespace and UID; Create renders each Pod's token Secret from s).
func NewPodAPI(c client.Client, s kubernetes.Settings) kubernetes.PodAPI {
	return &podAPI{c: c, ns: s.Namespace, uid: s.PoolUID, s: s}
}

// podAPI is kubernetes.PodAPI over the manager's client for one pool's Pods.
type podAPI struct {
	c   client.Client
	ns  string
	uid types.UID
	s   kubernetes.Settings
}

// Get reads one of the pool's Pods (NotFound for a Pod of another pool).
func (a *podAPI) Get(ctx context.Context, name string) (*corev1.Pod, error) {
	pod := &corev1.Pod{}
	if err := a.c.Get(ctx, types.NamespacedName{Namespace: a.ns, Name: name}, pod); err != nil {
		return nil, err
	}
	if pod.Labels[kubernetes.LabelPoolUID] != string(a.uid) {
		return nil, apierrors.NewNotFound(corev1.Resource("pods"), name)
	}
	return pod, nil
}

// Create makes a sandbox Pod and, before it, the Pod's own token Secret (owned by
// the pool; its name holds the Pod's random nonce, so no earlier object can have it).
// The Pod records the Secret's UID, so deleting it later checks that the Secret is
// still the one made here. A Pod that cannot be made takes its Secret with it.
func (a *podAPI) Create(ctx context.Context, pod *corev1.Pod) error {
	sec := kubernetes.RenderTokenSecret(a.s, pod)
	if err := a.c.Create(ctx, sec); err != nil {
		if apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("the token Secret %s of sandbox Pod %s exists already and was not made by this pool; it is left alone", sec.Name, pod.Name)
		}
		return fmt.Errorf("creating the token Secret of sandbox Pod %s: %w", pod.Name, err)
	}
	pod.Annotations[vizv1.AnnotationTokenSecretUID] = string(sec.UID)
	if err := a.c.Create(ctx, pod); err != nil {
		_ = a.c.Delete(ctx, sec, client.Preconditions{UID: &sec.UID})
		return err
	}
	return nil
}

func (a *podAPI) List(ctx context.Context) ([]corev1.Pod, error) {
	var l corev1.PodList
	if err := a.c.List(ctx, &l, client.InNamespace(a.ns), client.MatchingLabels(kubernetes.Selector(a.uid))); err != nil {
		return nil, err
	}
	return l.Items, nil
}

// Update writes the Pod with the resourceVersion it carries: a Conflict when it
// changed since it was read.
func (a *podAPI) Update(ctx context.Context, pod *corev1.Pod) error {
	return a.c.Update(ctx, pod)
}

// Delete deletes the Pod, then its token Secret (the Pod's agent has read it at start).
func (a *podAPI) Delete(ctx context.Context, pod *corev1.Pod) error {
	pre := client.Preconditions{UID: &pod.UID}
	if pod.ResourceVersion != "" {
		pre.ResourceVersion = &pod.ResourceVersion
	}
	if err := client.IgnoreNotFound(a.c.Delete(ctx, pod, pre)); err != nil {
		return err
	}
	return deleteTokenSecret(ctx, a.c, pod)
}

// CacheObjects are the cache's label filters for what Kubernetes pools make.
func (k *Backend) CacheObjects() map[client.Object]cache.ByObject {
	sel := sandboxObjectsSelector()
	return map[client.Object]cache.ByObject{
		&corev1.Pod{}:                 {Label: sel},
		&networkingv1.NetworkPolicy{}: {Label: sel},
	}
}
