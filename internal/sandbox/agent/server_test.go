package agent

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vizops/viz-operator/internal/chartdata"
	"github.com/vizops/viz-operator/internal/sandbox"
	"github.com/vizops/viz-operator/internal/sandbox/codeinterpreter"
)

// The tests share one agent on loopback (bubblewrap isolation, as outside a Pod):
// every kernel imports the plotting stack, which takes seconds on a loaded machine.
const testToken = "agent-test-token"

var sharedURL string

func TestMain(m *testing.M) {
	// InterruptGrace: long enough for an interrupted kernel to report on a loaded
	// machine (2 s was not, with other test packages running), short enough that the
	// swallowed-interrupt test does not wait long.
	srv, err := NewServer(Options{Token: testToken, WarmKernels: 2, InterruptGrace: 5 * time.Second})
	if err != nil {
		fmt.Fprintln(os.Stderr, "the agent cannot start here (install bubblewrap and Debian's python3 plotting stack: make deps):", err)
		os.Exit(1)
	}
	ts := httptest.NewServer(srv)
	sharedURL = ts.URL
	// Like a Pod's readiness probe: wait for the first warm kernel.
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	err = srv.WaitReady(ctx)
	cancel()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	ts.Close()
	_ = srv.Close()
	os.Exit(code)
}

func client() *codeinterpreter.Client {
	return &codeinterpreter.Client{BaseURL: sharedURL, AccessToken: testToken}
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// newContext creates a context and deletes it when the test ends.
func newContext(t *testing.T) string {
	t.Helper()
	c := client()
	cx, err := c.CreateContext(testCtx(t), codeinterpreter.CreateContextRequest{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.DeleteContext(context.Background(), cx.ID) })
	return cx.ID
}

func execute(t *testing.T, contextID, code string) []codeinterpreter.Message {
	t.Helper()
	var msgs []codeinterpreter.Message
	err := client().Execute(testCtx(t), codeinterpreter.ExecuteRequest{Code: code, ContextID: contextID}, func(m codeinterpreter.Message) {
		msgs = append(msgs, m)
	})
	if err != nil {
		t.Fatalf("execute %q: %v", code, err)
	}
	return msgs
}

func ofType(msgs []codeinterpreter.Message, typ string) []codeinterpreter.Message {
	var out []codeinterpreter.Message
	for _, m := range msgs {
		if m.Type == typ {
			out = append(out, m)
		}
	}
	return out
}

func joined(msgs []codeinterpreter.Message, typ string) string {
	var b strings.Builder
	for _, m := range ofType(msgs, typ) {
		b.WriteString(m.Text)
	}
	return b.String()
}

func mainText(msgs []codeinterpreter.Message) (string, bool) {
	for _, m := range ofType(msgs, codeinterpreter.TypeResult) {
		if m.Main() {
			return m.Text, true
		}
	}
	return "", false
}

func isPNG(b64 string) bool {
	data, err := base64.StdEncoding.DecodeString(b64)
	return err == nil && bytes.HasPrefix(data, []byte("\x89PNG\r\n\x1a\n"))
}

func TestExecuteMessages(t *testing.T) {
	tests := map[string]struct {
		code  string
		check func(t *testing.T, msgs []codeinterpreter.Message)
	}{
		"plt.show() gives a PNG display with its chart data": {
			code: "import matplotlib.pyplot as plt\nplt.plot([1, 2, 3], [2, 4, 8])\nplt.title('growth')\nplt.show()",
			check: func(t *testing.T, msgs []codeinterpreter.Message) {
				res := ofType(msgs, codeinterpreter.TypeResult)
				if len(res) != 1 || !isPNG(res[0].PNG) || res[0].Main() {
					t.Fatalf("results = %d, want one PNG display", len(res))
				}
				var charts []chartdata.Chart
				if err := json.Unmarshal(res[0].Extra[codeinterpreter.ExtraChartData], &charts); err != nil || len(charts) != 1 || charts[0].Title != "growth" || charts[0].Type != "line" {
					t.Errorf("chart data = %s (%v)", res[0].Extra[codeinterpreter.ExtraChartData], err)
				}
			},
		},
		"stdout and stderr stream with timestamps": {
			code: "import sys\nprint('out')\nprint('err', file=sys.stderr)",
			check: func(t *testing.T, msgs []codeinterpreter.Message) {
				if got := joined(msgs, codeinterpreter.TypeStdout); got != "out\n" {
					t.Errorf("stdout = %q", got)
				}
				if got := joined(msgs, codeinterpreter.TypeStderr); got != "err\n" {
					t.Errorf("stderr = %q", got)
				}
				for _, m := range ofType(msgs, codeinterpreter.TypeStdout) {
					if _, err := time.Parse(time.RFC3339Nano, m.Timestamp); err != nil {
						t.Errorf("timestamp %q: %v", m.Timestamp, err)
					}
				}
			},
		},
		"1/0 is a ZeroDivisionError": {
			code: "1/0",
			check: func(t *testing.T, msgs []codeinterpreter.Message) {
				errs := ofType(msgs, codeinterpreter.TypeError)
				if len(errs) != 1 || errs[0].Name != "ZeroDivisionError" || errs[0].Value != "division by zero" || !strings.Contains(errs[0].Traceback, "<cell>") {
					t.Errorf("errors = %+v", errs)
				}
			},
		},
		"plotly fig.show() gives HTML and the figure's JSON in extra": {
			code: "import plotly.express as px\nfig = px.bar(x=['a', 'b'], y=[1, 3])\nfig.show()",
			check: func(t *testing.T, msgs []codeinterpreter.Message) {
				res := ofType(msgs, codeinterpreter.TypeResult)
				if len(res) != 1 || !strings.Contains(res[0].HTML, "plotly") {
					t.Fatalf("results = %+v", res)
				}
				var fig struct{ Data []any }
				if err := json.Unmarshal(res[0].Extra[codeinterpreter.MIMEPlotly], &fig); err != nil || len(fig.Data) != 1 {
					t.Errorf("plotly JSON: %v", err)
				}
			},
		},
		"a figure shown before an exception still comes back, before the error": {
			code: "import matplotlib.pyplot as plt\nplt.plot([1, 2])\nplt.show()\nraise ValueError('late')",
			check: func(t *testing.T, msgs []codeinterpreter.Message) {
				var order []string
				for _, m := range msgs {
					if m.Type == codeinterpreter.TypeResult && isPNG(m.PNG) {
						order = append(order, "png")
					}
					if m.Type == codeinterpreter.TypeError {
						order = append(order, m.Name)
					}
				}
				if strings.Join(order, ",") != "png,ValueError" {
					t.Errorf("messages = %v", order)
				}
			},
		},
		"a figure left open is shown at the end of the cell": {
			code: "import matplotlib.pyplot as plt\nplt.bar(['a'], [1])",
			check: func(t *testing.T, msgs []codeinterpreter.Message) {
				res := ofType(msgs, codeinterpreter.TypeResult)
				if len(res) != 1 || !isPNG(res[0].PNG) {
					t.Errorf("results = %d", len(res))
				}
			},
		},
		"the last expression is the main result, quotes stripped as E2B does": {
			code: "'abc'",
			check: func(t *testing.T, msgs []codeinterpreter.Message) {
				if text, ok := mainText(msgs); !ok || text != "abc" {
					t.Errorf("main result = %q, %v", text, ok)
				}
			},
		},
		"number_of_executions comes first": {
			code: "pass",
			check: func(t *testing.T, msgs []codeinterpreter.Message) {
				if len(msgs) != 1 || msgs[0].Type != codeinterpreter.TypeNumberOfExecutions || msgs[0].ExecutionCount != 1 {
					t.Errorf("messages = %+v", msgs)
				}
			},
		},
		"the kernel cannot see the host or the network": {
			code: "import os, socket\nprint(os.path.exists('/work'), os.path.exists('/etc/passwd'))\ntry:\n    socket.socket(socket.AF_INET, socket.SOCK_STREAM)\nexcept OSError as e:\n    print('socket', e.errno)",
			check: func(t *testing.T, msgs []codeinterpreter.Message) {
				if got := joined(msgs, codeinterpreter.TypeStdout); got != "False False\nsocket 97\n" {
					t.Errorf("stdout = %q", got)
				}
			},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			tc.check(t, execute(t, newContext(t), tc.code))
		})
	}
}

func TestVariablesPersistPerContext(t *testing.T) {
	a, b := newContext(t), newContext(t)
	execute(t, a, "x = 41")
	if text, _ := mainText(execute(t, a, "x + 1")); text != "42" {
		t.Errorf("x + 1 = %q, want 42", text)
	}
	errs := ofType(execute(t, b, "x"), codeinterpreter.TypeError)
	if len(errs) != 1 || errs[0].Name != "NameError" {
		t.Errorf("another context sees x: %+v", errs)
	}
	// Without a context_id the default context runs the code, and keeps its variables.
	execute(t, "", "default_var = 7")
	if text, _ := mainText(execute(t, "", "default_var * 6")); text != "42" {
		t.Errorf("default context: %q", text)
	}
}

func TestEnvVarsLastOneExecution(t *testing.T) {
	id := newContext(t)
	var msgs []codeinterpreter.Message
	err := client().Execute(testCtx(t), codeinterpreter.ExecuteRequest{Code: "import os\nos.environ['VIZOPS_T']", ContextID: id, EnvVars: map[string]string{"VIZOPS_T": "yes"}},
		func(m codeinterpreter.Message) { msgs = append(msgs, m) })
	if err != nil {
		t.Fatal(err)
	}
	if text, _ := mainText(msgs); text != "yes" {
		t.Errorf("env var during the execution = %q", text)
	}
	if text, ok := mainText(execute(t, id, "os.environ.get('VIZOPS_T')")); ok {
		t.Errorf("env var after the execution = %q, want unset", text)
	}
}

func TestAccessToken(t *testing.T) {
	routes := []struct{ method, path, body string }{
		{http.MethodPost, "/execute", `{"code": "1"}`},
		{http.MethodPost, "/contexts", `{}`},
		{http.MethodGet, "/contexts", ""},
		{http.MethodPost, "/contexts/any/restart", ""},
		{http.MethodDelete, "/contexts/any", ""},
	}
	for _, r := range routes {
		for name, token := range map[string]string{"missing": "", "wrong": "not-" + testToken, "right token, wrong case": strings.ToUpper(testToken)} {
			t.Run(r.method+" "+r.path+" "+name, func(t *testing.T) {
				req, _ := http.NewRequest(r.method, sharedURL+r.path, strings.NewReader(r.body))
				if token != "" {
					req.Header.Set(codeinterpreter.HeaderAccessToken, token)
				}
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				if resp.StatusCode != http.StatusUnauthorized {
					t.Errorf("status = %d, want 401", resp.StatusCode)
				}
			})
		}
	}
	t.Run("health needs no token", func(t *testing.T) {
		resp, err := http.Get(sharedURL + "/health")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || strings.TrimSpace(string(body)) != `"OK"` {
			t.Errorf("health = %d %s", resp.StatusCode, body)
		}
	})
	t.Run("the client maps 401 to ErrUnauthorized", func(t *testing.T) {
		c := &codeinterpreter.Client{BaseURL: sharedURL, AccessToken: "wrong"}
		if _, err := c.Run(testCtx(t), sandbox.Request{Code: "1"}); !errors.Is(err, codeinterpreter.ErrUnauthorized) {
			t.Errorf("err = %v", err)
		}
	})
}

func TestRawStreamEndsWithEndOfExecution(t *testing.T) {
	id := newContext(t)
	req, _ := http.NewRequest(http.MethodPost, sharedURL+"/execute", strings.NewReader(`{"code": "print(1)", "context_id": "`+id+`"}`))
	req.Header.Set(codeinterpreter.HeaderAccessToken, testToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	lines := strings.Split(strings.TrimSpace(string(body)), "\n")
	if len(lines) != 3 || !strings.Contains(lines[1], `"type":"stdout"`) || lines[2] != `{"type":"end_of_execution"}` {
		t.Errorf("stream = %q", body)
	}
}

// runUntilStarted starts code that prints "started" and then blocks, and cancels the
// request (the client disconnects) once "started" arrived.
func runUntilStarted(t *testing.T, id, code string) {
	t.Helper()
	ctx, cancel := context.WithCancel(testCtx(t))
	defer cancel()
	err := client().Execute(ctx, codeinterpreter.ExecuteRequest{Code: code, ContextID: id}, func(m codeinterpreter.Message) {
		if m.Type == codeinterpreter.TypeStdout && strings.Contains(m.Text, "started") {
			cancel()
		}
	})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want the cancellation", err)
	}
}

func TestClientDisconnectInterrupts(t *testing.T) {
	t.Run("the execution gets a KeyboardInterrupt and the context keeps its variables", func(t *testing.T) {
		id := newContext(t)
		execute(t, id, "kept = 5")
		runUntilStarted(t, id, "import time\nprint('started', flush=True)\ntime.sleep(3600)\nkept = 0")
		// The next execution waits for the interrupted one; it would wait an hour
		// (past the test's context) had the sleep not been interrupted.
		if text, _ := mainText(execute(t, id, "kept")); text != "5" {
			t.Errorf("kept = %q, want 5 (same interpreter, interrupted before kept = 0)", text)
		}
	})
	t.Run("code that swallows the interrupt gets its kernel killed and restarted", func(t *testing.T) {
		id := newContext(t)
		execute(t, id, "kept = 5")
		// "started" is printed inside the try: an interrupt that lands between the print
		// and the sleep must be swallowed too, or the execution simply ends.
		runUntilStarted(t, id, "import time\nwhile True:\n    try:\n        print('started', flush=True)\n        time.sleep(3600)\n    except KeyboardInterrupt:\n        pass")
		errs := ofType(execute(t, id, "kept"), codeinterpreter.TypeError)
		if len(errs) != 1 || errs[0].Name != "NameError" {
			t.Errorf("errors = %+v, want NameError from a fresh interpreter", errs)
		}
	})
}

func TestKernelExitIsReportedAndReplaced(t *testing.T) {
	id := newContext(t)
	errs := ofType(execute(t, id, "import os\nos._exit(3)"), codeinterpreter.TypeError)
	if len(errs) != 1 || errs[0].Name != sandbox.ErrNameProcessExited || !strings.Contains(errs[0].Value, "status 3") {
		t.Fatalf("errors = %+v", errs)
	}
	if text, _ := mainText(execute(t, id, "1 + 1")); text != "2" {
		t.Errorf("after the exit: %q", text)
	}
}

func TestContextLifecycle(t *testing.T) {
	c := client()
	ctx := testCtx(t)
	cx, err := c.CreateContext(ctx, codeinterpreter.CreateContextRequest{Cwd: "/tmp/work/project"})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = c.DeleteContext(context.Background(), cx.ID) }()
	if cx.Cwd != "/tmp/work/project" || cx.Language != "python" {
		t.Errorf("context = %+v", cx)
	}
	if text, _ := mainText(execute(t, cx.ID, "import os\nv = 1\nos.getcwd()")); text != "/tmp/work/project" {
		t.Errorf("cwd = %q", text)
	}
	list, err := c.ListContexts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, l := range list {
		found = found || l == cx
	}
	if !found {
		t.Errorf("%s not in %+v", cx.ID, list)
	}
	if err := c.RestartContext(ctx, cx.ID); err != nil {
		t.Fatal(err)
	}
	msgs := execute(t, cx.ID, "import os\nprint(os.getcwd())\nv")
	if errs := ofType(msgs, codeinterpreter.TypeError); len(errs) != 1 || errs[0].Name != "NameError" || joined(msgs, codeinterpreter.TypeStdout) != "/tmp/work/project\n" {
		t.Errorf("after restart: %+v", msgs)
	}
	if err := c.DeleteContext(ctx, cx.ID); err != nil {
		t.Fatal(err)
	}
	err = c.Execute(ctx, codeinterpreter.ExecuteRequest{Code: "1", ContextID: cx.ID}, nil)
	var se *codeinterpreter.StatusError
	if !errors.As(err, &se) || se.Code != http.StatusNotFound {
		t.Errorf("execute in a deleted context: %v, want 404", err)
	}
	if err := c.RestartContext(ctx, cx.ID); !errors.As(err, &se) || se.Code != http.StatusNotFound {
		t.Errorf("restart of a deleted context: %v, want 404", err)
	}
}

func TestBadRequests(t *testing.T) {
	tests := map[string]struct {
		path, body string
		want       int
	}{
		"context_id and language":   {"/execute", `{"code": "1", "context_id": "a", "language": "python"}`, http.StatusBadRequest},
		"a language other than R":   {"/execute", `{"code": "1", "language": "r"}`, http.StatusBadRequest},
		"no code":                   {"/execute", `{}`, http.StatusUnprocessableEntity},
		"not JSON":                  {"/execute", `code=1`, http.StatusUnprocessableEntity},
		"an unknown context":        {"/execute", `{"code": "1", "context_id": "nope"}`, http.StatusNotFound},
		"a context of another lang": {"/contexts", `{"language": "javascript"}`, http.StatusBadRequest},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			req, _ := http.NewRequest(http.MethodPost, sharedURL+tc.path, strings.NewReader(tc.body))
			req.Header.Set(codeinterpreter.HeaderAccessToken, testToken)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tc.want {
				t.Errorf("status = %d, want %d", resp.StatusCode, tc.want)
			}
		})
	}
}

// TestClientRun runs Run against the agent, in one execution a job (the agent's
// HeaderCells) and in three (NoCells, as against E2B's server).
func TestClientRun(t *testing.T) {
	for _, noCells := range []bool{false, true} {
		t.Run(fmt.Sprintf("NoCells=%v", noCells), func(t *testing.T) { testClientRun(t, noCells) })
	}
}

func testClientRun(t *testing.T, noCells bool) {
	c := client()
	c.NoCells = noCells
	c.SandboxID = "sb-test"
	ctx := testCtx(t)
	before, err := c.ListContexts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Run("input files, df, figures in both formats, chart data", func(t *testing.T) {
		res, err := c.Run(ctx, sandbox.Request{
			Code:    "print(df.shape)\nimport matplotlib.pyplot as plt\nplt.bar(df['city'], df['n'])\nplt.title('cities')\nplt.show()\nopen(OUTPUT_DIR + '/summary.txt', 'w').write('2 cities')\nopen('.hidden', 'w').write('x')\nopen('notes.txt').read()",
			Files:   []sandbox.File{{Name: "data.csv", Data: []byte("city,n\nOslo,3\nRome,5\n")}, {Name: "notes.txt", Data: []byte("hello")}},
			Formats: []sandbox.Format{sandbox.FormatPNG, sandbox.FormatSVG},
		})
		if err != nil {
			t.Fatal(err)
		}
		if !res.Success || res.Stdout != "(2, 2)\n" || res.Text != "hello" || res.SandboxID != "sb-test" {
			t.Errorf("result = %+v", res)
		}
		var names []string
		for _, f := range res.Files {
			names = append(names, f.Name)
		}
		if strings.Join(names, ",") != "figure_1.png,figure_1.svg,outputs/summary.txt" || !bytes.HasPrefix(res.Files[0].Data, []byte("\x89PNG")) || !bytes.Contains(res.Files[1].Data, []byte("<svg")) {
			t.Fatalf("files = %v", names)
		}
		if f := res.Files[2]; f.Figure || string(f.Data) != "2 cities" || f.MIMEType != "text/plain" {
			t.Errorf("written file = %+v", f)
		}
		if len(res.Charts) != 1 || res.Charts[0].Figure != "figure_1" || res.Charts[0].Title != "cities" || len(res.Charts[0].Series) != 1 || strings.Join(res.Charts[0].Series[0].Labels, ",") != "Oslo,Rome" {
			t.Errorf("charts = %+v", res.Charts)
		}
	})
	t.Run("a timeout stops the code and keeps what came before", func(t *testing.T) {
		res, err := c.Run(ctx, sandbox.Request{
			Code:    "import time\nimport matplotlib.pyplot as plt\nplt.plot([1, 2])\nplt.show()\nprint('before', flush=True)\ntime.sleep(3600)",
			Timeout: 3 * time.Second,
		})
		if err != nil {
			t.Fatal(err)
		}
		if !res.TimedOut || res.Success || res.Error == nil || res.Error.Name != sandbox.ErrNameTimeout || res.Stdout != "before\n" || len(res.Files) != 1 {
			t.Errorf("result = %+v", res)
		}
	})
	t.Run("an exception is the result's error", func(t *testing.T) {
		res, err := c.Run(ctx, sandbox.Request{Code: "1/0"})
		if err != nil || res.Success || res.Error == nil || res.Error.Name != "ZeroDivisionError" {
			t.Errorf("result = %+v, %v", res, err)
		}
	})
	after, err := c.ListContexts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(after) != len(before) {
		t.Errorf("Run left contexts behind: %d before, %d after", len(before), len(after))
	}
}

// TestIsolationNone runs the agent as in a sandbox Pod: kernels are plain processes
// (the Pod is the sandbox) that still drop privileges.
func TestIsolationNone(t *testing.T) {
	work := t.TempDir()
	_ = os.Chmod(filepath.Dir(work), 0o711) // kernels run as nobody when the test is root
	srv, err := NewServer(Options{Token: "t", Isolation: IsolationNone, WorkDir: work, WarmKernels: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	ts := httptest.NewServer(srv)
	defer ts.Close()
	c := &codeinterpreter.Client{BaseURL: ts.URL, AccessToken: "t"}
	res, err := c.Run(testCtx(t), sandbox.Request{
		Code:  "import os, matplotlib.pyplot as plt\nplt.plot([1, 2])\nplt.show()\nprint(os.getuid() != 0, open('/proc/self/status').read().count('CapEff:\\t0000000000000000'))\nos.path.exists('data.csv')",
		Files: []sandbox.File{{Name: "data.csv", Data: []byte("a\n1\n")}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if !res.Success || res.Stdout != "True 1\n" || res.Text != "True" || len(res.Files) != 1 {
		t.Errorf("result = %+v", res)
	}
}

func TestHealthWaitsForTheFirstKernel(t *testing.T) {
	// An "interpreter" that never becomes ready: the agent must not report healthy.
	stuck := filepath.Join(t.TempDir(), "python3")
	if err := os.WriteFile(stuck, []byte("#!/bin/sh\nexec sleep 600\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	_ = os.Chmod(filepath.Dir(stuck), 0o755)
	_ = os.Chmod(filepath.Dir(filepath.Dir(stuck)), 0o711)
	for name, tc := range map[string]struct {
		warm int
		want int
	}{
		"a warm kernel is awaited":   {warm: 1, want: http.StatusServiceUnavailable},
		"no warm kernels: ready now": {warm: -1, want: http.StatusOK},
	} {
		t.Run(name, func(t *testing.T) {
			work := t.TempDir()
			_ = os.Chmod(filepath.Dir(work), 0o711)
			srv, err := NewServer(Options{Isolation: IsolationNone, Python: stuck, WorkDir: work, WarmKernels: tc.warm})
			if err != nil {
				t.Fatal(err)
			}
			defer srv.Close()
			rec := httptest.NewRecorder()
			srv.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/health", nil))
			if rec.Code != tc.want {
				t.Errorf("health = %d %s, want %d", rec.Code, rec.Body, tc.want)
			}
		})
	}
}

// Code that redefines print, or writes result frames to the kernel's results pipe
// itself, makes the real agent stream without end; the manager's client stops reading
// at the request's budget and fails the request. (The heap bound is measured in
// codeinterpreter's hostile-agent tests: here the agent shares the test's heap.)
func TestClientStopsReadingAHostileKernel(t *testing.T) {
	tests := map[string]string{
		"print redefined": `import sys
line = "x" * 65536
def print(*a, **k):
    sys.stdout.write(line + "\n")
for i in range(1 << 20):
    print(i)
`,
		"results pipe": `import sys
emit = sys.modules["__main__"].kernel_emit
chart = [{"type": "line", "title": "t", "series": [{"name": "s", "type": "line", "y": [1.5] * 20000}]}]
for i in range(1 << 20):
    emit({"type": "result", "png": "iVBORw0KGgo=", "is_main_result": False, "extra": {"vizops/chart": chart}})
`,
	}
	for name, code := range tests {
		t.Run(name, func(t *testing.T) {
			c := client()
			c.MaxStreamBytes = 16 << 20
			res, err := c.Run(testCtx(t), sandbox.Request{Code: code, Timeout: 2 * time.Minute})
			if err != nil {
				t.Fatal(err)
			}
			if res.Success || res.Error == nil || res.Error.Name != sandbox.ErrNameOutputLimitExceeded || !strings.Contains(res.Error.Value, "16.0 MiB") {
				t.Fatalf("success = %v, error = %+v; want OutputLimitExceeded at 16 MiB", res.Success, res.Error)
			}
			if len(res.Stdout) > 2<<20 || len(res.Charts) > chartdata.MaxCharts {
				t.Errorf("kept stdout %d bytes, %d charts", len(res.Stdout), len(res.Charts))
			}
		})
	}
}
