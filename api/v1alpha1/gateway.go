package v1alpha1

// Names the E2B-compatible gateway (cmd/gateway, docs/gateway.md) puts on the objects it
// reads and makes. A sandbox of the gateway is one Pod; everything the gateway knows of
// it is on the Pod, so a restarted gateway rebuilds its state from Pods alone.
const (
	// LabelGatewayAPIKey marks a Secret (value "true") whose data key
	// GatewayAPIKeyDataKey is an API key of the gateway; the Secret's namespace is where
	// that key's sandboxes run.
	LabelGatewayAPIKey = "viz.vizops.io/gateway-api-key"
	// GatewayAPIKeyDataKey is the data key of the API key in such a Secret.
	GatewayAPIKeyDataKey = "apiKey"
	// AnnotationGatewayMaxSandboxes on an API key Secret caps how many sandboxes the key
	// may have at once (over it, creating one is a 429).
	AnnotationGatewayMaxSandboxes = "viz.vizops.io/gateway-max-sandboxes"

	// LabelGatewaySandbox is the sandbox ID on its Pod (the Pod's name is the ID too).
	LabelGatewaySandbox = "viz.vizops.io/gateway-sandbox"
	// LabelGatewayKey is the name of the API key Secret that created the sandbox.
	LabelGatewayKey = "viz.vizops.io/gateway-key"
	// AnnotationGatewayEndTime is when the sandbox ends (RFC 3339); the gateway's reaper
	// deletes the Pod after it.
	AnnotationGatewayEndTime = "viz.vizops.io/gateway-end-time"
	// AnnotationGatewayTemplate is the template ID the sandbox was created from.
	AnnotationGatewayTemplate = "viz.vizops.io/gateway-template"
	// AnnotationGatewayClass is the SandboxClass the template ID selected.
	AnnotationGatewayClass = "viz.vizops.io/gateway-class"
	// AnnotationGatewayMetadata is the sandbox's metadata, a JSON object of strings.
	AnnotationGatewayMetadata = "viz.vizops.io/gateway-metadata"
)
