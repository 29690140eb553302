package chart

import (
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
)

// TestChartProxyAndCABundle: behind a corporate egress proxy the manager gets the proxy
// (extraEnv) and the proxy's CA from a ConfigMap (caBundle), added to the system's CAs.
func TestChartProxyAndCABundle(t *testing.T) {
	objs := mustHelmTemplate(t, "vizops", "viz-system", `
extraEnv:
- {name: HTTPS_PROXY, value: "http://proxy.corp.example:3128"}
- {name: NO_PROXY, value: "10.96.0.1,.svc,.cluster.local"}
caBundle: {configMap: corp-ca, key: bundle.pem}
`)
	d, c := manager(t, objs)
	env := map[string]string{}
	for _, e := range c.Env {
		env[e.Name] = e.Value
	}
	for name, want := range map[string]string{
		"HTTPS_PROXY":  "http://proxy.corp.example:3128",
		"NO_PROXY":     "10.96.0.1,.svc,.cluster.local",
		"SSL_CERT_DIR": "/etc/viz-operator/ca:/etc/ssl/certs",
	} {
		if env[name] != want {
			t.Errorf("env %s = %q, want %q", name, env[name], want)
		}
	}
	if _, ok := env["POD_NAMESPACE"]; !ok {
		t.Errorf("extraEnv should add to the manager's env, not replace it: %v", c.Env)
	}
	i := slices.IndexFunc(c.VolumeMounts, func(m corev1.VolumeMount) bool { return m.Name == "ca-bundle" })
	if i < 0 || c.VolumeMounts[i].MountPath != "/etc/viz-operator/ca" || !c.VolumeMounts[i].ReadOnly {
		t.Fatalf("want the CA bundle mounted read-only at /etc/viz-operator/ca: %+v", c.VolumeMounts)
	}
	vols := d.Spec.Template.Spec.Volumes
	j := slices.IndexFunc(vols, func(v corev1.Volume) bool { return v.Name == "ca-bundle" })
	if j < 0 {
		t.Fatalf("no ca-bundle volume: %+v", vols)
	}
	want := &corev1.ConfigMapVolumeSource{
		LocalObjectReference: corev1.LocalObjectReference{Name: "corp-ca"},
		Items:                []corev1.KeyToPath{{Key: "bundle.pem", Path: "ca.crt"}},
	}
	if diff := cmp.Diff(want, vols[j].ConfigMap); diff != "" {
		t.Errorf("ca-bundle volume (-want +got):\n%s", diff)
	}

	// By default: neither.
	d, c = manager(t, mustHelmTemplate(t, "vizops", "viz-system", ""))
	for _, e := range c.Env {
		if e.Name == "SSL_CERT_DIR" || e.Name == "HTTPS_PROXY" {
			t.Errorf("default env has %s", e.Name)
		}
	}
	if slices.ContainsFunc(d.Spec.Template.Spec.Volumes, func(v corev1.Volume) bool { return v.Name == "ca-bundle" }) {
		t.Errorf("default has a ca-bundle volume")
	}
}
