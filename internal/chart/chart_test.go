package chart

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/yaml"

	vizv1 "github.com/vizops/viz-operator/api/v1alpha1"
	"github.com/vizops/viz-operator/internal/models"
)

// customValues exercise every non-default path of the chart.
const customValues = `
maxConcurrentExecutions: 3
requestWorkers: 32
dataConfigMapLabelRequired: true
leaderElection: true
image:
  repository: registry.example/vizops/manager
  tag: v1.2.3
imagePullSecrets: [{name: regcred}]
providers:
- name: ollama
  type: openai
  baseURL: http://ollama.ollama.svc:11434/v1
  defaultModel: qwen2.5-coder:7b
  timeout: 120s
- name: openai
  type: openai
  apiKeySecretRef: {name: llm-keys, key: openai}
  defaultModel: gpt-4o-mini
  maxRepairs: 1
- name: anthropic
  type: anthropic
  apiKeySecretRef: {name: llm-keys, key: anthropic}
  defaultModel: claude-sonnet-4-5
  timeout: 90s
defaultPool:
  enabled: false
resources:
  requests: {cpu: 250m, memory: 256Mi}
  limits: {cpu: "4", memory: 8Gi}
nodeSelector:
  vizops.io/sandbox-node: "true"
tolerations:
- {key: dedicated, operator: Equal, value: vizops, effect: NoSchedule}
affinity:
  nodeAffinity:
    requiredDuringSchedulingIgnoredDuringExecution:
      nodeSelectorTerms:
      - matchExpressions:
        - {key: kubernetes.io/arch, operator: In, values: [amd64]}
podAnnotations:
  prometheus.io/scrape: "true"
serviceAccount:
  name: vizops-manager
  annotations:
    example.com/role: vizops
extraArgs: ["--zap-log-level=debug"]
plotlyJSServer:
  enabled: true
  port: 9090
`

func manager(t testing.TB, objs []*unstructured.Unstructured) (*appsv1.Deployment, corev1.Container) {
	t.Helper()
	d := typed[appsv1.Deployment](t, find(t, objs, "Deployment", "-controller-manager"))
	if n := len(d.Spec.Template.Spec.Containers); n != 1 {
		t.Fatalf("the manager pod has %d containers, want 1", n)
	}
	return d, d.Spec.Template.Spec.Containers[0]
}

// wantContainerSecurity is the manager's security context in the chart (defaults) and in
// config/manager/manager.yaml: the restricted Pod Security level (sandboxes are Pods of
// their own).
var wantContainerSecurity = &corev1.SecurityContext{
	RunAsNonRoot:             ptr.To(true),
	AllowPrivilegeEscalation: ptr.To(false),
	ReadOnlyRootFilesystem:   ptr.To(true),
	Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
	SeccompProfile:           &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
}

// wantLocalContainerSecurity is the manager's with sandboxing.local.enabled: restricted,
// except what bubblewrap needs.
var wantLocalContainerSecurity = &corev1.SecurityContext{
	RunAsNonRoot:             ptr.To(true),
	AllowPrivilegeEscalation: ptr.To(false),
	ReadOnlyRootFilesystem:   ptr.To(true),
	Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
	SeccompProfile:           &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeUnconfined},
	AppArmorProfile:          &corev1.AppArmorProfile{Type: corev1.AppArmorProfileTypeUnconfined},
	ProcMount:                ptr.To(corev1.UnmaskedProcMount),
}

// localValues turn the Local backend on, with a Local default pool.
const localValues = `
sandboxing: {local: {enabled: true}}
defaultPool: {backend: Local}
resources:
  requests: {cpu: 500m, memory: 512Mi}
  limits: {cpu: "2", memory: 4608Mi}
`

var wantPodSecurity = &corev1.PodSecurityContext{
	RunAsNonRoot: ptr.To(true),
	RunAsUser:    ptr.To[int64](65532),
	RunAsGroup:   ptr.To[int64](65532),
}

func TestChartDefaults(t *testing.T) {
	objs := mustHelmTemplate(t, "vizops", "viz-system", "")
	d, c := manager(t, objs)
	pod := d.Spec.Template.Spec

	wantArgs := []string{
		"--leader-elect",
		"--health-probe-bind-address=:8081",
		"--metrics-bind-address=:8080",
		"--max-concurrent-executions=10",
		"--request-workers=16",
		"--local-backend=false",
	}
	if diff := cmp.Diff(wantArgs, c.Args); diff != "" {
		t.Errorf("manager args (-want +got):\n%s", diff)
	}
	if c.Image != "ghcr.io/vizops/viz-operator:dev" {
		t.Errorf("image %q, want the chart's appVersion tag", c.Image)
	}
	if diff := cmp.Diff(wantContainerSecurity, c.SecurityContext); diff != "" {
		t.Errorf("container securityContext (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(wantPodSecurity, pod.SecurityContext); diff != "" {
		t.Errorf("pod securityContext (-want +got):\n%s", diff)
	}
	if pod.HostUsers != nil {
		t.Errorf("hostUsers %v, want unset: no Local sandboxes, no unmasked /proc", *pod.HostUsers)
	}
	if d.Spec.Template.Labels["control-plane"] != "controller-manager" {
		t.Errorf("pod labels %v lack control-plane: controller-manager (--manager-pod-labels: sandbox NetworkPolicies admit the manager by it)", d.Spec.Template.Labels)
	}
	for name, tc := range map[string]struct {
		probe *corev1.Probe
		path  string
	}{"liveness": {c.LivenessProbe, "/healthz"}, "readiness": {c.ReadinessProbe, "/readyz"}} {
		if tc.probe == nil || tc.probe.HTTPGet == nil || tc.probe.HTTPGet.Path != tc.path || tc.probe.HTTPGet.Port.String() != "probes" {
			t.Errorf("%s probe %+v, want GET %s on the probes port", name, tc.probe, tc.path)
		}
	}
	ports := map[string]int32{}
	for _, p := range c.Ports {
		ports[p.Name] = p.ContainerPort
	}
	if diff := cmp.Diff(map[string]int32{"metrics": 8080, "probes": 8081}, ports); diff != "" {
		t.Errorf("container ports (-want +got):\n%s", diff)
	}
	svc := typed[corev1.Service](t, find(t, objs, "Service", "-metrics"))
	if len(svc.Spec.Ports) != 1 || svc.Spec.Ports[0].Port != 8080 || svc.Spec.Ports[0].TargetPort.String() != "metrics" {
		t.Errorf("metrics Service ports %+v, want 8080 -> metrics", svc.Spec.Ports)
	}
	for k, v := range svc.Spec.Selector {
		if d.Spec.Template.Labels[k] != v {
			t.Errorf("metrics Service selector %v does not select the manager pod %v", svc.Spec.Selector, d.Spec.Template.Labels)
		}
	}
	if want := "256Mi"; c.Resources.Requests.Memory().String() != want {
		t.Errorf("memory request %s, want %s", c.Resources.Requests.Memory(), want)
	}
	if !hasEnvFromField(c, "POD_NAMESPACE", "metadata.namespace") {
		t.Errorf("env %+v lacks POD_NAMESPACE from metadata.namespace (where provider Secrets are read)", c.Env)
	}
	if got := ofKind(objs, "ConfigMap"); len(got) != 0 {
		t.Errorf("no providers configured, yet ConfigMaps %v", names(got))
	}

	// The default pool: the one make deploy applies, in the release namespace.
	pool := typed[vizv1.SandboxPool](t, find(t, objs, "SandboxPool", "default"))
	sample := &vizv1.SandboxPool{}
	if err := yaml.UnmarshalStrict(readFile(t, "config/samples/viz_v1alpha1_sandboxpool_kubernetes.yaml"), sample); err != nil {
		t.Fatal(err)
	}
	if pool.Namespace != "viz-system" {
		t.Errorf("default pool in namespace %q, want the release namespace", pool.Namespace)
	}
	class := typed[vizv1.SandboxClass](t, find(t, objs, "SandboxClass", "-default"))
	sample.Spec.ClassName = class.Name // the chart names its class after the release
	if diff := cmp.Diff(sample.Spec, pool.Spec); diff != "" {
		t.Errorf("default pool spec vs config/samples (-sample +chart):\n%s", diff)
	}
	sampleClass := &vizv1.SandboxClass{}
	if err := yaml.UnmarshalStrict(readFile(t, "config/samples/viz_v1alpha1_sandboxclass_kubernetes.yaml"), sampleClass); err != nil {
		t.Fatal(err)
	}
	if class.Spec.Kubernetes == nil || !strings.HasPrefix(class.Spec.Kubernetes.Image, "ghcr.io/vizops/viz-sandbox:") {
		t.Fatalf("default class %+v, want the sandbox image", class.Spec.Kubernetes)
	}
	sampleClass.Spec.Kubernetes.Image = class.Spec.Kubernetes.Image // the chart's tag is its appVersion
	if diff := cmp.Diff(sampleClass.Spec, class.Spec); diff != "" {
		t.Errorf("default class spec vs config/samples (-sample +chart):\n%s", diff)
	}
	if class.Annotations[vizv1.AnnotationDefaultClass] != "true" {
		t.Errorf("the chart's class is not the default: %v", class.Annotations)
	}
}

func TestChartCustomValues(t *testing.T) {
	objs := mustHelmTemplate(t, "custom", "llm", customValues)
	d, c := manager(t, objs)
	pod := d.Spec.Template.Spec

	if !slices.Contains(c.Args, "--max-concurrent-executions=3") {
		t.Errorf("args %v lack --max-concurrent-executions=3", c.Args)
	}
	if slices.Contains(c.Args, "--max-concurrent-executions=10") {
		t.Errorf("args %v still carry the default cap", c.Args)
	}
	if !slices.Contains(c.Args, "--request-workers=32") {
		t.Errorf("args %v lack --request-workers=32", c.Args)
	}
	if !slices.Contains(c.Args, "--zap-log-level=debug") {
		t.Errorf("args %v lack extraArgs", c.Args)
	}
	if !slices.Contains(c.Args, "--data-configmap-label-required") {
		t.Errorf("args %v lack --data-configmap-label-required", c.Args)
	}
	// The plotly.js server: the flag, a named port, and a Service that reaches it.
	if !slices.Contains(c.Args, "--plotlyjs-bind-address=:9090") {
		t.Errorf("args %v lack --plotlyjs-bind-address=:9090", c.Args)
	}
	if !slices.ContainsFunc(c.Ports, func(p corev1.ContainerPort) bool { return p.Name == "plotlyjs" && p.ContainerPort == 9090 }) {
		t.Errorf("ports %v lack plotlyjs:9090", c.Ports)
	}
	svc := typed[corev1.Service](t, find(t, objs, "Service", "-plotlyjs"))
	if len(svc.Spec.Ports) != 1 || svc.Spec.Ports[0].Port != 9090 || svc.Spec.Ports[0].TargetPort.StrVal != "plotlyjs" {
		t.Errorf("plotlyjs Service ports %+v", svc.Spec.Ports)
	}
	if c.Image != "registry.example/vizops/manager:v1.2.3" {
		t.Errorf("image %q", c.Image)
	}
	if diff := cmp.Diff([]corev1.LocalObjectReference{{Name: "regcred"}}, pod.ImagePullSecrets); diff != "" {
		t.Errorf("imagePullSecrets (-want +got):\n%s", diff)
	}

	// Providers: a ConfigMap whose providers.yaml the manager accepts, mounted where
	// --providers-config points.
	cm := typed[corev1.ConfigMap](t, find(t, objs, "ConfigMap", "-providers"))
	content, ok := cm.Data["providers.yaml"]
	if !ok {
		t.Fatalf("ConfigMap %s has no providers.yaml: %v", cm.Name, cm.Data)
	}
	cfg, err := models.ParseConfig([]byte(content))
	if err != nil {
		t.Fatalf("the manager would refuse the rendered providers.yaml: %v\n%s", err, content)
	}
	if diff := cmp.Diff([]string{"anthropic", "ollama", "openai"}, cfg.Names()); diff != "" {
		t.Errorf("providers (-want +got):\n%s", diff)
	}
	for name, want := range map[string]struct {
		typ, baseURL, model string
		ref                 *models.SecretRef
		timeout             string
	}{
		"ollama":    {"openai", "http://ollama.ollama.svc:11434/v1", "qwen2.5-coder:7b", nil, "2m0s"},
		"openai":    {"openai", "", "gpt-4o-mini", &models.SecretRef{Name: "llm-keys", Key: "openai"}, "1m0s"},
		"anthropic": {"anthropic", "", "claude-sonnet-4-5", &models.SecretRef{Name: "llm-keys", Key: "anthropic"}, "1m30s"},
	} {
		p, _ := cfg.Provider(name)
		if p.Type != want.typ || p.BaseURL != want.baseURL || p.DefaultModel != want.model || p.Timeout.String() != want.timeout {
			t.Errorf("provider %s = %+v, want %+v", name, p, want)
		}
		if diff := cmp.Diff(want.ref, p.APIKeySecretRef); diff != "" {
			t.Errorf("provider %s apiKeySecretRef (-want +got):\n%s", name, diff)
		}
	}
	if p, _ := cfg.Provider("openai"); p.MaxRepairs == nil || *p.MaxRepairs != 1 {
		t.Errorf("openai maxRepairs %v, want 1", p.MaxRepairs)
	}
	if strings.Contains(content, "sk-") {
		t.Errorf("providers.yaml carries a key:\n%s", content)
	}
	var arg string
	for _, a := range c.Args {
		if v, ok := strings.CutPrefix(a, "--providers-config="); ok {
			arg = v
		}
	}
	if arg == "" {
		t.Fatalf("args %v lack --providers-config", c.Args)
	}
	var mount *corev1.VolumeMount
	for i, m := range c.VolumeMounts {
		if m.MountPath == filepath.Dir(arg) {
			mount = &c.VolumeMounts[i]
		}
	}
	if mount == nil || !mount.ReadOnly {
		t.Fatalf("--providers-config=%s but no read-only mount at %s: %+v", arg, filepath.Dir(arg), c.VolumeMounts)
	}
	var vol *corev1.Volume
	for i, v := range pod.Volumes {
		if v.Name == mount.Name {
			vol = &pod.Volumes[i]
		}
	}
	if vol == nil || vol.ConfigMap == nil || vol.ConfigMap.Name != cm.Name {
		t.Errorf("volume %s is %+v, want ConfigMap %s", mount.Name, vol, cm.Name)
	}
	if d.Spec.Template.Annotations["checksum/providers"] == "" {
		t.Errorf("pod annotations %v lack checksum/providers (a providers change must roll the manager)", d.Spec.Template.Annotations)
	}
	if d.Spec.Template.Annotations["prometheus.io/scrape"] != "true" {
		t.Errorf("podAnnotations missing: %v", d.Spec.Template.Annotations)
	}

	if got := ofKind(objs, "SandboxPool"); len(got) != 0 {
		t.Errorf("defaultPool.enabled=false, yet %v", names(got))
	}
	wantRes := corev1.ResourceRequirements{
		Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("250m"), corev1.ResourceMemory: resource.MustParse("256Mi")},
		Limits:   corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("4"), corev1.ResourceMemory: resource.MustParse("8Gi")},
	}
	if diff := cmp.Diff(wantRes, c.Resources); diff != "" {
		t.Errorf("resources (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(map[string]string{"vizops.io/sandbox-node": "true"}, pod.NodeSelector); diff != "" {
		t.Errorf("nodeSelector (-want +got):\n%s", diff)
	}
	if len(pod.Tolerations) != 1 || pod.Tolerations[0].Key != "dedicated" {
		t.Errorf("tolerations %+v", pod.Tolerations)
	}
	if pod.Affinity == nil || pod.Affinity.NodeAffinity == nil {
		t.Errorf("affinity %+v", pod.Affinity)
	}

	// The named service account is created, annotated, used and bound.
	if pod.ServiceAccountName != "vizops-manager" {
		t.Errorf("serviceAccountName %q", pod.ServiceAccountName)
	}
	sa := find(t, objs, "ServiceAccount", "vizops-manager")
	if sa.GetAnnotations()["example.com/role"] != "vizops" {
		t.Errorf("ServiceAccount annotations %v", sa.GetAnnotations())
	}
	for _, kind := range []string{"ClusterRoleBinding", "RoleBinding"} {
		for _, b := range ofKind(objs, kind) {
			rb := typed[rbacv1.RoleBinding](t, b) // ClusterRoleBinding has the same shape
			want := []rbacv1.Subject{{Kind: "ServiceAccount", Name: "vizops-manager", Namespace: "llm"}}
			if diff := cmp.Diff(want, rb.Subjects); diff != "" {
				t.Errorf("%s %s subjects (-want +got):\n%s", kind, rb.Name, diff)
			}
		}
	}
	// The sandboxing settings stay when everything else changes.
	if diff := cmp.Diff(wantContainerSecurity, c.SecurityContext); diff != "" {
		t.Errorf("container securityContext (-want +got):\n%s", diff)
	}
}

// TestChartLocalMode: sandboxing.local.enabled gives the manager what bubblewrap needs
// (and only then), runs the Local backend, and may make the default pool Local; a
// Local default pool without it is refused.
func TestChartLocalMode(t *testing.T) {
	objs := mustHelmTemplate(t, "vizops", "viz-system", localValues)
	d, c := manager(t, objs)
	if diff := cmp.Diff(wantLocalContainerSecurity, c.SecurityContext); diff != "" {
		t.Errorf("container securityContext (-want +got):\n%s", diff)
	}
	if pod := d.Spec.Template.Spec; pod.HostUsers == nil || *pod.HostUsers {
		t.Errorf("hostUsers %v, want false (procMount: Unmasked needs a pod user namespace)", pod.HostUsers)
	}
	if slices.Contains(c.Args, "--local-backend=false") {
		t.Errorf("args %v turn the Local backend off", c.Args)
	}
	pool := typed[vizv1.SandboxPool](t, find(t, objs, "SandboxPool", "default"))
	class := typed[vizv1.SandboxClass](t, find(t, objs, "SandboxClass", "-default"))
	if class.Spec.Backend != vizv1.BackendLocal || class.Spec.Kubernetes != nil || pool.Spec.ClassName != class.Name {
		t.Errorf("default class %+v (pool's className %q), want Local without spec.kubernetes", class.Spec, pool.Spec.ClassName)
	}
	sample := &vizv1.SandboxPool{}
	if err := yaml.UnmarshalStrict(readFile(t, "config/samples/viz_v1alpha1_sandboxpool.yaml"), sample); err != nil {
		t.Fatal(err)
	}
	sample.Spec.ClassName = pool.Spec.ClassName // the sample takes the default class
	if diff := cmp.Diff(sample.Spec, pool.Spec); diff != "" {
		t.Errorf("Local default pool vs config/samples (-sample +chart):\n%s", diff)
	}

	// The Local settings are ignored while local.enabled is off.
	_, c = manager(t, mustHelmTemplate(t, "vizops", "viz-system", "sandboxing: {separateSandboxUser: true, seccompProfile: {type: Unconfined}}"))
	if diff := cmp.Diff(wantContainerSecurity, c.SecurityContext); diff != "" {
		t.Errorf("local off: container securityContext (-want +got):\n%s", diff)
	}
}

// TestChartKubernetesPool: the default pool's sandbox Pods follow the values.
func TestChartKubernetesPool(t *testing.T) {
	objs := mustHelmTemplate(t, "vizops", "viz-system", `
defaultPool:
  kubernetes:
    image: {repository: registry.example/sandbox, tag: v2}
    runtimeClassName: gvisor
    nodeSelector: {sandbox: "true"}
    tolerations: [{key: sandbox, operator: Exists, effect: NoSchedule}]
    maxExecutionsPerSandbox: 3
`)
	k := typed[vizv1.SandboxClass](t, find(t, objs, "SandboxClass", "-default")).Spec.Kubernetes
	want := &vizv1.KubernetesClass{
		Image: "registry.example/sandbox:v2", RuntimeClassName: "gvisor", HostUsers: ptr.To(false),
		NodeSelector:            map[string]string{"sandbox": "true"},
		Tolerations:             []corev1.Toleration{{Key: "sandbox", Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule}},
		MaxExecutionsPerSandbox: 3,
	}
	if diff := cmp.Diff(want, k); diff != "" {
		t.Errorf("spec.kubernetes (-want +got):\n%s", diff)
	}
}

// TestChartSandboxingOptions: the runtime settings bubblewrap needs can be swapped for
// Localhost profiles, and the unmasked /proc (with its pod user namespace) turned off.
func TestChartSandboxingOptions(t *testing.T) {
	objs := mustHelmTemplate(t, "vizops", "viz-system", `
sandboxing:
  local: {enabled: true}
  seccompProfile: {type: Localhost, localhostProfile: profiles/vizops.json}
  appArmorProfile: {type: Localhost, localhostProfile: vizops}
  unmaskedProc: false
`)
	d, c := manager(t, objs)
	want := wantLocalContainerSecurity.DeepCopy()
	want.SeccompProfile = &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeLocalhost, LocalhostProfile: ptr.To("profiles/vizops.json")}
	want.AppArmorProfile = &corev1.AppArmorProfile{Type: corev1.AppArmorProfileTypeLocalhost, LocalhostProfile: ptr.To("vizops")}
	want.ProcMount = nil
	if diff := cmp.Diff(want, c.SecurityContext); diff != "" {
		t.Errorf("container securityContext (-want +got):\n%s", diff)
	}
	if d.Spec.Template.Spec.HostUsers != nil {
		t.Errorf("hostUsers %v, want unset without unmaskedProc", *d.Spec.Template.Spec.HostUsers)
	}

	// separateSandboxUser: root with exactly the capabilities that switch sandboxes to nobody.
	d, c = manager(t, mustHelmTemplate(t, "vizops", "viz-system", "sandboxing: {local: {enabled: true}, separateSandboxUser: true}"))
	want = wantLocalContainerSecurity.DeepCopy()
	want.RunAsNonRoot = ptr.To(false)
	want.Capabilities.Add = []corev1.Capability{"SETUID", "SETGID", "CHOWN"}
	if diff := cmp.Diff(want, c.SecurityContext); diff != "" {
		t.Errorf("separateSandboxUser: container securityContext (-want +got):\n%s", diff)
	}
	wantPod := &corev1.PodSecurityContext{RunAsNonRoot: ptr.To(false), RunAsUser: ptr.To[int64](0), RunAsGroup: ptr.To[int64](0)}
	if diff := cmp.Diff(wantPod, d.Spec.Template.Spec.SecurityContext); diff != "" {
		t.Errorf("separateSandboxUser: pod securityContext (-want +got):\n%s", diff)
	}
}

// TestChartRejectsBadValues: mistakes fail at helm install time, not in a crash-looping
// manager.
func TestChartRejectsBadValues(t *testing.T) {
	tests := map[string]struct {
		values string
		want   string
	}{
		"misspelt apiKeySecretRef":  {"providers: [{name: openai, type: openai, apiKeySecretref: {name: k, key: openai}}]", "apiKeySecretref"},
		"unknown provider type":     {"providers: [{name: x, type: gemini}]", "providers/0/type"},
		"provider without name":     {"providers: [{type: openai}]", "name"},
		"secret ref without key":    {"providers: [{name: x, type: openai, apiKeySecretRef: {name: k}}]", "key"},
		"api key in values":         {"providers: [{name: x, type: openai, apiKey: sk-123}]", "apiKey"},
		"cap zero":                  {"maxConcurrentExecutions: 0", "maxConcurrentExecutions"},
		"no request workers":        {"requestWorkers: 0", "requestWorkers"},
		"minReady above max":        {"defaultPool: {minReady: 5, maxSandboxes: 2}", "minReady"},
		"unknown sandboxing key":    {"sandboxing: {privileged: true}", "privileged"},
		"Local pool with Local off": {"defaultPool: {backend: Local}", "defaultPool.backend Local needs sandboxing.local.enabled=true"},
		"unknown pool backend":      {"defaultPool: {backend: E2B}", "/defaultPool/backend"},
		"executions per Pod 0":      {"defaultPool: {kubernetes: {maxExecutionsPerSandbox: 0}}", "maxExecutionsPerSandbox"},
		"watch ns not a name":       {"watchNamespaces: [Team_A]", "/watchNamespaces/0"},
		"watch ns twice":            {"watchNamespaces: [team-a, team-a]", "/watchNamespaces"},
		"watch ns empty":            {`watchNamespaces: [""]`, "/watchNamespaces/0"},
		"default pool not watched":  {"watchNamespaces: [team-a]", "defaultPool is created in the release namespace viz-system, which watchNamespaces does not list"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := helmTemplate(t, "bad", "viz-system", tc.values)
			if err == nil {
				t.Fatalf("helm template accepted %q", tc.values)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error does not name %q: %v", tc.want, err)
			}
		})
	}
}

// TestChartCRDsAreConfigCRDs: the chart's crds/ is config/crd/bases, byte for byte.
func TestChartCRDsAreConfigCRDs(t *testing.T) {
	root := repoRoot(t)
	want, _ := filepath.Glob(filepath.Join(root, "config", "crd", "bases", "*.yaml"))
	got, _ := filepath.Glob(filepath.Join(root, "charts", "viz-operator", "crds", "*.yaml"))
	base := func(ps []string) []string {
		var out []string
		for _, p := range ps {
			out = append(out, filepath.Base(p))
		}
		return out
	}
	if len(want) == 0 {
		t.Fatal("no CRDs in config/crd/bases: run `make manifests`")
	}
	if diff := cmp.Diff(base(want), base(got)); diff != "" {
		t.Fatalf("chart CRD files differ from config/crd/bases (-config +chart); run `make helm-crds`:\n%s", diff)
	}
	for _, p := range want {
		a, _ := os.ReadFile(p)
		b, _ := os.ReadFile(filepath.Join(root, "charts", "viz-operator", "crds", filepath.Base(p)))
		if string(a) != string(b) {
			t.Errorf("charts/viz-operator/crds/%s differs from config/crd/bases: run `make helm-crds`", filepath.Base(p))
		}
	}
	// And helm installs exactly those.
	var rendered []string
	for _, o := range ofKind(mustHelmTemplate(t, "vizops", "viz-system", ""), "CustomResourceDefinition") {
		rendered = append(rendered, o.GetName())
	}
	slices.Sort(rendered)
	if diff := cmp.Diff([]string{"sandboxclasses.viz.vizops.io", "sandboxpools.viz.vizops.io", "visualizationrequests.viz.vizops.io"}, rendered); diff != "" {
		t.Errorf("rendered CRDs (-want +got):\n%s", diff)
	}
}

// roleRules reads config/rbac/role.yaml: the rules of its ClusterRole and of each Role.
func roleRules(t testing.TB) map[string][]rbacv1.PolicyRule {
	t.Helper()
	out := map[string][]rbacv1.PolicyRule{}
	for _, o := range decode(t, readFile(t, "config/rbac/role.yaml")) {
		switch o.GetKind() {
		case "ClusterRole":
			out["ClusterRole/"+o.GetName()] = typed[rbacv1.ClusterRole](t, o).Rules
		case "Role":
			out["Role/"+o.GetName()] = typed[rbacv1.Role](t, o).Rules
		}
	}
	if _, ok := out["ClusterRole/manager-role"]; !ok {
		t.Fatalf("config/rbac/role.yaml has no ClusterRole manager-role: run `make manifests`")
	}
	return out
}

// TestChartRBACIsConfigRole: the chart grants the manager exactly the rules controller-gen
// generated into config/rbac/role.yaml, bound to its service account.
func TestChartRBACIsConfigRole(t *testing.T) {
	if string(readFile(t, "config/rbac/role.yaml")) != string(readFile(t, "charts/viz-operator/files/role.yaml")) {
		t.Errorf("charts/viz-operator/files/role.yaml differs from config/rbac/role.yaml: run `make helm-crds`")
	}
	const prefix = "vizops-viz-operator-"
	objs := mustHelmTemplate(t, "vizops", "viz-system", "")
	got := map[string][]rbacv1.PolicyRule{}
	for _, o := range ofKind(objs, "ClusterRole") {
		got["ClusterRole/"+strings.TrimPrefix(o.GetName(), prefix)] = typed[rbacv1.ClusterRole](t, o).Rules
	}
	for _, o := range ofKind(objs, "Role") {
		if strings.HasSuffix(o.GetName(), "leader-election-role") {
			continue // config/rbac/leader_election_role.yaml: compared in TestChartAndConfigDefaultDeployTheSame
		}
		if o.GetNamespace() != "viz-system" {
			t.Errorf("Role %s in namespace %q, want the release namespace", o.GetName(), o.GetNamespace())
		}
		got["Role/"+strings.TrimPrefix(o.GetName(), prefix)] = typed[rbacv1.Role](t, o).Rules
	}
	if diff := cmp.Diff(roleRules(t), got); diff != "" {
		t.Errorf("chart roles vs config/rbac/role.yaml (-config +chart):\n%s", diff)
	}
	// Every role is bound to the manager's service account.
	for _, kind := range []string{"ClusterRole", "Role"} {
		for _, r := range ofKind(objs, kind) {
			bound := false
			for _, b := range ofKind(objs, kind+"Binding") {
				rb := typed[rbacv1.RoleBinding](t, b)
				if rb.RoleRef.Kind == kind && rb.RoleRef.Name == r.GetName() &&
					slices.Contains(rb.Subjects, rbacv1.Subject{Kind: "ServiceAccount", Name: prefix + "controller-manager", Namespace: "viz-system"}) {
					bound = true
				}
			}
			if !bound {
				t.Errorf("%s %s is not bound to the manager's service account", kind, r.GetName())
			}
		}
	}
}

// deployed strips what legitimately differs between the two installs (labels, Helm's
// bookkeeping, defaults the API server fills alike) and keeps what is deployed.
func deployed(t testing.TB, o *unstructured.Unstructured) any {
	t.Helper()
	switch o.GetKind() {
	case "Deployment":
		d := typed[appsv1.Deployment](t, o)
		spec := d.Spec.Template.Spec.DeepCopy()
		for i := range spec.Containers {
			spec.Containers[i].ImagePullPolicy = "" // IfNotPresent either way for a non-latest tag
		}
		return struct {
			Replicas *int32
			Spec     *corev1.PodSpec
		}{d.Spec.Replicas, spec}
	case "ClusterRole":
		return typed[rbacv1.ClusterRole](t, o).Rules
	case "Role":
		return typed[rbacv1.Role](t, o).Rules
	case "ClusterRoleBinding", "RoleBinding":
		rb := typed[rbacv1.RoleBinding](t, o)
		return struct {
			RoleRef  rbacv1.RoleRef
			Subjects []rbacv1.Subject
		}{rb.RoleRef, rb.Subjects}
	case "Service":
		return typed[corev1.Service](t, o).Spec.Ports
	case "CustomResourceDefinition":
		return o.Object["spec"]
	default:
		return nil // ServiceAccount, Namespace: their existence is compared
	}
}

// TestChartAndConfigDefaultDeployTheSame: `helm install viz-operator -n viz-system` and
// `make deploy` (config/default) create the same objects with the same manager flags,
// security settings, RBAC and CRDs.
func TestChartAndConfigDefaultDeployTheSame(t *testing.T) {
	chart := mustHelmTemplate(t, "viz-operator", "viz-system", "")
	kust := kustomizeBuild(t, "config/default")
	index := func(objs []*unstructured.Unstructured, skip ...string) map[string]*unstructured.Unstructured {
		m := map[string]*unstructured.Unstructured{}
		for _, o := range objs {
			if slices.Contains(skip, o.GetKind()) {
				continue
			}
			m[o.GetKind()+"/"+o.GetNamespace()+"/"+o.GetName()] = o
		}
		return m
	}
	// Helm creates the namespace (--create-namespace); make deploy applies the class
	// and pool separately (TestChartDefaults compares them with the samples).
	c, k := index(chart, "SandboxPool", "SandboxClass"), index(kust, "Namespace")
	keys := func(m map[string]*unstructured.Unstructured) []string {
		var out []string
		for key := range m {
			out = append(out, key)
		}
		slices.Sort(out)
		return out
	}
	if diff := cmp.Diff(keys(k), keys(c)); diff != "" {
		t.Errorf("objects (-config/default +chart):\n%s", diff)
	}
	for key, ko := range k {
		co, ok := c[key]
		if !ok {
			continue
		}
		if diff := cmp.Diff(deployed(t, ko), deployed(t, co)); diff != "" {
			t.Errorf("%s (-config/default +chart):\n%s", key, diff)
		}
	}
	// The Deployment comparison above covers config/manager/manager.yaml; check the
	// shared settings are the intended ones, not merely equal.
	_, kc := manager(t, kust)
	if diff := cmp.Diff(wantContainerSecurity, kc.SecurityContext); diff != "" {
		t.Errorf("config/default container securityContext (-want +got):\n%s", diff)
	}
}

func hasEnvFromField(c corev1.Container, name, path string) bool {
	for _, e := range c.Env {
		if e.Name == name && e.ValueFrom != nil && e.ValueFrom.FieldRef != nil && e.ValueFrom.FieldRef.FieldPath == path {
			return true
		}
	}
	return false
}

// TestChartLints: helm lint --strict, with the defaults, the custom values and the
// namespace-scoped mode.
func TestChartLints(t *testing.T) {
	f := filepath.Join(t.TempDir(), "custom.yaml")
	if err := os.WriteFile(f, []byte(customValues), 0o644); err != nil {
		t.Fatal(err)
	}
	ns := filepath.Join(t.TempDir(), "namespaced.yaml")
	if err := os.WriteFile(ns, []byte("{watchNamespaces: [team-a], defaultPool: {enabled: false}}"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{}, {"--values", f}, {"--values", ns}} {
		if _, err := run(t, tool(t, "helm"), append([]string{"lint", "--strict", "charts/viz-operator"}, args...)...); err != nil {
			t.Error(err)
		}
	}
}

// flatRules flattens rules into "group/resource" -> sorted verbs, so that rules split or
// merged differently compare equal when they grant the same.
func flatRules(rules []rbacv1.PolicyRule) map[string][]string {
	out := map[string][]string{}
	for _, r := range rules {
		for _, g := range r.APIGroups {
			for _, res := range r.Resources {
				k := g + "/" + res
				for _, v := range r.Verbs {
					if !slices.Contains(out[k], v) {
						out[k] = append(out[k], v)
					}
				}
				slices.Sort(out[k])
			}
		}
	}
	return out
}

// TestChartNamespaceMode: with watchNamespaces the manager gets --watch-namespaces, the
// ClusterRole keeps only cluster-scoped resources, and each listed namespace gets a Role
// with the rest, bound to the manager's service account; together they grant exactly
// config/rbac/role.yaml's ClusterRole, and the operator's own Role is untouched.
func TestChartNamespaceMode(t *testing.T) {
	const prefix = "vizops-viz-operator-"
	watched := []string{"viz-system", "team-a", "team-b"}
	objs := mustHelmTemplate(t, "vizops", "viz-system", "watchNamespaces: [viz-system, team-a, team-b]")
	_, c := manager(t, objs)
	var flags []string
	for _, a := range c.Args {
		if strings.HasPrefix(a, "--watch-namespaces") {
			flags = append(flags, a)
		}
	}
	if diff := cmp.Diff([]string{"--watch-namespaces=viz-system,team-a,team-b"}, flags); diff != "" {
		t.Errorf("--watch-namespaces (-want +got):\n%s", diff)
	}

	// Cluster-wide: only what is cluster-scoped.
	cluster := map[string][]string{}
	for _, o := range ofKind(objs, "ClusterRole") {
		for k, v := range flatRules(typed[rbacv1.ClusterRole](t, o).Rules) {
			cluster[k] = v
		}
	}
	wantCluster := map[string][]string{
		"/namespaces":                  {"get", "list", "watch"},
		"viz.vizops.io/sandboxclasses": {"get", "list", "watch"},
	}
	if diff := cmp.Diff(wantCluster, cluster); diff != "" {
		t.Errorf("ClusterRole rules in namespace mode (-want +got):\n%s", diff)
	}

	// Per watched namespace: a Role with the namespaced rest, bound to the manager.
	sa := rbacv1.Subject{Kind: "ServiceAccount", Name: prefix + "controller-manager", Namespace: "viz-system"}
	roles := map[string]*rbacv1.Role{}
	for _, o := range ofKind(objs, "Role") {
		if strings.HasSuffix(o.GetName(), "-watched-namespace-role") {
			if _, dup := roles[o.GetNamespace()]; dup {
				t.Errorf("two watched-namespace Roles in %s", o.GetNamespace())
			}
			roles[o.GetNamespace()] = typed[rbacv1.Role](t, o)
		}
	}
	var got []string
	for ns := range roles {
		got = append(got, ns)
	}
	slices.Sort(got)
	want := slices.Sorted(slices.Values(watched))
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("namespaces with a watched-namespace Role (-want +got):\n%s", diff)
	}
	generated := flatRules(roleRules(t)["ClusterRole/manager-role"])
	for _, ns := range watched {
		role := roles[ns]
		rules := flatRules(role.Rules)
		for _, res := range []string{"/pods", "networking.k8s.io/networkpolicies", "/secrets", "/configmaps", "events.k8s.io/events", "viz.vizops.io/sandboxpools", "viz.vizops.io/visualizationrequests/status"} {
			if diff := cmp.Diff(generated[res], rules[res]); diff != "" || len(rules[res]) == 0 {
				t.Errorf("Role in %s, %s (-generated +chart):\n%s", ns, res, diff)
			}
		}
		// Together with the ClusterRole: exactly the generated ClusterRole.
		union := map[string][]string{}
		for k, v := range rules {
			union[k] = v
		}
		for k, v := range cluster {
			if _, both := union[k]; both {
				t.Errorf("%s is granted both in the Role of %s and cluster-wide", k, ns)
			}
			union[k] = v
		}
		if diff := cmp.Diff(generated, union); diff != "" {
			t.Errorf("Role in %s + ClusterRole vs config/rbac/role.yaml's ClusterRole (-generated +chart):\n%s", ns, diff)
		}
		bound := 0
		for _, b := range ofKind(objs, "RoleBinding") {
			rb := typed[rbacv1.RoleBinding](t, b)
			if rb.Namespace == ns && rb.RoleRef.Kind == "Role" && rb.RoleRef.Name == role.Name {
				bound++
				if diff := cmp.Diff([]rbacv1.Subject{sa}, rb.Subjects); diff != "" {
					t.Errorf("RoleBinding %s/%s subjects (-want +got):\n%s", ns, rb.Name, diff)
				}
			}
		}
		if bound != 1 {
			t.Errorf("Role %s/%s has %d RoleBindings, want 1", ns, role.Name, bound)
		}
	}
	// Every ClusterRole is bound to the manager, and nothing else is cluster-wide.
	for _, b := range ofKind(objs, "ClusterRoleBinding") {
		crb := typed[rbacv1.ClusterRoleBinding](t, b)
		if !strings.HasPrefix(crb.RoleRef.Name, prefix) || find(t, objs, "ClusterRole", crb.RoleRef.Name) == nil {
			t.Errorf("ClusterRoleBinding %s binds %s", crb.Name, crb.RoleRef.Name)
		}
	}
	// The operator's own Role (Secrets get and create in the release namespace) stays.
	opRole := typed[rbacv1.Role](t, find(t, objs, "Role", prefix+"manager-role"))
	if diff := cmp.Diff(roleRules(t)["Role/manager-role"], opRole.Rules); diff != "" || opRole.Namespace != "viz-system" {
		t.Errorf("the operator's Role in %s (-config +chart):\n%s", opRole.Namespace, diff)
	}

	// Without the default pool, the release namespace need not be watched, and gets no
	// watched-namespace Role.
	objs = mustHelmTemplate(t, "vizops", "viz-system", "{watchNamespaces: [team-a], defaultPool: {enabled: false}}")
	for _, o := range ofKind(objs, "Role") {
		if strings.HasSuffix(o.GetName(), "-watched-namespace-role") && o.GetNamespace() != "team-a" {
			t.Errorf("watched-namespace Role in %s, which is not watched", o.GetNamespace())
		}
	}
	if len(ofKind(objs, "SandboxPool")) != 0 {
		t.Errorf("defaultPool.enabled=false rendered a pool")
	}
}
