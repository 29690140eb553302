package codegen

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vizops/viz-operator/internal/detect"
)

// These helpers run generated code with Debian's python3 and matplotlib's Agg
// backend in a temp dir (one forked process per script, see execPython), standing in for the sandbox (built elsewhere). They do not
// cover the sandbox's limits, its preloading of df (templates load data.csv
// themselves when df is missing) or its figure capture: the probe reads the figures
// that plt.show() left open and the plotly figures fig.show() was given.

const (
	python        = "/usr/bin/python3"
	pythonTimeout = 90 * time.Second
)

type barInfo struct {
	N          int       `json:"n"`
	Horizontal bool      `json:"horizontal"`
	Contiguous bool      `json:"contiguous"`
	Heights    []float64 `json:"heights"`
}

type polyInfo struct {
	Vertices   int  `json:"vertices"`
	BottomZero bool `json:"bottom_zero"`
}

// axesInfo is what probe.py reports for one matplotlib Axes.
type axesInfo struct {
	Title       string      `json:"title"`
	XLabel      string      `json:"xlabel"`
	YLabel      string      `json:"ylabel"`
	Bars        []barInfo   `json:"bars"`
	Rects       int         `json:"rects"`
	Wedges      int         `json:"wedges"`
	XTickLabels []string    `json:"xticklabels"`
	Lines       []int       `json:"lines"`
	LineYs      [][]float64 `json:"line_ys"`
	BoxRects    int         `json:"box_rects"`
	Scatter     []int       `json:"scatter"`
	QuadMesh    int         `json:"quadmesh"`
	Images      int         `json:"images"`
	Polys       []polyInfo  `json:"polys"`
}

type plotlyTrace struct {
	Type        string  `json:"type"`
	Orientation *string `json:"orientation"`
	Mode        *string `json:"mode"`
	Fill        *string `json:"fill"`
	StackGroup  *string `json:"stackgroup"`
	N           int     `json:"n"`
}

type plotlyInfo struct {
	IsFigure bool          `json:"is_figure"`
	Title    *string       `json:"title"`
	Traces   []plotlyTrace `json:"traces"`
}

type probeResult struct {
	Figures [][]axesInfo `json:"figures"`
	Plotly  []plotlyInfo `json:"plotly"`
}

// runPython runs code (with csv as data.csv when given) between the test prelude and
// probe, and returns what the probe saw. Failing code fails the test.
func runPython(t *testing.T, code string, csv []byte) probeResult {
	t.Helper()
	prelude, err := os.ReadFile("testdata/prelude.py")
	if err != nil {
		t.Fatal(err)
	}
	probe, err := os.ReadFile("testdata/probe.py")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	script := string(prelude) + "\n" + code + "\n" + string(probe)
	if err := os.WriteFile(filepath.Join(dir, "chart.py"), []byte(script), 0o600); err != nil {
		t.Fatal(err)
	}
	if csv != nil {
		if err := os.WriteFile(filepath.Join(dir, DataFile), csv, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	stdout, stderr, err := execPython(t, dir, "chart.py")
	if err != nil {
		t.Fatalf("python failed: %v\nstderr:\n%s\ncode:\n%s", err, stderr, numbered(code))
	}
	i := strings.LastIndex(stdout, "PROBE:")
	if i < 0 {
		t.Fatalf("no probe output; stdout:\n%s\nstderr:\n%s", stdout, stderr)
	}
	var res probeResult
	if err := json.Unmarshal([]byte(strings.TrimSpace(stdout[i+len("PROBE:"):])), &res); err != nil {
		t.Fatalf("probe output: %v\n%s", err, stdout[i:])
	}
	return res
}

// execPython runs script in dir in a child of a zygote process (testdata/zygote.py)
// that imported matplotlib, pandas, seaborn and plotly once: a fresh process per
// script, without paying seconds of imports for each of the many scripts.
func execPython(t *testing.T, dir, script string) (stdout, stderr string, err error) {
	t.Helper()
	z := <-zygotes
	defer func() { zygotes <- z }()
	if z.err == nil && z.cmd == nil {
		z.start()
	}
	if z.err != nil {
		return "", "", z.err
	}
	req, _ := json.Marshal(map[string]any{"dir": dir, "script": script, "timeout": pythonTimeout.Seconds()})
	if _, err := z.stdin.Write(append(req, '\n')); err != nil {
		z.err = fmt.Errorf("zygote: %w", err)
		return "", "", z.err
	}
	var reply struct{ RC int }
	line, rerr := z.stdout.ReadBytes('\n')
	if rerr != nil {
		z.err = fmt.Errorf("zygote died: %w; its stderr: %s", rerr, z.stderr.String())
		return "", "", z.err
	}
	if err := json.Unmarshal(line, &reply); err != nil {
		return "", "", fmt.Errorf("zygote reply %q: %w", line, err)
	}
	o, _ := os.ReadFile(filepath.Join(dir, "stdout.txt"))
	e, _ := os.ReadFile(filepath.Join(dir, "stderr.txt"))
	switch {
	case reply.RC == -1:
		err = fmt.Errorf("timed out after %s", pythonTimeout)
	case reply.RC != 0:
		err = fmt.Errorf("exit status %d", reply.RC)
	}
	return string(o), string(e), err
}

// zygote is one long-lived python3 that forks a child per script.
type zygote struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	stdout *bufio.Reader
	stderr *bytes.Buffer
	err    error
}

func (z *zygote) start() {
	self, err := filepath.Abs("testdata/zygote.py")
	if err != nil {
		z.err = err
		return
	}
	z.cmd = exec.Command(python, self)
	z.cmd.Env = append(os.Environ(), "MPLBACKEND=Agg", "MPLCONFIGDIR="+os.TempDir(), "PYTHONDONTWRITEBYTECODE=1", "PYTHONHASHSEED=0",
		"OPENBLAS_NUM_THREADS=1", "OMP_NUM_THREADS=1") // no BLAS threads across fork()
	z.stderr = &bytes.Buffer{}
	z.cmd.Stderr = z.stderr
	if z.stdin, z.err = z.cmd.StdinPipe(); z.err != nil {
		return
	}
	out, err := z.cmd.StdoutPipe()
	if err != nil {
		z.err = err
		return
	}
	z.stdout = bufio.NewReader(out)
	z.err = z.cmd.Start() // it exits when the test binary does: its stdin closes
}

// zygotes holds two zygotes: the machine has two cores.
var zygotes = func() chan *zygote {
	c := make(chan *zygote, 2)
	c <- &zygote{}
	c <- &zygote{}
	return c
}()

func numbered(code string) string {
	var b strings.Builder
	for i, l := range strings.Split(code, "\n") {
		fmt.Fprintf(&b, "%4d  %s\n", i+1, l)
	}
	return b.String()
}

// chartOf names the chart drawn in a matplotlib figure from its artists: wedges make a
// pie, a QuadMesh or image a heatmap, 5-point rectangles with whiskers a box plot,
// polygons from fill_between an area (stacked when a layer does not start at zero),
// a PathCollection a scatter, contiguous bars a histogram, horizontal bars a barh,
// other bars a bar chart and lines alone a line chart.
func chartOf(axes []axesInfo) detect.ChartType {
	has := func(pred func(a axesInfo) bool) bool {
		for _, a := range axes {
			if pred(a) {
				return true
			}
		}
		return false
	}
	switch {
	case has(func(a axesInfo) bool { return a.Wedges >= 1 }):
		return detect.ChartPie
	case has(func(a axesInfo) bool { return a.QuadMesh > 0 || a.Images > 0 }):
		return detect.ChartHeatmap
	case has(func(a axesInfo) bool {
		twoPoint := 0
		for _, n := range a.Lines {
			if n == 2 {
				twoPoint++
			}
		}
		return a.BoxRects >= 1 && twoPoint >= 5*a.BoxRects
	}):
		return detect.ChartBox
	case has(func(a axesInfo) bool { return len(a.Polys) >= 2 && !allBottomZero(a.Polys) }):
		return detect.ChartStackedArea
	case has(func(a axesInfo) bool { return len(a.Polys) >= 1 }):
		return detect.ChartArea
	case has(func(a axesInfo) bool { return len(a.Scatter) > 0 && a.Scatter[0] >= 2 }):
		return detect.ChartScatter
	case has(func(a axesInfo) bool { return len(a.Bars) > 0 && a.Bars[0].Contiguous && !a.Bars[0].Horizontal }):
		return detect.ChartHistogram
	case has(func(a axesInfo) bool { return len(a.Bars) > 0 && a.Bars[0].Horizontal }):
		return detect.ChartBarH
	case has(func(a axesInfo) bool { return len(a.Bars) > 0 }):
		return detect.ChartBar
	case has(func(a axesInfo) bool {
		for _, n := range a.Lines {
			if n >= 2 {
				return true
			}
		}
		return false
	}):
		return detect.ChartLine
	}
	return ""
}

func allBottomZero(ps []polyInfo) bool {
	for _, p := range ps {
		if !p.BottomZero {
			return false
		}
	}
	return true
}

// plotlyChartOf names the chart of a plotly figure from its traces.
func plotlyChartOf(f plotlyInfo) detect.ChartType {
	if len(f.Traces) == 0 {
		return ""
	}
	tr := f.Traces[0]
	str := func(p *string) string {
		if p == nil {
			return ""
		}
		return *p
	}
	switch tr.Type {
	case "bar":
		if str(tr.Orientation) == "h" {
			return detect.ChartBarH
		}
		return detect.ChartBar
	case "pie":
		return detect.ChartPie
	case "histogram":
		return detect.ChartHistogram
	case "box":
		return detect.ChartBox
	case "heatmap":
		return detect.ChartHeatmap
	case "scatter":
		switch {
		case str(tr.StackGroup) != "":
			return detect.ChartStackedArea
		case str(tr.Fill) != "" && str(tr.Fill) != "none":
			return detect.ChartArea
		case strings.Contains(str(tr.Mode), "lines"):
			return detect.ChartLine
		case strings.Contains(str(tr.Mode), "markers"):
			return detect.ChartScatter
		}
	}
	return ""
}
