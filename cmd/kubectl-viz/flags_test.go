package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	vizv1 "github.com/vizops/viz-operator/api/v1alpha1"
)

// kubectl's flags, read through cli-runtime's ConfigFlags, against a real API server
// with RBAC: who the request is made as (--as, --as-group, a context's user), where
// (--context, the context's namespace, -n, --server), and which kubeconfig
// (--kubeconfig, a KUBECONFIG list merged).

// grantReader lets user and group read (get, list, watch) requests and pools in ns.
func grantReader(t *testing.T, ns string, subjects ...rbacv1.Subject) {
	t.Helper()
	ctx := context.Background()
	role := &rbacv1.Role{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "viz-reader"},
		Rules: []rbacv1.PolicyRule{{
			APIGroups: []string{vizv1.GroupVersion.Group},
			Resources: []string{"visualizationrequests", "sandboxpools"},
			Verbs:     []string{"get", "list", "watch"},
		}},
	}
	if err := k8s.Create(ctx, role); err != nil {
		t.Fatal(err)
	}
	rb := &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "viz-reader"},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: role.Name},
		Subjects:   subjects,
	}
	if err := k8s.Create(ctx, rb); err != nil {
		t.Fatal(err)
	}
}

// userKubeconfig adds an envtest user (a client certificate) and returns its config.
func userKubeconfig(t *testing.T, name string, groups ...string) *clientcmdapi.Config {
	t.Helper()
	u, err := testEnv.AddUser(envtest.User{Name: name, Groups: groups}, nil)
	if err != nil {
		t.Fatal(err)
	}
	data, err := u.KubeConfig()
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := clientcmd.Load(data)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// twoContexts is one kubeconfig with the admin's context (current, namespace ns) and
// bob's (a user with no rights of his own), each with its own cluster and user entry.
func twoContexts(t *testing.T, ns string) *clientcmdapi.Config {
	t.Helper()
	admin, err := clientcmd.LoadFromFile(kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	bob := userKubeconfig(t, "bob")
	out := clientcmdapi.NewConfig()
	for name, cfg := range map[string]*clientcmdapi.Config{"admin": admin, "bob": bob} {
		cur := cfg.Contexts[cfg.CurrentContext]
		out.Clusters[name] = cfg.Clusters[cur.Cluster]
		out.AuthInfos[name] = cfg.AuthInfos[cur.AuthInfo]
		out.Contexts[name] = &clientcmdapi.Context{Cluster: name, AuthInfo: name, Namespace: ns}
	}
	out.CurrentContext = "admin"
	return out
}

func writeKubeconfig(t *testing.T, cfg *clientcmdapi.Config) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "config")
	if err := clientcmd.WriteToFile(*cfg, path); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestConfigFlags(t *testing.T) {
	ns := newTestNamespace(t)
	makeRequest(t, ns, "here", vizv1.VisualizationRequestStatus{Phase: vizv1.PhaseQueued})
	grantReader(t, ns,
		rbacv1.Subject{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: "alice"},
		rbacv1.Subject{Kind: rbacv1.GroupKind, APIGroup: rbacv1.GroupName, Name: "viz-readers"},
		rbacv1.Subject{Kind: rbacv1.ServiceAccountKind, Namespace: ns, Name: "reader"})
	both := writeKubeconfig(t, twoContexts(t, ns))

	// A bearer token: a ServiceAccount's, from the TokenRequest API, used from a
	// context whose user has no credentials of its own.
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "reader"}}
	if err := k8s.Create(t.Context(), sa); err != nil {
		t.Fatal(err)
	}
	tr := &authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: ptr.To[int64](600)}}
	if err := k8s.SubResource("token").Create(t.Context(), sa, tr); err != nil {
		t.Fatal(err)
	}
	anonymous := twoContexts(t, ns)
	anonymous.AuthInfos["admin"] = clientcmdapi.NewAuthInfo()
	noCredentials := writeKubeconfig(t, anonymous)

	// The same kubeconfig split in two files: clusters and users in one, contexts in
	// the other. KUBECONFIG lists both; cli-runtime merges them as kubectl does.
	merged := twoContexts(t, ns)
	credentials, contexts := clientcmdapi.NewConfig(), clientcmdapi.NewConfig()
	credentials.Clusters, credentials.AuthInfos = merged.Clusters, merged.AuthInfos
	contexts.Contexts, contexts.CurrentContext = merged.Contexts, merged.CurrentContext
	kubeconfigList := writeKubeconfig(t, credentials) + string(os.PathListSeparator) + writeKubeconfig(t, contexts)

	type want struct {
		code      int
		stdoutHas string
		stderrHas string
	}
	tests := map[string]struct {
		env  string // KUBECONFIG
		args []string
		want want
	}{
		"the current context's user and namespace": {
			args: []string{"--kubeconfig", both},
			want: want{stdoutHas: "phase: Queued"},
		},
		"-n over the context's namespace": {
			args: []string{"--kubeconfig", both, "-n", "default"},
			want: want{code: 1, stderrHas: `visualizationrequest "here" not found in namespace "default"`},
		},
		"--context switches to bob, who may not read requests": {
			args: []string{"--kubeconfig", both, "--context", "bob"},
			want: want{code: 1, stderrHas: `not allowed: visualizationrequests.viz.vizops.io "here" is forbidden: User "bob" cannot get resource`},
		},
		"--context that does not exist": {
			args: []string{"--kubeconfig", both, "--context", "nope"},
			want: want{code: 1, stderrHas: `context was not found for specified context: nope`},
		},
		"--user of the other context": {
			args: []string{"--kubeconfig", both, "--user", "bob"},
			want: want{code: 1, stderrHas: `User "bob" cannot get resource`},
		},
		"--as a user the Role allows": {
			args: []string{"--kubeconfig", both, "--as", "alice"},
			want: want{stdoutHas: "phase: Queued"},
		},
		"--as a user the Role does not allow": {
			args: []string{"--kubeconfig", both, "--as", "mallory"},
			want: want{code: 1, stderrHas: `User "mallory" cannot get resource "visualizationrequests"`},
		},
		"--as-group the Role allows": {
			args: []string{"--kubeconfig", both, "--as", "mallory", "--as-group", "viz-readers"},
			want: want{stdoutHas: "phase: Queued"},
		},
		"bob may not impersonate": {
			args: []string{"--kubeconfig", both, "--context", "bob", "--as", "alice"},
			want: want{code: 1, stderrHas: `User "bob" cannot impersonate`},
		},
		"a KUBECONFIG list is merged": {
			env:  kubeconfigList,
			want: want{stdoutHas: "phase: Queued"},
		},
		"--context over a merged KUBECONFIG": {
			env:  kubeconfigList,
			args: []string{"--context", "bob"},
			want: want{code: 1, stderrHas: `User "bob" cannot get resource`},
		},
		"--token of a ServiceAccount the Role allows": {
			args: []string{"--kubeconfig", noCredentials, "--token", tr.Status.Token},
			want: want{stdoutHas: "phase: Queued"},
		},
		"--token the API server does not know": {
			args: []string{"--kubeconfig", noCredentials, "--token", "not-a-token"},
			want: want{code: 1, stderrHas: "the cluster did not accept the credentials"},
		},
		"no credentials at all": {
			args: []string{"--kubeconfig", noCredentials},
			want: want{code: 1, stderrHas: `User "system:anonymous" cannot get resource`},
		},
		"--request-timeout": {
			args: []string{"--kubeconfig", both, "--request-timeout", "1ns"},
			want: want{code: 1, stderrHas: "the API server did not answer in time (context deadline exceeded): raise --request-timeout"},
		},
		"--server overrides the cluster's address": {
			args: []string{"--kubeconfig", both, "--server", "https://127.0.0.1:1"},
			want: want{code: 1, stderrHas: "127.0.0.1:1"},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Setenv("KUBECONFIG", tc.env)
			stdout, stderr, code := runCLI(t, append([]string{"logs", "here"}, tc.args...)...)
			if code != tc.want.code {
				t.Fatalf("exit %d, want %d\nstdout: %s\nstderr: %s", code, tc.want.code, stdout, stderr)
			}
			if !strings.Contains(stdout, tc.want.stdoutHas) || !strings.Contains(stderr, tc.want.stderrHas) {
				t.Errorf("stdout %q (want %q)\nstderr %q (want %q)", stdout, tc.want.stdoutHas, stderr, tc.want.stderrHas)
			}
		})
	}

	// Impersonation reaches writes too: alice may read but not create.
	_, stderr, code := runCLI(t, "create", "by-alice", "--kubeconfig", both, "--as", "alice", "--prompt", "bar chart of a 1")
	if code != 1 || !strings.Contains(stderr, `User "alice" cannot create resource "visualizationrequests"`) {
		t.Errorf("create --as alice: exit %d, %s", code, stderr)
	}
	// And the watch of --wait: alice may watch, mallory may not even get.
	_, stderr, code = runCLI(t, "get", "here", "--kubeconfig", both, "--as", "alice", "--wait", "--wait-timeout", "1s")
	if code != 1 || !strings.Contains(stderr, `did not finish within 1s (phase Queued)`) {
		t.Errorf("get --wait --as alice: exit %d, %s", code, stderr)
	}
	_, stderr, code = runCLI(t, "get", "here", "--kubeconfig", both, "--as", "mallory", "--wait", "--wait-timeout", "1s")
	if code != 1 || !strings.Contains(stderr, `User "mallory" cannot get resource`) {
		t.Errorf("get --wait --as mallory: exit %d, %s", code, stderr)
	}
}
