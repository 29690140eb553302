package main

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	vizv1 "github.com/vizops/viz-operator/api/v1alpha1"
)

func TestGetPrinters(t *testing.T) {
	ns := newTestNamespace(t)
	done := vizv1.VisualizationRequestStatus{}
	succeeded(inlineArtifact("figure-1.png", "png", "image/png", pngBytes))(&done)
	done.Detection = &vizv1.DetectionStatus{Visualization: true, ChartType: "bar"}
	meta.SetStatusCondition(&done.Conditions, metav1.Condition{Type: vizv1.ConditionVerified, Status: metav1.ConditionTrue, Reason: vizv1.ReasonChartVerified, Message: "ok", LastTransitionTime: metav1.Now()})
	makeRequest(t, ns, "bars", done)
	waiting := vizv1.VisualizationRequestStatus{Phase: vizv1.PhasePending}
	meta.SetStatusCondition(&waiting.Conditions, metav1.Condition{Type: vizv1.ConditionAdmitted, Status: metav1.ConditionFalse, Reason: vizv1.ReasonWaitingForPool, Message: "no pool", LastTransitionTime: metav1.Now()})
	makeRequest(t, ns, "stuck", waiting)
	get := func(t *testing.T, args ...string) string {
		t.Helper()
		stdout, stderr, code := runCLI(t, append([]string{"get", "--kubeconfig", kubeconfig, "-n", ns}, args...)...)
		if code != 0 {
			t.Fatalf("get %v: exit %d: %s", args, code, stderr)
		}
		return stdout
	}
	fields := func(out string) [][]string {
		var rows [][]string
		for _, l := range strings.Split(strings.TrimRight(out, "\n"), "\n") {
			rows = append(rows, strings.Fields(l))
		}
		return rows
	}

	t.Run("table", func(t *testing.T) {
		rows := fields(get(t))
		want := [][]string{
			{"NAME", "PHASE", "CHART", "ARTIFACTS", "REASON", "AGE"},
			{"bars", "Succeeded", "bar", "1", "Succeeded"},
			{"stuck", "Pending", "-", "0", "WaitingForPool"},
		}
		if len(rows) != len(want) {
			t.Fatalf("rows %v", rows)
		}
		for i, w := range want {
			if got := rows[i][:len(w)]; !slices.Equal(got, w) {
				t.Errorf("row %d = %v, want %v", i, rows[i], w)
			}
		}
	})
	t.Run("wide", func(t *testing.T) {
		rows := fields(get(t, "bars", "-o", "wide"))
		if diff := cmp.Diff([]string{"NAME", "PHASE", "CHART", "ARTIFACTS", "REASON", "AGE", "POOL", "BACKEND", "ATTEMPTS", "VERIFIED", "MODEL"}, rows[0]); diff != "" {
			t.Errorf("header (-want +got):\n%s", diff)
		}
		if len(rows) != 2 || !slices.Equal(rows[1][6:], []string{"default", "Local", "0", "ChartVerified", "-"}) {
			t.Errorf("rows %v", rows)
		}
	})
	t.Run("all namespaces", func(t *testing.T) {
		stdout, _, code := runCLI(t, "get", "--kubeconfig", kubeconfig, "-A")
		if code != 0 || !strings.HasPrefix(stdout, "NAMESPACE") || !strings.Contains(stdout, ns) {
			t.Errorf("exit %d:\n%s", code, stdout)
		}
	})
	t.Run("json", func(t *testing.T) {
		var vr vizv1.VisualizationRequest
		if err := json.Unmarshal([]byte(get(t, "bars", "-o", "json")), &vr); err != nil {
			t.Fatal(err)
		}
		if vr.APIVersion != vizv1.GroupVersion.String() || vr.Kind != vizv1.KindVisualizationRequest || vr.Name != "bars" || vr.Status.Phase != vizv1.PhaseSucceeded {
			t.Errorf("got %s %s %s %s", vr.APIVersion, vr.Kind, vr.Name, vr.Status.Phase)
		}
		if len(vr.ManagedFields) != 0 {
			t.Errorf("managedFields printed")
		}
	})
	t.Run("json list", func(t *testing.T) {
		var list vizv1.VisualizationRequestList
		if err := json.Unmarshal([]byte(get(t, "-o", "json")), &list); err != nil {
			t.Fatal(err)
		}
		if len(list.Items) != 2 || list.Items[0].Kind != vizv1.KindVisualizationRequest {
			t.Errorf("items %v", list.Items)
		}
	})
	t.Run("yaml", func(t *testing.T) {
		var vr vizv1.VisualizationRequest
		if err := yaml.UnmarshalStrict([]byte(get(t, "stuck", "-o", "yaml")), &vr); err != nil {
			t.Fatal(err)
		}
		if vr.Kind != vizv1.KindVisualizationRequest || vr.Name != "stuck" || vr.Spec.Prompt == "" {
			t.Errorf("got %+v", vr)
		}
	})
	t.Run("name", func(t *testing.T) {
		if got := get(t, "-o", "name"); got != "visualizationrequest.viz.vizops.io/bars\nvisualizationrequest.viz.vizops.io/stuck\n" {
			t.Errorf("got %q", got)
		}
	})
	t.Run("jsonpath", func(t *testing.T) {
		if got := get(t, "bars", "-o", "jsonpath={.status.phase}"); got != "Succeeded" {
			t.Errorf("got %q", got)
		}
	})
	t.Run("usage errors", func(t *testing.T) {
		for args, want := range map[string]string{
			"-o out/":                     "name the request whose charts to write",
			"-A bars":                     "-A lists every namespace",
			"--wait":                      "--wait needs a request NAME",
			"bars -o json --output-dir x": "either -o FORMAT or --output-dir DIR",
			"bars --plotly-js ftp://x":    `--plotly-js "ftp://x": use local, inline, cdn`,
		} {
			_, stderr, code := runCLI(t, append([]string{"get", "--kubeconfig", kubeconfig, "-n", ns}, strings.Fields(args)...)...)
			if code != 2 || !strings.Contains(stderr, want) {
				t.Errorf("get %s: exit %d, %s; want 2 and %q", args, code, stderr, want)
			}
		}
	})
}

// Completion runs as the shell runs it: `kubectl-viz __complete ARGS... PARTIAL`,
// names one per line, then the directive.
func TestCompletion(t *testing.T) {
	ns := newTestNamespace(t)
	for _, name := range []string{"alpha", "beta", "bravo"} {
		makeRequest(t, ns, name, vizv1.VisualizationRequestStatus{Phase: vizv1.PhaseQueued})
	}
	for _, name := range []string{"default", "gpu-free"} {
		p := &vizv1.SandboxPool{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}
		if err := k8s.Create(t.Context(), p); err != nil {
			t.Fatal(err)
		}
	}
	cfg := twoContexts(t, ns)
	cfg.Contexts["admin"].Namespace = ""
	kc := writeKubeconfig(t, cfg)
	const noFiles = ":4" // cobra.ShellCompDirectiveNoFileComp
	tests := map[string]struct {
		args []string
		want []string
	}{
		"get NAME":                     {args: []string{"get", "-n", ns, ""}, want: []string{"alpha", "beta", "bravo", noFiles}},
		"logs NAME with a prefix":      {args: []string{"logs", "-n", ns, "b"}, want: []string{"beta", "bravo", noFiles}},
		"get takes one NAME":           {args: []string{"get", "-n", ns, "alpha", ""}, want: []string{noFiles}},
		"the namespace of -n":          {args: []string{"get", ""}, want: []string{noFiles}},
		"create --pool":                {args: []string{"create", "x", "-n", ns, "--pool", ""}, want: []string{"default", "gpu-free", noFiles}},
		"--namespace":                  {args: []string{"get", "-n", "viz-"}, want: append(namespacesWithPrefix(t, "viz-"), noFiles)},
		"--context":                    {args: []string{"get", "--context", ""}, want: []string{"admin", "bob", noFiles}},
		"as bob, who may list nothing": {args: []string{"get", "--context", "bob", "-n", ns, ""}, want: []string{noFiles}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			args := append([]string{"__complete", "--kubeconfig", kc}, tc.args...)
			stdout, stderr, code := runCLI(t, args...)
			if code != 0 {
				t.Fatalf("exit %d: %s", code, stderr)
			}
			if diff := cmp.Diff(tc.want, strings.Split(strings.TrimSpace(stdout), "\n")); diff != "" {
				t.Errorf("completions (-want +got):\n%s", diff)
			}
		})
	}
	for _, shell := range []string{"bash", "zsh", "fish", "powershell"} {
		stdout, _, code := runCLI(t, "completion", shell)
		if code != 0 || !strings.Contains(stdout, "__complete") {
			t.Errorf("completion %s: exit %d, %d bytes", shell, code, len(stdout))
		}
	}
}

// namespacesWithPrefix lists the test API server's namespaces that start with prefix.
func namespacesWithPrefix(t *testing.T, prefix string) []string {
	t.Helper()
	var out []string
	for i := int32(1); i <= namespaceSeed.Load(); i++ {
		if n := fmt.Sprintf("viz-%d", i); strings.HasPrefix(n, prefix) {
			out = append(out, n)
		}
	}
	slices.Sort(out)
	return out
}
