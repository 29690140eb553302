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
	// X are numeric x values the prompt gave, one per value: x–y points ("(22, 118)")
	// or x values before the y values ("at days 1, 3, 5: 520, 480, 430").
	X []float64
	// Series are several named series ("2022 (4, 6, 5) and 2023 (3, 5, 2)"): grouped
	// or stacked bars, lines, box groups. Labels are then their shared categories and
	// Values is Series[0]'s. Empty for a single series.
	Series []Series
	// Stacked is set when the prompt asks for stacked bars.
	Stacked bool
}

// AllSeries is the prompt's data as named series: Series when there are several,
// else one unnamed series of Values (nil without data).
func (r Result) AllSeries() []Series {
	if len(r.Series) > 0 {
		return r.Series
	}
	if len(r.Values) > 0 {
		return []Series{{Values: r.Values}}
	}
	return nil
}
