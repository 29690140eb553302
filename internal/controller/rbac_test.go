package controller

import (
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	rbacv1 "k8s.io/api/rbac/v1"
	"sigs.k8s.io/yaml"
)

// TestManagerRoleIsMinimal reads the generated role and checks that it grants exactly
// the verbs and resources the controllers use, with no wildcards.
func TestManagerRoleIsMinimal(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("..", "..", "config", "rbac", "role.yaml"))
	if err != nil {
		t.Fatalf("reading the generated role (run make manifests): %v", err)
	}
	got := map[string]string{}
	for _, doc := range strings.Split(string(raw), "\n---\n") {
		var role rbacv1.ClusterRole // a Role has the same shape
		if err := yaml.Unmarshal([]byte(doc), &role); err != nil {
			t.Fatal(err)
		}
		scope := role.Kind
		if role.Namespace != "" {
			scope += "(" + role.Namespace + ")"
		}
		addRules(t, got, scope, role.Rules)
	}
	want := map[string]string{
		"ClusterRole /configmaps":          "create,delete,get,list,patch,update,watch",
		"ClusterRole /namespaces":          "get,list,watch",
		"ClusterRole events.k8s.io/events": "create,patch",
		// Kubernetes pools: their Pods and NetworkPolicies (cached by label), and the
		// finalizer that removes them.
		"ClusterRole /pods":                                      "create,delete,get,list,update,watch",
		"ClusterRole networking.k8s.io/networkpolicies":          "create,delete,get,list,update,watch",
		"ClusterRole viz.vizops.io/sandboxpools":                 "get,list,patch,watch",
		"ClusterRole viz.vizops.io/sandboxpools/finalizers":      "update",
		"ClusterRole viz.vizops.io/sandboxpools/status":          "get,patch,update",
		"ClusterRole viz.vizops.io/visualizationrequests":        "delete,get,list,watch",
		"ClusterRole viz.vizops.io/visualizationrequests/status": "get,patch,update",
		// API keys and the sandbox token key: only its own namespace, get (and create,
		// for the token key on first start).
		"Role(system) /secrets": "create,get",
		// Cluster-wide: Kubernetes pools' token Secrets, created and deleted, never
		// read. No get, list or watch on any tenant's Secret: E2B keys live in the
		// operator's namespace, named by a SandboxClass.
		"ClusterRole /secrets":                     "create,delete",
		"ClusterRole viz.vizops.io/sandboxclasses": "get,list,watch",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("manager role (-want +got):\n%s", diff)
	}
}

func addRules(t *testing.T, got map[string]string, scope string, rules []rbacv1.PolicyRule) {
	t.Helper()
	for _, rule := range rules {
		for _, list := range [][]string{rule.APIGroups, rule.Resources, rule.Verbs, rule.ResourceNames, rule.NonResourceURLs} {
			for _, v := range list {
				if strings.Contains(v, "*") {
					t.Errorf("wildcard %q in rule %+v", v, rule)
				}
			}
		}
		for _, g := range rule.APIGroups {
			for _, r := range rule.Resources {
				verbs := append([]string(nil), rule.Verbs...)
				sort.Strings(verbs)
				key := scope + " " + g + "/" + r
				if prev, ok := got[key]; ok {
					verbs = append(strings.Split(prev, ","), verbs...)
					sort.Strings(verbs)
				}
				got[key] = strings.Join(verbs, ",")
			}
		}
	}
}
