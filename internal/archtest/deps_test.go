package archtest

import (
	"bytes"
	"fmt"
	"maps"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

const module = "github.com/vizops/viz-operator"

// kubernetesPackages are the packages under internal/ whose job is Kubernetes (or
// that take the API's types on purpose); every other package under internal/ is a
// capability and must not reach the API package or Kubernetes.
var kubernetesPackages = map[string]string{
	module + "/internal/controller":               "the reconcilers",
	module + "/internal/controller/state":         "the reconcilers' memory, keyed by object UID and name",
	module + "/internal/requeststatus":            "maps a pipeline result to the request's status (controller and kubectl viz render share it)",
	module + "/internal/requeststatus/statustest": "the results and the statuses they must become, for the mapping's users' tests",
	module + "/internal/gateway/kube":             "the gateway's sandboxes as Pods",
	module + "/internal/vizclient":                "reads a request's artifacts through the API",
	module + "/internal/metrics":                  "registers on controller-runtime's registry",
	module + "/internal/backends":                 "the interface backends plug into the SandboxPool controller by: resolves API types into each backend's own options",
	module + "/internal/backends/e2b":             "the E2B backend's adapter: reads its API key's Secret",
	module + "/internal/backends/kubernetes":      "the Kubernetes backend's adapter: Pods, Secrets and NetworkPolicies through the manager's client",
	module + "/internal/backends/local":           "the Local backend's adapter",
}

// typedPackages build Kubernetes objects from k8s.io/api's types, but take no type of
// the operator's API and use no client: their adapter under internal/backends resolves
// the API's types into their own options and talks to the API server for them.
var typedPackages = map[string]string{
	module + "/internal/sandbox/kubernetes": "renders sandbox Pods, their token Secrets and NetworkPolicy, and decides on Pods, in its own terms (Class, Settings, its label keys)",
}

// typesOnly forbids the API package and Kubernetes' clients: the rule for
// typedPackages.
func typesOnly(dep string) string {
	switch {
	case dep == module+"/api" || strings.HasPrefix(dep, module+"/api/"):
		return "the API package"
	case strings.HasPrefix(dep, "k8s.io/client-go/"), strings.HasPrefix(dep, "sigs.k8s.io/controller-runtime"):
		return "a Kubernetes client"
	}
	return ""
}

// apiOnly forbids the API package and Kubernetes' API machinery and clients, the
// rule for capability packages: plain libraries published under Kubernetes' names
// (sigs.k8s.io/yaml, k8s.io/utils) are allowed there.
func apiOnly(dep string) string {
	switch {
	case dep == module+"/api" || strings.HasPrefix(dep, module+"/api/"):
		return "the API package"
	case strings.HasPrefix(dep, "k8s.io/api/"), strings.HasPrefix(dep, "k8s.io/apimachinery/"),
		strings.HasPrefix(dep, "k8s.io/client-go/"), strings.HasPrefix(dep, "sigs.k8s.io/controller-runtime"):
		return "a Kubernetes API package"
	}
	return ""
}

// anyKubernetes forbids what apiOnly does and every package under k8s.io or
// sigs.k8s.io: the rule for the sandbox-agent.
func anyKubernetes(dep string) string {
	if why := apiOnly(dep); why != "" {
		return why
	}
	if strings.HasPrefix(dep, "k8s.io/") || strings.HasPrefix(dep, "sigs.k8s.io/") {
		return "a Kubernetes package"
	}
	return ""
}

// deps lists each package matched by patterns with its dependencies (transitive,
// tests excluded), as `go list` reads them from the source.
func deps(t *testing.T, patterns ...string) map[string][]string {
	t.Helper()
	args := append([]string{"list", "-f", `{{.ImportPath}}{{range .Deps}} {{.}}{{end}}`}, patterns...)
	cmd := exec.Command("go", args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	m := map[string][]string{}
	for line := range strings.SplitSeq(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(line)
		if len(f) > 0 {
			m[f[0]] = f[1:]
		}
	}
	return m
}

// violations lists, for each package of graph not in skip, the dependencies that
// forbidden rejects.
func violations(graph map[string][]string, skip map[string]string, forbidden func(string) string) []string {
	var out []string
	for pkg, ds := range graph {
		if _, ok := skip[pkg]; ok {
			continue
		}
		var bad []string
		for _, d := range ds {
			if why := forbidden(d); why != "" {
				bad = append(bad, fmt.Sprintf("%s (%s)", d, why))
			}
		}
		if len(bad) > 0 {
			n := len(bad)
			if n > 3 {
				bad = append(bad[:3], "…")
			}
			out = append(out, fmt.Sprintf("%s depends on %d forbidden package(s): %s", pkg, n, strings.Join(bad, ", ")))
		}
	}
	slices.Sort(out)
	return out
}

// TestSandboxAgentLinksNoKubernetes: the agent in every sandbox Pod links no API
// type and no Kubernetes package (an attacker in the Pod finds none of their code, and
// the image stays small).
func TestSandboxAgentLinksNoKubernetes(t *testing.T) {
	agent := module + "/cmd/sandbox-agent"
	graph := deps(t, agent)
	if len(graph[agent]) == 0 {
		t.Fatalf("go list found no dependencies of %s", agent)
	}
	for _, v := range violations(graph, nil, anyKubernetes) {
		t.Error(v)
	}
}

// TestCapabilitiesImportNoAPI: every package under internal/ but the Kubernetes ones
// stays free of the API package and of Kubernetes, directly or through another
// package. A new package is checked unless it is added to kubernetesPackages.
func TestCapabilitiesImportNoAPI(t *testing.T) {
	graph := deps(t, module+"/internal/...")
	for pkg := range kubernetesPackages {
		if _, ok := graph[pkg]; !ok {
			t.Errorf("%s is listed as a Kubernetes package but does not exist: drop it from kubernetesPackages", pkg)
		}
	}
	for _, must := range []string{"/internal/chartdata", "/internal/sandbox", "/internal/sandbox/codeinterpreter", "/internal/sandbox/local", "/internal/pipeline"} {
		if _, ok := graph[module+must]; !ok {
			t.Fatalf("go list did not list %s: the check reads the wrong tree", module+must)
		}
	}
	skip := maps.Clone(kubernetesPackages)
	maps.Copy(skip, typedPackages)
	for _, v := range violations(graph, skip, apiOnly) {
		t.Error(v)
	}
}

// TestBackendsTakeNoAPITypes: a pure backend package that builds Kubernetes objects
// (internal/sandbox/kubernetes) takes no API type and no client, and neither do its
// tests: the API's types are resolved into its own by its adapter in
// internal/backends.
func TestBackendsTakeNoAPITypes(t *testing.T) {
	graph := deps(t, module+"/internal/...")
	typed := map[string][]string{}
	for pkg := range typedPackages {
		if _, ok := graph[pkg]; !ok {
			t.Fatalf("%s is listed in typedPackages but does not exist: drop it", pkg)
		}
		typed[pkg] = graph[pkg]
	}
	for _, v := range violations(typed, nil, typesOnly) {
		t.Error(v)
	}
	for pkg, imports := range testImports(t, slices.Collect(maps.Keys(typedPackages))...) {
		for _, imp := range imports {
			if why := typesOnly(imp); why != "" {
				t.Errorf("the tests of %s import %s (%s)", pkg, imp, why)
			}
		}
	}
}

// testImports lists the direct imports of each package's tests (in-package and _test).
func testImports(t *testing.T, pkgs ...string) map[string][]string {
	t.Helper()
	args := append([]string{"list", "-f", `{{.ImportPath}}{{range .TestImports}} {{.}}{{end}}{{range .XTestImports}} {{.}}{{end}}`}, pkgs...)
	out, err := exec.Command("go", args...).Output()
	if err != nil {
		t.Fatalf("go %s: %v", strings.Join(args, " "), err)
	}
	m := map[string][]string{}
	for line := range strings.SplitSeq(strings.TrimSpace(string(out)), "\n") {
		if f := strings.Fields(line); len(f) > 0 {
			m[f[0]] = f[1:]
		}
	}
	return m
}

// TestViolationsFindsThem: the checks report a package that reaches the API or
// Kubernetes, directly or not (the controller does both), and the agent's rule is the
// stricter one.
func TestViolationsFindsThem(t *testing.T) {
	ctrl := module + "/internal/controller"
	graph := deps(t, ctrl)
	for name, rule := range map[string]func(string) string{"apiOnly": apiOnly, "anyKubernetes": anyKubernetes} {
		if got := violations(graph, nil, rule); len(got) != 1 || !strings.HasPrefix(got[0], ctrl+" depends on ") {
			t.Errorf("violations(controller, %s) = %q, want the controller reported", name, got)
		}
	}
	graph = map[string][]string{
		"api":     {"fmt", module + "/internal/chartdata", module + "/api/v1alpha1"},
		"client":  {"k8s.io/client-go/rest"},
		"yaml":    {"sigs.k8s.io/yaml"},
		"utils":   {"k8s.io/utils/clock"},
		"nothing": {"strings", module + "/apiary"},
	}
	// A package that builds Pods may use k8s.io/api, never the API package (the
	// Kubernetes backend re-importing api/v1alpha1 fails here) nor a client.
	graph["pods"] = []string{"k8s.io/api/core/v1", "k8s.io/apimachinery/pkg/types"}
	graph["runtime"] = []string{"sigs.k8s.io/controller-runtime/pkg/client"}
	for _, tc := range []struct {
		rule func(string) string
		want []string
	}{
		{apiOnly, []string{"api", "client", "pods", "runtime"}},
		{anyKubernetes, []string{"api", "client", "pods", "runtime", "utils", "yaml"}},
		{typesOnly, []string{"api", "client", "runtime"}},
	} {
		var got []string
		for _, v := range violations(graph, nil, tc.rule) {
			got = append(got, strings.Fields(v)[0])
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("violations = %q, want %q", got, tc.want)
		}
	}
}
