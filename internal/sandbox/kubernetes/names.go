package kubernetes

// The names this backend writes on the objects it makes. They are the API's own
// (api/v1alpha1's LabelSandboxPoolUID, LabelSandboxState, ...), spelt again here so that
// this package takes no API type; internal/backends/kubernetes's tests check that each
// still equals the API's constant.
const (
	// LabelPoolUID carries the UID of the SandboxPool an object belongs to: every
	// object a pool makes has it, and the manager caches only objects so labelled.
	LabelPoolUID = "viz.vizops.io/sandbox-pool-uid"
	// LabelState is a Pod's state: StateWarm or StateBusy.
	LabelState = "viz.vizops.io/sandbox-state"
	// LabelTemplateHash is the TemplateHash a Pod was made from.
	LabelTemplateHash = "viz.vizops.io/template-hash"
	// AnnotationClaim is a busy Pod's claim (JSON of Claim).
	AnnotationClaim = "viz.vizops.io/claim"
	// AnnotationExecutions counts the jobs a Pod has run.
	AnnotationExecutions = "viz.vizops.io/executions"
	// AnnotationTokenNonce is the random nonce a Pod's token is derived from.
	AnnotationTokenNonce = "viz.vizops.io/token-nonce"
	// AnnotationServedNamespace is the namespace of the first request a Pod served.
	AnnotationServedNamespace = "viz.vizops.io/served-namespace"

	StateWarm = "warm"
	StateBusy = "busy"

	// PoolAPIVersion and PoolKind name the SandboxPool in owner references.
	PoolAPIVersion = "viz.vizops.io/v1alpha1"
	PoolKind       = "SandboxPool"
)
