package codeinterpreter

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/vizops/viz-operator/internal/sandbox"
)

// fakeServer stands in for a code-interpreter server in the client's tests. It follows
// E2B's template/server wire format (NDJSON lines, end_of_execution written last) but
// runs no code: each /execute answers with the lines the test scripted. It does not
// cover context semantics (variables, interrupts); the agent's tests do.
type fakeServer struct {
	t      *testing.T
	token  string
	mu     sync.Mutex
	execs  []ExecuteRequest
	script func(w http.ResponseWriter, r *http.Request, req ExecuteRequest) // writes the stream of the user's code
	files  string                                                           // the epilogue's file list (JSON); default none
	// cells makes it advertise HeaderCells and answer an execution with a prelude and
	// an epilogue as the sandbox-agent does: all three in one stream, with markers.
	cells bool
	// preludeErr is an error line the prelude answers with.
	preludeErr string
	// deleteFails makes DELETE /contexts/ctx-1 answer 500.
	deleteFails bool
}

// cellsStream answers one execution carrying the prelude, the code and the epilogue.
func (f *fakeServer) cellsStream(w http.ResponseWriter, r *http.Request, req ExecuteRequest) {
	if f.preludeErr != "" {
		fmt.Fprintf(w, "%s\n%s\n", f.preludeErr, eoe)
		return
	}
	fmt.Fprintln(w, `{"type":"number_of_executions","execution_count":1}`)
	fmt.Fprintln(w, `{"type":"vizops_cell","name":"code"}`)
	code := &withoutEOE{ResponseWriter: w}
	f.script(code, r, req)
	if !code.ended {
		return // a stream the script did not end (cut at the timeout) ends here
	}
	fmt.Fprintln(w, `{"type":"vizops_cell","name":"epilogue"}`)
	f.epilogue(w)
}

// withoutEOE passes a script's lines on but its end_of_execution (the scripts write a
// line a Write).
type withoutEOE struct {
	http.ResponseWriter
	ended bool
}

func (w *withoutEOE) Write(b []byte) (int, error) {
	if strings.Contains(string(b), TypeEndOfExecution) {
		w.ended = true
		return len(b), nil
	}
	return w.ResponseWriter.Write(b)
}

func (w *withoutEOE) Flush() { w.ResponseWriter.(http.Flusher).Flush() }

func (f *fakeServer) epilogue(w http.ResponseWriter) {
	list := f.files
	if list == "" {
		list = `{"files": [], "omitted": []}`
	}
	line, _ := json.Marshal(Message{Type: TypeStdout, Text: collectMarker + list + "\n"})
	fmt.Fprintf(w, "%s\n%s\n", line, eoe)
}

func (f *fakeServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/health" && r.Header.Get(HeaderAccessToken) != f.token {
		http.Error(w, "Unauthorized", http.StatusUnauthorized)
		return
	}
	switch {
	case r.URL.Path == "/health":
		fmt.Fprint(w, `"OK"`)
	case r.URL.Path == "/contexts" && r.Method == http.MethodPost:
		if f.cells {
			w.Header().Set(HeaderCells, "1")
		}
		fmt.Fprint(w, `{"id":"ctx-1","language":"python","cwd":"/home/user"}`)
	case r.URL.Path == "/contexts/ctx-1" && r.Method == http.MethodDelete:
		if f.deleteFails {
			http.Error(w, "boom", http.StatusInternalServerError)
		}
	case r.URL.Path == "/execute":
		var req ExecuteRequest
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		f.mu.Lock()
		f.execs = append(f.execs, req)
		n := len(f.execs)
		f.mu.Unlock()
		switch {
		case f.cells && (req.Prelude != "" || req.Epilogue != ""):
			f.cellsStream(w, r, req)
		case n == 1 && f.preludeErr != "":
			fmt.Fprintf(w, "%s\n%s\n", f.preludeErr, eoe)
		case n == 1: // the prelude
			fmt.Fprint(w, `{"type":"number_of_executions","execution_count":1}`+"\n"+`{"type": "end_of_execution"}`+"\n")
		case strings.Contains(req.Code, "__vizops_collect"): // the epilogue
			f.epilogue(w)
		default:
			f.script(w, r, req)
		}
	default:
		http.NotFound(w, r)
	}
}

func lines(msgs ...string) func(http.ResponseWriter, *http.Request, ExecuteRequest) {
	return func(w http.ResponseWriter, _ *http.Request, _ ExecuteRequest) {
		for _, m := range msgs {
			fmt.Fprintln(w, m)
		}
	}
}

const eoe = `{"type": "end_of_execution"}`

func TestRunMapsStream(t *testing.T) {
	png := []byte("\x89PNG fake")
	pngB64 := base64.StdEncoding.EncodeToString(png)
	chart := `[{"type":"bar","title":"T","series":[{"name":"s","type":"bar","labels":["a"],"y":[1]}]}]`
	f := &fakeServer{t: t, token: "s3cret", script: lines(
		`{"type":"number_of_executions","execution_count":2}`,
		`{"type":"stdout","text":"hello\n","timestamp":"2024-01-01T00:00:00Z"}`,
		`{"type":"stderr","text":"warn\n","timestamp":"2024-01-01T00:00:00Z"}`,
		`{"type":"keepalive"}`,
		`{"type":"result","png":"`+pngB64+`","text":"<Figure size 640x480 with 1 Axes>","is_main_result":false,"extra":{"vizops/chart":`+chart+`}}`,
		`{"type":"result","html":"<div>plot</div>","is_main_result":false,"extra":{"application/vnd.plotly.v1+json":{"data":[]}}}`,
		`{"type":"result","text":"42","is_main_result":true}`,
		eoe,
	)}
	srv := httptest.NewServer(f)
	defer srv.Close()
	c := &Client{BaseURL: srv.URL, AccessToken: "s3cret", SandboxID: "sb-1"}
	res, err := c.Run(context.Background(), sandbox.Request{Code: "x + 1", Files: []sandbox.File{{Name: "data.csv", Data: []byte("a,b\n1,2\n")}}})
	if err != nil {
		t.Fatal(err)
	}
	if !res.Success || res.Stdout != "hello\n" || res.Stderr != "warn\n" || res.Text != "42" || res.SandboxID != "sb-1" {
		t.Errorf("result = %+v", res)
	}
	var names []string
	for _, a := range res.Files {
		names = append(names, a.Name+" "+a.MIMEType)
		if !a.Figure {
			t.Errorf("%s: Figure = false", a.Name)
		}
	}
	want := []string{"figure_1.png image/png", "plotly_1.html text/html", "plotly_1.json " + MIMEPlotly}
	if d := cmp.Diff(want, names); d != "" {
		t.Errorf("artifacts (-want +got):\n%s", d)
	}
	if string(res.Files[0].Data) != string(png) {
		t.Errorf("png = %q", res.Files[0].Data)
	}
	if len(res.Charts) != 1 || res.Charts[0].Figure != "figure_1" || res.Charts[0].Title != "T" {
		t.Errorf("charts = %+v", res.Charts)
	}
	// The prelude ran first in the same context, the code second, unchanged.
	if len(f.execs) != 3 || f.execs[0].ContextID != "ctx-1" || f.execs[1].Code != "x + 1" || f.execs[1].ContextID != "ctx-1" || f.execs[2].ContextID != "ctx-1" {
		t.Errorf("executions = %+v", f.execs)
	}
	if !strings.Contains(f.execs[0].Code, "__vizops_prelude") {
		t.Errorf("prelude = %q", f.execs[0].Code)
	}
}

func TestRunErrorAndFormats(t *testing.T) {
	f := &fakeServer{token: "", script: lines(
		`{"type":"result","png":"`+base64.StdEncoding.EncodeToString([]byte("p"))+`","svg":"<svg/>","is_main_result":false}`,
		`{"type":"error","name":"ZeroDivisionError","value":"division by zero","traceback":"Traceback..."}`,
		eoe,
	)}
	srv := httptest.NewServer(f)
	defer srv.Close()
	c := &Client{BaseURL: srv.URL}
	res, err := c.Run(context.Background(), sandbox.Request{Code: "1/0", Formats: []sandbox.Format{sandbox.FormatSVG}})
	if err != nil {
		t.Fatal(err)
	}
	if res.Success || res.Error == nil || res.Error.Name != "ZeroDivisionError" {
		t.Fatalf("error = %+v", res.Error)
	}
	if len(res.Files) != 1 || res.Files[0].Name != "figure_1.svg" {
		t.Errorf("files = %+v, want only the asked svg", res.Files)
	}
}

func TestRunTimeoutKeepsPartialResults(t *testing.T) {
	gone := make(chan struct{})
	f := &fakeServer{script: func(w http.ResponseWriter, r *http.Request, req ExecuteRequest) {
		fmt.Fprintln(w, `{"type":"stdout","text":"started\n"}`)
		w.(http.Flusher).Flush()
		select { // like the server: the stream ends when the client disconnects
		case <-r.Context().Done():
		case <-time.After(10 * time.Second):
		}
		close(gone)
	}}
	srv := httptest.NewServer(f)
	defer srv.Close()
	c := &Client{BaseURL: srv.URL}
	res, err := c.Run(context.Background(), sandbox.Request{Code: "while True: pass", Timeout: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if !res.TimedOut || res.Success || res.Error == nil || res.Error.Name != sandbox.ErrNameTimeout || res.Stdout != "started\n" {
		t.Errorf("result = %+v", res)
	}
	select {
	case <-gone:
	case <-time.After(5 * time.Second):
		t.Error("the server never saw the client go away")
	}
}

// TestRunServerEnforcedTimeout: a server that enforces the timeout itself
// (HeaderTimeout) is read past the timeout, so what the interrupted code still had
// open reaches the Result; the request carries the timeout for it.
func TestRunServerEnforcedTimeout(t *testing.T) {
	png := base64.StdEncoding.EncodeToString([]byte("\x89PNG"))
	var asked atomic.Int64
	f := &fakeServer{script: func(w http.ResponseWriter, r *http.Request, req ExecuteRequest) {
		asked.Store(req.TimeoutMS)
		w.Header().Set(HeaderTimeout, strconv.FormatInt(req.TimeoutMS, 10))
		fmt.Fprintln(w, `{"type":"stdout","text":"started\n"}`)
		w.(http.Flusher).Flush()
		select { // past the timeout, as the agent's kernel capturing the open figure
		case <-r.Context().Done():
			return
		case <-time.After(time.Duration(req.TimeoutMS)*time.Millisecond + 300*time.Millisecond):
		}
		fmt.Fprintf(w, `{"type":"result","png":%q}`+"\n", png)
		fmt.Fprintln(w, `{"type":"error","name":"Timeout","value":"stopped","traceback":"line 3"}`)
		fmt.Fprintln(w, eoe)
	}}
	srv := httptest.NewServer(f)
	defer srv.Close()
	res, err := (&Client{BaseURL: srv.URL}).Run(context.Background(), sandbox.Request{Code: "while True: pass", Timeout: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if got := asked.Load(); got != 200 {
		t.Errorf("the request asked for a %dms timeout, want 200", got)
	}
	if !res.TimedOut || res.Success || res.Error == nil || res.Error.Name != sandbox.ErrNameTimeout || res.Error.Traceback != "line 3" ||
		res.Stdout != "started\n" || len(res.Files) != 1 || res.Files[0].Name != "figure_1.png" {
		t.Errorf("result = %+v", res)
	}
}

func TestRunCallerCancelIsAnError(t *testing.T) {
	f := &fakeServer{script: func(w http.ResponseWriter, r *http.Request, req ExecuteRequest) {
		w.(http.Flusher).Flush()
		time.Sleep(300 * time.Millisecond)
	}}
	srv := httptest.NewServer(f)
	defer srv.Close()
	ctx, cancel := context.WithCancel(context.Background())
	go func() { time.Sleep(50 * time.Millisecond); cancel() }()
	_, err := (&Client{BaseURL: srv.URL}).Run(ctx, sandbox.Request{Code: "x", Timeout: time.Minute})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("err = %v, want context.Canceled", err)
	}
}

func TestErrorMapping(t *testing.T) {
	closed := httptest.NewServer(http.NotFoundHandler())
	closedURL := closed.URL
	closed.Close()
	tests := map[string]struct {
		handler  http.HandlerFunc
		url      string
		lost     bool
		unauth   bool
		code     int
		noSecret bool
	}{
		"401": {handler: func(w http.ResponseWriter, r *http.Request) { http.Error(w, "Unauthorized", http.StatusUnauthorized) }, unauth: true, code: http.StatusUnauthorized},
		"403": {handler: func(w http.ResponseWriter, r *http.Request) { http.Error(w, "Forbidden", http.StatusForbidden) }, unauth: true, code: http.StatusForbidden},
		"404 sandbox gone": {handler: func(w http.ResponseWriter, r *http.Request) {
			http.Error(w, "The sandbox was not found", http.StatusNotFound)
		}, lost: true, code: http.StatusNotFound},
		"502":                {handler: func(w http.ResponseWriter, r *http.Request) { http.Error(w, "bad gateway", http.StatusBadGateway) }, lost: true, code: http.StatusBadGateway},
		"500":                {handler: func(w http.ResponseWriter, r *http.Request) { http.Error(w, "boom", http.StatusInternalServerError) }, lost: true, code: http.StatusInternalServerError},
		"400 is not lost":    {handler: func(w http.ResponseWriter, r *http.Request) { http.Error(w, "bad", http.StatusBadRequest) }, code: http.StatusBadRequest},
		"connection refused": {url: closedURL, lost: true},
		"stream cut before end_of_execution": {handler: func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/contexts" {
				fmt.Fprint(w, `{"id":"c","language":"python","cwd":"/"}`)
				return
			}
			if r.URL.Path == "/execute" {
				fmt.Fprintln(w, `{"type":"stdout","text":"partial"}`)
			}
		}, lost: true},
		"connection reset mid-stream": {handler: func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/contexts" {
				fmt.Fprint(w, `{"id":"c","language":"python","cwd":"/"}`)
				return
			}
			if r.URL.Path == "/execute" {
				w.Header().Set("Content-Length", "1000")
				fmt.Fprint(w, `{"type":"stdout"`)
				w.(http.Flusher).Flush()
				conn, _, _ := w.(http.Hijacker).Hijack()
				_ = conn.(*net.TCPConn).SetLinger(0)
				conn.Close()
			}
		}, lost: true},
		"unexpected end from the server": {handler: func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/contexts" {
				fmt.Fprint(w, `{"id":"c","language":"python","cwd":"/"}`)
				return
			}
			fmt.Fprintln(w, `{"type":"unexpected_end_of_execution"}`)
		}, lost: true},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			url := tc.url
			if tc.handler != nil {
				srv := httptest.NewServer(tc.handler)
				defer srv.Close()
				url = srv.URL
			}
			c := &Client{BaseURL: url, AccessToken: "tok-SECRET-value"}
			_, err := c.Run(context.Background(), sandbox.Request{Code: "1"})
			if err == nil {
				t.Fatal("no error")
			}
			if got := errors.Is(err, sandbox.ErrSandboxLost); got != tc.lost {
				t.Errorf("ErrSandboxLost = %v, want %v: %v", got, tc.lost, err)
			}
			if got := errors.Is(err, ErrUnauthorized); got != tc.unauth {
				t.Errorf("ErrUnauthorized = %v, want %v: %v", got, tc.unauth, err)
			}
			if tc.unauth && !errors.Is(err, sandbox.ErrUnavailable) {
				t.Errorf("ErrUnauthorized does not wrap ErrUnavailable: %v", err)
			}
			var se *StatusError
			if tc.code != 0 && (!errors.As(err, &se) || se.Code != tc.code) {
				t.Errorf("status = %v, want %d", err, tc.code)
			}
			if strings.Contains(err.Error(), "SECRET") {
				t.Errorf("the token leaked into the error: %v", err)
			}
		})
	}
}

func TestRunRejectsBadInput(t *testing.T) {
	c := &Client{BaseURL: "http://127.0.0.1:1"}
	for name, req := range map[string]sandbox.Request{
		"path in a file name": {Code: "1", Files: []sandbox.File{{Name: "../x"}}},
		"hidden file":         {Code: "1", Files: []sandbox.File{{Name: ".env"}}},
		"unknown format":      {Code: "1", Formats: []sandbox.Format{"gif"}},
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := c.Run(context.Background(), req); err == nil || errors.Is(err, sandbox.ErrSandboxLost) {
				t.Errorf("err = %v, want a validation error", err)
			}
		})
	}
}

func TestHealthAndContexts(t *testing.T) {
	var mu sync.Mutex
	var seen []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = append(seen, r.Method+" "+r.URL.Path+" token="+r.Header.Get(HeaderAccessToken))
		mu.Unlock()
		switch {
		case r.URL.Path == "/health":
			fmt.Fprint(w, `"OK"`)
		case r.URL.Path == "/contexts" && r.Method == http.MethodGet:
			fmt.Fprint(w, `[{"id":"a","language":"python","cwd":"/home/user"}]`)
		case r.URL.Path == "/contexts" && r.Method == http.MethodPost:
			var req CreateContextRequest
			_ = json.NewDecoder(r.Body).Decode(&req)
			fmt.Fprintf(w, `{"id":"b","language":%q,"cwd":%q}`, req.Language, req.Cwd)
		}
	}))
	defer srv.Close()
	c := &Client{BaseURL: srv.URL + "/", AccessToken: "t"}
	ctx := context.Background()
	if err := c.Health(ctx); err != nil {
		t.Fatal(err)
	}
	cx, err := c.CreateContext(ctx, CreateContextRequest{Language: "python", Cwd: "/w"})
	if err != nil || cx != (Context{ID: "b", Language: "python", Cwd: "/w"}) {
		t.Fatalf("CreateContext = %+v, %v", cx, err)
	}
	list, err := c.ListContexts(ctx)
	if err != nil || len(list) != 1 || list[0].ID != "a" {
		t.Fatalf("ListContexts = %+v, %v", list, err)
	}
	if err := c.RestartContext(ctx, "b"); err != nil {
		t.Fatal(err)
	}
	if err := c.DeleteContext(ctx, "b"); err != nil {
		t.Fatal(err)
	}
	want := []string{"GET /health token=", "POST /contexts token=t", "GET /contexts token=t", "POST /contexts/b/restart token=t", "DELETE /contexts/b token=t"}
	if d := cmp.Diff(want, seen); d != "" {
		t.Errorf("requests (-want +got):\n%s", d)
	}
}

func TestOutputCaps(t *testing.T) {
	f := &fakeServer{script: lines(
		`{"type":"stdout","text":"0123456789"}`,
		`{"type":"stdout","text":"abcdef"}`,
		`{"type":"result","png":"`+base64.StdEncoding.EncodeToString(make([]byte, 40))+`"}`,
		`{"type":"result","png":"`+base64.StdEncoding.EncodeToString(make([]byte, 40))+`"}`,
		eoe,
	)}
	srv := httptest.NewServer(f)
	defer srv.Close()
	c := &Client{BaseURL: srv.URL, MaxOutputBytes: 12, MaxArtifactBytes: 50}
	res, err := c.Run(context.Background(), sandbox.Request{Code: "x"})
	if err != nil {
		t.Fatal(err)
	}
	if res.Stdout != "0123456789ab\u2026 [truncated: 4 bytes omitted]" {
		t.Errorf("stdout = %q", res.Stdout)
	}
	if len(res.Files) != 1 || res.Error == nil || res.Error.Name != sandbox.ErrNameOutputLimitExceeded || !strings.Contains(res.Error.Value, "figure_2.png") {
		t.Errorf("files = %d, error = %+v", len(res.Files), res.Error)
	}
}

func TestRunCollectsWrittenFiles(t *testing.T) {
	csv := base64.StdEncoding.EncodeToString([]byte("a,b\n1,2\n"))
	f := &fakeServer{script: lines(`{"type":"stdout","text":"done\n"}`, eoe),
		files: `{"files": [{"name": "outputs/table.csv", "data": "` + csv + `"}], "omitted": ["outputs/huge.bin (99999999 bytes)"]}`}
	srv := httptest.NewServer(f)
	defer srv.Close()
	res, err := (&Client{BaseURL: srv.URL}).Run(context.Background(), sandbox.Request{Code: "x", Files: []sandbox.File{{Name: "data.csv", Data: []byte("a\n")}}})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Files) != 1 || res.Files[0].Name != "outputs/table.csv" || res.Files[0].Figure || res.Files[0].MIMEType != "text/csv" || string(res.Files[0].Data) != "a,b\n1,2\n" {
		t.Errorf("files = %+v", res.Files)
	}
	if res.Success || res.Error == nil || res.Error.Name != sandbox.ErrNameOutputLimitExceeded || !strings.Contains(res.Error.Value, "huge.bin") {
		t.Errorf("error = %+v", res.Error)
	}
	// The epilogue was told which files were inputs.
	var spec struct{ Inputs []string }
	code := f.execs[2].Code
	b64 := code[strings.Index(code, `__vizops_collect("`)+len(`__vizops_collect("`):]
	b64 = b64[:strings.Index(b64, `"`)]
	raw, _ := base64.StdEncoding.DecodeString(b64)
	if err := json.Unmarshal(raw, &spec); err != nil || len(spec.Inputs) != 1 || spec.Inputs[0] != "data.csv" {
		t.Errorf("epilogue spec = %s (%v)", raw, err)
	}
}

func TestRunKeepsTheResultWhenCollectingFails(t *testing.T) {
	f := &fakeServer{script: lines(`{"type":"result","text":"42","is_main_result":true}`, eoe), files: `not json`}
	srv := httptest.NewServer(f)
	defer srv.Close()
	res, err := (&Client{BaseURL: srv.URL}).Run(context.Background(), sandbox.Request{Code: "x"})
	if err != nil {
		t.Fatal(err)
	}
	if !res.Success || res.Text != "42" || !strings.Contains(res.Stderr, "could not be collected") {
		t.Errorf("result = %+v", res)
	}
}

func TestHealthWhileStarting(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprint(w, `"starting"`)
	}))
	defer srv.Close()
	err := (&Client{BaseURL: srv.URL}).Health(context.Background())
	if !errors.Is(err, ErrStarting) || errors.Is(err, sandbox.ErrSandboxLost) {
		t.Errorf("err = %v, want ErrStarting only", err)
	}
}

// A walk the epilogue stopped early (a tree too deep or too large) fails the job with
// OutputLimitExceeded saying why, as the Local runner's collection does.
func TestRunReportsAnIncompleteCollection(t *testing.T) {
	f := &fakeServer{script: lines(`{"type":"stdout","text":"nested\n"}`, eoe),
		files: `{"files": [], "omitted": [], "notes": ["directories nested deeper than 16"]}`}
	srv := httptest.NewServer(f)
	defer srv.Close()
	res, err := (&Client{BaseURL: srv.URL}).Run(context.Background(), sandbox.Request{Code: "x"})
	if err != nil {
		t.Fatal(err)
	}
	if res.Success || res.Error == nil || res.Error.Name != sandbox.ErrNameOutputLimitExceeded || !strings.Contains(res.Error.Value, "nested deeper than 16") {
		t.Errorf("success %v, error = %+v", res.Success, res.Error)
	}
}
