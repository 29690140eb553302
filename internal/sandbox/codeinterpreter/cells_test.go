package codeinterpreter

import (
	"context"
	"encoding/base64"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/vizops/viz-operator/internal/sandbox"
)

// TestRunInOneExecution: a server that advertises HeaderCells gets the prelude, the
// code and the epilogue in one execution; any other server (E2B's), or a client told
// NoCells, gets three; the Result is the same.
func TestRunInOneExecution(t *testing.T) {
	png := base64.StdEncoding.EncodeToString([]byte("\x89PNG fake"))
	csv := base64.StdEncoding.EncodeToString([]byte("a,b\n1,2\n"))
	for name, tc := range map[string]struct {
		cells, noCells bool
		wantExecs      int
	}{
		"a server without the extension":     {wantExecs: 3},
		"a server with it":                   {cells: true, wantExecs: 1},
		"a server with it, a client NoCells": {cells: true, noCells: true, wantExecs: 3},
	} {
		t.Run(name, func(t *testing.T) {
			f := &fakeServer{cells: tc.cells, script: lines(
				`{"type":"stdout","text":"hello\n"}`,
				`{"type":"result","png":"`+png+`","is_main_result":false}`,
				`{"type":"result","text":"42","is_main_result":true}`,
				eoe,
			), files: `{"files": [{"name": "outputs/t.csv", "data": "` + csv + `"}], "omitted": []}`}
			srv := httptest.NewServer(f)
			defer srv.Close()
			c := &Client{BaseURL: srv.URL, NoCells: tc.noCells}
			res, err := c.Run(context.Background(), sandbox.Request{Code: "x + 1", Timeout: time.Minute, Files: []sandbox.File{{Name: "data.csv", Data: []byte("a\n")}}})
			if err != nil {
				t.Fatal(err)
			}
			var names []string
			for _, a := range res.Files {
				names = append(names, a.Name)
			}
			if d := cmp.Diff([]string{"figure_1.png", "outputs/t.csv"}, names); d != "" || !res.Success || res.Stdout != "hello\n" || res.Text != "42" {
				t.Errorf("result = %+v, artifacts (-want +got):\n%s", res, d)
			}
			if len(f.execs) != tc.wantExecs {
				t.Fatalf("%d executions, want %d: %+v", len(f.execs), tc.wantExecs, f.execs)
			}
			if tc.wantExecs == 1 {
				e := f.execs[0]
				if e.Code != "x + 1" || e.ContextID != "ctx-1" || e.TimeoutMS != 60000 ||
					!strings.Contains(e.Prelude, "__vizops_prelude") || !strings.Contains(e.Epilogue, "__vizops_collect") {
					t.Errorf("execution = %+v", e)
				}
			}
			for _, e := range f.execs {
				if tc.wantExecs == 3 && (e.Prelude != "" || e.Epilogue != "") {
					t.Errorf("an execution carried a prelude or an epilogue to a server that did not ask for them: %+v", e)
				}
			}
		})
	}
}

// TestRunCellsPreludeError: a prelude that raised is the InputFiles error, and the
// code's marker never came.
func TestRunCellsPreludeError(t *testing.T) {
	for _, cells := range []bool{false, true} {
		t.Run(fmt.Sprintf("cells=%v", cells), func(t *testing.T) {
			f := &fakeServer{cells: cells, preludeErr: `{"type":"error","name":"OSError","value":"No space left on device","traceback":"tb"}`,
				script: lines(`{"type":"stdout","text":"ran\n"}`, eoe)}
			srv := httptest.NewServer(f)
			defer srv.Close()
			res, err := (&Client{BaseURL: srv.URL}).Run(context.Background(), sandbox.Request{Code: "x", Files: []sandbox.File{{Name: "data.csv", Data: []byte("a\n")}}})
			if err != nil {
				t.Fatal(err)
			}
			if res.Success || res.Error == nil || res.Error.Name != sandbox.ErrNameInputFiles || !strings.Contains(res.Error.Value, "No space left") || res.Stdout != "" {
				t.Errorf("result = %+v", res)
			}
		})
	}
}

// TestRunCellsCutAtTheTimeout: a stream cut at the timeout (a server that does not
// enforce it) keeps what came, and the files are collected in an execution of their
// own.
func TestRunCellsCutAtTheTimeout(t *testing.T) {
	f := &fakeServer{cells: true, files: `{"files": [{"name": "outputs/p.txt", "data": "cA=="}], "omitted": []}`,
		script: func(w http.ResponseWriter, r *http.Request, _ ExecuteRequest) {
			fmt.Fprintln(w, `{"type":"stdout","text":"started\n"}`)
			w.(http.Flusher).Flush()
			select {
			case <-r.Context().Done():
			case <-time.After(10 * time.Second):
			}
		}}
	srv := httptest.NewServer(f)
	defer srv.Close()
	res, err := (&Client{BaseURL: srv.URL}).Run(context.Background(), sandbox.Request{Code: "while True: pass", Timeout: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if !res.TimedOut || res.Error == nil || res.Error.Name != sandbox.ErrNameTimeout || res.Stdout != "started\n" ||
		len(res.Files) != 1 || res.Files[0].Name != "outputs/p.txt" {
		t.Errorf("result = %+v", res)
	}
	if len(f.execs) != 2 || !strings.Contains(f.execs[1].Code, "__vizops_collect") || f.execs[1].Prelude != "" {
		t.Errorf("executions = %+v", f.execs)
	}
}

// TestRunCheckedReportsTheDelete: RunChecked says whether the job's context was
// deleted, so the Local pool needs no ListContexts after each job.
func TestRunCheckedReportsTheDelete(t *testing.T) {
	for name, fails := range map[string]bool{"deleted": false, "the DELETE failed": true} {
		t.Run(name, func(t *testing.T) {
			f := &fakeServer{cells: true, deleteFails: fails, script: lines(`{"type":"stdout","text":"ok\n"}`, eoe)}
			srv := httptest.NewServer(f)
			defer srv.Close()
			res, deleteErr, err := (&Client{BaseURL: srv.URL}).RunChecked(context.Background(), sandbox.Request{Code: "x"})
			if err != nil || !res.Success || res.Stdout != "ok\n" {
				t.Fatalf("result = %+v, %v", res, err)
			}
			if (deleteErr != nil) != fails {
				t.Errorf("deleteErr = %v, want an error: %v", deleteErr, fails)
			}
		})
	}
}
