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
	var role rbacv1.ClusterRole
	if err := yaml.Unmarshal(raw, &role); err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, rule := range role.Rules {
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
				key := g + "/" + r
				if prev, ok := got[key]; ok {
					verbs = append(strings.Split(prev, ","), verbs...)
					sort.Strings(verbs)
				}
				got[key] = strings.Join(verbs, ",")
			}
		}
	}
	want := map[string]string{
		"/configmaps":                                "create,get,list,patch,update,watch",
		"/namespaces":                                "get,list,watch",
		"events.k8s.io/events":                       "create,patch",
		"viz.vizops.io/sandboxpools":                 "get,list,watch",
		"viz.vizops.io/sandboxpools/status":          "get,patch,update",
		"viz.vizops.io/visualizationrequests":        "delete,get,list,watch",
		"viz.vizops.io/visualizationrequests/status": "get,patch,update",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("manager role (-want +got):\n%s", diff)
	}
}
