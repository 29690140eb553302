package codeinterpreter

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vizops/viz-operator/internal/sandbox"
)

// hostileAgent speaks the /execute NDJSON protocol like fakeServer, but the user's
// code and the file-listing epilogue answer with a stream generated line by line,
// without end, until the client stops reading (or total bytes were written). Nothing
// of it is held in memory. It covers what a sandbox that redefines print or writes
// to the results pipe can make the agent send; it does not run code.
type hostileAgent struct {
	code    func(i int) string // the i-th line of the code's stream; "" ends it (then end_of_execution)
	listing func(i int) string // the i-th line of the epilogue's stream; nil: an honest empty list
	total   int64              // the most the agent writes per stream
	written atomic.Int64
}

func (h *hostileAgent) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch {
	case r.URL.Path == "/contexts" && r.Method == http.MethodPost:
		fmt.Fprint(w, `{"id":"ctx-1","language":"python","cwd":"/home/user"}`)
	case r.URL.Path == "/contexts/ctx-1" && r.Method == http.MethodDelete:
	case r.URL.Path == "/execute":
		var req ExecuteRequest
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		gen := h.code
		switch {
		case strings.Contains(req.Code, "__vizops_prelude"):
			gen = nil
		case strings.Contains(req.Code, "__vizops_collect"):
			gen = h.listing
			if gen == nil {
				gen = func(i int) string {
					if i > 0 {
						return ""
					}
					line, _ := json.Marshal(Message{Type: TypeStdout, Text: collectMarker + `{"files": [], "omitted": []}` + "\n"})
					return string(line)
				}
			}
		}
		bw := bufio.NewWriterSize(w, 256<<10)
		var sent int64
		for i := 0; gen != nil && sent < h.total; i++ {
			line := gen(i)
			if line == "" {
				break
			}
			n, err := bw.WriteString(line + "\n")
			sent += int64(n)
			h.written.Add(int64(n))
			if err != nil {
				return // the client hung up
			}
		}
		fmt.Fprintln(bw, eoe)
		_ = bw.Flush()
	default:
		http.NotFound(w, r)
	}
}

// heapPeak samples the heap in use while run runs and returns its peak above the
// heap in use before it.
func heapPeak(t *testing.T, run func()) uint64 {
	t.Helper()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	base := ms.HeapInuse
	var peak uint64
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(2 * time.Millisecond)
		defer tick.Stop()
		for {
			var s runtime.MemStats
			runtime.ReadMemStats(&s)
			peak = max(peak, s.HeapInuse)
			select {
			case <-done:
				return
			case <-tick.C:
			}
		}
	}()
	run()
	close(done)
	wg.Wait()
	runtime.ReadMemStats(&ms)
	peak = max(peak, ms.HeapInuse)
	if peak < base {
		return 0
	}
	return peak - base
}

func TestHostileAgentKeepsTheHeapBounded(t *testing.T) {
	const gib = 1 << 30
	chunk := strings.Repeat("x", 64<<10)
	stdout, _ := json.Marshal(Message{Type: TypeStdout, Text: chunk})
	html, _ := json.Marshal(Message{Type: TypeResult, HTML: "<p>" + chunk + "</p>"})
	mainResult, _ := json.Marshal(Message{Type: TypeResult, Text: chunk, JSON: json.RawMessage(`{"a":"` + chunk + `"}`), IsMainResult: ptr(true)})
	// A chart description with tens of thousands of points, under a tiny figure.
	points := strings.TrimSuffix(strings.Repeat("1.5,", 16<<10), ",")
	chart := `{"type":"result","png":"iVBORw0KGgo=","extra":{"vizops/chart":[{"type":"line","title":"` + chunk[:4096] + `","series":[{"name":"s","type":"line","y":[` + points + `]}]}],"text/plain":"` + chunk + `"}}`
	listingStart, _ := json.Marshal(Message{Type: TypeStdout, Text: collectMarker + `{"files": [{"name": "a.bin", "data": "`})
	listingMore, _ := json.Marshal(Message{Type: TypeStdout, Text: strings.Repeat("QUFB", 16<<10)})
	forever := func(line string) func(int) string { return func(int) string { return line } }

	cases := map[string]struct {
		agent *hostileAgent
		// maxStream overrides the client's stream budget (0: the default).
		maxStream int64
		wantFail  string // a part of the error's value; "" means the request succeeds
	}{
		"gigabytes of stdout": {
			agent:    &hostileAgent{code: forever(string(stdout)), total: 4 * gib},
			wantFail: "stdout, stderr, results, charts and files together",
		},
		"gigabytes of chart descriptions": {
			agent:    &hostileAgent{code: forever(chart), total: 4 * gib},
			wantFail: "stdout, stderr, results, charts and files together",
		},
		"gigabytes of displays and main results": {
			agent: &hostileAgent{code: func(i int) string {
				if i%2 == 0 {
					return string(html)
				}
				return string(mainResult)
			}, total: 4 * gib},
			wantFail: "stdout, stderr, results, charts and files together",
		},
		"a file listing without end": {
			agent: &hostileAgent{code: func(i int) string { return map[bool]string{true: string(stdout)}[i == 0] }, listing: func(i int) string {
				if i == 0 {
					return string(listingStart)
				}
				return string(listingMore)
			}, total: 4 * gib},
			wantFail: "the listing of the files the code wrote",
		},
		"a gigabyte of stdout read to its end under a raised budget": { // skipped with -short
			agent:     &hostileAgent{code: forever(string(stdout)), total: gib},
			maxStream: 2 * gib,
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			if tc.wantFail == "" && testing.Short() {
				t.Skip("reads a gigabyte")
			}
			srv := httptest.NewServer(tc.agent)
			defer srv.Close()
			c := &Client{BaseURL: srv.URL, MaxArtifactBytes: 8 << 20, MaxStreamBytes: tc.maxStream, DefaultTimeout: time.Hour}
			var res *sandbox.Result
			var err error
			grew := heapPeak(t, func() { res, err = c.Run(context.Background(), sandbox.Request{Code: "x"}) })
			t.Logf("heap grew by %.1f MiB; the agent wrote %.1f MiB", float64(grew)/(1<<20), float64(tc.agent.written.Load())/(1<<20))
			if err != nil {
				t.Fatalf("Run: %v", err)
			}
			if grew > 64<<20 {
				t.Errorf("the heap grew by %.1f MiB, want under 64 MiB", float64(grew)/(1<<20))
			}
			if len(res.Stdout) > 2<<20 || len(res.Text) > 2<<20 || len(res.Charts) > 8 {
				t.Errorf("kept stdout %d, text %d, charts %d", len(res.Stdout), len(res.Text), len(res.Charts))
			}
			if tc.wantFail == "" {
				if !res.Success || tc.agent.written.Load() < gib {
					t.Errorf("success = %v after %d bytes (error %+v), want the whole stream read and truncated", res.Success, tc.agent.written.Load(), res.Error)
				}
				return
			}
			if res.Success || res.Error == nil || res.Error.Name != sandbox.ErrNameOutputLimitExceeded || !strings.Contains(res.Error.Value, tc.wantFail) {
				t.Fatalf("success = %v, error = %+v; want %s naming %q", res.Success, res.Error, sandbox.ErrNameOutputLimitExceeded, tc.wantFail)
			}
			if w := tc.agent.written.Load(); w > gib {
				t.Errorf("the agent wrote %d bytes: the client kept reading past its budget", w)
			}
		})
	}
}

func ptr[T any](v T) *T { return &v }
