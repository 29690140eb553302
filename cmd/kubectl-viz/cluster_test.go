package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	vizv1 "github.com/vizops/viz-operator/api/v1alpha1"
	"github.com/vizops/viz-operator/internal/sandbox/agent"
)

// The cluster commands are tested against a real API server (envtest) with the CRDs
// installed. No operator runs: tests play the controller by writing status.

var (
	envOnce       sync.Once
	testEnv       *envtest.Environment
	envErr        error
	k8s           client.Client
	kubeconfig    string // admin kubeconfig of the test API server
	envTmp        string
	namespaceSeed atomic.Int32
)

func TestMain(m *testing.M) {
	agent.RunIfReexec() // Local sandboxes (render --local) run this binary as their agent
	code := m.Run()
	if testEnv != nil {
		_ = testEnv.Stop()
	}
	if envTmp != "" {
		_ = os.RemoveAll(envTmp)
	}
	os.Exit(code)
}

// envtestAssets is $KUBEBUILDER_ASSETS, else the repository's bin/k8s/<version> that
// hack/envtest-assets.sh fills.
func envtestAssets() string {
	if d := os.Getenv("KUBEBUILDER_ASSETS"); d != "" {
		return d
	}
	matches, _ := filepath.Glob(filepath.Join("..", "..", "bin", "k8s", "*", "kube-apiserver"))
	if len(matches) > 0 {
		return filepath.Dir(matches[len(matches)-1])
	}
	return ""
}

// startEnv starts the API server once, for the tests that need it.
func startEnv(t *testing.T) {
	t.Helper()
	envOnce.Do(func() {
		assets := envtestAssets()
		if assets == "" {
			envErr = fmt.Errorf("no envtest binaries: run `make test` (it sets KUBEBUILDER_ASSETS), or hack/envtest-assets.sh")
			return
		}
		testEnv = &envtest.Environment{
			CRDDirectoryPaths:     []string{filepath.Join("..", "..", "config", "crd", "bases")},
			ErrorIfCRDPathMissing: true,
			BinaryAssetsDirectory: assets,
		}
		cfg, err := testEnv.Start()
		if err != nil {
			envErr = fmt.Errorf("starting envtest: %w", err)
			return
		}
		if k8s, err = client.New(cfg, client.Options{Scheme: clusterScheme}); err != nil {
			envErr = err
			return
		}
		user, err := testEnv.AddUser(envtest.User{Name: "viz-admin", Groups: []string{"system:masters"}}, nil)
		if err != nil {
			envErr = err
			return
		}
		data, err := user.KubeConfig()
		if err != nil {
			envErr = err
			return
		}
		if envTmp, err = os.MkdirTemp("", "kubectl-viz-test-"); err != nil {
			envErr = err
			return
		}
		kubeconfig = filepath.Join(envTmp, "kubeconfig")
		envErr = os.WriteFile(kubeconfig, data, 0o600)
	})
	if envErr != nil {
		t.Fatal(envErr)
	}
}

// newTestNamespace starts the API server if needed and makes a namespace for one test.
func newTestNamespace(t *testing.T) string {
	t.Helper()
	startEnv(t)
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("viz-%d", namespaceSeed.Add(1))}}
	if err := k8s.Create(context.Background(), ns); err != nil {
		t.Fatal(err)
	}
	return ns.Name
}

func sum(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func readyCond(status metav1.ConditionStatus, reason, msg string) metav1.Condition {
	return metav1.Condition{Type: vizv1.ConditionReady, Status: status, Reason: reason, Message: msg, LastTransitionTime: metav1.Now()}
}

// setStatus writes a request's status as the controller would.
func setStatus(ctx context.Context, ns, name string, mutate func(*vizv1.VisualizationRequestStatus)) error {
	vr := &vizv1.VisualizationRequest{}
	if err := k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, vr); err != nil {
		return err
	}
	mutate(&vr.Status)
	return k8s.Status().Update(ctx, vr)
}

// playController waits for the request to exist, then applies the status steps in
// order, 300 ms apart, like a controller moving it through its phases.
func playController(t *testing.T, ns, name string, steps ...func(*vizv1.VisualizationRequestStatus)) <-chan error {
	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		for {
			err := k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, &vizv1.VisualizationRequest{})
			if err == nil {
				break
			}
			if ctx.Err() != nil {
				done <- fmt.Errorf("request %s never appeared: %w", name, err)
				return
			}
			time.Sleep(50 * time.Millisecond)
		}
		for _, step := range steps {
			time.Sleep(300 * time.Millisecond)
			if err := setStatus(ctx, ns, name, step); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	return done
}

var (
	pngBytes = []byte("\x89PNG\r\n\x1a\nnot really a png, but bytes with a hash")
	svgBytes = []byte(`<svg xmlns="http://www.w3.org/2000/svg"><rect width="1" height="1"/></svg>`)
)

func inlineArtifact(name, format, mime string, data []byte) vizv1.ArtifactStatus {
	return vizv1.ArtifactStatus{Name: name, Format: format, MIMEType: mime, SizeBytes: int64(len(data)), SHA256: sum(data), Data: data}
}

func queued(pos int32) func(*vizv1.VisualizationRequestStatus) {
	return func(s *vizv1.VisualizationRequestStatus) {
		s.Phase = vizv1.PhaseQueued
		s.QueuePosition = ptr.To(pos)
		s.Detection = &vizv1.DetectionStatus{Visualization: true, Tool: "CodeInterpreter", ChartType: "bar"}
	}
}

func running(s *vizv1.VisualizationRequestStatus) {
	s.Phase = vizv1.PhaseRunning
	s.QueuePosition = nil
	s.Attempts = 1
}

func succeeded(arts ...vizv1.ArtifactStatus) func(*vizv1.VisualizationRequestStatus) {
	return func(s *vizv1.VisualizationRequestStatus) {
		s.Phase = vizv1.PhaseSucceeded
		s.Execution = &vizv1.ExecutionStatus{Backend: "Local", DurationMillis: 812}
		s.Artifacts = arts
		meta.SetStatusCondition(&s.Conditions, readyCond(metav1.ConditionTrue, vizv1.ReasonSucceeded, "2 artifact(s) stored in status"))
	}
}

func TestCreateCommand(t *testing.T) {
	ns := newTestNamespace(t)
	dir := t.TempDir()
	csv := filepath.Join(dir, "hb.csv")
	if err := os.WriteFile(csv, []byte("month,hb\n2026-01,8.1\n2026-02,8.4\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	big := filepath.Join(dir, "big.csv")
	if err := os.WriteFile(big, bytes.Repeat([]byte("1,2,3,4,5,6,7\n"), 20000), 0o644); err != nil {
		t.Fatal(err)
	}
	code := filepath.Join(dir, "chart.py")
	if err := os.WriteFile(code, []byte("import matplotlib.pyplot as plt\nplt.plot([1, 2])\n"), 0o644); err != nil {
		t.Fatal(err)
	}

	type want struct {
		code       int
		stdoutHas  []string
		stderrHas  []string
		files      map[string][]byte
		checkSpec  func(*testing.T, vizv1.VisualizationRequestSpec)
		notCreated bool
	}
	tests := map[string]struct {
		args  []string
		steps []func(*vizv1.VisualizationRequestStatus)
		want  want
	}{
		"wait, progress, then the charts in -o": {
			args: []string{"--prompt", "line chart of hb over time", "--data", csv, "--format", "png,svg",
				"--model", "openai/gpt-4o-mini", "--pool", "fast", "--timeout", "45s", "--wait", "-o", "OUT"},
			steps: []func(*vizv1.VisualizationRequestStatus){queued(2), running, succeeded(
				inlineArtifact("figure-1.png", "png", "image/png", pngBytes),
				inlineArtifact("figure-1.svg", "svg", "image/svg+xml", svgBytes))},
			want: want{
				stdoutHas: []string{"created in namespace " + ns, "Succeeded (bar, Local, 812 ms, 2 artifact(s))", "wrote ", "figure-1.svg"},
				stderrHas: []string{"Queued, queue position 2", "Running, attempt 1/3"},
				files:     map[string][]byte{"figure-1.png": pngBytes, "figure-1.svg": svgBytes},
				checkSpec: func(t *testing.T, s vizv1.VisualizationRequestSpec) {
					if s.Data == nil || s.Data.CSV == nil || !strings.HasPrefix(*s.Data.CSV, "month,hb") {
						t.Errorf("spec.data.csv = %v, want the file's content", s.Data)
					}
					if s.Model != "openai/gpt-4o-mini" || s.SandboxPoolRef.Name != "fast" || s.TimeoutSeconds != 45 {
						t.Errorf("spec = model %q pool %q timeout %d", s.Model, s.SandboxPoolRef.Name, s.TimeoutSeconds)
					}
					if fmt.Sprint(s.OutputFormats) != "[png svg]" {
						t.Errorf("outputFormats = %v", s.OutputFormats)
					}
				},
			},
		},
		"failed exits 1 with the Ready reason and message on one line": {
			args: []string{"--code-file", code, "--wait"},
			steps: []func(*vizv1.VisualizationRequestStatus){running, func(s *vizv1.VisualizationRequestStatus) {
				s.Phase = vizv1.PhaseFailed
				meta.SetStatusCondition(&s.Conditions, readyCond(metav1.ConditionFalse, vizv1.ReasonCodeError,
					"the code raised ZeroDivisionError: division by zero\nSee kubectl viz logs."))
			}},
			want: want{
				code:      1,
				stderrHas: []string{"failed: CodeError: the code raised ZeroDivisionError: division by zero See kubectl viz logs."},
				checkSpec: func(t *testing.T, s vizv1.VisualizationRequestSpec) {
					if !strings.Contains(s.Code, "plt.plot") || s.Prompt != "" {
						t.Errorf("spec.code = %q, prompt %q", s.Code, s.Prompt)
					}
				},
			},
		},
		"skipped is not an error": {
			args: []string{"--prompt", "what do trials say about hydroxyurea?", "--wait"},
			steps: []func(*vizv1.VisualizationRequestStatus){func(s *vizv1.VisualizationRequestStatus) {
				s.Phase = vizv1.PhaseSkipped
				s.Detection = &vizv1.DetectionStatus{Visualization: false, Tool: "PubMedSearch"}
				meta.SetStatusCondition(&s.Conditions, readyCond(metav1.ConditionFalse, vizv1.ReasonNotAVisualization, "not a chart request"))
			}},
			want: want{stdoutHas: []string{"not a visualization (tool: PubMedSearch)"}},
		},
		"without --wait it only creates": {
			args: []string{"--prompt", "bar chart of a 1, b 2"},
			want: want{stdoutHas: []string{"created in namespace " + ns}},
		},
		"wait gives up after --wait-timeout": {
			args: []string{"--prompt", "bar chart of a 1, b 2", "--wait", "--wait-timeout", "1s"},
			want: want{code: 1, stderrHas: []string{"did not finish within 1s (phase Pending); is the operator running? follow it with"}},
		},
		"wait names what the request waits for": {
			args: []string{"--prompt", "bar chart of a 1, b 2", "--pool", "missing", "--wait", "--wait-timeout", "2s"},
			steps: []func(*vizv1.VisualizationRequestStatus){func(s *vizv1.VisualizationRequestStatus) {
				s.Phase = vizv1.PhasePending
				meta.SetStatusCondition(&s.Conditions, metav1.Condition{Type: vizv1.ConditionAdmitted, Status: metav1.ConditionFalse,
					Reason: "WaitingForPool", Message: "SandboxPool x/missing not found; create it", LastTransitionTime: metav1.Now()})
			}},
			want: want{code: 1, stderrHas: []string{"Pending, WaitingForPool", "did not finish within 2s (phase Pending, WaitingForPool: SandboxPool x/missing not found; create it); follow it with"}},
		},
		"data over 256 KiB": {
			args: []string{"--prompt", "bar chart", "--data", big},
			want: want{code: 2, notCreated: true, stderrHas: []string{"inline data (spec.data.csv) holds at most 256 KiB", "configMapKeyRef"}},
		},
		"neither prompt nor code": {
			args: []string{"--wait"},
			want: want{code: 2, notCreated: true, stderrHas: []string{"give --prompt"}},
		},
		"unknown format": {
			args: []string{"--prompt", "bar chart", "--format", "gif"},
			want: want{code: 2, notCreated: true, stderrHas: []string{`--format "gif" is not supported`}},
		},
		"timeout out of range": {
			args: []string{"--prompt", "bar chart", "--timeout", "11m"},
			want: want{code: 2, notCreated: true, stderrHas: []string{"--timeout 11m0s is out of range"}},
		},
		"-o without --wait": {
			args: []string{"--prompt", "bar chart", "-o", "OUT"},
			want: want{code: 2, notCreated: true, stderrHas: []string{"-o needs --wait"}},
		},
	}
	i := 0
	for name, tc := range tests {
		i++
		reqName := fmt.Sprintf("req-%d", i)
		t.Run(name, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "charts")
			args := []string{"create", reqName, "--kubeconfig", kubeconfig, "-n", ns}
			for _, a := range tc.args {
				args = append(args, strings.ReplaceAll(a, "OUT", out))
			}
			var sim <-chan error
			if len(tc.steps) > 0 {
				sim = playController(t, ns, reqName, tc.steps...)
			}
			stdout, stderr, code := runCLI(t, args...)
			if code != tc.want.code {
				t.Fatalf("exit code %d, want %d\nstdout: %s\nstderr: %s", code, tc.want.code, stdout, stderr)
			}
			if sim != nil {
				if err := <-sim; err != nil {
					t.Fatalf("playing the controller: %v", err)
				}
			}
			for _, s := range tc.want.stdoutHas {
				if !strings.Contains(stdout, s) {
					t.Errorf("stdout misses %q:\n%s", s, stdout)
				}
			}
			for _, s := range tc.want.stderrHas {
				if !strings.Contains(stderr, s) {
					t.Errorf("stderr misses %q:\n%s", s, stderr)
				}
			}
			if strings.Count(strings.TrimPrefix(stderr[strings.LastIndex(stderr, "error: ")+1:], "error: "), "\n") > 0 && code != 0 {
				t.Errorf("the error is not one line:\n%s", stderr)
			}
			for f, content := range tc.want.files {
				got, err := os.ReadFile(filepath.Join(out, f))
				if err != nil || !bytes.Equal(got, content) {
					t.Errorf("%s: %q, %v; want %q", f, got, err, content)
				}
			}
			vr := &vizv1.VisualizationRequest{}
			err := k8s.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: reqName}, vr)
			if tc.want.notCreated {
				if err == nil {
					t.Errorf("request %s was created", reqName)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tc.want.checkSpec != nil {
				tc.want.checkSpec(t, vr.Spec)
			}
		})
	}

	t.Run("an existing name", func(t *testing.T) {
		args := []string{"create", "dup", "--kubeconfig", kubeconfig, "-n", ns, "--prompt", "bar chart"}
		if _, stderr, code := runCLI(t, args...); code != 0 {
			t.Fatalf("first create: exit %d, %s", code, stderr)
		}
		_, stderr, code := runCLI(t, args...)
		if code != 1 || !strings.Contains(stderr, `visualizationrequest "dup" already exists in namespace "`+ns+`"`) {
			t.Errorf("code %d, stderr %s", code, stderr)
		}
	})
}

// makeRequest creates a request and writes its status.
func makeRequest(t *testing.T, ns, name string, status vizv1.VisualizationRequestStatus) {
	t.Helper()
	ctx := context.Background()
	vr := &vizv1.VisualizationRequest{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}
	vr.Spec.Prompt = "bar chart of a 1, b 2"
	if err := k8s.Create(ctx, vr); err != nil {
		t.Fatal(err)
	}
	vr.Status = status
	if err := k8s.Status().Update(ctx, vr); err != nil {
		t.Fatal(err)
	}
}

func TestGetCommand(t *testing.T) {
	ns := newTestNamespace(t)
	ctx := context.Background()
	done := func(arts ...vizv1.ArtifactStatus) vizv1.VisualizationRequestStatus {
		s := vizv1.VisualizationRequestStatus{}
		succeeded(arts...)(&s)
		return s
	}
	makeRequest(t, ns, "inline", done(
		inlineArtifact("figure-1.png", "png", "image/png", pngBytes),
		inlineArtifact("figure-1.svg", "svg", "image/svg+xml", svgBytes)))

	// Stored in a ConfigMap, as the controller does past 256 KiB.
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "in-cm-artifacts"},
		BinaryData: map[string][]byte{"figure-1.png": pngBytes, "figure-1.svg": svgBytes}}
	if err := k8s.Create(ctx, cm); err != nil {
		t.Fatal(err)
	}
	inCM := func(name, format, mime, cmName string, data []byte) vizv1.ArtifactStatus {
		return vizv1.ArtifactStatus{Name: name, Format: format, MIMEType: mime, SizeBytes: int64(len(data)), SHA256: sum(data),
			ConfigMapKeyRef: &vizv1.ConfigMapKeyReference{Name: cmName, Key: name}}
	}
	makeRequest(t, ns, "in-cm", done(
		inCM("figure-1.png", "png", "image/png", "in-cm-artifacts", pngBytes),
		inCM("figure-1.svg", "svg", "image/svg+xml", "in-cm-artifacts", svgBytes)))

	// The second artifact's bytes do not match its sha256: nothing may be written.
	bad := inlineArtifact("figure-1.svg", "svg", "image/svg+xml", svgBytes)
	bad.Data = []byte("<svg>tampered</svg>")
	makeRequest(t, ns, "tampered", done(inlineArtifact("figure-1.png", "png", "image/png", pngBytes), bad))
	makeRequest(t, ns, "cm-gone", done(inCM("figure-1.png", "png", "image/png", "deleted-artifacts", pngBytes)))
	makeRequest(t, ns, "queued", vizv1.VisualizationRequestStatus{Phase: vizv1.PhaseQueued})

	tests := map[string]struct {
		req       string
		code      int
		files     map[string][]byte
		stdoutHas string
		stderrHas string
	}{
		"inline in status": {req: "inline", files: map[string][]byte{"figure-1.png": pngBytes, "figure-1.svg": svgBytes}, stdoutHas: "(image/svg+xml, " + fmt.Sprint(len(svgBytes)) + " bytes, sha256 " + sum(svgBytes)[:12] + ")"},
		"in a ConfigMap":   {req: "in-cm", files: map[string][]byte{"figure-1.png": pngBytes, "figure-1.svg": svgBytes}, stdoutHas: "figure-1.png"},
		"sha256 mismatch":  {req: "tampered", code: 1, stderrHas: "artifact figure-1.svg: sha256 mismatch: status says " + sum(svgBytes)},
		"ConfigMap gone":   {req: "cm-gone", code: 1, stderrHas: `artifact figure-1.png: configmap "deleted-artifacts" not found in namespace "` + ns + `"`},
		"not finished":     {req: "queued", code: 1, stderrHas: `visualizationrequest "queued" has no artifacts yet (phase Queued)`},
		"not found":        {req: "nope", code: 1, stderrHas: `error: visualizationrequest "nope" not found in namespace "` + ns + `"`},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "out")
			stdout, stderr, code := runCLI(t, "get", tc.req, "--kubeconfig", kubeconfig, "-n", ns, "-o", out)
			if code != tc.code {
				t.Fatalf("exit code %d, want %d\nstdout: %s\nstderr: %s", code, tc.code, stdout, stderr)
			}
			if !strings.Contains(stdout, tc.stdoutHas) || !strings.Contains(stderr, tc.stderrHas) {
				t.Errorf("stdout %q (want %q)\nstderr %q (want %q)", stdout, tc.stdoutHas, stderr, tc.stderrHas)
			}
			if strings.Count(stderr, "\n") > 0 {
				t.Errorf("error is not one line: %q", stderr)
			}
			entries, _ := os.ReadDir(out)
			if len(entries) != len(tc.files) {
				t.Errorf("wrote %d files, want %d", len(entries), len(tc.files))
			}
			if n := strings.Count(stdout, "\n"); n != len(tc.files) {
				t.Errorf("printed %d lines, want one per artifact:\n%s", n, stdout)
			}
			for f, content := range tc.files {
				got, err := os.ReadFile(filepath.Join(out, f))
				if err != nil || !bytes.Equal(got, content) {
					t.Errorf("%s: %q, %v", f, got, err)
				}
			}
		})
	}
}

func TestLogsCommand(t *testing.T) {
	ns := newTestNamespace(t)
	st := vizv1.VisualizationRequestStatus{
		Phase:     vizv1.PhaseFailed,
		Attempts:  1,
		Detection: &vizv1.DetectionStatus{Visualization: true, Tool: "CodeInterpreter", ChartType: "bar", Source: "Model"},
		CodeGeneration: &vizv1.CodeGenerationStatus{Source: "Model", Path: "Repaired", Model: "openai/gpt-4o-mini", Attempts: 3,
			Code: "print('computing')\n1/0\n"},
		Execution: &vizv1.ExecutionStatus{Backend: "Local", SandboxID: "default-7", DurationMillis: 96,
			Stdout: "computing\n", Stderr: "warning: slow\n",
			Error: &vizv1.ExecutionError{Name: "ZeroDivisionError", Value: "division by zero",
				Traceback: "Traceback (most recent call last):\n  File \"<code>\", line 2\nZeroDivisionError: division by zero"}},
	}
	meta.SetStatusCondition(&st.Conditions, readyCond(metav1.ConditionFalse, vizv1.ReasonCodeError, "the code raised ZeroDivisionError"))
	makeRequest(t, ns, "broken", st)
	makeRequest(t, ns, "waiting", vizv1.VisualizationRequestStatus{Phase: vizv1.PhaseQueued})

	stdout, stderr, code := runCLI(t, "logs", "broken", "--kubeconfig", kubeconfig, "-n", ns, "--code")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	for _, s := range []string{
		"phase: Failed (CodeError: the code raised ZeroDivisionError)",
		"code generation: path Repaired, source Model, model openai/gpt-4o-mini (3 call(s))",
		"--- code\nprint('computing')\n1/0\n",
		"execution: backend Local, sandbox default-7, 96 ms",
		"--- stdout\ncomputing\n",
		"--- stderr\nwarning: slow\n",
		"--- error: ZeroDivisionError: division by zero\nTraceback (most recent call last):\n",
	} {
		if !strings.Contains(stdout, s) {
			t.Errorf("logs miss %q:\n%s", s, stdout)
		}
	}

	stdout, _, code = runCLI(t, "logs", "waiting", "--kubeconfig", kubeconfig, "-n", ns)
	if code != 0 || !strings.Contains(stdout, "phase: Queued") || !strings.Contains(stdout, "execution: none yet") {
		t.Errorf("exit %d, logs of a queued request:\n%s", code, stdout)
	}
	_, stderr, code = runCLI(t, "logs", "nope", "--kubeconfig", kubeconfig, "-n", ns)
	if code != 1 || stderr != `error: visualizationrequest "nope" not found in namespace "`+ns+`"` {
		t.Errorf("exit %d, stderr %q", code, stderr)
	}
}

func TestPoolsCommand(t *testing.T) {
	ns := newTestNamespace(t)
	ctx := context.Background()
	mk := func(name string, backend vizv1.Backend, maxSandboxes, ready, busy int32, cond *metav1.Condition) {
		p := &vizv1.SandboxPool{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}
		p.Spec.MaxSandboxes = maxSandboxes
		if err := k8s.Create(ctx, p); err != nil {
			t.Fatal(err)
		}
		// The backend is the class's; the manager writes it to status.
		p.Status.Backend = backend
		p.Status.Ready, p.Status.Busy, p.Status.Total = ready, busy, ready+busy
		if cond != nil {
			p.Status.Conditions = []metav1.Condition{*cond}
		}
		if err := k8s.Status().Update(ctx, p); err != nil {
			t.Fatal(err)
		}
	}
	ok := readyCond(metav1.ConditionTrue, vizv1.ReasonPoolReady, "1 sandbox warm")
	down := readyCond(metav1.ConditionFalse, vizv1.ReasonBackendNotImplemented, "the Kubernetes backend is not available in this build;\nuse backend Local")
	mk("default", vizv1.BackendLocal, 4, 1, 2, &ok)
	mk("pods", vizv1.BackendKubernetes, 20, 0, 0, &down)
	mk("new", vizv1.BackendLocal, 2, 0, 0, nil)

	stdout, stderr, code := runCLI(t, "pools", "--kubeconfig", kubeconfig, "-n", ns)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	lines := strings.Split(strings.TrimRight(stdout, "\n"), "\n")
	want := [][]string{
		{"NAME", "BACKEND", "READY", "BUSY", "MAX", "MESSAGE"},
		{"default", "Local", "1", "2", "4"},
		{"new", "Local", "0", "0", "2", "not", "reconciled", "yet", "(is", "the", "operator", "running?)"},
		{"pods", "Kubernetes", "0", "0", "20", "BackendNotImplemented:", "the", "Kubernetes", "backend", "is", "not", "available", "in", "this", "build;", "use", "backend", "Local"},
	}
	if len(lines) != len(want) {
		t.Fatalf("got %d lines, want %d:\n%s", len(lines), len(want), stdout)
	}
	for i, w := range want {
		if got := strings.Fields(lines[i]); fmt.Sprint(got) != fmt.Sprint(w) {
			t.Errorf("line %d = %q, want fields %q", i, lines[i], w)
		}
	}

	stdout, _, _ = runCLI(t, "pools", "--kubeconfig", kubeconfig, "-A")
	if !strings.HasPrefix(stdout, "NAMESPACE") || !strings.Contains(stdout, ns) {
		t.Errorf("pools -A:\n%s", stdout)
	}
	empty := newTestNamespace(t)
	stdout, stderr, code = runCLI(t, "pools", "--kubeconfig", kubeconfig, "-n", empty)
	if code != 0 || stdout != "" || !strings.Contains(stderr, `No SandboxPools in namespace "`+empty+`"`) {
		t.Errorf("exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
}

// The kubeconfig is found like kubectl finds it: KUBECONFIG, the current context's
// namespace, -n over both.
func TestKubeconfigResolution(t *testing.T) {
	ns := newTestNamespace(t)
	makeRequest(t, ns, "here", vizv1.VisualizationRequestStatus{Phase: vizv1.PhaseQueued})

	cfg, err := clientcmd.LoadFromFile(kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Contexts[cfg.CurrentContext].Namespace = ns
	withNS := filepath.Join(t.TempDir(), "config")
	if err := clientcmd.WriteToFile(*cfg, withNS); err != nil {
		t.Fatal(err)
	}
	t.Setenv("KUBECONFIG", withNS)
	if stdout, stderr, code := runCLI(t, "logs", "here"); code != 0 || !strings.Contains(stdout, "phase: Queued") {
		t.Errorf("KUBECONFIG and the context's namespace: exit %d, %s%s", code, stdout, stderr)
	}
	if _, stderr, code := runCLI(t, "logs", "here", "-n", "default"); code != 1 || !strings.Contains(stderr, `not found in namespace "default"`) {
		t.Errorf("-n over the context's namespace: exit %d, %s", code, stderr)
	}
	t.Setenv("KUBECONFIG", filepath.Join(t.TempDir(), "missing"))
	if _, stderr, code := runCLI(t, "pools"); code != 1 || !strings.Contains(stderr, "no cluster configured") {
		t.Errorf("no kubeconfig: exit %d, %s", code, stderr)
	}
	if _, stderr, code := runCLI(t, "pools", "--kubeconfig", filepath.Join(t.TempDir(), "nope")); code != 1 || !strings.Contains(stderr, "reading the kubeconfig") {
		t.Errorf("--kubeconfig that does not exist: exit %d, %s", code, stderr)
	}
}
