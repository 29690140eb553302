// Package detect decides whether a prompt asks for a visualization, which chart type,
// and which tool should serve it (the seed's keyword + structured-model detection).
package detect

// Tool is where a request should be routed (the seed's BAML tool classes).
type Tool string

const (
	ToolCodeInterpreter Tool = "CodeInterpreter"
	ToolPubMedSearch    Tool = "PubMedSearch"
	ToolWebSearch       Tool = "WebSearch"
	ToolNone            Tool = "None"
)

// ChartType is the kind of chart asked for.
type ChartType string

const (
	ChartAuto        ChartType = "auto"
	ChartBar         ChartType = "bar"
	ChartBarH        ChartType = "barh"
	ChartLine        ChartType = "line"
	ChartScatter     ChartType = "scatter"
	ChartHistogram   ChartType = "histogram"
	ChartPie         ChartType = "pie"
	ChartBox         ChartType = "box"
	ChartHeatmap     ChartType = "heatmap"
	ChartArea        ChartType = "area"
	ChartStackedArea ChartType = "stackedarea"
)

// Source says what made the decision.
type Source string

const (
	SourceKeywords Source = "Keywords"
	SourceModel    Source = "Model"
	SourceUser     Source = "User" // spec.code given: no detection ran
)

// Result is the detection outcome, recorded in a request's status.detection.
type Result struct {
	Visualization bool
	Tool          Tool
	ChartType     ChartType
	// Keywords are the words that triggered the decision (bounded, for status).
	Keywords []string
	Source   Source
	// Title, XLabel, YLabel are taken from the prompt for templates (may be empty).
	Title, XLabel, YLabel string
	// Series is data written in the prompt ("Hydroxyurea (85%), Voxelotor (70%)",
	// "3, 2, 4, 1"): labels and values for templates. Empty when none was found.
	Labels []string
	Values []float64
	// Unit is "%" when the prompt's values were written as percentages, else empty.
	Unit string
}
