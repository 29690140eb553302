// Command go-client is what an in-cluster service does to get a chart from vizops with
// controller-runtime's client and the API types: create a VisualizationRequest, follow
// it with a watch until it finishes, and read its artifacts from status or from the
// ConfigMap that holds them. docs/go-client.md walks through it.
//
//	go run ./examples/go-client -n team-a "plot VOE episodes per month"
package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	vizv1 "github.com/vizops/viz-operator/api/v1alpha1"
)

func main() {
	ns := flag.String("n", "default", "namespace of the request")
	out := flag.String("o", ".", "directory to write the charts to")
	timeout := flag.Duration("timeout", 5*time.Minute, "how long to wait for the chart")
	flag.Parse()
	if flag.NArg() != 1 {
		fmt.Fprintln(os.Stderr, "usage: go-client [-n NAMESPACE] [-o DIR] PROMPT")
		os.Exit(2)
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()

	// In a Pod, GetConfig uses the service account; elsewhere $KUBECONFIG.
	c, err := NewClient(ctrl.GetConfigOrDie())
	if err != nil {
		fail(err)
	}
	vr, err := Chart(ctx, c, *ns, flag.Arg(0))
	if err != nil {
		fail(err)
	}
	for _, a := range vr.Status.Artifacts {
		data, err := Artifact(ctx, c, vr, a)
		if err != nil {
			fail(err)
		}
		path := filepath.Join(*out, filepath.Base(a.Name))
		if err := os.WriteFile(path, data, 0o644); err != nil {
			fail(err)
		}
		fmt.Println(path)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "go-client:", err)
	os.Exit(1)
}

// NewClient returns a client that knows the vizops types and can watch.
func NewClient(cfg *rest.Config) (client.WithWatch, error) {
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		return nil, err
	}
	if err := vizv1.AddToScheme(scheme); err != nil {
		return nil, err
	}
	return client.NewWithWatch(cfg, client.Options{Scheme: scheme})
}

// Chart creates a request for prompt and waits until it finishes. A chart that could
// not be made is an error naming the reason and message of its Ready condition; a
// prompt that is not a chart request ends Skipped (reason NotAVisualization).
func Chart(ctx context.Context, c client.WithWatch, ns, prompt string) (*vizv1.VisualizationRequest, error) {
	vr := &vizv1.VisualizationRequest{
		ObjectMeta: metav1.ObjectMeta{GenerateName: "chart-", Namespace: ns},
		Spec: vizv1.VisualizationRequestSpec{
			Prompt:        prompt,
			OutputFormats: []vizv1.OutputFormat{vizv1.FormatPNG},
			// Let the operator delete it (and its artifact ConfigMap) an hour after.
			TTLSecondsAfterFinished: ptr.To(int32(3600)),
		},
	}
	if err := c.Create(ctx, vr); err != nil {
		return nil, err
	}
	vr, err := Wait(ctx, c, vr)
	if err != nil {
		return nil, err
	}
	if vr.Status.Phase != vizv1.PhaseSucceeded {
		ready := meta.FindStatusCondition(vr.Status.Conditions, vizv1.ConditionReady)
		if ready == nil {
			return vr, fmt.Errorf("%s/%s ended %s", ns, vr.Name, vr.Status.Phase)
		}
		return vr, fmt.Errorf("%s/%s ended %s: %s: %s", ns, vr.Name, vr.Status.Phase, ready.Reason, ready.Message)
	}
	return vr, nil
}

// Wait follows one request with a watch until its phase is final, and lists it again
// whenever the watch ends (API servers close watches after a while).
func Wait(ctx context.Context, c client.WithWatch, vr *vizv1.VisualizationRequest) (*vizv1.VisualizationRequest, error) {
	for {
		list := &vizv1.VisualizationRequestList{}
		sel := client.MatchingFieldsSelector{Selector: fields.OneTermEqualSelector("metadata.name", vr.Name)}
		if err := c.List(ctx, list, client.InNamespace(vr.Namespace), sel); err != nil {
			return nil, err
		}
		if len(list.Items) == 0 {
			return nil, fmt.Errorf("%s/%s was deleted before it finished", vr.Namespace, vr.Name)
		}
		if cur := &list.Items[0]; cur.UID != vr.UID && vr.UID != "" {
			return nil, fmt.Errorf("%s/%s was deleted and created again", vr.Namespace, vr.Name)
		} else if cur.Status.Phase.Finished() {
			return cur, nil
		}
		w, err := c.Watch(ctx, &vizv1.VisualizationRequestList{}, client.InNamespace(vr.Namespace), sel,
			&client.ListOptions{Raw: &metav1.ListOptions{ResourceVersion: list.ResourceVersion}})
		if err != nil {
			return nil, err
		}
		done, err := follow(ctx, w)
		w.Stop()
		if done != nil || err != nil {
			return done, err
		}
	}
}

// follow reads one watch; nil, nil means it ended and must be started again.
func follow(ctx context.Context, w watch.Interface) (*vizv1.VisualizationRequest, error) {
	for {
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case ev, ok := <-w.ResultChan():
			if !ok {
				return nil, nil
			}
			switch ev.Type {
			case watch.Deleted:
				cur := ev.Object.(*vizv1.VisualizationRequest)
				return nil, fmt.Errorf("%s/%s was deleted before it finished", cur.Namespace, cur.Name)
			case watch.Error:
				return nil, nil // e.g. 410 Gone: list again
			case watch.Added, watch.Modified:
				if cur := ev.Object.(*vizv1.VisualizationRequest); cur.Status.Phase.Finished() {
					return cur, nil
				}
			}
		}
	}
}

// Artifact returns one artifact's bytes, from status (small ones) or from the ConfigMap
// the operator spilled it into, checked against the sha256 in status.
func Artifact(ctx context.Context, c client.Reader, vr *vizv1.VisualizationRequest, a vizv1.ArtifactStatus) ([]byte, error) {
	data := a.Data
	if ref := a.ConfigMapKeyRef; ref != nil {
		cm := &corev1.ConfigMap{}
		if err := c.Get(ctx, client.ObjectKey{Namespace: vr.Namespace, Name: ref.Name}, cm); err != nil {
			return nil, fmt.Errorf("artifact %s: %w", a.Name, err)
		}
		var ok bool
		if data, ok = cm.BinaryData[ref.Key]; !ok {
			data = []byte(cm.Data[ref.Key])
		}
	}
	sum := sha256.Sum256(data)
	if hex.EncodeToString(sum[:]) != a.SHA256 {
		return nil, errors.New("artifact " + a.Name + ": sha256 does not match status")
	}
	return data, nil
}
