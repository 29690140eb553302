// Package codegen turns a detected request (and optional data) into Python: from
// built-in templates, or from a model with validation and repair, falling back to the
// template of the detected chart type.
package codegen

import "github.com/vizops/viz-operator/internal/detect"

// Source is what produced the code (status.codeGeneration.source).
type Source string

const (
	SourceTemplate Source = "Template"
	SourceModel    Source = "Model"
	SourceUser     Source = "User"
)

// Path is how the final code came about, for status and the codegen-path metric.
type Path string

const (
	PathTemplate         Path = "Template"         // no model configured
	PathModel            Path = "Model"            // the model's first answer ran
	PathRepaired         Path = "Repaired"         // the model fixed its code after an error
	PathTemplateFallback Path = "TemplateFallback" // the model failed; the template ran
	PathUser             Path = "User"             // spec.code
)

// DataFile is the name the request's data has inside the sandbox's working directory;
// the runner also preloads it as the pandas DataFrame `df`.
const DataFile = "data.csv"

// Input is what code generation works from.
type Input struct {
	Prompt    string
	Detection detect.Result
	// CSV is the request's data (may be nil).
	CSV []byte
	// Formats are the wanted outputs: "png", "svg", "html" (html selects plotly).
	Formats []string
	// Packages are the libraries the pool offers (for the model prompt and validation).
	Packages []string
}

// Code is generated code and where it came from.
type Code struct {
	Code     string
	Source   Source
	Template string // template name when Source is Template
	Model    string // "provider/model" when Source is Model
	// DataSource is where the chart's numbers come from (set by FromTemplate).
	DataSource DataSource
}

// DataSource is where a chart's numbers come from (status.codeGeneration.dataSource).
type DataSource string

const (
	DataPrompt       DataSource = "Prompt"       // written in the prompt
	DataAttached     DataSource = "Attached"     // spec.data
	DataIllustrative DataSource = "Illustrative" // made up by a template, said so on the chart
	DataModel        DataSource = "Model"        // chosen by the model's code
)
