package chart

import (
	"context"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
)

const gatewayValues = `
gateway:
  enabled: true
  domain: e2b.example.com
  tls: {secretName: gateway-tls}
  maxSandboxesPerKey: 3
  maxTimeout: 30m
`

func gatewayObjects(objs []*unstructured.Unstructured) []*unstructured.Unstructured {
	var out []*unstructured.Unstructured
	for _, o := range objs {
		if o.GetLabels()["app.kubernetes.io/component"] == "gateway" {
			out = append(out, o)
		}
	}
	return out
}

// TestChartGateway: off by default; on, a Deployment of cmd/gateway with the values as
// flags (each one cmd/gateway defines), TLS from the Secret when named, a token key
// Secret, a Service selecting its Pods, the Pod labels the sandboxes' NetworkPolicy is
// told to admit, and RBAC of what internal/gateway/kube does.
func TestChartGateway(t *testing.T) {
	if got := gatewayObjects(mustHelmTemplate(t, "vizops", "viz", "")); len(got) != 0 {
		t.Fatalf("the defaults render gateway objects: %v", names(got))
	}
	if _, err := helmTemplate(t, "vizops", "viz", "gateway: {enabled: true}"); err == nil || !strings.Contains(err.Error(), "gateway.domain is required") {
		t.Errorf("enabled without a domain: %v", err)
	}

	objs := mustHelmTemplate(t, "vizops", "viz", gatewayValues)
	d := typed[appsv1.Deployment](t, find(t, objs, "Deployment", "-gateway"))
	pod := d.Spec.Template.Spec
	c := pod.Containers[0]
	if d.Spec.Replicas == nil || *d.Spec.Replicas != 1 {
		t.Errorf("replicas %v: the per-key cap is held by one gateway", d.Spec.Replicas)
	}
	for _, want := range []string{
		"--domain=e2b.example.com", "--token-key-file=/etc/vizops-gateway/key/key",
		"--tls-cert-file=/etc/vizops-gateway/tls/tls.crt", "--tls-key-file=/etc/vizops-gateway/tls/tls.key",
		"--gateway-namespace=viz", "--max-sandboxes-per-key=3", "--max-timeout=30m",
	} {
		if !slices.Contains(c.Args, want) {
			t.Errorf("args %v lack %s", c.Args, want)
		}
	}
	// Every flag the chart passes is one cmd/gateway defines.
	src := string(readFile(t, "cmd/gateway/main.go"))
	for _, a := range c.Args {
		name := strings.TrimPrefix(strings.SplitN(a, "=", 2)[0], "--")
		if !regexp.MustCompile(`flag\.\w+Var\(&\w+, "` + regexp.QuoteMeta(name) + `"`).MatchString(src) {
			t.Errorf("the chart passes --%s, which cmd/gateway does not define", name)
		}
	}
	// The sandboxes' NetworkPolicy admits Pods with --gateway-pod-labels: the
	// gateway's own Pods must carry them, and the Service must select them.
	var podLabels string
	for _, a := range c.Args {
		if v, ok := strings.CutPrefix(a, "--gateway-pod-labels="); ok {
			podLabels = v
		}
	}
	sel, err := labels.Parse(podLabels)
	if err != nil || podLabels == "" || !sel.Matches(labels.Set(d.Spec.Template.Labels)) {
		t.Errorf("--gateway-pod-labels %q does not select the gateway's Pods %v (%v)", podLabels, d.Spec.Template.Labels, err)
	}
	svc := typed[corev1.Service](t, find(t, objs, "Service", "-gateway"))
	if !labels.SelectorFromSet(svc.Spec.Selector).Matches(labels.Set(d.Spec.Template.Labels)) || svc.Spec.Ports[0].Port != 443 {
		t.Errorf("the Service %v does not serve the gateway's Pods %v", svc.Spec, d.Spec.Template.Labels)
	}
	mounted := map[string]string{}
	for _, v := range pod.Volumes {
		if v.Secret != nil {
			mounted[v.Name] = v.Secret.SecretName
		}
	}
	key := find(t, objs, "Secret", "-gateway-token-key")
	if mounted["tls"] != "gateway-tls" || mounted["token-key"] != key.GetName() {
		t.Errorf("mounted Secrets %v", mounted)
	}
	if sc := c.SecurityContext; sc == nil || !*sc.ReadOnlyRootFilesystem || *sc.AllowPrivilegeEscalation || len(sc.Capabilities.Drop) != 1 {
		t.Errorf("the gateway is not restricted: %+v", sc)
	}

	role := typed[rbacv1.ClusterRole](t, find(t, objs, "ClusterRole", "-gateway"))
	want := map[string][]string{
		"/pods":                             {"get", "list", "watch", "create", "patch", "delete"},
		"/secrets":                          {"get", "list", "watch", "create", "delete"},
		"/namespaces":                       {"get", "list", "watch"},
		"networking.k8s.io/networkpolicies": {"create"},
		"viz.vizops.io/sandboxclasses":      {"get", "list", "watch"},
	}
	got := map[string][]string{}
	for _, r := range role.Rules {
		for _, g := range r.APIGroups {
			for _, res := range r.Resources {
				got[g+"/"+res] = append(got[g+"/"+res], r.Verbs...)
			}
		}
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("the gateway's ClusterRole (-want +got):\n%s", diff)
	}
	binding := typed[rbacv1.ClusterRoleBinding](t, find(t, objs, "ClusterRoleBinding", "-gateway"))
	if binding.RoleRef.Name != role.Name || binding.Subjects[0].Name != pod.ServiceAccountName || binding.Subjects[0].Namespace != "viz" {
		t.Errorf("the binding %+v does not bind the role to the gateway's service account %s", binding, pod.ServiceAccountName)
	}

	// Without TLS: plain HTTP, no TLS flags or volume.
	plain := mustHelmTemplate(t, "vizops", "viz", "gateway: {enabled: true, domain: e2b.example.com}")
	pd := typed[appsv1.Deployment](t, find(t, plain, "Deployment", "-gateway"))
	for _, a := range pd.Spec.Template.Spec.Containers[0].Args {
		if strings.HasPrefix(a, "--tls-") {
			t.Errorf("TLS flag %s without gateway.tls.secretName", a)
		}
	}
}

// TestGatewayApplies: the API server accepts the gateway's objects, and its Pod passes
// the restricted Pod Security level.
func TestGatewayApplies(t *testing.T) {
	ctx := context.Background()
	objs := mustHelmTemplate(t, "gw", "gateway", gatewayValues)
	apply(ctx, t, "test-gateway", "gateway", objs)
	d := typed[appsv1.Deployment](t, readBack(ctx, t, find(t, objs, "Deployment", "-gateway")))
	if err := restrictedPodErr(ctx, t, "gateway", d.Spec.Template.Spec); err != nil {
		t.Errorf("the gateway's Pod does not pass the restricted Pod Security level: %v", err)
	}
}
