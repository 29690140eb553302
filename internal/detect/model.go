package detect

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"unicode"

	"github.com/vizops/viz-operator/internal/models"
)

// refineSystem asks for the seed's structured tool detection (BAML's tool classes) as
// a JSON object.
const refineSystem = `You route user requests in a medical research assistant. Decide whether the request asks for a data visualization (a chart drawn by running Python), and if so which chart type.

Answer with one JSON object and nothing else:
{"visualization": true|false,
 "tool": "CodeInterpreter" | "PubMedSearch" | "WebSearch" | "None",
 "chartType": "bar" | "barh" | "line" | "scatter" | "histogram" | "pie" | "box" | "heatmap" | "area" | "stackedarea" | "auto",
 "title": "a short chart title, or empty"}

CodeInterpreter: the user wants a chart, graph or plot drawn. PubMedSearch: a question about studies, trials or medical evidence. WebSearch: current events, prices, news. None: anything else.
Use "auto" when the chart type is not clear. Questions about how to read or what a chart means are not visualizations.`

// Refine asks a model to confirm or correct the keyword decision kw. The model's
// answer is parsed leniently (fenced JSON, prose around it, any letter case, synonyms
// such as "horizontal bar" or "E2B_CODE_INTERPRETER"). On success the result has
// Source Model; keywords, data and labels found in the prompt are kept. On any failure
// (the model's error, an unusable answer) kw is returned unchanged with the error: the
// keywords decide. A nil client returns kw and no error.
func Refine(ctx context.Context, client models.Client, prompt string, kw Result) (Result, error) {
	if client == nil {
		return kw, nil
	}
	if len(prompt) > maxPromptBytes {
		prompt = prompt[:maxPromptBytes]
	}
	user := fmt.Sprintf("Request: %s\n\nKeyword detection said: visualization=%v, tool=%s, chartType=%s.", prompt, kw.Visualization, kw.Tool, kw.ChartType)
	answer, err := client.Complete(ctx, models.Request{System: refineSystem, User: user, MaxTokens: 300, JSON: true})
	if err != nil {
		return kw, err
	}
	d, err := parseDecision(answer)
	if err != nil {
		return kw, fmt.Errorf("the model's detection answer could not be used: %w", err)
	}
	return d.apply(prompt, kw), nil
}

// decision is the model's answer, normalized.
type decision struct {
	visualization *bool
	tool          Tool
	chart         ChartType
	title         string
}

// parseDecision finds the JSON object in answer and normalizes its fields.
func parseDecision(answer string) (decision, error) {
	obj, err := firstJSONObject(answer)
	if err != nil {
		return decision{}, err
	}
	var raw map[string]any
	if err := json.Unmarshal([]byte(obj), &raw); err != nil {
		return decision{}, fmt.Errorf("the JSON object is not valid: %w", err)
	}
	fields := map[string]any{}
	for k, v := range raw {
		fields[squash(k)] = v
	}
	var d decision
	if v, ok := fields["visualization"]; ok {
		b, ok := truth(v)
		if !ok {
			return decision{}, fmt.Errorf("visualization is %v, not true or false", v)
		}
		d.visualization = &b
	} else if v, ok := fields["isvisualization"]; ok {
		if b, ok := truth(v); ok {
			d.visualization = &b
		}
	}
	if v, ok := fields["tool"].(string); ok {
		t, ok := toolOf(v)
		if !ok {
			return decision{}, fmt.Errorf("tool %q is not one of CodeInterpreter, PubMedSearch, WebSearch, None", v)
		}
		d.tool = t
	}
	if d.visualization == nil && d.tool == "" {
		return decision{}, errors.New("the answer has neither visualization nor tool")
	}
	for _, k := range []string{"charttype", "chart", "type"} {
		if v, ok := fields[k].(string); ok {
			c, ok := chartOf(v)
			if !ok {
				return decision{}, fmt.Errorf("chartType %q is not a known chart type", v)
			}
			d.chart = c
			break
		}
	}
	if v, ok := fields["title"].(string); ok {
		d.title = oneLine(v, 120)
	}
	return d, nil
}

func (d decision) apply(prompt string, kw Result) Result {
	res := kw
	res.Source = SourceModel
	switch {
	case d.tool != "":
		res.Tool = d.tool
		res.Visualization = d.tool == ToolCodeInterpreter
	case *d.visualization:
		res.Visualization, res.Tool = true, ToolCodeInterpreter
	default:
		res.Visualization = false
		if res.Tool == ToolCodeInterpreter {
			res.Tool = ToolNone
		}
	}
	if !res.Visualization {
		res.ChartType = ChartAuto
		return res
	}
	if d.chart != "" && d.chart != ChartAuto {
		res.ChartType = d.chart
	} else if res.ChartType == "" {
		res.ChartType = ChartAuto
	}
	if !kw.Visualization {
		// Keywords said no, so they extracted no data or labels: do it now.
		data := extractData(prompt)
		res.Labels, res.Values, res.Unit = data.Labels, data.Values, data.Unit
		res.Title, res.XLabel, res.YLabel = labels(prompt, res, data.Start)
	}
	if res.Title == "" {
		res.Title = d.title
	}
	return res
}

// firstJSONObject returns the first balanced {...} in s, skipping strings.
func firstJSONObject(s string) (string, error) {
	start := strings.IndexByte(s, '{')
	if start < 0 {
		return "", errors.New("the answer holds no JSON object")
	}
	depth, inStr, esc := 0, false, false
	for i := start; i < len(s); i++ {
		c := s[i]
		switch {
		case esc:
			esc = false
		case inStr && c == '\\':
			esc = true
		case c == '"':
			inStr = !inStr
		case inStr:
		case c == '{':
			depth++
		case c == '}':
			depth--
			if depth == 0 {
				return s[start : i+1], nil
			}
		}
	}
	return "", errors.New("the JSON object in the answer is never closed")
}

// squash lower-cases and drops everything but letters and digits: "Chart_Type",
// "chart-type" and "chartType" are all "charttype".
func squash(s string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(s) {
		if unicode.IsLetter(r) || unicode.IsDigit(r) {
			b.WriteRune(r)
		}
	}
	return b.String()
}

func truth(v any) (bool, bool) {
	switch t := v.(type) {
	case bool:
		return t, true
	case string:
		switch squash(t) {
		case "true", "yes", "y", "1":
			return true, true
		case "false", "no", "n", "0":
			return false, true
		}
	case float64:
		return t != 0, true
	}
	return false, false
}

func toolOf(s string) (Tool, bool) {
	switch squash(s) {
	case "codeinterpreter", "e2bcodeinterpreter", "e2b", "python", "code", "chart", "visualization":
		return ToolCodeInterpreter, true
	case "pubmedsearch", "pubmed", "literature", "literaturesearch":
		return ToolPubMedSearch, true
	case "websearch", "web", "search", "perplexitysearch", "perplexity", "exasearch", "exa":
		return ToolWebSearch, true
	case "none", "", "null", "nothing", "notool":
		return ToolNone, true
	}
	return "", false
}

func chartOf(s string) (ChartType, bool) {
	k := strings.TrimSuffix(strings.TrimSuffix(squash(s), "chart"), "plot")
	switch k {
	case "auto", "", "none", "null", "unknown", "any", "default":
		return ChartAuto, true
	case "bar", "column", "vbar", "verticalbar", "groupedbar":
		return ChartBar, true
	case "barh", "horizontalbar", "hbar":
		return ChartBarH, true
	case "line", "timeseries", "trend", "linegraph":
		return ChartLine, true
	case "scatter", "correlation", "bubble":
		return ChartScatter, true
	case "histogram", "hist", "distribution":
		return ChartHistogram, true
	case "pie", "donut", "doughnut":
		return ChartPie, true
	case "box", "boxandwhisker", "boxwhisker", "violin":
		return ChartBox, true
	case "heatmap", "heat", "correlationmatrix":
		return ChartHeatmap, true
	case "area":
		return ChartArea, true
	case "stackedarea", "stackarea":
		return ChartStackedArea, true
	}
	return "", false
}

func oneLine(s string, limit int) string {
	s = strings.Join(strings.Fields(s), " ")
	if r := []rune(s); len(r) > limit {
		s = string(r[:limit])
	}
	return s
}
