package v1alpha1

import (
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// AnnotationDefaultClass marks the SandboxClass that pools without spec.className use,
// as storageclass.kubernetes.io/is-default-class does for StorageClasses. When several
// classes carry it, the most recently created one is the default.
const AnnotationDefaultClass = "sandboxclass.viz.vizops.io/is-default-class"

// SandboxClassSpec is what the platform team decides about where untrusted code runs
// and what it can reach. Tenants only name a class from their SandboxPools.
// +kubebuilder:validation:XValidation:rule="self.backend != 'Kubernetes' || has(self.kubernetes)",message="backend Kubernetes needs spec.kubernetes with at least image"
// +kubebuilder:validation:XValidation:rule="self.backend != 'E2B' || has(self.e2b)",message="backend E2B needs spec.e2b with at least apiKeySecretRef"
// +kubebuilder:validation:XValidation:rule="!has(self.kubernetes) || self.backend == 'Kubernetes'",message="spec.kubernetes is only allowed with backend Kubernetes"
// +kubebuilder:validation:XValidation:rule="!has(self.e2b) || self.backend == 'E2B'",message="spec.e2b is only allowed with backend E2B"
// +kubebuilder:validation:XValidation:rule="!has(self.egress) || size(self.egress) == 0 || self.backend == 'Kubernetes'",message="spec.egress is only supported by backend Kubernetes (Local sandboxes have no network at all; E2B's network is E2B's)"
type SandboxClassSpec struct {
	// backend is where the sandboxes of this class's pools run: Local (bubblewrap on
	// the operator's node), Kubernetes (hardened sandbox Pods) or E2B (the E2B cloud).
	// +required
	Backend Backend `json:"backend,omitempty"`

	// namespaceSelector picks the namespaces whose SandboxPools may use this class.
	// Unset: every namespace. A pool in another namespace reports ClassForbidsNamespace.
	// +optional
	NamespaceSelector *metav1.LabelSelector `json:"namespaceSelector,omitempty"`

	// defaultResources are the limits of each sandbox of a pool that sets none (field
	// by field). Unset fields fall back to cpu 1, memory 1Gi, pids 128, scratch 64Mi.
	// +optional
	DefaultResources SandboxResources `json:"defaultResources,omitempty"`

	// maxResources bound what a pool may ask for in spec.resources, field by field. A
	// pool over them reports ResourcesExceedClass and runs nothing. Unset fields bound
	// nothing beyond the API's own limits.
	// +optional
	MaxResources SandboxResources `json:"maxResources,omitempty"`

	// egress is the only network the sandboxes may reach (Kubernetes backend): each
	// rule allows TCP to a CIDR, on the listed ports (all ports when none are listed).
	// Empty: no network at all. The cloud metadata address 169.254.169.254 is always
	// excepted, even inside a listed CIDR. List the API server, node, Pod or Service
	// addresses only when sandboxes really must reach them.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=32
	Egress []EgressRule `json:"egress,omitempty"`

	// kubernetes configures the Kubernetes backend's sandbox Pods.
	// +optional
	Kubernetes *KubernetesClass `json:"kubernetes,omitempty"`

	// e2b configures the E2B backend.
	// +optional
	E2B *E2BClass `json:"e2b,omitempty"`
}

// EgressRule allows sandbox traffic to one CIDR.
type EgressRule struct {
	// cidr the sandboxes may reach, e.g. 203.0.113.0/24.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=64
	// +kubebuilder:validation:XValidation:rule="isCIDR(self)",message="cidr must be a CIDR, e.g. 203.0.113.0/24"
	CIDR string `json:"cidr,omitempty"`
	// except are CIDRs inside cidr that stay unreachable.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=16
	// +kubebuilder:validation:items:MaxLength=64
	Except []string `json:"except,omitempty"`
	// ports allowed (TCP). Empty: every port.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=16
	// +kubebuilder:validation:items:Minimum=1
	// +kubebuilder:validation:items:Maximum=65535
	Ports []int32 `json:"ports,omitempty"`
}

// KubernetesClass is how sandbox Pods are made. None of it is the tenant's to choose.
type KubernetesClass struct {
	// image of the sandbox Pods; it must carry the sandbox-agent, Python and the
	// pools' packages (Dockerfile.sandbox).
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=512
	Image string `json:"image,omitempty"`
	// runtimeClassName for stronger isolation, e.g. gvisor or kata.
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	RuntimeClassName string `json:"runtimeClassName,omitempty"`
	// nodeSelector for the sandbox Pods.
	// +optional
	// +kubebuilder:validation:MaxProperties=32
	NodeSelector map[string]string `json:"nodeSelector,omitempty"`
	// tolerations for the sandbox Pods.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=32
	Tolerations []corev1.Toleration `json:"tolerations,omitempty"`
	// hostUsers false (the default) runs each sandbox Pod in its own user namespace,
	// so its uid is its own on the node and process limits counted per uid are per
	// Pod. Set it true only on nodes without user-namespace support (Linux < 6.3,
	// containerd < 2.0, cgroup v1); docs/security.md says what then holds.
	// +optional
	// +kubebuilder:default=false
	HostUsers *bool `json:"hostUsers,omitempty"`
	// seccompProfile of the sandbox container. Unset means RuntimeDefault, the
	// container runtime's own profile, which refuses user namespaces: the agent then
	// cannot give each context a PID namespace of its own and falls back to sweeping
	// orphaned processes (docs/security.md). Localhost names vizops's agent profile
	// (config/seccomp/sandbox-agent.json, installed on every node in the kubelet's
	// seccomp directory), which is RuntimeDefault plus the one thing the agent needs:
	// a new user, PID and mount namespace for each context, before the sandbox code
	// runs under its own, stricter filter.
	// +optional
	SeccompProfile *SandboxSeccompProfile `json:"seccompProfile,omitempty"`
	// maxExecutionsPerSandbox is how many jobs one sandbox Pod runs before it is
	// replaced (1 to 1000). 1, the default, gives every job a fresh Pod; more saves
	// Pod starts, and a Pod is then reused only by requests of one namespace.
	// +optional
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=1000
	// +kubebuilder:default=1
	MaxExecutionsPerSandbox int32 `json:"maxExecutionsPerSandbox,omitempty"`
}

// SeccompProfileType is where a sandbox container's seccomp profile comes from.
// +kubebuilder:validation:Enum=RuntimeDefault;Localhost
type SeccompProfileType string

const (
	// SeccompRuntimeDefault is the container runtime's default profile.
	SeccompRuntimeDefault SeccompProfileType = "RuntimeDefault"
	// SeccompLocalhost is a profile file on the node.
	SeccompLocalhost SeccompProfileType = "Localhost"
)

// SandboxSeccompProfile is a sandbox container's seccomp profile: the runtime's
// default or a file on the node. Unconfined is not offered: the restricted Pod
// Security Standard forbids it.
// +kubebuilder:validation:XValidation:rule="self.type == 'Localhost' ? has(self.localhostProfile) : !has(self.localhostProfile)",message="localhostProfile is required with type Localhost and not allowed otherwise"
type SandboxSeccompProfile struct {
	// type is RuntimeDefault or Localhost.
	// +required
	Type SeccompProfileType `json:"type,omitempty"`
	// localhostProfile is the profile's path relative to the kubelet's seccomp
	// directory (/var/lib/kubelet/seccomp by default), e.g.
	// vizops/sandbox-agent.json. The file must exist on every node the class's Pods
	// may run on, or their containers fail to start.
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=255
	// +kubebuilder:validation:Pattern=`^[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)*$`
	// +kubebuilder:validation:XValidation:rule="!self.split('/').exists(s, s == '..' || s == '.')",message="localhostProfile must not contain . or .. segments"
	LocalhostProfile string `json:"localhostProfile,omitempty"`
}

// E2BClass is the E2B service the class's pools use, and its key.
type E2BClass struct {
	// apiURL of the E2B API (the REST API that creates and kills sandboxes).
	// +optional
	// +kubebuilder:default="https://api.e2b.app"
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=2048
	// +kubebuilder:validation:Pattern=`^https?://`
	APIURL string `json:"apiURL,omitempty"`
	// allowHTTP permits a plain http:// apiURL (a self-hosted E2B inside the
	// cluster). Off: only https.
	// +optional
	AllowHTTP *bool `json:"allowHTTP,omitempty"`
	// domain under which sandboxes are reached (https://49999-ID.DOMAIN).
	// +optional
	// +kubebuilder:default="e2b.app"
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9.]*[a-z0-9])?(:[0-9]{1,5})?$`
	Domain string `json:"domain,omitempty"`
	// templateID of the E2B sandbox template; it must run E2B's code interpreter.
	// +optional
	// +kubebuilder:default=code-interpreter-v1
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	TemplateID string `json:"templateID,omitempty"`
	// apiKeySecretRef is the Secret key holding the E2B API key, in the OPERATOR's
	// namespace (tenants cannot read or name it). The Secret must be labelled
	// viz.vizops.io/e2b-api-key=true.
	// +required
	APIKeySecretRef SecretKeyReference `json:"apiKeySecretRef,omitempty"`
}

// SandboxClassStatus is empty for now: a class is configuration, its pools report.
type SandboxClassStatus struct {
	// conditions of the class (reserved).
	// +optional
	// +listType=map
	// +listMapKey=type
	// +kubebuilder:validation:MaxItems=8
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}

// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:scope=Cluster,shortName=sbxclass;sbc,categories=vizops
// +kubebuilder:printcolumn:name="Backend",type=string,JSONPath=`.spec.backend`
// +kubebuilder:printcolumn:name="Image",type=string,JSONPath=`.spec.kubernetes.image`,priority=1
// +kubebuilder:printcolumn:name="Default",type=string,JSONPath=`.metadata.annotations.sandboxclass\.viz\.vizops\.io/is-default-class`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`

// SandboxClass is written by the platform team: it decides where untrusted code runs
// and what it can reach (backend, image, nodes, runtime class, egress, external URLs
// and their keys), and bounds what tenants' SandboxPools may ask for. Like a
// StorageClass: cluster-scoped, named by pools, one of them the default.
type SandboxClass struct {
	metav1.TypeMeta `json:",inline"`
	// metadata is the standard object metadata.
	// +optional
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// spec is the class.
	// +required
	Spec SandboxClassSpec `json:"spec,omitempty"`
	// status is reserved.
	// +optional
	Status SandboxClassStatus `json:"status,omitempty"`
}

// +kubebuilder:object:root=true

// SandboxClassList is a list of SandboxClasses.
type SandboxClassList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	// +required
	Items []SandboxClass `json:"items"`
}

func init() {
	SchemeBuilder.Register(&SandboxClass{}, &SandboxClassList{})
}
