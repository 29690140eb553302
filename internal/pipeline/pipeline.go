// Package pipeline is a chart request's one path from prompt to verified chart:
// detection (keywords, refined by a model when one is configured), code generation
// (template or model, with repair and template fallback), execution through the
// caller's exec, the chart data read back from the figures, alt text and verification
// against the request. The controller and `kubectl viz render --local` both call Run,
// and both turn its one Result into status with internal/requeststatus.
//
// Detection runs once per request: the caller decides it (the controller at intake,
// the CLI before Run) and passes it in Request.Input.Detection; Run detects only when
// it is given none. The verdict is decided here, once, and recorded as it is.
package pipeline

import (
	"context"
	"fmt"
	"html"
	"path"
	"strings"

	"github.com/vizops/viz-operator/internal/chartdata"
	"github.com/vizops/viz-operator/internal/codegen"
	"github.com/vizops/viz-operator/internal/detect"
	"github.com/vizops/viz-operator/internal/sandbox"
)

// Exec runs code in a sandbox (codegen's: the caller adds data files, formats and
// timeout). Its error means the sandbox failed, not the code.
type Exec = codegen.Exec

// Request is one chart request: what the controller's executor and the CLI hand to Run.
type Request struct {
	// Input is the prompt, detection, data, formats and packages. Input.Detection is
	// the request's detection as decided; when it is the zero value Run computes it
	// from Input.Prompt.
	Input codegen.Input
	// Model is spec.model ("provider/model"); empty means templates only. Run takes
	// the generator built from it (codegen.NewGenerator); the controller's pipeline
	// builds it.
	Model string
	// Code is spec.code: run as it is, with no generation and no model. Its charts
	// are verified against the prompt when there is one.
	Code string
}

// Result is what Run produced: everything status records about the request's
// detection, code, execution, charts and verdict (see internal/requeststatus).
type Result struct {
	// Detection is the decision the code was generated from.
	Detection detect.Result
	// Refined is set when a model changed the keyword detection.
	Refined bool
	// Outcome is code generation and execution (Outcome.Result is the last run).
	Outcome codegen.Outcome
	// DataSource says where the chart's numbers came from.
	DataSource codegen.DataSource
	// Charts are what the figures plot, read back by the sandbox.
	Charts []chartdata.Chart
	// Verdict compares Charts with the request. Set only when the last run succeeded;
	// its zero value (no Reason) means nothing was verified.
	Verdict chartdata.Verdict
}

// Run detects, generates, executes and verifies one request. gen may be a Generator
// without a Client (templates only). Errors are codegen's (a terminal model
// configuration error, the sandbox failing, the context ending, an unfillable
// template); the Result is filled as far as it got. A prompt that is not a chart
// request returns with Outcome empty. With req.Code the code runs as it is (gen is not
// used) and its charts are verified against the prompt.
func Run(ctx context.Context, gen *codegen.Generator, req Request, exec Exec) (Result, error) {
	in := req.Input
	if in.Detection.Source == "" && in.Prompt != "" {
		in.Detection = detect.Detect(in.Prompt)
	}
	var res Result
	if req.Code != "" {
		return runUserCode(ctx, in, req.Code, exec)
	}
	if gen != nil && gen.Client != nil {
		// On any error the keyword decision stands.
		if d, err := detect.Refine(ctx, gen.Client, in.Prompt, in.Detection); err == nil && d.Source == detect.SourceModel {
			in.Detection, res.Refined = d, true
		}
	}
	res.Detection = in.Detection
	if !in.Detection.Visualization {
		return res, nil
	}
	if gen == nil || gen.Client == nil {
		// Templates only: a prompt whose numbers the templates cannot all place is
		// refused rather than drawn plausibly wrong.
		if msg := NotUnderstood(in); msg != "" {
			return res, &codegen.UnfaithfulError{Why: codegen.ReasonDataNotUnderstood, Message: msg}
		}
	}
	g := codegen.Generator{}
	if gen != nil {
		g = *gen
	}
	// A model's chart that runs but does not show the request's data goes back to
	// the model with the difference, like a traceback.
	g.Check = func(r *sandbox.Result) string {
		v := Account(in, chartdata.Verify(Expect(in, ""), r.Charts), r.Charts)
		if ReasonMismatch(v) != "" {
			return v.Message
		}
		return ""
	}
	// A model that fails falls back to a template only when the template can draw
	// the request's data.
	g.Unreadable = NotUnderstood
	out, err := g.Run(ctx, in, exec)
	res.Outcome = out
	res.DataSource = codegen.DataSourceOf(in, out.Code.Source)
	if out.Code.DataSource != "" {
		res.DataSource = out.Code.DataSource
	}
	if err != nil || out.Result == nil {
		return res, err
	}
	res.Outcome.Code.DataSource = res.DataSource
	res.Charts = out.Result.Charts
	if out.Result.Success {
		res.Verdict = Verify(in, out.Code, res.Charts)
		if res.DataSource == codegen.DataIllustrative && res.Verdict.Verified {
			res.Verdict.Message += "; the data is illustrative (the request gave none)"
		}
	}
	AnnotateFiles(out.Result.Files, res.Charts)
	return res, nil
}

// runUserCode runs spec.code as it is and verifies what it drew against the prompt
// (in.Detection): no generation, no model, no alt text embedded in its files.
func runUserCode(ctx context.Context, in codegen.Input, code string, exec Exec) (Result, error) {
	res := Result{Detection: in.Detection}
	res.Outcome = codegen.Outcome{Code: codegen.Code{Code: code, Source: codegen.SourceUser}, Path: codegen.PathUser}
	r, err := exec(ctx, code)
	res.Outcome.Result = r
	if err != nil || r == nil {
		return res, err
	}
	res.Charts = r.Charts
	if r.Success {
		res.Verdict = Verify(in, res.Outcome.Code, r.Charts)
	}
	return res, nil
}

// Verify compares the charts read back from code's figures with the request in: a
// template's chart must be the template's chart type; a model's or the user's the
// detected one (when the prompt names one).
func Verify(in codegen.Input, code codegen.Code, charts []chartdata.Chart) chartdata.Verdict {
	want := ""
	if code.Source == codegen.SourceTemplate && code.Template != "" {
		want = strings.TrimPrefix(code.Template, "plotly_")
	}
	return Account(in, chartdata.Verify(Expect(in, want), charts), charts)
}

// Account completes v with the independent check of the charts against the prompt's
// raw text (chartdata.Account): a number or label of the prompt that the chart does
// not account for, or a value it plots that the prompt does not give, makes the
// verdict DataNotAccounted (added to a mismatch already found). A chart that passes
// both is Verified even when detection found no data to compare.
func Account(in codegen.Input, v chartdata.Verdict, charts []chartdata.Chart) chartdata.Verdict {
	if len(charts) == 0 || in.Prompt == "" {
		return v
	}
	acc := chartdata.Account(in.Prompt, charts, chartdata.AccountOptions{Attached: len(in.CSV) > 0})
	if !acc.OK() {
		if ReasonMismatch(v) != "" {
			v.Message += "; and " + acc.Message()
			return v
		}
		return chartdata.Verdict{Reason: chartdata.ReasonDataNotAccounted, Message: acc.Message()}
	}
	data := len(acc.Scan.Data())
	switch {
	case v.Verified && data > 0:
		v.Message += fmt.Sprintf("; every number (%d) and label of the prompt is accounted for", data)
	case !v.Verified && v.Reason == chartdata.ReasonNotVerifiable && data > 0 && strings.Contains(v.Message, "nothing to compare"):
		v = chartdata.Verdict{Verified: true, Reason: chartdata.ReasonChartVerified,
			Message: fmt.Sprintf("the chart accounts for every number (%d) and label of the prompt", data)}
	}
	return v
}

// ReasonMismatch returns v.Reason when the verdict says the chart differs from the
// request (not when it could not be checked), else "".
func ReasonMismatch(v chartdata.Verdict) chartdata.Reason {
	if v.Verified || v.Reason == "" || strings.HasPrefix(v.Message, "no chart data") || strings.Contains(v.Message, "nothing to compare") {
		return ""
	}
	return v.Reason
}

// Expect is what the request asks the chart to show: the chart type (chartType, or
// the detected one when chartType is empty), the prompt's numbers and labels.
// Numbers of attached data are not listed: templates aggregate them (sums per
// category), so only the chart type is checked.
func Expect(in codegen.Input, chartType string) chartdata.Expectation {
	d := in.Detection
	if chartType == "" {
		chartType = string(d.ChartType)
	}
	e := chartdata.Expectation{Type: chartType}
	if len(d.Values) == 0 {
		return e
	}
	numericX := len(d.X) == len(d.Values) && len(d.Series) == 0
	switch detect.ChartType(chartType) {
	case detect.ChartLine, detect.ChartScatter, detect.ChartArea, detect.ChartStackedArea:
	default:
		numericX = false
	}
	for _, s := range d.AllSeries() {
		es := chartdata.ExpectedSeries{Name: s.Name, Y: s.Values}
		if numericX {
			es.X = d.X
		}
		e.Series = append(e.Series, es)
	}
	switch detect.ChartType(chartType) {
	case detect.ChartScatter, detect.ChartHistogram, detect.ChartHeatmap:
		// Scatter and histogram x are numbers; heatmap labels are not checked.
	case detect.ChartBox:
		if len(d.Series) > 1 {
			for _, s := range d.Series {
				e.Labels = append(e.Labels, s.Name)
			}
		}
	default:
		if !numericX && len(d.Labels) > 0 && len(d.Labels) == len(d.Values) {
			e.Labels = append(e.Labels, d.Labels...)
		}
		if len(d.Series) > 1 {
			for _, s := range d.Series {
				e.Labels = append(e.Labels, s.Name)
			}
		}
	}
	return e
}

// NotUnderstood checks the data a template would plot (detection's reading of the
// prompt) against the prompt's raw text, with the same independent rules that verify
// a chart (chartdata.Account). It returns why the templates cannot draw the request
// faithfully, naming the numbers and labels they would drop or invent, or "" when
// they account for everything. With attached data (spec.data) the prompt's text is
// not the chart's data, and nothing is checked here.
func NotUnderstood(in codegen.Input) string {
	if len(in.CSV) > 0 || in.Prompt == "" {
		return ""
	}
	acc := chartdata.Account(in.Prompt, []chartdata.Chart{readChart(in.Detection)}, chartdata.AccountOptions{})
	if acc.OK() {
		return ""
	}
	return "the templates could not read the request's data: " + acc.Message() +
		". No chart was drawn rather than a wrong one; set spec.model so a model writes the code, or write the data as \"label value, label value\" or in spec.data"
}

// readChart is the chart a template would draw from d, as chartdata would read it
// back: every series with its values, x values and categories, and the titles.
func readChart(d detect.Result) chartdata.Chart {
	c := chartdata.Chart{Type: chartdata.TypeBar, Title: d.Title, XLabel: d.XLabel, YLabel: d.YLabel}
	for _, s := range d.AllSeries() {
		cs := chartdata.Series{Name: s.Name, Type: chartdata.TypeBar, Y: s.Values}
		if len(d.X) > 0 {
			cs.X = d.X
		}
		cs.Labels = d.Labels
		c.Series = append(c.Series, cs)
	}
	return c
}

// FigureOf is the figure an artifact shows: its name without the extension
// ("figure_1.png" → "figure_1"), matching chartdata.Chart.Figure.
func FigureOf(artifact string) string {
	return strings.TrimSuffix(artifact, path.Ext(artifact))
}

// ChartsOf returns the charts read from the figure an artifact shows.
func ChartsOf(charts []chartdata.Chart, artifact string) []chartdata.Chart {
	fig := FigureOf(artifact)
	var out []chartdata.Chart
	for _, c := range charts {
		if c.Figure == fig {
			out = append(out, c)
		}
	}
	return out
}

// AnnotateFiles embeds each figure's alt text in its SVG (<title> and <desc>) and its
// plotly HTML (role="img" and aria-label on the plot's div). Other files are left as
// they are.
func AnnotateFiles(files []sandbox.Artifact, charts []chartdata.Chart) {
	for i, f := range files {
		cs := ChartsOf(charts, f.Name)
		if len(cs) == 0 {
			continue
		}
		alt := chartdata.AltText(cs)
		switch path.Ext(f.Name) {
		case ".svg":
			files[i].Data = embedSVG(f.Data, cs[0].Title, alt)
		case ".html":
			files[i].Data = embedHTML(f.Data, alt)
		}
	}
}

func embedSVG(data []byte, title, alt string) []byte {
	s := string(data)
	open := strings.Index(s, "<svg")
	if open < 0 {
		return data
	}
	end := strings.IndexByte(s[open:], '>')
	if end < 0 {
		return data
	}
	at := open + end + 1
	if title == "" {
		title = alt
	}
	ins := fmt.Sprintf("\n <title>%s</title>\n <desc>%s</desc>", html.EscapeString(title), html.EscapeString(alt))
	return []byte(s[:at] + ins + s[at:])
}

func embedHTML(data []byte, alt string) []byte {
	s := string(data)
	const marker = `class="plotly-graph-div"`
	i := strings.Index(s, marker)
	if i < 0 {
		return data
	}
	ins := fmt.Sprintf(`role="img" aria-label="%s" `, html.EscapeString(alt))
	return []byte(s[:i] + ins + s[i:])
}
