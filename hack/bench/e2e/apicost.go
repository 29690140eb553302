package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"k8s.io/client-go/rest"
)

// The controller's own cost per request: the manager's API requests (client-go's
// rest_client_requests_total on its metrics endpoint, by HTTP method) counted over
// the warm run, and a CPU profile of that run from its pprof endpoint.

// freeAddr returns a loopback address with a port free right now.
func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// apiCounts is the manager's API requests so far, by method (GET, POST, PUT, PATCH,
// DELETE); watches are GETs.
type apiCounts map[string]float64

func (a apiCounts) writes() float64 { return a["POST"] + a["PUT"] + a["PATCH"] + a["DELETE"] }

func (a apiCounts) minus(b apiCounts) apiCounts {
	out := apiCounts{}
	for k, v := range a {
		out[k] = v - b[k]
	}
	return out
}

// scrapeAPICounts reads rest_client_requests_total from the metrics endpoint at addr.
func scrapeAPICounts(ctx context.Context, addr string) (apiCounts, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/metrics", nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("metrics endpoint: %s", resp.Status)
	}
	return parseAPICounts(resp.Body)
}

// parseAPICounts sums rest_client_requests_total's samples by their method label.
func parseAPICounts(r io.Reader) (apiCounts, error) {
	out := apiCounts{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "rest_client_requests_total{") {
			continue
		}
		i := strings.Index(line, `method="`)
		end := strings.LastIndexByte(line, '}')
		if i < 0 || end < 0 {
			continue
		}
		method := line[i+len(`method="`):]
		method = method[:strings.IndexByte(method, '"')]
		v, err := strconv.ParseFloat(strings.TrimSpace(line[end+1:]), 64)
		if err != nil {
			return nil, fmt.Errorf("metrics: %q: %w", line, err)
		}
		out[method] += v
	}
	return out, sc.Err()
}

// resourceWrites is the API server's write requests by resource ("events",
// "visualizationrequests/status"), from its apiserver_request_total: what every client
// wrote, split by what it wrote to, where the manager's own metric has methods only.
type resourceWrites map[string]float64

// requestOwn is what the requests cost the manager: their status writes and other
// updates (not the bench's creations, which are POSTs of the object), their Events and
// ConfigMaps.
func (w resourceWrites) requestOwn() float64 {
	return w["events"] + w["configmaps"] + w["visualizationrequests/status"] + w["visualizationrequests/update"]
}

func (w resourceWrites) minus(b resourceWrites) resourceWrites {
	out := resourceWrites{}
	for k, v := range w {
		if d := v - b[k]; d != 0 {
			out[k] = d
		}
	}
	return out
}

// parseResourceWrites sums apiserver_request_total's write samples (POST, PUT, PATCH,
// APPLY, DELETE) by resource and subresource. A write to an object's main resource
// other than its creation is keyed "<resource>/update".
func parseResourceWrites(r io.Reader) (resourceWrites, error) {
	out := resourceWrites{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "apiserver_request_total{") {
			continue
		}
		end := strings.LastIndexByte(line, '}')
		if end < 0 {
			continue
		}
		labels := map[string]string{}
		for _, kv := range strings.Split(line[len("apiserver_request_total{"):end], ",") {
			k, v, ok := strings.Cut(kv, "=")
			if ok {
				labels[k] = strings.Trim(v, `"`)
			}
		}
		verb, key := labels["verb"], labels["resource"]
		switch {
		case verb != "POST" && verb != "PUT" && verb != "PATCH" && verb != "APPLY" && verb != "DELETE":
			continue
		case labels["subresource"] != "":
			key += "/" + labels["subresource"]
		case verb != "POST":
			key += "/update"
		}
		v, err := strconv.ParseFloat(strings.TrimSpace(line[end+1:]), 64)
		if err != nil {
			return nil, fmt.Errorf("metrics: %q: %w", line, err)
		}
		out[key] += v
	}
	return out, sc.Err()
}

// sumWrites is every write w counts.
func sumWrites(w resourceWrites) float64 {
	t := 0.0
	for _, v := range w {
		t += v
	}
	return t
}

// readResourceWrites parses a saved copy of the API server's /metrics.
func readResourceWrites(path string) (resourceWrites, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return parseResourceWrites(f)
}

// saveCPUProfile fetches a CPU profile of seconds from the pprof endpoint at addr into
// path; run it in a goroutine while the measured work runs.
func saveCPUProfile(ctx context.Context, addr string, seconds int, path string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet,
		fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", addr, seconds), nil)
	if err != nil {
		return err
	}
	c := &http.Client{Timeout: time.Duration(seconds+30) * time.Second}
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("pprof endpoint: %s", resp.Status)
	}
	return saveBody(resp, path)
}

// saveMetrics writes the metrics endpoint's text at addr to path.
func saveMetrics(ctx context.Context, addr, path string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/metrics", nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	return saveBody(resp, path)
}

// saveBody writes resp's body to path.
func saveBody(resp *http.Response, path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// saveAPIServerMetrics writes the API server's /metrics (as the bench's admin) to path.
func (b *bench) saveAPIServerMetrics(ctx context.Context, path string) error {
	return b.saveAPIServerPath(ctx, "/metrics", path)
}

// saveAPIServerProfile writes a CPU profile of the API server over seconds to path (run
// it in a goroutine while the measured work runs).
func (b *bench) saveAPIServerProfile(ctx context.Context, seconds int, path string) error {
	return b.saveAPIServerPath(ctx, fmt.Sprintf("/debug/pprof/profile?seconds=%d", seconds), path)
}

func (b *bench) saveAPIServerPath(ctx context.Context, urlPath, path string) error {
	hc, err := rest.HTTPClientFor(b.rest)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(b.rest.Host, "/")+urlPath, nil)
	if err != nil {
		return err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("API server %s: %s", urlPath, resp.Status)
	}
	return saveBody(resp, path)
}

// jobSpan is one request's job as the manager logged it (at debug level, nanosecond
// timestamps): the pass that starts it about to write Running, the Running status write
// acknowledged (the job starts right after it), the job's end (the "execution
// finished" pass's time less its endedMsAgo) and the Succeeded write acknowledged.
type jobSpan struct{ start, ack, end, done time.Time }

// managerJobSpans reads the warm manager's log for each request's jobSpan, so the
// controller's own part of a request is its end to end time less its job: the sandbox's
// run-to-run spread (hundreds of milliseconds under load) is then out of the figure.
func managerJobSpans(path string) (map[string]jobSpan, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	out := map[string]jobSpan{}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	for sc.Scan() {
		var l struct {
			TS    string  `json:"ts"`
			Msg   string  `json:"msg"`
			Name  string  `json:"name"`
			Phase string  `json:"phase"`
			Ago   float64 `json:"endedMsAgo"`
		}
		if json.Unmarshal(sc.Bytes(), &l) != nil || l.Name == "" {
			continue
		}
		ts, err := time.Parse(time.RFC3339Nano, l.TS)
		if err != nil {
			continue
		}
		s := out[l.Name]
		switch {
		case l.Msg == "execution starting" && s.start.IsZero():
			s.start = ts
		case l.Msg == "status written" && l.Phase == "Succeeded" && s.done.IsZero():
			s.done = ts
		case l.Msg == "status written" && l.Phase == "Running" && s.ack.IsZero():
			s.ack = ts
		case l.Msg == "execution finished" && s.end.IsZero():
			s.end = ts.Add(-time.Duration(l.Ago * float64(time.Millisecond)))
		default:
			continue
		}
		out[l.Name] = s
	}
	return out, sc.Err()
}
