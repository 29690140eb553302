package main

import (
	"strings"
	"testing"
)

func TestParseAPICounts(t *testing.T) {
	in := `# HELP rest_client_requests_total Number of HTTP requests, partitioned by status code, method, and host.
# TYPE rest_client_requests_total counter
rest_client_requests_total{code="200",host="127.0.0.1:6443",method="GET"} 41
rest_client_requests_total{code="201",host="127.0.0.1:6443",method="POST"} 7
rest_client_requests_total{code="200",host="127.0.0.1:6443",method="PATCH"} 12
rest_client_requests_total{code="409",host="127.0.0.1:6443",method="PATCH"} 1
rest_client_request_duration_seconds_bucket{host="x",verb="GET",le="0.1"} 99
`
	got, err := parseAPICounts(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	if got["GET"] != 41 || got["POST"] != 7 || got["PATCH"] != 13 || got.writes() != 20 {
		t.Fatalf("got %v (writes %v)", got, got.writes())
	}
	d := got.minus(apiCounts{"GET": 40, "PATCH": 3})
	if d["GET"] != 1 || d["PATCH"] != 10 || d["POST"] != 7 {
		t.Fatalf("minus: %v", d)
	}
}
