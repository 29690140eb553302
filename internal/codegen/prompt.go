package codegen

import (
	"fmt"
	"slices"
	"strings"

	"github.com/vizops/viz-operator/internal/detect"
)

// DefaultPackages are the libraries assumed when Input.Packages is empty.
var DefaultPackages = []string{"matplotlib", "numpy", "pandas", "seaborn", "plotly"}

// maxPromptRows bounds the rows SummarizeCSV inspects for a model prompt.
const maxPromptRows = 1000

func usesPlotly(in Input) bool { return slices.Contains(in.Formats, "html") }

func packagesOf(in Input) []string {
	if len(in.Packages) > 0 {
		return in.Packages
	}
	return DefaultPackages
}

// SystemPrompt is the scaffold every code-generation call starts from: what is
// installed, where the data is, what is forbidden, how to end, and the answer's shape.
func SystemPrompt(in Input) string {
	pk := packagesOf(in)
	var b strings.Builder
	b.WriteString("You write one short, complete Python 3 program that draws the chart the user asks for.\n\n")
	b.WriteString("Rules:\n")
	fmt.Fprintf(&b, "- Only these libraries are installed: %s. You may also use the standard modules math, statistics, datetime, collections, itertools, json, re, random, textwrap, typing, dataclasses and functools. Import nothing else.\n", strings.Join(pk, ", "))
	if len(in.CSV) > 0 {
		fmt.Fprintf(&b, "- The user's data is already loaded as the pandas DataFrame `df` (read from %q). Use `df`; do not load or invent other data.\n", DataFile)
	} else {
		b.WriteString("- There is no data file: plot exactly the numbers and labels given in the request (every one; never random or made-up numbers when the request gives some). Only when it gives none, use small illustrative data and end the title with \" (illustrative data)\".\n")
	}
	b.WriteString("- There is no network and no file access: do not open, read or write files (other than " + DataFile + "), do not use os, sys, subprocess, socket, urllib, requests, eval, exec or __import__.\n")
	if usesPlotly(in) && slices.Contains(pk, "plotly") {
		b.WriteString("- Use plotly (plotly.express as px or plotly.graph_objects as go) and end with `fig.show()`. The figure is captured as interactive HTML.\n")
	} else {
		b.WriteString("- Use matplotlib (seaborn is fine) and end with `plt.show()`. Do not call plt.savefig; figures are captured automatically.\n")
	}
	b.WriteString("- Give the chart a title and axis labels. Keep it under 60 lines. No input(), no infinite loops.\n\n")
	b.WriteString("Answer with a single fenced code block:\n```python\n# your program\n```\nand nothing else.\n")
	return b.String()
}

// UserPrompt is the request with what detection found and, when there is data, a
// summary of its columns.
func UserPrompt(in Input) string {
	var b strings.Builder
	fmt.Fprintf(&b, "Request: %s\n", strings.TrimSpace(in.Prompt))
	d := in.Detection
	if d.ChartType != "" && d.ChartType != detect.ChartAuto {
		fmt.Fprintf(&b, "Chart type: %s\n", chartWords(d.ChartType))
	}
	if d.Title != "" {
		fmt.Fprintf(&b, "Title: %s\n", d.Title)
	}
	if d.XLabel != "" || d.YLabel != "" {
		fmt.Fprintf(&b, "Axis labels: x %q, y %q\n", d.XLabel, d.YLabel)
	}
	switch {
	case len(d.Series) > 1:
		fmt.Fprintf(&b, "Series from the request (plot every one, with a legend): categories %q", d.Labels)
		for _, sr := range d.Series {
			fmt.Fprintf(&b, "; %q: %v", sr.Name, sr.Values)
		}
		if d.Stacked {
			b.WriteString(" (stacked)")
		}
		b.WriteString("\n")
	case len(d.X) == len(d.Values) && len(d.Values) > 0:
		fmt.Fprintf(&b, "Points from the request (plot exactly these): x %v, y %v\n", d.X, d.Values)
	case len(d.Values) > 0:
		fmt.Fprintf(&b, "Values from the request: labels %q, values %v\n", d.Labels, d.Values)
	}
	if len(in.CSV) > 0 {
		if sum, err := SummarizeCSV(in.CSV, maxPromptRows); err == nil {
			b.WriteString("\n")
			b.WriteString(sum.Prompt())
		} else {
			fmt.Fprintf(&b, "\nThe data is %s, preloaded as `df` (it could not be summarized: %v).\n", DataFile, err)
		}
	}
	return b.String()
}

func chartWords(c detect.ChartType) string {
	switch c {
	case detect.ChartBarH:
		return "horizontal bar chart"
	case detect.ChartStackedArea:
		return "stacked area chart"
	case detect.ChartHistogram:
		return "histogram"
	case detect.ChartHeatmap:
		return "heatmap"
	case detect.ChartBox:
		return "box plot"
	case detect.ChartPie:
		return "pie chart"
	case detect.ChartScatter:
		return "scatter plot"
	}
	return string(c) + " chart"
}

// maxTraceback bounds the traceback tail sent back for a repair.
const maxTraceback = 2000

// RepairPrompt asks the model to fix code that failed, with the tail of the error.
func RepairPrompt(in Input, code string, res Failure) string {
	var b strings.Builder
	b.WriteString(UserPrompt(in))
	b.WriteString("\nYour previous program failed when it ran.\n\nProgram:\n```python\n")
	b.WriteString(strings.TrimRight(code, "\n"))
	b.WriteString("\n```\n\nError:\n```\n")
	b.WriteString(res.Tail())
	b.WriteString("\n```\n\nFix the program. Answer with the complete corrected program in a single fenced python block.\n")
	return b.String()
}

// Failure is what went wrong in one execution, for repair prompts and status.
type Failure struct {
	Name, Value, Traceback, Stderr string
}

// Tail is the last maxTraceback bytes of the traceback (or stderr), ending with the
// exception line.
func (f Failure) Tail() string {
	t := strings.TrimSpace(f.Traceback)
	if t == "" {
		t = strings.TrimSpace(f.Stderr)
	}
	if t == "" {
		t = strings.TrimSpace(f.Name + ": " + f.Value)
	}
	if last := f.Name + ": " + f.Value; f.Name != "" && !strings.Contains(t, last) {
		t += "\n" + last
	}
	if len(t) > maxTraceback {
		t = "..." + t[len(t)-maxTraceback:]
	}
	return t
}

// Summary is "NameError: name 'x' is not defined" (bounded), for FallbackReason.
func (f Failure) Summary() string {
	s := f.Name
	if f.Value != "" {
		s += ": " + f.Value
	}
	if s == "" {
		lines := strings.Split(strings.TrimSpace(f.Tail()), "\n")
		s = lines[len(lines)-1]
	}
	if len(s) > 200 {
		s = s[:200] + "..."
	}
	return s
}
