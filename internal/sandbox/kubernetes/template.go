// Package kubernetes is the Kubernetes sandbox backend: each sandbox is a hardened Pod
// running the sandbox agent (cmd/sandbox-agent), which serves E2B's code-interpreter
// protocol on AgentPort. This package renders the objects a pool needs (Pods, their
// NetworkPolicy and token Secret), reads a Pod's state (plan.go), and runs the pool on
// the warm-pool engine (pool.go: it creates, claims, recycles and deletes its own Pods)
// through a small PodAPI its adapter (internal/backends/kubernetes) implements. It uses k8s.io/api's types but no client
// and no type of the operator's API (its own Class, Settings and label keys; archtest
// checks), so its decisions are tested without an API server.
package kubernetes

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	utilrand "k8s.io/apimachinery/pkg/util/rand"
	"k8s.io/utils/ptr"

	"github.com/vizops/viz-operator/internal/sandbox"
	"github.com/vizops/viz-operator/internal/sandbox/codeinterpreter"
)

const (
	// AgentPort is where the sandbox agent listens in each Pod.
	AgentPort = 49999
	// TokenKey is the key of the access token in a Pod's token Secret.
	TokenKey = "token"
	// TokenDir is where the Pod's token Secret is mounted; the agent reads TokenDir/TokenKey
	// (--token-file). The token is never in the Pod's spec or environment.
	TokenDir = "/var/run/vizops/agent"
	// ScratchDir is the Pod's only writable directory (a size-limited emptyDir); the
	// agent's contexts work in WorkDir under it.
	ScratchDir = "/tmp"
	WorkDir    = ScratchDir + "/sandbox"
	// AgentBinary is the agent in the sandbox image (Dockerfile.sandbox).
	AgentBinary = "/usr/local/bin/sandbox-agent"
	// ContainerName is the sandbox container's name.
	ContainerName = "sandbox"
	// SandboxUID is the user the agent runs as (non-root).
	SandboxUID = 65532
	// defaultScratch is the scratch size when the pool does not set one.
	defaultScratch = 64 << 20
)

// Template is what a pool's sandbox Pods are made from. A change of any field makes new
// Pods (TemplateHash changes); warm Pods of the old template are replaced, busy ones
// finish their job first.
type Template struct {
	Image            string                      `json:"image"`
	RuntimeClassName *string                     `json:"runtimeClassName,omitempty"`
	NodeSelector     map[string]string           `json:"nodeSelector,omitempty"`
	Tolerations      []corev1.Toleration         `json:"tolerations,omitempty"`
	Resources        corev1.ResourceRequirements `json:"resources"`
	ScratchBytes     int64                       `json:"scratchBytes"`
	Network          sandbox.Network             `json:"network"`
	// Pids caps each kernel's processes (an rlimit: Kubernetes has no per-Pod pids
	// limit of its own, only the node's podPidsLimit). RLIMIT_NPROC counts per user:
	// with HostUsers false each Pod's user is its own on the node.
	Pids int64 `json:"pids,omitempty"`
	// HostUsers is the Pod's hostUsers; nil means false: the Pod runs in a user
	// namespace of its own (Kubernetes user namespaces), so its uid 65532 is a uid no
	// other Pod on the node has, and per-user limits such as the pids rlimit are per
	// Pod. Set true only for clusters whose nodes cannot run user namespaces (Linux
	// 6.3+ with idmapped mounts of tmpfs and a runtime that supports them).
	HostUsers *bool `json:"hostUsers,omitempty"`
	// SeccompLocalhostProfile is the container's Localhost seccomp profile (a path
	// in the kubelet's seccomp directory); "" means RuntimeDefault. omitempty keeps
	// the TemplateHash of RuntimeDefault pools what it was.
	SeccompLocalhostProfile string `json:"seccompLocalhostProfile,omitempty"`
	// PlotlyJSURL is where the agent's plotly HTML loads plotly.js from.
	PlotlyJSURL string `json:"plotlyJSURL,omitempty"`
	// Egress is the class's allow-list; empty means no network at all.
	Egress []EgressRule `json:"egress,omitempty"`
}

// EgressRule allows TCP from the sandboxes to a CIDR, on Ports (all when empty).
type EgressRule struct {
	CIDR   string   `json:"cidr"`
	Except []string `json:"except,omitempty"`
	Ports  []int32  `json:"ports,omitempty"`
}

// metadataAddress is the cloud metadata service, never reachable from a sandbox.
const metadataAddress = "169.254.169.254/32"

// podFormat names how RenderPod makes Pods beyond their template: "per-pod-token" since
// each Pod has its own token Secret (a Pod of the pool-wide Secret is replaced).
const podFormat = "\x00per-pod-token"

// Settings are the Kubernetes backend's own settings of one pool (the registry's
// typed options), resolved by its adapter: the pool's identity, its template and
// the key its Pods' access tokens are derived from (PodToken).
type Settings struct {
	Namespace string    `json:"namespace"`
	PoolName  string    `json:"poolName"`
	PoolUID   types.UID `json:"poolUID"`
	Template  Template  `json:"template"`
	// MaxExecutions is how many jobs one Pod runs before it is replaced (>= 1).
	MaxExecutions int `json:"maxExecutions"`
	// TokenKey is the manager's key each Pod's agent token is derived from
	// (PodToken): every Pod has its own token, so a token read inside one sandbox
	// opens no other. It is left out of JSON (the registry's change detection
	// serializes settings); TokenHash stands for it there.
	TokenKey  []byte `json:"-"`
	TokenHash string `json:"tokenHash"`
}

// WithTokenKey returns s carrying the token key (and its hash, for change detection).
func (s Settings) WithTokenKey(key []byte) Settings {
	s.TokenKey = key
	sum := sha256.Sum256(key)
	s.TokenHash = hex.EncodeToString(sum[:8])
	return s
}

// PodToken is the agent token of one sandbox Pod: an HMAC, under the manager's key,
// of the pool's UID, the Pod's name and the Pod's random nonce
// (AnnotationTokenNonce). The manager derives it again when it talks to the Pod and
// never reads the Pod's Secret back. "" when the Pod has no nonce (it was made
// before tokens were per Pod: it is refused and replaced).
func PodToken(key []byte, pod *corev1.Pod) string {
	nonce := pod.Annotations[AnnotationTokenNonce]
	uid := pod.Labels[LabelPoolUID]
	if nonce == "" || uid == "" || len(key) == 0 {
		return ""
	}
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte("vizops-sandbox-pod-token\x00" + uid + "\x00" + pod.Namespace + "/" + pod.Name + "\x00" + nonce))
	return hex.EncodeToString(mac.Sum(nil))
}

// TemplateHash identifies a template; Pods carry it in LabelTemplateHash. It also
// covers podFormat, so Pods rendered by an earlier release are replaced.
func TemplateHash(t Template) string {
	b, err := json.Marshal(t)
	if err != nil {
		panic(err) // plain values: cannot fail
	}
	sum := sha256.Sum256(append(b, podFormat...))
	return hex.EncodeToString(sum[:5])
}

// Class is what the platform team decides about a pool's Pods: the SandboxClass's
// spec.kubernetes and spec.egress, in this backend's own terms
// (internal/backends/kubernetes resolves them).
type Class struct {
	Image            string
	RuntimeClassName string
	NodeSelector     map[string]string
	Tolerations      []corev1.Toleration
	// HostUsers is the Pods' hostUsers; nil means false (a user namespace per Pod).
	HostUsers *bool
	// SeccompLocalhostProfile is a Localhost seccomp profile; "" means RuntimeDefault.
	SeccompLocalhostProfile string
	// Egress is the allow-list; empty means no network at all.
	Egress []EgressRule
}

// PoolTemplate builds a pool's template from the backend-neutral config (the pool's
// sizes, resolved within its class's bounds) and its class: the class decides the
// image, nodes, runtime class, user namespaces and egress; requests and limits are
// both the pool's cpu and memory, so the kubelet enforces them per sandbox.
func PoolTemplate(cfg sandbox.PoolConfig, k Class) Template {
	t := Template{
		Image:                   k.Image,
		RuntimeClassName:        nonEmpty(k.RuntimeClassName),
		NodeSelector:            k.NodeSelector,
		Tolerations:             k.Tolerations,
		HostUsers:               k.HostUsers,
		ScratchBytes:            cfg.Resources.ScratchBytes,
		Network:                 sandbox.NetworkNone,
		Pids:                    cfg.Resources.Pids,
		PlotlyJSURL:             cfg.PlotlyJSURL,
		SeccompLocalhostProfile: k.SeccompLocalhostProfile,
	}
	if t.HostUsers == nil {
		t.HostUsers = ptr.To(false)
	}
	if t.ScratchBytes == 0 {
		t.ScratchBytes = defaultScratch
	}
	for _, e := range k.Egress {
		t.Egress = append(t.Egress, EgressRule{CIDR: e.CIDR, Except: e.Except, Ports: e.Ports})
	}
	if len(t.Egress) > 0 {
		t.Network = sandbox.NetworkEgress
	}
	rl := corev1.ResourceList{}
	if cfg.Resources.CPUMillis > 0 {
		rl[corev1.ResourceCPU] = *resource.NewMilliQuantity(cfg.Resources.CPUMillis, resource.DecimalSI)
	}
	if cfg.Resources.MemoryBytes > 0 {
		rl[corev1.ResourceMemory] = *resource.NewQuantity(cfg.Resources.MemoryBytes, resource.BinarySI)
	}
	if len(rl) > 0 {
		t.Resources = corev1.ResourceRequirements{Requests: rl, Limits: rl.DeepCopy()}
	}
	return t
}

// namePrefix is "<pool>-<uid5>-": the pool's name (cut to 40 characters) and a bit of
// its UID, so a re-created pool of the same name never collides with Pods of the old
// one that are still terminating.
func namePrefix(s Settings) string {
	name := s.PoolName
	if len(name) > 40 {
		name = strings.TrimRight(name[:40], "-.")
	}
	uid := strings.ReplaceAll(string(s.PoolUID), "-", "")
	if len(uid) > 5 {
		uid = uid[:5]
	}
	return name + "-" + uid + "-"
}

// PodName is "<prefix><i>": the name RenderPod gives (the gateway renders its Pods so
// and renames them).
func PodName(s Settings, i int) string { return namePrefix(s) + strconv.Itoa(i) }

// randomSuffix is the random end of a pool Pod's name: 5 characters of the API
// server's generateName alphabet (27^5, about 14 million names). A test replaces it
// to force a collision.
var randomSuffix = func() string { return utilrand.String(5) }

// newPodName is a pool Pod's name: the pool's prefix and a random suffix, so a
// sandbox ID is not reused by a later Pod of the pool (the Pod cap is the warm-pool
// engine's, in memory). Names collide now and then (two in 1,000 draws about one
// time in 30): Start draws again for a name it holds or the API server has.
func newPodName(s Settings) string { return namePrefix(s) + randomSuffix() }

// Selector is the label selector of every object a pool makes.
func Selector(uid types.UID) map[string]string {
	return map[string]string{LabelPoolUID: string(uid)}
}

func commonLabels(s Settings) map[string]string {
	return map[string]string{
		LabelPoolUID:                   string(s.PoolUID),
		"app.kubernetes.io/name":       "vizops-sandbox",
		"app.kubernetes.io/managed-by": "viz-operator",
	}
}

// OwnerReference makes the pool the controller-owner of what it makes, so the
// garbage collector removes it with the pool even if the manager is gone.
func OwnerReference(s Settings) metav1.OwnerReference {
	return metav1.OwnerReference{
		APIVersion: PoolAPIVersion, Kind: "SandboxPool",
		Name: s.PoolName, UID: s.PoolUID,
		Controller: ptr.To(true), BlockOwnerDeletion: ptr.To(true),
	}
}

// TokenSecretName is the name of the pool's token Secret of releases before tokens
// were per Pod; the pool's finalizer still deletes it (when the pool owns it).
func TokenSecretName(s Settings) string { return namePrefix(s) + "token" }

// PodTokenSecretName is the name of a Pod's token Secret: the Pod's name and the
// start of its nonce, so the name is not known before the Pod is rendered and a
// Secret of an earlier Pod is never reused.
func PodTokenSecretName(pod *corev1.Pod) string {
	nonce := pod.Annotations[AnnotationTokenNonce]
	if len(nonce) > 10 {
		nonce = nonce[:10]
	}
	return pod.Name + "-" + nonce + "-token"
}

// NetworkPolicyName is the name of the pool's NetworkPolicy.
func NetworkPolicyName(s Settings) string { return namePrefix(s) + "sandboxes" }

// RenderPod is a sandbox Pod named PodName(s, i), warm, from s's template (the
// pool's own Pods get random names, newPodName; the gateway renames its). It passes the
// `restricted` Pod Security level: non-root, no privilege escalation, all
// capabilities dropped, RuntimeDefault seccomp (or the class's Localhost profile),
// read-only root filesystem, no host
// namespaces, no service-account token. Its only writable space is a size-limited
// in-memory emptyDir; the access token is a file from the Pod's own Secret
// (PodTokenSecretName, RenderTokenSecret), named after a random nonce each render
// draws.
func RenderPod(s Settings) func(i int) *corev1.Pod {
	render := renderPod(s)
	return func(i int) *corev1.Pod { return render(PodName(s, i)) }
}

// renderPod is RenderPod for a Pod of the given name (newPodName).
func renderPod(s Settings) func(name string) *corev1.Pod {
	t := s.Template
	hash := TemplateHash(t)
	seccomp := func() *corev1.SeccompProfile {
		if t.SeccompLocalhostProfile != "" {
			return &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeLocalhost, LocalhostProfile: ptr.To(t.SeccompLocalhostProfile)}
		}
		return &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault}
	}
	return func(name string) *corev1.Pod {
		labels := commonLabels(s)
		labels[LabelState] = StateWarm
		labels[LabelTemplateHash] = hash
		scratch := resource.NewQuantity(t.ScratchBytes, resource.BinarySI)
		var nonce [16]byte
		_, _ = rand.Read(nonce[:]) // never fails (crypto/rand)
		meta := metav1.ObjectMeta{
			Name: name, Namespace: s.Namespace, Labels: labels,
			Annotations:     map[string]string{AnnotationTokenNonce: hex.EncodeToString(nonce[:])},
			OwnerReferences: []metav1.OwnerReference{OwnerReference(s)},
		}
		tokenSecret := PodTokenSecretName(&corev1.Pod{ObjectMeta: meta})
		return &corev1.Pod{
			ObjectMeta: meta,
			Spec: corev1.PodSpec{
				// One job per Pod: a crashed agent is replaced, never restarted in place.
				RestartPolicy:                 corev1.RestartPolicyNever,
				AutomountServiceAccountToken:  ptr.To(false),
				EnableServiceLinks:            ptr.To(false),
				HostNetwork:                   false,
				HostPID:                       false,
				HostIPC:                       false,
				HostUsers:                     ptr.To(ptr.Deref(t.HostUsers, false)),
				TerminationGracePeriodSeconds: ptr.To(int64(2)),
				RuntimeClassName:              t.RuntimeClassName,
				NodeSelector:                  t.NodeSelector,
				Tolerations:                   t.Tolerations,
				SecurityContext: &corev1.PodSecurityContext{
					RunAsNonRoot:   ptr.To(true),
					RunAsUser:      ptr.To(int64(SandboxUID)),
					RunAsGroup:     ptr.To(int64(SandboxUID)),
					FSGroup:        ptr.To(int64(SandboxUID)),
					SeccompProfile: seccomp(),
				},
				Containers: []corev1.Container{{
					Name:    ContainerName,
					Image:   t.Image,
					Command: []string{AgentBinary},
					Args:    agentArgs(t),
					Env: []corev1.EnvVar{
						{Name: "HOME", Value: ScratchDir},
						{Name: "TMPDIR", Value: ScratchDir},
					},
					Ports:     []corev1.ContainerPort{{Name: "agent", ContainerPort: AgentPort, Protocol: corev1.ProtocolTCP}},
					Resources: t.Resources,
					ReadinessProbe: &corev1.Probe{
						ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{
							Path: "/health", Port: intstr.FromInt32(AgentPort),
						}},
						PeriodSeconds: 2, FailureThreshold: 3,
					},
					SecurityContext: &corev1.SecurityContext{
						RunAsNonRoot:             ptr.To(true),
						AllowPrivilegeEscalation: ptr.To(false),
						Privileged:               ptr.To(false),
						ReadOnlyRootFilesystem:   ptr.To(true),
						Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
						SeccompProfile:           seccomp(),
					},
					VolumeMounts: []corev1.VolumeMount{
						{Name: "scratch", MountPath: ScratchDir},
						{Name: "token", MountPath: TokenDir, ReadOnly: true},
					},
				}},
				Volumes: []corev1.Volume{
					{Name: "scratch", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{
						Medium: corev1.StorageMediumMemory, SizeLimit: scratch,
					}}},
					{Name: "token", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{
						SecretName:  tokenSecret,
						Items:       []corev1.KeyToPath{{Key: TokenKey, Path: TokenKey}},
						DefaultMode: ptr.To(int32(0o440)),
					}}},
				},
			},
		}
	}
}

// agentArgs are the agent's flags in a sandbox Pod: no isolation of its own (the Pod
// is the sandbox), its work in the scratch emptyDir, the token from the mounted Secret.
func agentArgs(t Template) []string {
	args := []string{
		fmt.Sprintf("--listen=:%d", AgentPort),
		"--isolation=none",
		"--work-dir=" + WorkDir,
		"--token-file=" + TokenDir + "/" + TokenKey,
		"--network=" + string(t.Network),
	}
	if t.Pids > 0 {
		args = append(args, fmt.Sprintf("--pids=%d", t.Pids))
	}
	if t.PlotlyJSURL != "" {
		args = append(args, "--plotly-js-url="+t.PlotlyJSURL)
	}
	return args
}

// RenderTokenSecret is pod's token Secret (pod as RenderPod renders it), holding
// PodToken. It is made before the Pod, owned by the pool (the Pod has no UID yet),
// and deleted with the Pod by the manager; the garbage collector removes any left
// with the pool.
func RenderTokenSecret(s Settings, pod *corev1.Pod) *corev1.Secret {
	return &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{
			Name: PodTokenSecretName(pod), Namespace: s.Namespace, Labels: commonLabels(s),
			OwnerReferences: []metav1.OwnerReference{OwnerReference(s)},
		},
		Type: corev1.SecretTypeOpaque,
		Data: map[string][]byte{TokenKey: []byte(PodToken(s.TokenKey, pod))},
	}
}

// ManagerPeer is where the manager runs, for the NetworkPolicy's only ingress rule.
type ManagerPeer struct {
	// Namespace of the manager's Pods.
	Namespace string
	// PodLabels select the manager's Pods.
	PodLabels map[string]string
}

// RenderNetworkPolicy is the pool's NetworkPolicy: its Pods accept connections only
// from the manager, on AgentPort, and open none (with network Egress: any).
func RenderNetworkPolicy(s Settings, mgr ManagerPeer) *networkingv1.NetworkPolicy {
	port := intstr.FromInt32(AgentPort)
	np := &networkingv1.NetworkPolicy{
		ObjectMeta: metav1.ObjectMeta{
			Name: NetworkPolicyName(s), Namespace: s.Namespace, Labels: commonLabels(s),
			OwnerReferences: []metav1.OwnerReference{OwnerReference(s)},
		},
		Spec: networkingv1.NetworkPolicySpec{
			PodSelector: metav1.LabelSelector{MatchLabels: Selector(s.PoolUID)},
			PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress, networkingv1.PolicyTypeEgress},
			Ingress: []networkingv1.NetworkPolicyIngressRule{{
				From: []networkingv1.NetworkPolicyPeer{{
					NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{
						"kubernetes.io/metadata.name": mgr.Namespace,
					}},
					PodSelector: &metav1.LabelSelector{MatchLabels: mgr.PodLabels},
				}},
				Ports: []networkingv1.NetworkPolicyPort{{Protocol: ptr.To(corev1.ProtocolTCP), Port: &port}},
			}},
		},
	}
	np.Spec.Egress = egressRules(s.Template.Egress)
	return np
}

// egressRules renders the class's allow-list: TCP to each CIDR on its ports, with the
// metadata address excepted wherever a CIDR contains it. No rules: no egress at all
// (the policy type Egress with no rule denies everything, DNS included).
func egressRules(rules []EgressRule) []networkingv1.NetworkPolicyEgressRule {
	_, meta, _ := net.ParseCIDR(metadataAddress)
	var out []networkingv1.NetworkPolicyEgressRule
	for _, r := range rules {
		ip, cidr, err := net.ParseCIDR(r.CIDR)
		if err != nil {
			continue // the API validates CIDRs; one that still does not parse allows nothing
		}
		except := append([]string(nil), r.Except...)
		if ip.To4() != nil && cidr.Contains(meta.IP) {
			ones, _ := cidr.Mask.Size()
			if ones == 32 {
				continue // the metadata address itself: never
			}
			except = append(except, metadataAddress)
		}
		rule := networkingv1.NetworkPolicyEgressRule{To: []networkingv1.NetworkPolicyPeer{{
			IPBlock: &networkingv1.IPBlock{CIDR: cidr.String(), Except: except},
		}}}
		for _, p := range r.Ports {
			port := intstr.FromInt32(p)
			rule.Ports = append(rule.Ports, networkingv1.NetworkPolicyPort{Protocol: ptr.To(corev1.ProtocolTCP), Port: &port})
		}
		out = append(out, rule)
	}
	return out
}

// AgentURL is the root of pod's agent: http://<podIP>:49999.
func AgentURL(pod *corev1.Pod) string {
	return "http://" + net.JoinHostPort(pod.Status.PodIP, strconv.Itoa(AgentPort))
}

// AgentClient is the production Options.NewRunner: E2B's code-interpreter protocol
// spoken to the Pod's agent at AgentURL, with the Pod's own token.
func AgentClient(pod *corev1.Pod, token string) Runner {
	return &codeinterpreter.Client{BaseURL: AgentURL(pod), AccessToken: token, SandboxID: pod.Name}
}

// nonEmpty is s as an optional field: nil when empty.
func nonEmpty(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}
