package v1alpha1

import (
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Backend is where a pool's sandboxes run.
// +kubebuilder:validation:Enum=Local;Kubernetes;E2B
type Backend string

const (
	// BackendLocal runs sandboxes with bubblewrap on the operator's node.
	BackendLocal Backend = "Local"
	// BackendKubernetes runs sandboxes as hardened Pods (the scale-out path).
	BackendKubernetes Backend = "Kubernetes"
	// BackendE2B runs sandboxes in the E2B cloud.
	BackendE2B Backend = "E2B"
)

// SandboxPoolSpec describes a warm pool of sandboxes. Where and how they run is its
// class's (SandboxClass, written by the platform team); the pool sets sizes and
// timeouts within the class's bounds.
// +kubebuilder:validation:XValidation:rule="self.minReady <= self.maxSandboxes",message="minReady must not exceed maxSandboxes"
type SandboxPoolSpec struct {
	// className names the SandboxClass (cluster-scoped) that decides the backend,
	// image, nodes, network and bounds of this pool's sandboxes. Empty: the class
	// annotated sandboxclass.viz.vizops.io/is-default-class=true.
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	ClassName string `json:"className,omitempty"`

	// minReady is how many sandboxes are kept warm, ready to claim (0 to 100). A
	// pointer, because 0 (no warm sandboxes) is a valid choice distinct from unset.
	// +optional
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=100
	// +kubebuilder:default=1
	MinReady *int32 `json:"minReady,omitempty"`

	// maxSandboxes caps the sandboxes of this pool, warm and busy together, and so
	// the requests it runs at once (1 to 1000). Requests over the cap wait, Queued.
	// +optional
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=1000
	// +kubebuilder:default=10
	MaxSandboxes int32 `json:"maxSandboxes,omitempty"`

	// resources limit each sandbox, within the class's maxResources. Unset fields take
	// the class's defaultResources (never "no limit").
	// +optional
	Resources SandboxResources `json:"resources,omitempty"`

	// e2b sets the E2B backend's timeouts and rates, when the class's backend is E2B.
	// +optional
	E2B *E2BPool `json:"e2b,omitempty"`

	// namespaceSelector picks the namespaces whose requests may use this pool. Unset
	// means only requests in the pool's own namespace; an empty selector ({}) means
	// every namespace.
	// +optional
	NamespaceSelector *metav1.LabelSelector `json:"namespaceSelector,omitempty"`

	// pythonPackages are the libraries the pool's sandboxes offer. Code generation
	// tells models to use only these, and validation rejects other imports.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=64
	// +kubebuilder:validation:items:MaxLength=64
	// +kubebuilder:default={matplotlib,numpy,pandas,seaborn,plotly}
	PythonPackages []string `json:"pythonPackages,omitempty"`

	// plotlyJSURL is where interactive (html) charts load plotly.js from. Empty means
	// the public CDN; "inline" embeds plotly.js (about 3.5 MiB minified: such charts
	// exceed what a ConfigMap holds).
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=2048
	PlotlyJSURL string `json:"plotlyJSURL,omitempty"`
}

// SandboxResources limit each sandbox.
type SandboxResources struct {
	// cpu a sandbox may use, e.g. "1" or "500m".
	// +optional
	CPU *resource.Quantity `json:"cpu,omitempty"`
	// memory a sandbox may use, e.g. "512Mi": 256Mi to 8Gi. An idle warm sandbox
	// takes about 144Mi of it; sandboxes run within the operator's own memory, which
	// also caps all pools together (QuotaExceeded).
	// +optional
	// +kubebuilder:validation:XValidation:rule="type(self) == int ? (self >= 268435456 && self <= 8589934592) : (isQuantity(self) && quantity(self).compareTo(quantity('256Mi')) >= 0 && quantity(self).compareTo(quantity('8Gi')) <= 0)",message="memory must be between 256Mi and 8Gi"
	Memory *resource.Quantity `json:"memory,omitempty"`
	// pids caps processes and threads in a sandbox.
	// +optional
	// +kubebuilder:validation:Minimum=8
	// +kubebuilder:validation:Maximum=4096
	Pids *int32 `json:"pids,omitempty"`
	// scratch is the size of the sandbox's only writable space: 1Mi to 1Gi. It is a
	// tmpfs, so what the code writes there counts as memory too.
	// +optional
	// +kubebuilder:validation:XValidation:rule="type(self) == int ? (self >= 1048576 && self <= 1073741824) : (isQuantity(self) && quantity(self).compareTo(quantity('1Mi')) >= 0 && quantity(self).compareTo(quantity('1Gi')) <= 0)",message="scratch must be between 1Mi and 1Gi"
	Scratch *resource.Quantity `json:"scratch,omitempty"`
}

// E2BPool sets an E2B pool's timeouts and creation rate; the E2B service, template
// and key are its class's.
type E2BPool struct {
	// sandboxTimeoutSeconds is how long E2B keeps a warm (idle) sandbox alive before
	// it kills it on its own; the operator extends warm sandboxes before then. A
	// sandbox running a request lives the request's timeout plus 30 seconds, so one
	// the operator forgets dies soon on its own.
	// +optional
	// +kubebuilder:validation:Minimum=10
	// +kubebuilder:validation:Maximum=86400
	// +kubebuilder:default=300
	SandboxTimeoutSeconds int32 `json:"sandboxTimeoutSeconds,omitempty"`
	// maxCreatesPerSecond caps how fast the pool creates sandboxes (1 to 100). E2B
	// allows 1 per second on its free tier; a 429 answer slows creation further, for
	// as long as E2B's Retry-After says.
	// +optional
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=100
	// +kubebuilder:default=1
	MaxCreatesPerSecond int32 `json:"maxCreatesPerSecond,omitempty"`
}

// LabelE2BAPIKey marks a Secret of the operator's namespace as one a SandboxClass may
// take its E2B API key from (spec.e2b.apiKeySecretRef): the operator sends no
// unlabelled Secret anywhere.
const LabelE2BAPIKey = "viz.vizops.io/e2b-api-key"

// SecretKeyReference names one key of a Secret.
type SecretKeyReference struct {
	// name of the Secret.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +required
	Name string `json:"name,omitempty"`
	// key within the Secret.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +required
	Key string `json:"key,omitempty"`
}

// Labels and annotations of the objects a Kubernetes pool makes (sandbox Pods, their
// NetworkPolicy and token Secret). The manager's cache holds only Pods, Secrets and
// NetworkPolicies with LabelSandboxPoolUID.
const (
	// LabelSandboxPoolUID is the UID of the SandboxPool that made the object.
	LabelSandboxPoolUID = "viz.vizops.io/sandbox-pool-uid"
	// LabelSandboxState is a sandbox Pod's claim state: SandboxWarm or SandboxBusy. A
	// claim changes it with the Pod's resourceVersion as precondition.
	LabelSandboxState = "viz.vizops.io/sandbox-state"
	// LabelTemplateHash is the hash of the pod template a sandbox Pod was made from.
	LabelTemplateHash = "viz.vizops.io/template-hash"
	// AnnotationClaim is the claim of a busy sandbox Pod, JSON: the request's
	// namespace/name, UID and attempt, and when it was claimed.
	AnnotationClaim = "viz.vizops.io/claim"
	// AnnotationExecutions counts the jobs a sandbox Pod has run.
	AnnotationExecutions = "viz.vizops.io/executions"
	// AnnotationTokenNonce is a sandbox Pod's random token nonce: the manager derives
	// the Pod's own agent token from its key, the pool's UID, the Pod's name and this
	// (the nonce is not secret; the key is).
	AnnotationTokenNonce = "viz.vizops.io/token-nonce"
	// AnnotationTokenSecretUID is the UID of a sandbox Pod's token Secret (made
	// before the Pod): the manager deletes that Secret with the Pod only if its UID
	// still matches, so it never deletes an object it did not make.
	AnnotationTokenSecretUID = "viz.vizops.io/token-secret-uid"
	// AnnotationServedNamespace is the namespace whose requests a reused sandbox Pod
	// (maxExecutionsPerSandbox > 1) has run: it is never claimed for another one.
	AnnotationServedNamespace = "viz.vizops.io/served-namespace"
	// FinalizerSandboxPool holds a Kubernetes pool until its Pods, NetworkPolicy and
	// Secret are gone.
	FinalizerSandboxPool = "viz.vizops.io/sandbox-pods"
)

// Values of LabelSandboxState.
const (
	SandboxWarm = "warm"
	SandboxBusy = "busy"
)

// Condition types of a SandboxPool.
const (
	// PoolConditionReady: the pool can run requests (its backend is available).
	PoolConditionReady = "Ready"
	// PoolConditionThrottled: the backend's provider slows the pool down (E2B
	// answered 429); requests wait for sandboxes longer but do not fail for it.
	PoolConditionThrottled = "Throttled"
)

// Reasons of SandboxPool conditions.
const (
	ReasonPoolReady             = "PoolReady"
	ReasonBackendUnavailable    = "BackendUnavailable"
	ReasonBackendNotImplemented = "BackendNotImplemented"
	// ReasonQuotaExceeded: the pool would take more warm sandboxes or sandbox memory
	// than the operator allows all Local pools together (--max-warm-sandboxes,
	// --max-sandbox-memory).
	ReasonQuotaExceeded = "QuotaExceeded"
	// ReasonAPIKeyMissing: the Secret or key named in spec.e2b.apiKeySecretRef does
	// not exist (or is empty).
	ReasonAPIKeyMissing = "APIKeyMissing"
	// ReasonAPIKeyRejected: the provider answered 401 to the pool's API key.
	ReasonAPIKeyRejected = "APIKeyRejected"
	// ReasonTeamBlocked: E2B answered 403 "team is blocked" (or banned) to the key: it
	// is valid, but its team may not use E2B now.
	ReasonTeamBlocked = "TeamBlocked"
	// ReasonTemplateForbidden: E2B answered 403 to spec.e2b.templateID: the template
	// belongs to another team.
	ReasonTemplateForbidden = "TemplateForbidden"
	// ReasonProviderForbidden: any other 403 of the provider to the pool's requests
	// (a feature the team's plan lacks).
	ReasonProviderForbidden = "ProviderForbidden"
	// ReasonPlanLimitExceeded: spec.e2b.sandboxTimeoutSeconds is above the longest
	// sandbox the E2B team's plan allows; the pool refuses to run until it is lowered.
	ReasonPlanLimitExceeded = "PlanLimitExceeded"
	// ReasonRateLimited: the Throttled condition while the provider answers 429.
	ReasonRateLimited = "RateLimited"
	// ReasonNotThrottled: the Throttled condition when creation runs at full rate.
	ReasonNotThrottled = "NotThrottled"
	// ReasonSandboxStartFailed: sandbox Pods of a Kubernetes pool cannot start (an image
	// that cannot be pulled, a container that crashes, a Pod the cluster refuses).
	ReasonSandboxStartFailed = "SandboxStartFailed"
	// ReasonClassNotFound: the SandboxClass the pool names (or a default class) does
	// not exist.
	ReasonClassNotFound = "ClassNotFound"
	// ReasonClassForbidsNamespace: the class's namespaceSelector does not admit the
	// pool's namespace.
	ReasonClassForbidsNamespace = "ClassForbidsNamespace"
	// ReasonResourcesExceedClass: the pool asks for more than the class's maxResources.
	ReasonResourcesExceedClass = "ResourcesExceedClass"
)

// SandboxPoolStatus is the pool's live state.
type SandboxPoolStatus struct {
	// conditions are the pool's states: Ready, and Throttled for E2B pools.
	// +optional
	// +listType=map
	// +listMapKey=type
	// +kubebuilder:validation:MaxItems=8
	Conditions []metav1.Condition `json:"conditions,omitempty"`
	// ready sandboxes, warm and unclaimed.
	// +optional
	Ready int32 `json:"ready"`
	// busy sandboxes, running a request.
	// +optional
	Busy int32 `json:"busy"`
	// starting sandboxes, warming up.
	// +optional
	Starting int32 `json:"starting"`
	// total sandboxes that exist.
	// +optional
	Total int32 `json:"total"`
	// sandboxes lists the sandboxes (at most 100).
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=100
	Sandboxes []SandboxState `json:"sandboxes,omitempty"`
	// observedGeneration is the spec generation this status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// className is the SandboxClass the pool runs on (spec.className, or the default).
	// +optional
	// +kubebuilder:validation:MaxLength=253
	ClassName string `json:"className,omitempty"`
	// backend is the class's backend.
	// +optional
	Backend Backend `json:"backend,omitempty"`
}

// SandboxState is one sandbox's state.
type SandboxState struct {
	// id of the sandbox.
	// +kubebuilder:validation:MaxLength=253
	// +required
	ID string `json:"id"`
	// state is Starting, Ready, Busy or Failed.
	// +kubebuilder:validation:MaxLength=32
	// +required
	State string `json:"state"`
	// since when it is in this state.
	// +optional
	Since *metav1.Time `json:"since,omitempty"`
	// requestRef is the namespace/name of the request using it, when Busy.
	// +optional
	// +kubebuilder:validation:MaxLength=317
	RequestRef string `json:"requestRef,omitempty"`
}

// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=sbxpool,categories=vizops
// +kubebuilder:printcolumn:name="Class",type=string,JSONPath=`.status.className`
// +kubebuilder:printcolumn:name="Backend",type=string,JSONPath=`.status.backend`
// +kubebuilder:printcolumn:name="Ready",type=integer,JSONPath=`.status.ready`
// +kubebuilder:printcolumn:name="Busy",type=integer,JSONPath=`.status.busy`
// +kubebuilder:printcolumn:name="Max",type=integer,JSONPath=`.spec.maxSandboxes`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`

// SandboxPool is a warm pool of sandboxes that VisualizationRequests run their code
// in, and its live state. The Local backend (bubblewrap on the operator's node) is
// the embedded default; Kubernetes and E2B backends plug in behind the same contract.
type SandboxPool struct {
	metav1.TypeMeta `json:",inline"`
	// metadata is the standard object metadata.
	// +optional
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// spec describes the pool.
	// +optional
	Spec SandboxPoolSpec `json:"spec,omitempty"`
	// status is the pool's live state.
	// +optional
	Status SandboxPoolStatus `json:"status,omitempty"`
}

// +kubebuilder:object:root=true

// SandboxPoolList is a list of SandboxPools.
type SandboxPoolList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	// +required
	Items []SandboxPool `json:"items"`
}

func init() {
	SchemeBuilder.Register(&SandboxPool{}, &SandboxPoolList{})
}
