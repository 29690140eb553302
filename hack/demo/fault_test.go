package main

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"

	vizv1 "github.com/vizops/viz-operator/api/v1alpha1"
	"github.com/vizops/viz-operator/hack/internal/controlplane"
)

// The manager killed with SIGKILL mid-run, with its sandboxes, and started again as a
// new process, as a node failure or an OOM kill would do: every request still finishes,
// the interrupted one is retried with its attempt counted, none runs twice otherwise,
// and at no moment do more requests run than the pool's cap of 1.
func TestManagerKilledMidRun(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: builds the manager and runs real sandboxes")
	}
	for _, bin := range []string{"bwrap", "python3"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Fatalf("%s is not installed: run `make deps`", bin)
		}
	}
	ctrllog.SetLogger(discardLogger())
	assets := testAssets(t)
	root := filepath.Join("..", "..")
	tmp := t.TempDir()
	cp, err := controlplane.Start(assets, filepath.Join(root, "config", "crd", "bases"), "vizops-faults")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cp.Stop() }()
	bin := filepath.Join(tmp, "manager")
	if err := controlplane.BuildManager(root, bin, testWriter{t}); err != nil {
		t.Fatal(err)
	}
	rest, err := clientcmd.BuildConfigFromFlags("", cp.Kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	c, err := client.New(rest, client.Options{Scheme: newScheme()})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	const ns, n = "faults", 10
	must(t, c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}))
	class := &vizv1.SandboxClass{ObjectMeta: metav1.ObjectMeta{Name: "local", Annotations: map[string]string{vizv1.AnnotationDefaultClass: "true"}}}
	class.Spec.Backend = vizv1.BackendLocal
	must(t, c.Create(ctx, class))
	pool := &vizv1.SandboxPool{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "default"}}
	pool.Spec.MaxSandboxes, pool.Spec.MinReady = 1, ptr.To(int32(1))
	must(t, c.Create(ctx, pool))
	// Each chart takes a moment, so the kill lands mid-run.
	code := "import time, matplotlib.pyplot as plt\ntime.sleep(0.7)\nplt.bar(['a','b'],[1,2])\nplt.show()\n"
	for i := 0; i < n; i++ {
		vr := &vizv1.VisualizationRequest{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: fmt.Sprintf("chart-%02d", i)}}
		vr.Spec.Code = code
		must(t, c.Create(ctx, vr))
	}

	// Sample from outside, as a user would: never more than one request Running.
	var maxRunning atomic.Int32
	var overlap atomic.Value // what was Running together, for the failure message
	stopSampling := make(chan struct{})
	defer close(stopSampling)
	go func() {
		for {
			select {
			case <-stopSampling:
				return
			case <-time.After(20 * time.Millisecond):
			}
			var list vizv1.VisualizationRequestList
			if c.List(ctx, &list, client.InNamespace(ns)) != nil {
				continue
			}
			running := int32(0)
			var who []string
			for _, vr := range list.Items {
				if vr.Status.Phase == vizv1.PhaseRunning {
					running++
					c := meta.FindStatusCondition(vr.Status.Conditions, vizv1.ConditionAdmitted)
					who = append(who, fmt.Sprintf("%s (attempt %d, rv %s: %s)", vr.Name, vr.Status.Attempts, vr.ResourceVersion, c.Message))
				}
			}
			if running > maxRunning.Load() {
				maxRunning.Store(running)
				overlap.Store(fmt.Sprint(who))
			}
		}
	}()

	first, err := controlplane.StartManager(bin, cp.Kubeconfig, filepath.Join(tmp, "manager-1.log"))
	if err != nil {
		t.Fatal(err)
	}
	counts := func() (succeeded, running int) {
		var list vizv1.VisualizationRequestList
		if err := c.List(ctx, &list, client.InNamespace(ns)); err != nil {
			return 0, 0
		}
		for _, vr := range list.Items {
			switch vr.Status.Phase {
			case vizv1.PhaseSucceeded:
				succeeded++
			case vizv1.PhaseRunning:
				running++
			}
		}
		return
	}
	waitUntil(t, 3*time.Minute, "two charts done and a third running", func() bool {
		s, r := counts()
		return s >= 2 && r == 1
	})
	// SIGKILL the manager and its sandboxes: no shutdown path runs.
	must(t, syscall.Kill(-first.Pid(), syscall.SIGKILL))
	<-first.Exited()
	if err := first.Stop(10 * time.Second); err != nil { // already dead: closes its log, checks its group is gone
		t.Fatalf("the killed manager's sandboxes are still running: %v", err)
	}

	second, err := controlplane.StartManager(bin, cp.Kubeconfig, filepath.Join(tmp, "manager-2.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := second.Stop(10 * time.Second); err != nil {
			t.Error(err)
		}
	}()
	waitUntil(t, 4*time.Minute, "every chart done", func() bool {
		s, _ := counts()
		return s == n
	})
	retried := 0
	var list vizv1.VisualizationRequestList
	must(t, c.List(ctx, &list, client.InNamespace(ns)))
	for _, vr := range list.Items {
		if len(vr.Status.Artifacts) != 1 {
			t.Errorf("%s: %d artifacts, want 1", vr.Name, len(vr.Status.Artifacts))
		}
		if c := meta.FindStatusCondition(vr.Status.Conditions, vizv1.ConditionAdmitted); c == nil || c.Status != metav1.ConditionFalse {
			t.Errorf("%s: finished but its Admitted condition is %v", vr.Name, c)
		}
		switch vr.Status.Attempts {
		case 1:
		case 2:
			retried++
		default:
			t.Errorf("%s: %d attempts", vr.Name, vr.Status.Attempts)
		}
	}
	// Retries for other reasons (a sandbox that failed on a loaded machine) are fair;
	// only the execution running at the kill may be lost to it.
	var evs eventsv1.EventList
	must(t, c.List(ctx, &evs, client.InNamespace(ns)))
	lostTo := map[string]bool{}
	for _, e := range evs.Items {
		if e.Reason == vizv1.ReasonSandboxLost && strings.Contains(e.Note, "operator restarted") {
			lostTo[e.Regarding.Name] = true
		}
	}
	if len(lostTo) > 1 {
		t.Errorf("%d requests lost an execution to the restart (%v); only the one running when the manager died may", len(lostTo), lostTo)
	}
	if m := maxRunning.Load(); m > 1 {
		t.Errorf("%d requests were Running at once under a cap of 1: %v\nmanager 1:\n%s\nmanager 2:\n%s", m, overlap.Load(),
			controlplane.Tail(filepath.Join(tmp, "manager-1.log"), 30), controlplane.Tail(filepath.Join(tmp, "manager-2.log"), 30))
	}
	t.Logf("interrupted and retried: %d; most Running at once: %d", retried, maxRunning.Load())
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func waitUntil(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	for end := time.Now().Add(d); !cond(); time.Sleep(100 * time.Millisecond) {
		if time.Now().After(end) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
	}
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) { w.t.Log(string(p)); return len(p), nil }
