package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// OutputFormat is an artifact format.
// +kubebuilder:validation:Enum=png;svg;html
type OutputFormat string

const (
	FormatPNG  OutputFormat = "png"
	FormatSVG  OutputFormat = "svg"
	FormatHTML OutputFormat = "html"
)

// ArtifactStorage says where artifacts are kept.
// +kubebuilder:validation:Enum=Auto;Status;ConfigMap
type ArtifactStorage string

const (
	// ArtifactStorageAuto keeps artifacts in status while they total at most 256 KiB,
	// else in a ConfigMap owned by the request.
	ArtifactStorageAuto ArtifactStorage = "Auto"
	// ArtifactStorageStatus always keeps artifacts in status (at most 256 KiB in total).
	ArtifactStorageStatus ArtifactStorage = "Status"
	// ArtifactStorageConfigMap always puts artifacts in a ConfigMap (at most 992 KiB:
	// a ConfigMap holds 1 MiB, less room for keys).
	ArtifactStorageConfigMap ArtifactStorage = "ConfigMap"
)

// VisualizationRequestSpec is what to draw. It cannot be changed after creation:
// create a new request instead.
// +kubebuilder:validation:XValidation:rule="has(self.prompt) || has(self.code)",message="set spec.prompt (a natural-language request) or spec.code (Python to run)"
// +kubebuilder:validation:MinProperties=1
type VisualizationRequestSpec struct {
	// prompt is the natural-language request, e.g. "plot VOE episodes per month".
	// Required unless code is set. 1 to 8192 characters.
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=8192
	Prompt string `json:"prompt,omitempty"`

	// model generates the code, as "provider/model" where provider is one the operator
	// is configured with, e.g. "ollama/qwen2.5-coder:7b", "openai/gpt-4o-mini" or
	// "anthropic/claude-sonnet-4-5"; "provider/" uses the provider's default model.
	// Empty means the built-in chart templates only, with no model call.
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?/[^\s]*$`
	Model string `json:"model,omitempty"`

	// code is Python to run as given. It skips detection and code generation; the
	// code still runs in the sandbox with all its limits. At most 64 KiB.
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=65536
	Code string `json:"code,omitempty"`

	// data is the dataset to chart. The code sees it as the file data.csv in its
	// working directory and as the pandas DataFrame `df`.
	// +optional
	Data *DataSource `json:"data,omitempty"`

	// sandboxPoolRef names the SandboxPool that runs the code.
	// +optional
	// +kubebuilder:default={name: "default"}
	SandboxPoolRef SandboxPoolReference `json:"sandboxPoolRef,omitempty"`

	// outputFormats are the artifact formats to produce. "html" makes an interactive
	// plotly chart; png and svg are static images.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=3
	// +kubebuilder:default={png}
	OutputFormats []OutputFormat `json:"outputFormats,omitempty"`

	// timeoutSeconds bounds one execution of the code, in seconds (1 to 600).
	// +optional
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=600
	// +kubebuilder:default=30
	TimeoutSeconds int32 `json:"timeoutSeconds,omitempty"`

	// maxAttempts is how many times a transient failure (a sandbox that dies, a
	// backend error) is tried before the request fails with BackoffLimitExceeded.
	// Errors in the code are repaired or fall back to a template instead. 1 to 10.
	// +optional
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=10
	// +kubebuilder:default=3
	MaxAttempts int32 `json:"maxAttempts,omitempty"`

	// artifactStorage says where artifacts are kept: Auto (in status up to 256 KiB in
	// total, else in a ConfigMap owned by this request, at most 992 KiB), Status, or
	// ConfigMap.
	// +optional
	// +kubebuilder:default=Auto
	ArtifactStorage ArtifactStorage `json:"artifactStorage,omitempty"`

	// ttlSecondsAfterFinished deletes the request (and its ConfigMap) this many
	// seconds after it finished. Unset keeps it until deleted.
	// +optional
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=31536000
	TTLSecondsAfterFinished *int32 `json:"ttlSecondsAfterFinished,omitempty"`
}

// DataSource is exactly one of an inline CSV or a key of a ConfigMap.
// +kubebuilder:validation:XValidation:rule="(has(self.csv) ? 1 : 0) + (has(self.configMapKeyRef) ? 1 : 0) == 1",message="set exactly one of data.csv and data.configMapKeyRef"
type DataSource struct {
	// csv is the data inline, as CSV with a header row. At most 256 KiB.
	// +optional
	// +kubebuilder:validation:MaxLength=262144
	CSV *string `json:"csv,omitempty"`

	// configMapKeyRef reads the CSV from a key of a ConfigMap in the request's
	// namespace (data or binaryData). The operator reads it with its own permissions,
	// as the kubelet mounts any ConfigMap of a Pod's namespace: whoever may create
	// VisualizationRequests in a namespace may chart, and so read, its ConfigMaps. An
	// operator started with --data-configmap-label-required reads only ConfigMaps
	// labelled viz.vizops.io/data: "true".
	// +optional
	ConfigMapKeyRef *ConfigMapKeyReference `json:"configMapKeyRef,omitempty"`
}

// ConfigMapKeyReference names one key of a ConfigMap in the same namespace.
type ConfigMapKeyReference struct {
	// name of the ConfigMap.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +required
	Name string `json:"name,omitempty"`
	// key within the ConfigMap.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +required
	Key string `json:"key,omitempty"`
}

// SandboxPoolReference names a SandboxPool.
type SandboxPoolReference struct {
	// name of the SandboxPool: a DNS-1123 subdomain (lower case letters, digits, '-'
	// and '.'), as every object name is.
	// +optional
	// +kubebuilder:default=default
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`
	Name string `json:"name,omitempty"`
	// namespace of the SandboxPool; empty means the request's own namespace. A
	// DNS-1123 label, as every namespace name is. The pool's namespaceSelector must
	// admit the request's namespace.
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	Namespace string `json:"namespace,omitempty"`
}

// Phase is where a request is in its life.
// +kubebuilder:validation:Enum=Pending;Queued;Running;Succeeded;Failed;Skipped
type Phase string

const (
	PhasePending   Phase = "Pending"
	PhaseQueued    Phase = "Queued"
	PhaseRunning   Phase = "Running"
	PhaseSucceeded Phase = "Succeeded"
	PhaseFailed    Phase = "Failed"
	PhaseSkipped   Phase = "Skipped"
)

// Finished reports whether the phase is terminal.
func (p Phase) Finished() bool {
	return p == PhaseSucceeded || p == PhaseFailed || p == PhaseSkipped
}

// KindVisualizationRequest is the kind's name, as owner references carry it.
const KindVisualizationRequest = "VisualizationRequest"

// Labels the operator reads or writes.
const (
	// LabelRequestUID marks an artifact ConfigMap with the UID of the request that owns
	// it. The operator's ConfigMap cache holds only ConfigMaps with this label.
	LabelRequestUID = "viz.vizops.io/request-uid"
	// LabelData marks a ConfigMap as readable through spec.data.configMapKeyRef when the
	// operator runs with --data-configmap-label-required; its value must be "true".
	LabelData = "viz.vizops.io/data"
)

// Condition types of a VisualizationRequest, one per step.
const (
	// ConditionDetected: the prompt was classified.
	ConditionDetected = "Detected"
	// ConditionCodeGenerated: code exists to run.
	ConditionCodeGenerated = "CodeGenerated"
	// ConditionAdmitted: a slot under the pool's and the operator's caps was granted.
	ConditionAdmitted = "Admitted"
	// ConditionExecuted: the code ran in a sandbox.
	ConditionExecuted = "Executed"
	// ConditionArtifactsStored: the artifacts are in status or a ConfigMap.
	ConditionArtifactsStored = "ArtifactsStored"
	// ConditionReady: the request finished successfully (summary condition).
	ConditionReady = "Ready"
	// ConditionVerified: the chart read back from the figure was compared with the
	// request (chart type, every number the prompt or spec.data gave, number of
	// series). False says what differs; Unknown says why it could not be checked. It
	// never fails a request on its own.
	ConditionVerified = "Verified"
)

// Reasons of the Verified condition.
const (
	// ReasonChartVerified: the chart plots what was asked for.
	ReasonChartVerified = "ChartVerified"
	// ReasonChartTypeMismatch: the figure is another kind of chart than the one asked for.
	ReasonChartTypeMismatch = "ChartTypeMismatch"
	// ReasonDataMismatch: a number or label the prompt or spec.data gave is not plotted.
	ReasonDataMismatch = "DataMismatch"
	// ReasonSeriesMismatch: the chart has another number of series than the data.
	ReasonSeriesMismatch = "SeriesMismatch"
	// ReasonNotVerifiable: there was nothing to compare (no chart data could be read
	// back, or the request gave no data and no chart type).
	ReasonNotVerifiable = "NotVerifiable"
)

// Reasons (CamelCase) used in conditions and Events.
const (
	ReasonNotAVisualization   = "NotAVisualization"
	ReasonPoolNotFound        = "PoolNotFound"
	ReasonPoolNotAllowed      = "PoolNotAllowed"
	ReasonProviderUnavailable = "ProviderUnavailable"
	ReasonDataNotFound        = "DataNotFound"
	ReasonInvalidData         = "InvalidData"
	ReasonBackoffLimit        = "BackoffLimitExceeded"
	ReasonTimeout             = "Timeout"
	ReasonCodeError           = "CodeError"
	ReasonArtifactTooLarge    = "ArtifactTooLarge"
	// ReasonOutputLimitExceeded: the job produced more output than the sandbox
	// collects (artifacts over the caps, a tree too large or deep to walk, or a
	// report too large to read); an oversized report is a failure, never a success.
	ReasonOutputLimitExceeded = "OutputLimitExceeded"
	ReasonSucceeded           = "Succeeded"
	// ReasonStatusTooLarge: the request's status (streams, inline artifacts, messages)
	// with its metadata and spec would exceed what the API server stores in one object.
	ReasonStatusTooLarge = "StatusTooLarge"
	// ReasonArtifactConfigMapConflict: a ConfigMap named like this request's artifact
	// ConfigMap exists and belongs to something else; it is never adopted or overwritten.
	ReasonArtifactConfigMapConflict = "ArtifactConfigMapConflict"
	// ReasonDataNotAllowed: the ConfigMap named in spec.data lacks the label the
	// operator requires (--data-configmap-label-required).
	ReasonDataNotAllowed = "DataNotAllowed"
	// ReasonSlotReleased: the Admitted condition of a finished request: its slot is free.
	ReasonSlotReleased = "SlotReleased"
	// ReasonRequestReplaced: a job of an earlier request of the same name was stopped.
	ReasonRequestReplaced = "RequestReplaced"
	// ReasonSandboxLost: the sandbox, or the operator that ran it, went away mid-run
	// (retried).
	ReasonSandboxLost = "SandboxLost"
	// ReasonSandboxFailed: the sandbox backend failed to run the code (retried).
	ReasonSandboxFailed = "SandboxFailed"
)

// Progress reasons: a request's conditions while it moves through its steps.
const (
	ReasonInProgress            = "InProgress"
	ReasonVisualizationDetected = "VisualizationDetected"
	ReasonWaitingForPool        = "WaitingForPool"
	ReasonPoolNotReady          = "PoolNotReady"
	ReasonQueued                = "Queued"
	ReasonAdmitted              = "Admitted"
	ReasonRunning               = "Running"
	ReasonRetrying              = "Retrying"
	ReasonExecuted              = "Executed"
	ReasonArtifactsStored       = "ArtifactsStored"
	// ReasonArtifactDropped is an Event reason: one artifact was left out (the others
	// were kept).
	ReasonArtifactDropped = "ArtifactDropped"
)

// VisualizationRequestStatus is what happened, written by the operator.
type VisualizationRequestStatus struct {
	// conditions are the steps' states: Detected, CodeGenerated, Admitted, Executed,
	// ArtifactsStored, Verified and Ready.
	// +optional
	// +listType=map
	// +listMapKey=type
	// +kubebuilder:validation:MaxItems=16
	Conditions []metav1.Condition `json:"conditions,omitempty"`

	// phase summarizes the request: Pending, Queued, Running, Succeeded, Failed or Skipped.
	// +optional
	Phase Phase `json:"phase,omitempty"`

	// detection is how the prompt was classified.
	// +optional
	Detection *DetectionStatus `json:"detection,omitempty"`

	// codeGeneration is how the code came about.
	// +optional
	CodeGeneration *CodeGenerationStatus `json:"codeGeneration,omitempty"`

	// execution is the last run of the code in a sandbox.
	// +optional
	Execution *ExecutionStatus `json:"execution,omitempty"`

	// attempts counts executions started, including retries after transient failures.
	// +optional
	Attempts int32 `json:"attempts,omitempty"`

	// nextRetryTime is when the next attempt may start after a transient failure.
	// +optional
	NextRetryTime *metav1.Time `json:"nextRetryTime,omitempty"`

	// queuePosition is the request's place in its pool's queue (1 is next) while Queued:
	// exact for places 1 to 10; further back it is rewritten only when the place has
	// halved or doubled since written, so it is within a factor of two of the true place.
	// +optional
	QueuePosition *int32 `json:"queuePosition,omitempty"`

	// artifacts are the charts and files produced.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=16
	Artifacts []ArtifactStatus `json:"artifacts,omitempty"`

	// startTime is when the request was first admitted to run.
	// +optional
	StartTime *metav1.Time `json:"startTime,omitempty"`

	// completionTime is when the request finished.
	// +optional
	CompletionTime *metav1.Time `json:"completionTime,omitempty"`

	// observedGeneration is the spec generation this status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
}

// DetectionStatus records the detection step.
type DetectionStatus struct {
	// visualization is true when the prompt asks for a chart.
	// +required
	Visualization bool `json:"visualization"`
	// tool is where the request should be routed: CodeInterpreter for charts, else
	// PubMedSearch, WebSearch or None.
	// +optional
	// +kubebuilder:validation:MaxLength=64
	Tool string `json:"tool,omitempty"`
	// chartType is the chart type inferred (bar, barh, line, scatter, histogram, pie,
	// box, heatmap, area, stackedarea or auto).
	// +optional
	// +kubebuilder:validation:MaxLength=64
	ChartType string `json:"chartType,omitempty"`
	// keywords are the words that decided it.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=10
	// +kubebuilder:validation:items:MaxLength=64
	Keywords []string `json:"keywords,omitempty"`
	// source is Keywords, Model or User.
	// +optional
	// +kubebuilder:validation:MaxLength=32
	Source string `json:"source,omitempty"`
}

// CodeGenerationSource is what produced the code.
// +kubebuilder:validation:Enum=Template;Model;User
type CodeGenerationSource string

// ChartDataSource is where a chart's numbers came from.
// +kubebuilder:validation:Enum=Prompt;Attached;Illustrative;Model
type ChartDataSource string

const (
	// DataSourcePrompt: the numbers were written in spec.prompt.
	DataSourcePrompt ChartDataSource = "Prompt"
	// DataSourceAttached: the numbers come from spec.data.
	DataSourceAttached ChartDataSource = "Attached"
	// DataSourceIllustrative: neither gave numbers; the chart shows made-up data and
	// says "illustrative data" on its face.
	DataSourceIllustrative ChartDataSource = "Illustrative"
	// DataSourceModel: the model's code chose the numbers (the request gave none).
	DataSourceModel ChartDataSource = "Model"
)

// CodeGenerationStatus records the code generation step.
type CodeGenerationStatus struct {
	// dataSource says where the chart's numbers came from: Prompt (written in
	// spec.prompt), Attached (spec.data), Illustrative (made up by a template, and
	// labelled so on the chart) or Model (chosen by the model's code).
	// +optional
	DataSource ChartDataSource `json:"dataSource,omitempty"`
	// source is Template, Model or User.
	// +optional
	Source CodeGenerationSource `json:"source,omitempty"`
	// path is how the final code came about: Template, Model, Repaired,
	// TemplateFallback or User.
	// +optional
	// +kubebuilder:validation:MaxLength=32
	Path string `json:"path,omitempty"`
	// template is the built-in template used, if any.
	// +optional
	// +kubebuilder:validation:MaxLength=64
	Template string `json:"template,omitempty"`
	// model is the "provider/model" used, if any.
	// +optional
	// +kubebuilder:validation:MaxLength=253
	Model string `json:"model,omitempty"`
	// attempts counts model calls (generation and repairs).
	// +optional
	Attempts int32 `json:"attempts,omitempty"`
	// fallbackReason says why the model's code was not used.
	// +optional
	// +kubebuilder:validation:MaxLength=1024
	FallbackReason string `json:"fallbackReason,omitempty"`
	// code is the Python that ran (truncated with a marker past 64 KiB).
	// +optional
	// +kubebuilder:validation:MaxLength=66000
	Code string `json:"code,omitempty"`
}

// ExecutionStatus records the last execution.
type ExecutionStatus struct {
	// backend is the sandbox backend that ran the code: Local, Kubernetes or E2B.
	// +optional
	// +kubebuilder:validation:MaxLength=32
	Backend string `json:"backend,omitempty"`
	// sandboxID names the sandbox that ran the code.
	// +optional
	// +kubebuilder:validation:MaxLength=253
	SandboxID string `json:"sandboxID,omitempty"`
	// startTime is when the execution started.
	// +optional
	StartTime *metav1.Time `json:"startTime,omitempty"`
	// completionTime is when it ended.
	// +optional
	CompletionTime *metav1.Time `json:"completionTime,omitempty"`
	// durationMillis is how long the code ran.
	// +optional
	DurationMillis int64 `json:"durationMillis,omitempty"`
	// stdout of the code, truncated with a visible marker.
	// +optional
	// +kubebuilder:validation:MaxLength=16384
	Stdout string `json:"stdout,omitempty"`
	// stderr of the code, truncated with a visible marker.
	// +optional
	// +kubebuilder:validation:MaxLength=16384
	Stderr string `json:"stderr,omitempty"`
	// text is the value of the code's last expression, like a notebook cell.
	// +optional
	// +kubebuilder:validation:MaxLength=4096
	Text string `json:"text,omitempty"`
	// error is the exception the code raised, if any.
	// +optional
	Error *ExecutionError `json:"error,omitempty"`
}

// ExecutionError is an exception raised by the code.
type ExecutionError struct {
	// name is the exception class, e.g. ZeroDivisionError, or Timeout.
	// +optional
	// +kubebuilder:validation:MaxLength=256
	Name string `json:"name,omitempty"`
	// value is the exception's message.
	// +optional
	// +kubebuilder:validation:MaxLength=4096
	Value string `json:"value,omitempty"`
	// traceback of the exception, truncated with a visible marker.
	// +optional
	// +kubebuilder:validation:MaxLength=16384
	Traceback string `json:"traceback,omitempty"`
}

// ArtifactStatus is one produced file.
// +kubebuilder:validation:XValidation:rule="!(has(self.data) && has(self.configMapKeyRef))",message="an artifact is either inline (data) or in a ConfigMap (configMapKeyRef), not both"
type ArtifactStatus struct {
	// name of the artifact, e.g. figure-1.png.
	// +kubebuilder:validation:MaxLength=253
	// +required
	Name string `json:"name"`
	// format is png, svg, html, json, csv or txt.
	// +kubebuilder:validation:MaxLength=16
	// +required
	Format string `json:"format"`
	// mimeType is the media type, e.g. image/png.
	// +kubebuilder:validation:MaxLength=128
	// +required
	MIMEType string `json:"mimeType"`
	// sizeBytes is the artifact's size.
	// +required
	SizeBytes int64 `json:"sizeBytes"`
	// sha256 of the artifact's bytes, hex.
	// +kubebuilder:validation:MaxLength=64
	// +required
	SHA256 string `json:"sha256"`
	// note says how to display it safely, e.g. HTML only in a sandboxed iframe.
	// +optional
	// +kubebuilder:validation:MaxLength=256
	Note string `json:"note,omitempty"`
	// data is the artifact inline (base64 in JSON and YAML).
	// +optional
	Data []byte `json:"data,omitempty"`
	// configMapKeyRef is where the artifact is when it is not inline.
	// +optional
	ConfigMapKeyRef *ConfigMapKeyReference `json:"configMapKeyRef,omitempty"`
	// chart is the data the figure plots, read back from it after the code ran (the
	// chart type, title, axis labels and each series' values). Set on the first
	// artifact of each figure (figure_1.png, else figure_1.svg; plotly_1.html); a
	// request's chart data is kept under 64 KiB by keeping fewer points per series.
	// +optional
	Chart *ChartData `json:"chart,omitempty"`
	// altText describes the chart in one or two sentences, written from chart. It is
	// also embedded in the SVG (<title>, <desc>) and the plotly HTML (aria-label).
	// +optional
	// +kubebuilder:validation:MaxLength=512
	AltText string `json:"altText,omitempty"`
}

// ChartData is what a figure plots, read back from the figure's artists (matplotlib)
// or traces (plotly). Numbers are decimal strings ("520", "2.5"), as Kubernetes APIs
// avoid floats. Series past 12 and points past 300 per series are left out and counted.
type ChartData struct {
	// type is the chart type read from the figure: bar, barh, line, scatter, pie, box,
	// histogram, heatmap, area or unknown.
	// +kubebuilder:validation:MaxLength=16
	// +required
	Type string `json:"type"`
	// library is matplotlib or plotly.
	// +optional
	// +kubebuilder:validation:MaxLength=16
	Library string `json:"library,omitempty"`
	// title of the chart.
	// +optional
	// +kubebuilder:validation:MaxLength=200
	Title string `json:"title,omitempty"`
	// xLabel is the x axis label.
	// +optional
	// +kubebuilder:validation:MaxLength=64
	XLabel string `json:"xLabel,omitempty"`
	// yLabel is the y axis label.
	// +optional
	// +kubebuilder:validation:MaxLength=64
	YLabel string `json:"yLabel,omitempty"`
	// xUnit is the unit in parentheses at the end of the x label ("Dose (mg/kg)": mg/kg).
	// +optional
	// +kubebuilder:validation:MaxLength=64
	XUnit string `json:"xUnit,omitempty"`
	// yUnit is the unit in parentheses at the end of the y label.
	// +optional
	// +kubebuilder:validation:MaxLength=64
	YUnit string `json:"yUnit,omitempty"`
	// series are the chart's sets of marks (at most 12).
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=12
	Series []ChartSeries `json:"series,omitempty"`
	// omittedSeries counts series left out past 12 (a visible truncation marker).
	// +optional
	OmittedSeries int32 `json:"omittedSeries,omitempty"`
}

// ChartSeries is one set of marks: one bar container, line, scatter, pie, box plot or
// plotly trace.
type ChartSeries struct {
	// name is the series' legend name, if any.
	// +optional
	// +kubebuilder:validation:MaxLength=64
	Name string `json:"name,omitempty"`
	// type is the series' kind of mark (a scatter's trend line is a line).
	// +kubebuilder:validation:MaxLength=16
	// +required
	Type string `json:"type"`
	// labels are the category of each point (bar and pie labels, text x values).
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=300
	// +kubebuilder:validation:items:MaxLength=64
	Labels []string `json:"labels,omitempty"`
	// x are the numeric x values of the points (line, scatter, histogram bin starts).
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=300
	// +kubebuilder:validation:items:MaxLength=32
	X []string `json:"x,omitempty"`
	// y are the values: bar heights, line and scatter y, pie values (shares in percent
	// for matplotlib, which keeps only the angles), histogram counts.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=300
	// +kubebuilder:validation:items:MaxLength=32
	Y []string `json:"y,omitempty"`
	// boxes are a box plot's statistics, one per box.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=300
	Boxes []ChartBox `json:"boxes,omitempty"`
	// omitted counts points left out past 300 (a visible truncation marker).
	// +optional
	Omitted int32 `json:"omitted,omitempty"`
}

// ChartBox is one box of a box plot, numbers as decimal strings.
type ChartBox struct {
	// label of the box.
	// +optional
	// +kubebuilder:validation:MaxLength=64
	Label string `json:"label,omitempty"`
	// min is the lower whisker's end.
	// +kubebuilder:validation:MaxLength=32
	// +required
	Min string `json:"min"`
	// q1 is the first quartile (the box's bottom).
	// +kubebuilder:validation:MaxLength=32
	// +required
	Q1 string `json:"q1"`
	// median of the box.
	// +kubebuilder:validation:MaxLength=32
	// +required
	Median string `json:"median"`
	// q3 is the third quartile (the box's top).
	// +kubebuilder:validation:MaxLength=32
	// +required
	Q3 string `json:"q3"`
	// max is the upper whisker's end.
	// +kubebuilder:validation:MaxLength=32
	// +required
	Max string `json:"max"`
}

// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=vizreq;vr,categories=vizops
// +kubebuilder:printcolumn:name="Phase",type=string,JSONPath=`.status.phase`
// +kubebuilder:printcolumn:name="Chart",type=string,JSONPath=`.status.detection.chartType`
// +kubebuilder:printcolumn:name="Model",type=string,JSONPath=`.spec.model`
// +kubebuilder:printcolumn:name="Pool",type=string,JSONPath=`.spec.sandboxPoolRef.name`
// +kubebuilder:printcolumn:name="Attempts",type=integer,JSONPath=`.status.attempts`,priority=1
// +kubebuilder:printcolumn:name="Backend",type=string,JSONPath=`.status.execution.backend`,priority=1
// +kubebuilder:printcolumn:name="Reason",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].reason`,priority=1
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`

// VisualizationRequest turns a natural-language request (or given Python) into a
// chart. The operator detects whether the prompt asks for a chart, generates code
// from a template or a model, runs it in a sandbox of a SandboxPool under the pool's
// and the operator's concurrency caps, and records the artifacts in status or in a
// ConfigMap it owns.
// +kubebuilder:validation:XValidation:rule="self.spec == oldSelf.spec",message="spec is immutable: delete and re-create the VisualizationRequest to change it"
type VisualizationRequest struct {
	metav1.TypeMeta `json:",inline"`
	// metadata is the standard object metadata.
	// +optional
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// spec is what to draw.
	// +required
	Spec VisualizationRequestSpec `json:"spec"`
	// status is what happened.
	// +optional
	Status VisualizationRequestStatus `json:"status,omitempty"`
}

// +kubebuilder:object:root=true

// VisualizationRequestList is a list of VisualizationRequests.
type VisualizationRequestList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	// +required
	Items []VisualizationRequest `json:"items"`
}

func init() {
	SchemeBuilder.Register(&VisualizationRequest{}, &VisualizationRequestList{})
}

// Reasons of chart fidelity: the prompt's own text, read again apart from detection.
const (
	// ReasonDataNotAccounted (Verified=False): the prompt has a number or label the
	// chart neither plots nor shows, or the chart plots numbers the prompt does not give.
	ReasonDataNotAccounted = "DataNotAccounted"
	// ReasonDataNotUnderstood (Failed): the templates could not read every number or
	// label of the prompt, so no chart was drawn; spec.model would handle it.
	ReasonDataNotUnderstood = "DataNotUnderstood"
)
