package v1alpha1

// Limits of a VisualizationRequest's spec, for clients that check input before they
// create a request (kubectl viz). The validation markers on the fields enforce them in
// the API server; markers cannot name constants, so TestLimitsMatchCRD checks that the
// generated CRD and these agree.
const (
	// MaxPromptLength bounds spec.prompt, in characters.
	MaxPromptLength = 8192
	// MaxCodeLength bounds spec.code, in characters (64 KiB).
	MaxCodeLength = 65536
	// MaxInlineCSVLength bounds spec.data.csv, in characters (256 KiB).
	MaxInlineCSVLength = 262144
	// MinTimeoutSeconds and MaxTimeoutSeconds bound spec.timeoutSeconds.
	MinTimeoutSeconds = 1
	MaxTimeoutSeconds = 600
	// MaxOutputFormats bounds spec.outputFormats.
	MaxOutputFormats = 3
)
