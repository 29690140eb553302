package controller

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	eventsv1 "k8s.io/api/events/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"

	vizv1 "github.com/vizops/viz-operator/api/v1alpha1"
	"github.com/vizops/viz-operator/internal/sandbox/sandboxtest"
)

// apiWrite is one write request the manager sent, as the API server answered it.
type apiWrite struct {
	method, path string
	// regarding is the object an Event is about (events only).
	regarding, reason string
	// status is a request's status as the API server returned it after a status write.
	status *vizv1.VisualizationRequestStatus
	// sentRV is the resourceVersion a request's status write carried (its optimistic lock).
	sentRV string
}

func (w apiWrite) String() string {
	if w.regarding != "" {
		return fmt.Sprintf("%s %s (Event %s regarding %s)", w.method, w.path, w.reason, w.regarding)
	}
	return w.method + " " + w.path
}

// writeRecorder is an http.RoundTripper around the manager's transport that records
// every write (POST, PUT, PATCH, DELETE) of every client of the manager: the
// reconcilers' client, the API reader and the Event recorder alike.
type writeRecorder struct {
	next http.RoundTripper
	mu   sync.Mutex
	all  []apiWrite
}

func recordWrites(rec *writeRecorder) func(http.RoundTripper) http.RoundTripper {
	return func(next http.RoundTripper) http.RoundTripper {
		rec.mu.Lock()
		defer rec.mu.Unlock()
		rec.next = next
		return rec
	}
}

func (r *writeRecorder) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Method == http.MethodGet {
		return r.next.RoundTrip(req)
	}
	w := apiWrite{method: req.Method, path: req.URL.Path}
	if req.Body != nil && strings.HasSuffix(req.URL.Path, "/events") {
		body, err := io.ReadAll(req.Body)
		if err != nil {
			return nil, err
		}
		req.Body = io.NopCloser(bytes.NewReader(body))
		// The Event recorder sends protobuf; the universal deserializer reads either.
		if obj, _, err := clientgoscheme.Codecs.UniversalDeserializer().Decode(body, nil, nil); err == nil {
			if ev, ok := obj.(*eventsv1.Event); ok {
				w.regarding = ev.Regarding.Name
				w.reason = ev.Type + "/" + ev.Reason
			}
		}
	}
	if req.Body != nil && strings.Contains(req.URL.Path, "/visualizationrequests/") && strings.HasSuffix(req.URL.Path, "/status") {
		body, err := io.ReadAll(req.Body)
		if err != nil {
			return nil, err
		}
		req.Body = io.NopCloser(bytes.NewReader(body))
		var sent struct {
			Metadata struct {
				ResourceVersion string `json:"resourceVersion"`
			} `json:"metadata"`
		}
		if json.Unmarshal(body, &sent) == nil {
			w.sentRV = sent.Metadata.ResourceVersion
		}
	}
	resp, err := r.next.RoundTrip(req)
	if err != nil {
		return resp, err
	}
	if strings.Contains(req.URL.Path, "/visualizationrequests/") && strings.HasSuffix(req.URL.Path, "/status") && resp.StatusCode < 300 {
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			return nil, err
		}
		resp.Body = io.NopCloser(bytes.NewReader(body))
		var vr vizv1.VisualizationRequest
		if json.Unmarshal(body, &vr) == nil {
			w.status = &vr.Status
		}
	}
	if resp.StatusCode < 300 {
		r.mu.Lock()
		r.all = append(r.all, w)
		r.mu.Unlock()
	}
	return resp, nil
}

// of returns the writes that concern the request ns/name: its own writes (status,
// metadata), ConfigMaps of its artifacts, and Events regarding it.
func (r *writeRecorder) of(ns, name string) []apiWrite {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []apiWrite
	prefix := "/namespaces/" + ns + "/"
	for _, w := range r.all {
		switch {
		case !strings.Contains(w.path, prefix):
		case strings.Contains(w.path, "/visualizationrequests/"+name),
			strings.Contains(w.path, "/configmaps") && strings.Contains(w.path, name),
			strings.HasSuffix(w.path, "/events") && w.regarding == name:
			out = append(out, w)
		}
	}
	return out
}

func (r *writeRecorder) count(ns, name string) func() int {
	return func() int { return len(r.of(ns, name)) }
}

// statusWrites are the request's statuses as written, in order.
func statusWrites(ws []apiWrite) []vizv1.VisualizationRequestStatus {
	var out []vizv1.VisualizationRequestStatus
	for _, w := range ws {
		if w.status != nil {
			out = append(out, *w.status)
		}
	}
	return out
}

var _ = Describe("API cost per request", func() {
	ctx := context.Background()

	It("writes at most 3 times for a request admitted at once, none of them a status patch that changes nothing", func() {
		ns := newNamespace(ctx, nil)
		fake := sandboxtest.NewPool(1)
		fake.SetBehavior(returnsPNG(noisePNG(8)))
		rec := &writeRecorder{}
		h := startManager([]string{ns}, harnessOptions{factory: fakeFactory(fake), transport: recordWrites(rec)})
		defer h.stop()
		Expect(k8sClient.Create(ctx, newPool(ns, "default", 1))).To(Succeed())
		Eventually(poolCondition(ctx, ns, "default", vizv1.PoolConditionReady), 30*time.Second).Should(HavePrefix("True/"))

		Expect(k8sClient.Create(ctx, newRequest(ns, "once", "print(1)"))).To(Succeed())
		Eventually(phaseOf(ctx, ns, "once"), 30*time.Second).Should(Equal(vizv1.PhaseSucceeded))
		// Events are sent after the status write, asynchronously: wait for the outcome's.
		Eventually(func() []string {
			var evs []string
			for _, w := range rec.of(ns, "once") {
				if w.regarding != "" {
					evs = append(evs, w.String())
				}
			}
			return evs
		}, 10*time.Second).ShouldNot(BeEmpty())
		// Nothing else follows (a late position write, a re-written condition).
		Consistently(rec.count(ns, "once"), 2*time.Second).Should(BeNumerically("<=", 3))

		writes := rec.of(ns, "once")
		for _, w := range writes {
			GinkgoWriter.Println("write:", w)
		}
		Expect(len(writes)).To(BeNumerically("<=", 3), "the request's writes: %v", writes)
		statuses := statusWrites(writes)
		for _, w := range writes {
			if w.status == nil {
				continue
			}
			// The whole status as decided, under the optimistic lock; not a merge patch,
			// which costs the manager two serializations and a diff of the object with
			// its inline artifacts, and the API server a merge (docs/benchmarks.md).
			Expect(w.method).To(Equal(http.MethodPut), "status write %v", w)
			Expect(w.sentRV).NotTo(BeEmpty(), "status write %v carries no resourceVersion", w)
		}
		prev := vizv1.VisualizationRequestStatus{}
		for i, st := range statuses {
			Expect(equality.Semantic.DeepEqual(prev, st)).To(BeFalse(), "status write %d changes nothing: %v", i, writes)
			Expect(st.QueuePosition).To(BeNil(), "status write %d gives a request admitted at once a queue position", i)
			Expect(st.Phase).NotTo(Equal(vizv1.PhaseQueued), "status write %d", i)
			for _, c := range st.Conditions {
				Expect(c.ObservedGeneration).To(Equal(int64(1)), "condition %s of status write %d", c.Type, i)
			}
			prev = st
		}
		Expect(statuses).NotTo(BeEmpty())
		Expect(statuses[len(statuses)-1].Phase).To(Equal(vizv1.PhaseSucceeded))
	})

	It("gives a queued request a queue position and a request admitted at once none", func() {
		ns := newNamespace(ctx, nil)
		fake := sandboxtest.NewPool(1)
		fake.Hold()
		rec := &writeRecorder{}
		h := startManager([]string{ns}, harnessOptions{factory: fakeFactory(fake), transport: recordWrites(rec)})
		defer h.stop()
		Expect(k8sClient.Create(ctx, newPool(ns, "default", 1))).To(Succeed())
		Eventually(poolCondition(ctx, ns, "default", vizv1.PoolConditionReady), 30*time.Second).Should(HavePrefix("True/"))

		Expect(k8sClient.Create(ctx, newRequest(ns, "first", "print(1)"))).To(Succeed())
		Eventually(fake.Busy, 30*time.Second).Should(Equal(1))
		Expect(k8sClient.Create(ctx, newRequest(ns, "second", "print(2)"))).To(Succeed())
		Eventually(func(g Gomega) {
			vr := get(ctx, g, ns, "second")
			g.Expect(vr.Status.Phase).To(Equal(vizv1.PhaseQueued))
			g.Expect(vr.Status.QueuePosition).To(HaveValue(Equal(int32(1))))
		}, 30*time.Second).Should(Succeed())
		fake.Open()
		for _, n := range []string{"first", "second"} {
			Eventually(phaseOf(ctx, ns, n), 30*time.Second).Should(Equal(vizv1.PhaseSucceeded))
		}

		for _, st := range statusWrites(rec.of(ns, "first")) {
			Expect(st.QueuePosition).To(BeNil(), "a status write of the request admitted at once: %+v", st)
			Expect(st.Phase).NotTo(Equal(vizv1.PhaseQueued))
		}
		var positions []int32
		for _, st := range statusWrites(rec.of(ns, "second")) {
			if st.QueuePosition != nil {
				positions = append(positions, *st.QueuePosition)
			}
		}
		Expect(positions).To(Equal([]int32{1}), "the queued request's positions as written")
		last := get(ctx, Default, ns, "second")
		Expect(last.Status.QueuePosition).To(BeNil())
		Expect(last.Status.Conditions).To(ContainElement(And(
			HaveField("Type", vizv1.ConditionAdmitted), HaveField("ObservedGeneration", int64(1)))))
	})
})
