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

func TestParseResourceWrites(t *testing.T) {
	in := `apiserver_request_total{code="201",component="apiserver",dry_run="",group="",resource="events",scope="namespace",subresource="",verb="POST",version="v1"} 5
apiserver_request_total{code="201",component="apiserver",dry_run="",group="viz.example.com",resource="visualizationrequests",scope="namespace",subresource="",verb="POST",version="v1alpha1"} 9
apiserver_request_total{code="200",component="apiserver",dry_run="",group="viz.example.com",resource="visualizationrequests",scope="namespace",subresource="status",verb="PUT",version="v1alpha1"} 10
apiserver_request_total{code="409",component="apiserver",dry_run="",group="viz.example.com",resource="visualizationrequests",scope="namespace",subresource="status",verb="PUT",version="v1alpha1"} 1
apiserver_request_total{code="200",component="apiserver",dry_run="",group="viz.example.com",resource="visualizationrequests",scope="namespace",subresource="",verb="PATCH",version="v1alpha1"} 2
apiserver_request_total{code="200",component="apiserver",dry_run="",group="viz.example.com",resource="sandboxpools",scope="namespace",subresource="status",verb="PATCH",version="v1alpha1"} 4
apiserver_request_total{code="200",component="apiserver",dry_run="",group="coordination.k8s.io",resource="leases",scope="namespace",subresource="",verb="PUT",version="v1"} 3
apiserver_request_total{code="200",component="apiserver",dry_run="",group="",resource="configmaps",scope="namespace",subresource="",verb="GET",version="v1"} 70
`
	got, err := parseResourceWrites(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	want := resourceWrites{"events": 5, "visualizationrequests": 9, "visualizationrequests/status": 11, "visualizationrequests/update": 2, "sandboxpools/status": 4, "leases/update": 3}
	if len(got) != len(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Fatalf("%s: got %v, want %v (all: %v)", k, got[k], v, got)
		}
	}
	// The requests' own: their status writes, other updates and Events; not the
	// bench's creations, the pool's status or the leases.
	if own := got.requestOwn(); own != 18 {
		t.Fatalf("requestOwn = %v, want 18", own)
	}
	if d := got.minus(resourceWrites{"events": 2, "leases/update": 3}); d["events"] != 3 || d["leases/update"] != 0 {
		t.Fatalf("minus: %v", d)
	}
}
