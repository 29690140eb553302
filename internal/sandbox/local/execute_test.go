package local

import (
	"bytes"
	"encoding/json"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/vizops/viz-operator/internal/sandbox"
)

// seedBarChart is the seed's first example (floor.go).
const seedBarChart = SeedBarChart

var (
	featurePoolOnce sync.Once
	featurePool     *Pool
)

// sharedFeaturePool is one pool for the feature tests: they check results, not pool
// behaviour, and starting a sandbox costs about a second.
func sharedFeaturePool(t *testing.T) *Pool {
	t.Helper()
	featurePoolOnce.Do(func() {
		p, err := NewPool(sandbox.PoolConfig{MinReady: 1, MaxSandboxes: 2}, Options{MaxOutputBytes: 4096, MaxArtifacts: 6})
		if err != nil {
			t.Fatalf("NewPool: %v", err)
		}
		featurePool = p
	})
	if featurePool == nil {
		t.Fatal("feature pool failed to start earlier")
	}
	return featurePool
}

// resultSummary is the comparable part of a Result.
type resultSummary struct {
	Success  bool
	ErrName  string
	Text     string
	Files    []string
	TimedOut bool
}

func summarize(r *sandbox.Result) resultSummary {
	return resultSummary{Success: r.Success, ErrName: errName(r), Text: r.Text, Files: artifactNames(r), TimedOut: r.TimedOut}
}

func TestExecuteResults(t *testing.T) { testExecuteResults(t, sharedFeaturePool(t)) }

func testExecuteResults(t *testing.T, p *Pool) {
	tests := map[string]struct {
		req   sandbox.Request
		want  resultSummary
		check func(t *testing.T, r *sandbox.Result)
	}{
		"seed bar chart via plt.show": {
			req:  sandbox.Request{Code: seedBarChart},
			want: resultSummary{Success: true, Files: []string{"figure_1.png"}},
			check: func(t *testing.T, r *sandbox.Result) {
				if !bytes.HasPrefix(r.Files[0].Data, []byte("\x89PNG")) || r.Files[0].MIMEType != "image/png" {
					t.Errorf("figure is not a PNG: %q %q", r.Files[0].MIMEType, r.Files[0].Data[:8])
				}
			},
		},
		"png and svg formats": {
			req:  sandbox.Request{Code: seedBarChart, Formats: []sandbox.Format{sandbox.FormatPNG, sandbox.FormatSVG}},
			want: resultSummary{Success: true, Files: []string{"figure_1.png", "figure_1.svg"}},
		},
		"figures still open at the end are captured": {
			req:  sandbox.Request{Code: "import matplotlib.pyplot as plt\nplt.plot([1,2,3])\nplt.figure()\nplt.scatter([1],[2])"},
			want: resultSummary{Success: true, Files: []string{"figure_1.png", "figure_2.png"}},
		},
		"blank figures are dropped": {
			req:  sandbox.Request{Code: "import matplotlib.pyplot as plt\nplt.figure()\nplt.show()\nplt.subplots(2)\nplt.show()\nplt.plot([1,2])\nplt.show()"},
			want: resultSummary{Success: true, Files: []string{"figure_1.png"}},
		},
		"last expression is returned as text": {
			req:  sandbox.Request{Code: "x = 20\nx * 2 + 2"},
			want: resultSummary{Success: true, Text: "42"},
		},
		"a None last expression gives no text": {
			req:  sandbox.Request{Code: "print('hello')\nNone"},
			want: resultSummary{Success: true},
			check: func(t *testing.T, r *sandbox.Result) {
				if r.Stdout != "hello\n" {
					t.Errorf("stdout = %q, want %q", r.Stdout, "hello\n")
				}
			},
		},
		"exception keeps results produced before it": {
			req:  sandbox.Request{Code: "import matplotlib.pyplot as plt\nplt.plot([1,2])\nplt.show()\nprint('before')\n1/0"},
			want: resultSummary{ErrName: "ZeroDivisionError", Files: []string{"figure_1.png"}},
			check: func(t *testing.T, r *sandbox.Result) {
				if r.Stdout != "before\n" || !strings.Contains(r.Error.Traceback, "1/0") || strings.Contains(r.Error.Traceback, "runner") {
					t.Errorf("stdout %q, traceback %q: want the cell's line and no runner frames", r.Stdout, r.Error.Traceback)
				}
			},
		},
		"syntax error": {
			req:  sandbox.Request{Code: "def broken(:\n  pass"},
			want: resultSummary{ErrName: "SyntaxError"},
		},
		"sys.exit(0) is success": {
			req:  sandbox.Request{Code: "import sys\nprint('x')\nsys.exit(0)"},
			want: resultSummary{Success: true},
		},
		"plotly show gives HTML and JSON": {
			req:  sandbox.Request{Code: "import plotly.express as px\nfig = px.bar(x=['a','b'], y=[1,3])\nfig.show()"},
			want: resultSummary{Success: true, Files: []string{"plotly_1.html", "plotly_1.json"}},
			check: func(t *testing.T, r *sandbox.Result) {
				html, js := string(r.Files[0].Data), r.Files[1].Data
				if !strings.Contains(html, `src="https://cdn.plot.ly/plotly-2.6.3.min.js"`) || len(html) > 100_000 {
					t.Errorf("HTML (%d bytes) should load plotly.js from the CDN, not embed it", len(html))
				}
				var fig struct{ Data []map[string]any }
				if err := json.Unmarshal(js, &fig); err != nil || len(fig.Data) != 1 || fig.Data[0]["type"] != "bar" {
					t.Errorf("plotly JSON: %v %s", err, js[:min(len(js), 200)])
				}
				if diff := cmp.Diff([]string{"text/html", "application/vnd.plotly.v1+json"}, []string{r.Files[0].MIMEType, r.Files[1].MIMEType}); diff != "" {
					t.Errorf("MIME types (-want +got):\n%s", diff)
				}
			},
		},
		"plotly figure as last expression": {
			req:  sandbox.Request{Code: "import plotly.graph_objects as go\ngo.Figure(go.Scatter(x=[1,2], y=[3,4]))"},
			want: resultSummary{Success: true, Files: []string{"plotly_1.html", "plotly_1.json"}},
		},
		"data.csv is loaded as df": {
			req: sandbox.Request{
				Code:  "print(DATA_PATH)\ndf['value'].sum()",
				Files: []sandbox.File{{Name: "data.csv", Data: []byte("name,value\na,1\nb,41\n")}},
			},
			want: resultSummary{Success: true, Text: "42"},
		},
		"files written to the output folder and cwd": {
			req: sandbox.Request{
				Code:  "import os\nopen(os.path.join(OUTPUT_DIR, 'summary.txt'), 'w').write('hi')\nopen('table.csv', 'w').write('a,b\\n1,2\\n')",
				Files: []sandbox.File{{Name: "input.txt", Data: []byte("in")}},
			},
			want: resultSummary{Success: true, Text: "8", Files: []string{"table.csv", "outputs/summary.txt"}},
		},
		"stdout is truncated with a marker": {
			req:  sandbox.Request{Code: "print('x' * 100000)"},
			want: resultSummary{Success: true},
			check: func(t *testing.T, r *sandbox.Result) {
				if !strings.Contains(r.Stdout, "… [truncated: 95905 bytes omitted]") || len(r.Stdout) > 4200 {
					t.Errorf("stdout of %d bytes ends %q", len(r.Stdout), r.Stdout[max(0, len(r.Stdout)-60):])
				}
			},
		},
		"too many artifacts": {
			req:  sandbox.Request{Code: "for i in range(10):\n    open(f'f{i}.txt', 'w').write('x')"},
			want: resultSummary{ErrName: sandbox.ErrNameOutputLimitExceeded, Files: []string{"f0.txt", "f1.txt", "f2.txt", "f3.txt", "f4.txt", "f5.txt"}},
		},
		"timeout keeps partial results": {
			req:  sandbox.Request{Code: "import matplotlib.pyplot as plt, time\nplt.plot([1,2])\nplt.show()\nopen('early.txt','w').write('x')\nplt.plot([2,1])\nwhile True: time.sleep(0.01)", Timeout: 2 * time.Second},
			want: resultSummary{ErrName: sandbox.ErrNameTimeout, TimedOut: true, Files: []string{"figure_1.png", "figure_2.png", "early.txt"}},
			check: func(t *testing.T, r *sandbox.Result) {
				if tb := r.Error.Traceback; !strings.Contains(tb, "<cell>") || strings.Contains(tb, "run_job") || strings.Contains(tb, "kernel_run") {
					t.Errorf("traceback %q: want the cell's frames and no runner frames", tb)
				}
			},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			r := runJob(t, p, tc.req)
			if diff := cmp.Diff(tc.want, summarize(r)); diff != "" {
				t.Fatalf("result (-want +got):\n%s\nstdout: %s\nstderr: %s\nerror: %+v", diff, r.Stdout, r.Stderr, r.Error)
			}
			if r.SandboxID == "" || r.ExecutionTime <= 0 {
				t.Errorf("SandboxID %q, ExecutionTime %s: want both set", r.SandboxID, r.ExecutionTime)
			}
			if tc.check != nil {
				tc.check(t, r)
			}
		})
	}
}

func TestExecuteRejectsBadRequests(t *testing.T) {
	testExecuteRejectsBadRequests(t, sharedFeaturePool(t))
}

func testExecuteRejectsBadRequests(t *testing.T, p *Pool) {
	tests := map[string]sandbox.Request{
		"file name with a slash": {Code: "1", Files: []sandbox.File{{Name: "../etc/passwd", Data: []byte("x")}}},
		"hidden file name":       {Code: "1", Files: []sandbox.File{{Name: ".bashrc", Data: []byte("x")}}},
		"unknown format":         {Code: "1", Formats: []sandbox.Format{"gif"}},
		"code over 512 KiB":      {Code: strings.Repeat("#", 600<<10)},
	}
	for name, req := range tests {
		t.Run(name, func(t *testing.T) {
			sb, err := p.Acquire(t.Context(), "bad-request")
			if err != nil {
				t.Fatal(err)
			}
			defer p.Release(sb)
			if _, err := sb.Execute(t.Context(), req); err == nil {
				t.Fatal("Execute accepted a bad request")
			}
		})
	}
}

// TestPlotlyJSSource checks PoolConfig.PlotlyJSURL: a custom URL is linked, and
// "inline" embeds plotly.js (Debian's is 8.6 MB) so the HTML works offline.
func TestPlotlyJSSource(t *testing.T) { testPlotlyJSSource(t) }

func testPlotlyJSSource(t *testing.T) {
	tests := map[string]struct {
		url      string
		contains string
		minSize  int
	}{
		"custom URL": {url: "https://assets.example.com/plotly.min.js", contains: `src="https://assets.example.com/plotly.min.js"`},
		"inline":     {url: "inline", contains: "plotly.js v2.6.3", minSize: 1 << 20},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			p := newTestPool(t, sandbox.PoolConfig{MinReady: 1, MaxSandboxes: 1, PlotlyJSURL: tc.url}, Options{})
			r := runJob(t, p, sandbox.Request{Code: "import plotly.express as px\npx.line(x=[1, 2], y=[2, 1]).show()"})
			if len(r.Files) != 2 {
				t.Fatalf("files %v, error %+v", artifactNames(r), r.Error)
			}
			html := string(r.Files[0].Data)
			if !strings.Contains(html, tc.contains) || len(html) < tc.minSize || strings.Contains(html, `src="https://cdn.plot.ly`) {
				t.Errorf("HTML of %d bytes: want %q, at least %d bytes, no CDN link", len(html), tc.contains, tc.minSize)
			}
		})
	}
}
