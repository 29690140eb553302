package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	vizv1 "github.com/vizops/viz-operator/api/v1alpha1"
)

// apiRecorder counts the plugin's requests for VisualizationRequests (reads of one
// object, lists, watches) and, with cut set, ends every watch that long after it
// started, as a dropped connection or an API server restart would.
type apiRecorder struct {
	cut time.Duration

	mu                   sync.Mutex
	gets, lists, watches int
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func (a *apiRecorder) configFlags() *genericclioptions.ConfigFlags {
	return genericclioptions.NewConfigFlags(true).WithWrapConfigFn(func(cfg *rest.Config) *rest.Config {
		cfg.Wrap(func(rt http.RoundTripper) http.RoundTripper {
			return roundTripFunc(func(r *http.Request) (*http.Response, error) {
				watching := r.URL.Query().Get("watch") == "true"
				if strings.Contains(r.URL.Path, "/visualizationrequests") && r.Method == http.MethodGet {
					a.mu.Lock()
					switch {
					case watching:
						a.watches++
					case strings.HasSuffix(r.URL.Path, "/visualizationrequests"):
						a.lists++
					default:
						a.gets++
					}
					a.mu.Unlock()
				}
				resp, err := rt.RoundTrip(r)
				if err == nil && watching && a.cut > 0 {
					body := resp.Body
					timer := time.AfterFunc(a.cut, func() { _ = body.Close() })
					resp.Body = &cutBody{ReadCloser: body, timer: timer}
				}
				return resp, err
			})
		})
		return cfg
	})
}

func (a *apiRecorder) counts() (gets, lists, watches int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.gets, a.lists, a.watches
}

type cutBody struct {
	io.ReadCloser
	timer *time.Timer
}

func (b *cutBody) Close() error {
	b.timer.Stop()
	return b.ReadCloser.Close()
}

func TestWaitFollowsAWatch(t *testing.T) {
	ns := newTestNamespace(t)
	finish := succeeded(inlineArtifact("figure-1.png", "png", "image/png", pngBytes))

	t.Run("one read, then the watch; no polling", func(t *testing.T) {
		rec := &apiRecorder{}
		sim := playController(t, ns, "watched", queued(2), running, running, finish)
		stdout, stderr, code := runCLIWith(t, rec.configFlags(), "create", "watched", "--kubeconfig", kubeconfig, "-n", ns, "--prompt", "bar chart of a 1", "--wait")
		if err := <-sim; err != nil {
			t.Fatal(err)
		}
		if code != 0 || !strings.Contains(stdout, "watched: Succeeded") || !strings.Contains(stderr, "Queued, queue position 2") {
			t.Fatalf("exit %d\nstdout: %s\nstderr: %s", code, stdout, stderr)
		}
		// The wait took four status steps, 300 ms apart: a 500 ms poll would have read
		// the request at least twice more.
		gets, lists, watches := rec.counts()
		if gets != 1 || lists < 1 || watches < 1 {
			t.Errorf("requests for the VisualizationRequest: %d get(s), %d list(s), %d watch(es); want 1 get, then list and watch", gets, lists, watches)
		}
	})

	t.Run("a watch that ends is resumed", func(t *testing.T) {
		rec := &apiRecorder{cut: 150 * time.Millisecond}
		sim := playController(t, ns, "cut", queued(1), running, running, finish)
		stdout, stderr, code := runCLIWith(t, rec.configFlags(), "create", "cut", "--kubeconfig", kubeconfig, "-n", ns, "--prompt", "bar chart of a 1", "--wait", "--wait-timeout", "30s")
		if err := <-sim; err != nil {
			t.Fatal(err)
		}
		if code != 0 || !strings.Contains(stdout, "cut: Succeeded") {
			t.Fatalf("exit %d\nstdout: %s\nstderr: %s", code, stdout, stderr)
		}
		if _, _, watches := rec.counts(); watches < 2 {
			t.Errorf("%d watch(es): the cut watch was not started again", watches)
		}
	})

	t.Run("a request deleted while waited on", func(t *testing.T) {
		done := make(chan error, 1)
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			key := client.ObjectKey{Namespace: ns, Name: "doomed"}
			for {
				vr := &vizv1.VisualizationRequest{}
				if err := k8s.Get(ctx, key, vr); err == nil {
					time.Sleep(300 * time.Millisecond)
					if err := setStatus(ctx, ns, "doomed", queued(3)); err != nil {
						done <- err
						return
					}
					time.Sleep(300 * time.Millisecond)
					done <- k8s.Delete(ctx, vr)
					return
				}
				if ctx.Err() != nil {
					done <- fmt.Errorf("doomed never appeared")
					return
				}
				time.Sleep(50 * time.Millisecond)
			}
		}()
		_, stderr, code := runCLI(t, "create", "doomed", "--kubeconfig", kubeconfig, "-n", ns, "--prompt", "bar chart of a 1", "--wait", "--wait-timeout", "30s")
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		if code != 1 || !strings.HasSuffix(stderr, `error: visualizationrequest "doomed" was deleted while waiting for it (phase Queued); nothing more will happen to it: create it again to retry`) {
			t.Errorf("exit %d, stderr:\n%s", code, stderr)
		}
	})

	t.Run("get --wait on a finished request downloads at once", func(t *testing.T) {
		st := vizv1.VisualizationRequestStatus{}
		finish(&st)
		makeRequest(t, ns, "finished", st)
		out := t.TempDir()
		stdout, stderr, code := runCLI(t, "get", "finished", "--kubeconfig", kubeconfig, "-n", ns, "--wait", "--output-dir", out)
		if code != 0 || !strings.Contains(stdout, "figure-1.png") {
			t.Errorf("exit %d\nstdout: %s\nstderr: %s", code, stdout, stderr)
		}
	})

	t.Run("get --wait on a request that does not exist", func(t *testing.T) {
		_, stderr, code := runCLI(t, "get", "nope", "--kubeconfig", kubeconfig, "-n", ns, "--wait")
		if code != 1 || !strings.HasSuffix(stderr, `visualizationrequest "nope" not found in namespace "`+ns+`"`) {
			t.Errorf("exit %d, stderr %s", code, stderr)
		}
	})
}
