package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	vizv1 "github.com/vizops/viz-operator/api/v1alpha1"
	"github.com/vizops/viz-operator/hack/internal/controlplane"
)

func TestParseObjects(t *testing.T) {
	tests := map[string]struct {
		yaml    string
		want    []string // kind/name
		wantErr string
	}{
		"several documents, comments and empty ones": {
			yaml: "# a comment\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n---\n# only a comment\n---\napiVersion: viz.vizops.io/v1alpha1\nkind: VisualizationRequest\nmetadata:\n  name: b\nspec:\n  prompt: x\n---\n",
			want: []string{"ConfigMap/a", "VisualizationRequest/b"},
		},
		"one document":   {yaml: "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: ns1\n", want: []string{"Namespace/ns1"}},
		"empty":          {yaml: "", want: nil},
		"no kind":        {yaml: "apiVersion: v1\nmetadata:\n  name: n\n", wantErr: "document 1: apiVersion, kind and metadata.name are required"},
		"no name":        {yaml: "apiVersion: v1\nkind: ConfigMap\n---\n", wantErr: "document 1: apiVersion, kind and metadata.name are required"},
		"invalid YAML":   {yaml: "apiVersion: v1\nkind: [unclosed\n", wantErr: "document 1"},
		"second is bad ": {yaml: "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n---\nkind: ConfigMap\n", wantErr: "document 2"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			objs, err := parseObjects([]byte(tc.yaml))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, o := range objs {
				got = append(got, o.GetKind()+"/"+o.GetName())
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("objects (-want +got):\n%s", diff)
			}
		})
	}
}

// The real samples: every file the kustomization lists, in its order, and what each
// request must end as.
func TestLoadSamples(t *testing.T) {
	objs, err := loadSamples(filepath.Join("..", "..", "config", "samples"))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	expect := map[string]string{}
	for _, o := range objs {
		got = append(got, o.GetKind()+"/"+o.GetName())
		if isRequest(o) {
			expect[o.GetName()] = expectationFor(o).String()
		}
	}
	want := []string{
		"SandboxClass/local",
		"SandboxPool/default",
		"VisualizationRequest/treatment-effectiveness",
		"VisualizationRequest/voe-per-month",
		"VisualizationRequest/dosage-vs-hbf",
		"ConfigMap/hemoglobin-readings",
		"VisualizationRequest/hemoglobin-trend",
		"VisualizationRequest/crisis-causes-interactive",
		"VisualizationRequest/dosing-question",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("objects (-want +got):\n%s", diff)
	}
	wantExpect := map[string]string{
		"treatment-effectiveness":   "Succeeded with png",
		"voe-per-month":             "Succeeded with png",
		"dosage-vs-hbf":             "Succeeded with png+svg",
		"hemoglobin-trend":          "Succeeded with png",
		"crisis-causes-interactive": "Succeeded with html",
		"dosing-question":           "Skipped (NotAVisualization)",
	}
	if diff := cmp.Diff(wantExpect, expect); diff != "" {
		t.Errorf("expectations (-want +got):\n%s", diff)
	}

	// Without a kustomization: every *.yaml, sorted.
	dir := t.TempDir()
	for name, body := range map[string]string{
		"b.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: b}\n",
		"a.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: a2}\n",
		"c.txt":  "not yaml",
	} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	objs, err = loadSamples(dir)
	if err != nil {
		t.Fatal(err)
	}
	got = nil
	for _, o := range objs {
		got = append(got, o.GetName())
	}
	if diff := cmp.Diff([]string{"a", "a2", "b"}, got); diff != "" {
		t.Errorf("objects (-want +got):\n%s", diff)
	}
	if _, err := loadSamples(t.TempDir()); err == nil || !strings.Contains(err.Error(), "no objects") {
		t.Errorf("empty dir: err = %v", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "kustomization.yaml"), []byte("resources: [missing.yaml]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := loadSamples(dir); err == nil || !strings.Contains(err.Error(), "missing.yaml") {
		t.Errorf("a listed file that does not exist: err = %v", err)
	}
}

func request(phase vizv1.Phase, reason, msg string, formats ...string) *vizv1.VisualizationRequest {
	vr := &vizv1.VisualizationRequest{ObjectMeta: metav1.ObjectMeta{Name: "r", Namespace: "ns"}}
	vr.Status.Phase = phase
	if reason != "" {
		vr.Status.Conditions = []metav1.Condition{{Type: vizv1.ConditionReady, Reason: reason, Message: msg}}
	}
	for _, f := range formats {
		vr.Status.Artifacts = append(vr.Status.Artifacts, vizv1.ArtifactStatus{Name: "figure." + f, Format: f})
	}
	return vr
}

func TestCheck(t *testing.T) {
	png := expectation{formats: []string{"png"}}
	pngSVG := expectation{formats: []string{"png", "svg"}}
	skip := expectation{skipped: true}
	tests := map[string]struct {
		vr  *vizv1.VisualizationRequest
		e   expectation
		ok  bool
		why string
	}{
		"succeeded with the format":         {vr: request(vizv1.PhaseSucceeded, "Succeeded", "", "png"), e: png, ok: true},
		"succeeded with both formats":       {vr: request(vizv1.PhaseSucceeded, "Succeeded", "", "svg", "png"), e: pngSVG, ok: true},
		"succeeded with one of two formats": {vr: request(vizv1.PhaseSucceeded, "Succeeded", "", "png"), e: pngSVG, why: "Succeeded but has no svg artifact"},
		"succeeded without artifacts":       {vr: request(vizv1.PhaseSucceeded, "Succeeded", ""), e: png, why: "Succeeded but has no png artifact"},
		"failed": {vr: request(vizv1.PhaseFailed, "CodeError", "the code raised\nNameError"), e: png,
			why: "ended Failed: CodeError: the code raised NameError"},
		"skipped as expected":         {vr: request(vizv1.PhaseSkipped, vizv1.ReasonNotAVisualization, ""), e: skip, ok: true},
		"skipped for another reason":  {vr: request(vizv1.PhaseSkipped, "Other", ""), e: skip, why: "ended Skipped (Other); expected Skipped (NotAVisualization)"},
		"succeeded but expected skip": {vr: request(vizv1.PhaseSucceeded, "Succeeded", "", "png"), e: skip, why: "ended Succeeded (Succeeded); expected Skipped (NotAVisualization)"},
		"skipped but expected a chart": {vr: request(vizv1.PhaseSkipped, vizv1.ReasonNotAVisualization, "not a chart"), e: png,
			why: "ended Skipped: NotAVisualization: not a chart"},
		"not finished": {vr: request("", "", ""), e: png, why: "still Pending; expected Succeeded with png"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			ok, why := check(tc.vr, tc.e)
			if ok != tc.ok || why != tc.why {
				t.Errorf("check = %v %q, want %v %q", ok, why, tc.ok, tc.why)
			}
		})
	}
}

func hash(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func TestWriteArtifacts(t *testing.T) {
	pngData, svgData := []byte("\x89PNG fake"), []byte("<svg/>")
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "r-artifacts"},
		BinaryData: map[string][]byte{"figure.svg": svgData}, Data: map[string]string{"notes.txt": "hello"}}
	c := fake.NewClientBuilder().WithScheme(newScheme()).WithObjects(cm).Build()
	inline := func(name string, data []byte) vizv1.ArtifactStatus {
		return vizv1.ArtifactStatus{Name: name, SizeBytes: int64(len(data)), SHA256: hash(data), Data: data}
	}
	inCM := func(name, key string, data []byte) vizv1.ArtifactStatus {
		return vizv1.ArtifactStatus{Name: name, SizeBytes: int64(len(data)), SHA256: hash(data),
			ConfigMapKeyRef: &vizv1.ConfigMapKeyReference{Name: "r-artifacts", Key: key}}
	}
	plotlyPage := []byte(`<html><head><script src="https://cdn.plot.ly/plotly-2.6.3.min.js"></script></head><body><div id="c"></div><script>Plotly.newPlot("c", [])</script></body></html>`)
	fakeLib := []byte("/* plotly.js v2.6.3 */")
	tampered := inline("figure.png", pngData)
	tampered.Data = []byte("\x89PNG changed")
	wrongSize := inline("figure.png", pngData)
	wrongSize.SizeBytes++

	tests := map[string]struct {
		arts    []vizv1.ArtifactStatus
		want    map[string]string
		wantErr string
	}{
		"inline and in a ConfigMap (binaryData and data)": {
			arts: []vizv1.ArtifactStatus{inline("figure.png", pngData), inCM("figure.svg", "figure.svg", svgData), inCM("notes.txt", "notes.txt", []byte("hello"))},
			want: map[string]string{"figure.png": string(pngData), "figure.svg": string(svgData), "notes.txt": "hello"},
		},
		"a name that would leave the directory is refused": {
			arts:    []vizv1.ArtifactStatus{inline("../../escape.png", pngData)},
			wantErr: "is not a plain file name",
		},
		"a plotly page gets plotly.js beside it": {
			arts: []vizv1.ArtifactStatus{inline("plotly_1.html", plotlyPage)},
			want: map[string]string{"plotly_1.html": "", "plotly.min.js": string(fakeLib)},
		},
		"sha256 mismatch":       {arts: []vizv1.ArtifactStatus{tampered}, wantErr: "r: artifact figure.png: sha256 mismatch: status says " + hash(pngData)},
		"size mismatch":         {arts: []vizv1.ArtifactStatus{wrongSize}, wantErr: "status says 10 bytes, got 9"},
		"sha256 of another key": {arts: []vizv1.ArtifactStatus{inCM("figure.svg", "notes.txt", svgData)}, wantErr: "sha256 mismatch"},
		"key missing":           {arts: []vizv1.ArtifactStatus{inCM("figure.svg", "nope", svgData)}, wantErr: `ConfigMap ns/r-artifacts has no key "nope"`},
		"no artifacts":          {want: map[string]string{}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			out := t.TempDir()
			// A file from an earlier run must not survive.
			if err := os.MkdirAll(filepath.Join(out, "r"), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(out, "r", "stale.png"), []byte("old"), 0o644); err != nil {
				t.Fatal(err)
			}
			vr := request(vizv1.PhaseSucceeded, "", "")
			vr.Status.Artifacts = tc.arts
			paths, err := writeArtifacts(context.Background(), c, vr, out, fakeLib)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got := map[string]string{}
			entries, _ := os.ReadDir(filepath.Join(out, "r"))
			for _, e := range entries {
				data, _ := os.ReadFile(filepath.Join(out, "r", e.Name()))
				got[e.Name()] = string(data)
				if strings.HasSuffix(e.Name(), ".html") {
					// The page now loads the file beside it, not the CDN.
					if !strings.Contains(got[e.Name()], `src="plotly.min.js"`) || strings.Contains(got[e.Name()], "cdn.plot.ly") {
						t.Errorf("%s still loads plotly.js from elsewhere:\n%s", e.Name(), got[e.Name()])
					}
					got[e.Name()] = ""
				}
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("files (-want +got):\n%s", diff)
			}
			if len(paths) != len(tc.want) {
				t.Errorf("paths = %v", paths)
			}
		})
	}
}

// testAssets is $KUBEBUILDER_ASSETS, else what hack/envtest-assets.sh left in bin/k8s.
func testAssets(t *testing.T) string {
	root, _ := filepath.Abs(filepath.Join("..", ".."))
	if d := controlplane.CachedAssets(root); d != "" {
		return d
	}
	t.Fatal("no envtest binaries: run `make test` (it sets KUBEBUILDER_ASSETS), or hack/envtest-assets.sh")
	return ""
}

// The demo end to end, as `make demo` runs it: envtest, the real manager binary with
// the real Local sandbox (bubblewrap and Debian's python3), the samples, the charts.
func TestDemoEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: the end-to-end demo builds the manager and runs the samples (about a minute)")
	}
	for _, bin := range []string{"bwrap", "python3"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Fatalf("%s is not installed: run `make deps`", bin)
		}
	}
	ctrllog.SetLogger(discardLogger())
	assets := testAssets(t)
	tmp := t.TempDir()
	var out, errw bytes.Buffer
	cfg := config{
		root: filepath.Join("..", ".."), outDir: filepath.Join(tmp, "demo-out"), namespace: "vizops-demo",
		timeout: 4 * time.Minute, manager: filepath.Join(tmp, "manager"), assets: assets,
		out: &out, errw: &errw,
	}
	ok, err := run(context.Background(), cfg)
	t.Logf("demo output:\n%s", out.String())
	if err != nil || !ok {
		t.Fatalf("demo: ok=%v err=%v\nstderr:\n%s", ok, err, errw.String())
	}
	if strings.Contains(errw.String(), "still exiting") || strings.Contains(errw.String(), "did not stop") {
		t.Errorf("the manager was not stopped cleanly:\n%s", errw.String())
	}
	for _, f := range []string{
		"treatment-effectiveness/figure_1.png", "voe-per-month/figure_1.png",
		"dosage-vs-hbf/figure_1.png", "dosage-vs-hbf/figure_1.svg",
		"hemoglobin-trend/figure_1.png", "crisis-causes-interactive/plotly_1.html",
	} {
		if st, err := os.Stat(filepath.Join(cfg.outDir, f)); err != nil || st.Size() == 0 {
			t.Errorf("%s: %v", f, err)
		}
	}
	// The interactive chart displays with the network off: plotly.js is beside it.
	page := filepath.Join(cfg.outDir, "crisis-causes-interactive", "plotly_1.html")
	if _, err := os.Stat(filepath.Join(filepath.Dir(page), "plotly.min.js")); err != nil {
		t.Errorf("no plotly.js beside the interactive chart: %v", err)
	} else if chromium, err := exec.LookPath("chromium"); err != nil {
		t.Log("chromium is not installed (make test-deps): the offline display is not checked")
	} else {
		dom := offlineDOM(t, chromium, page)
		// plotly draws into svg.main-svg, one g.trace per trace: a blank page has neither.
		if !strings.Contains(dom, "main-svg") || !strings.Contains(dom, `class="trace`) {
			t.Errorf("the interactive chart is blank with the network off; its DOM:\n%.2000s", dom)
		}
	}
	if _, err := os.Stat(filepath.Join(cfg.outDir, "dosing-question")); err == nil {
		t.Errorf("a directory was written for the skipped request")
	}
	for _, s := range []string{"NAME", "dosing-question", "Skipped", "All 6 samples ended as expected"} {
		if !strings.Contains(out.String(), s) {
			t.Errorf("output misses %q", s)
		}
	}
}

// The demo's failure paths: a manager that never finishes anything (the overall
// timeout) and one that dies at once. Either way the demo says so in one line and
// leaves nothing running.
func TestDemoFailures(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: starts the control plane")
	}
	ctrllog.SetLogger(discardLogger())
	assets := testAssets(t)
	tests := map[string]struct {
		script  string
		timeout time.Duration
		wantErr string
		outHas  []string
	}{
		"a manager that does nothing: the overall timeout": {
			script:  "#!/bin/sh\necho $$ > \"$0.pid\"\nexec sleep 600\n",
			timeout: 15 * time.Second,
			wantErr: "timed out after 15s (-timeout); the manager's log is ",
			outHas:  []string{"dosing-question", "FAIL: still Pending; expected Skipped (NotAVisualization)", "stopping the manager", "stopping the control plane"},
		},
		"a manager that dies": {
			script:  "#!/bin/sh\necho $$ > \"$0.pid\"\necho 'cannot start: boom' >&2\nexit 3\n",
			timeout: time.Minute,
			wantErr: "the manager exited: exit status 3",
			outHas:  []string{"cannot start: boom", "stopping the control plane"},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			tmp := t.TempDir()
			manager := filepath.Join(tmp, "manager.sh")
			if err := os.WriteFile(manager, []byte(tc.script), 0o755); err != nil {
				t.Fatal(err)
			}
			var out, errw bytes.Buffer
			cfg := config{
				root: filepath.Join("..", ".."), outDir: filepath.Join(tmp, "out"), namespace: "demo",
				timeout: tc.timeout, manager: manager, noBuild: true, assets: assets, out: &out, errw: &errw,
			}
			ok, err := run(context.Background(), cfg)
			if ok || err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("ok=%v err=%v, want an error with %q\n%s", ok, err, tc.wantErr, out.String())
			}
			for _, s := range tc.outHas {
				if !strings.Contains(out.String(), s) {
					t.Errorf("output misses %q:\n%s", s, out.String())
				}
			}
			pid, err := os.ReadFile(manager + ".pid")
			if err != nil {
				t.Fatal(err)
			}
			var n int
			if _, err := fmt.Sscan(string(pid), &n); err != nil || n <= 0 {
				t.Fatalf("pid file: %q", pid)
			}
			if err := syscall.Kill(n, 0); !errors.Is(err, syscall.ESRCH) {
				t.Errorf("the manager (pid %d) is still running: %v", n, err)
			}
		})
	}
}

// offlineDOM loads page in headless Chromium with every network request sent to a
// proxy that does not exist, and returns the DOM after its scripts ran.
func offlineDOM(t *testing.T, chromium, page string) string {
	t.Helper()
	abs, err := filepath.Abs(page)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, chromium, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--proxy-server=http://127.0.0.1:9", "--proxy-bypass-list=<-loopback>",
		"--user-data-dir="+filepath.Join(t.TempDir(), "profile"), "--virtual-time-budget=15000",
		"--dump-dom", "file://"+abs).Output()
	if err != nil {
		t.Fatalf("chromium: %v", err)
	}
	return string(out)
}
