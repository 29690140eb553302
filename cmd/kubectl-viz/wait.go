package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/tools/cache"
	watchtools "k8s.io/client-go/tools/watch"
	"sigs.k8s.io/controller-runtime/pkg/client"

	vizv1 "github.com/vizops/viz-operator/api/v1alpha1"
	"github.com/vizops/viz-operator/internal/progress"
)

// errDeleted ends a wait whose request was deleted (or replaced by a new request of
// the same name, which has another UID).
var errDeleted = errors.New("deleted")

// requestListWatch lists and watches one request by name, through the same client
// the other commands use. A list or watch the server refuses for good (forbidden,
// unauthorized, the CRD gone) is kept in fatal, for the caller to end the wait with.
func requestListWatch(c *cluster, name string, fatal func(error)) *cache.ListWatch {
	byName := fields.OneTermEqualSelector("metadata.name", name).String()
	check := func(err error) error {
		if apierrors.IsForbidden(err) || apierrors.IsUnauthorized(err) || apierrors.IsNotFound(err) {
			fatal(err)
		}
		return err
	}
	return &cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, opts metav1.ListOptions) (runtime.Object, error) {
			opts.FieldSelector = byName
			list := &vizv1.VisualizationRequestList{}
			err := c.List(ctx, list, &client.ListOptions{Namespace: c.namespace, Raw: &opts})
			return list, check(err)
		},
		WatchFuncWithContext: func(ctx context.Context, opts metav1.ListOptions) (watch.Interface, error) {
			opts.FieldSelector = byName
			w, err := c.Watch(ctx, &vizv1.VisualizationRequestList{}, &client.ListOptions{Namespace: c.namespace, Raw: &opts})
			return w, check(err)
		},
	}
}

// waitForRequest follows the request through a watch until it finishes, showing its
// progress on w. The watch is client-go's UntilWithSync: an informer that re-lists
// when the watch ends or fails (a dropped connection, an expired resourceVersion), so
// no change is missed and nothing polls. A request deleted while waited on (or
// deleted and created again under the same name) ends the wait with an error.
func waitForRequest(ctx context.Context, c *cluster, name string, timeout time.Duration, w io.Writer) (*vizv1.VisualizationRequest, error) {
	start := time.Now()
	// A first read reports "not found" and "forbidden" as they are, and pins the UID.
	first, err := c.getRequest(ctx, name)
	if err != nil {
		return nil, err
	}
	uid := first.UID
	// The line shows the last state seen; on a terminal a ticker keeps its timer moving
	// between changes (off a terminal the line is printed only when it changes).
	var (
		lineMu sync.Mutex
		last   = first
	)
	p := progress.NewLine(w)
	phase := func() string {
		lineMu.Lock()
		defer lineMu.Unlock()
		if last.Status.Phase == "" {
			return string(vizv1.PhasePending)
		}
		return string(last.Status.Phase)
	}
	show := func(vr *vizv1.VisualizationRequest) bool {
		lineMu.Lock()
		defer lineMu.Unlock()
		last = vr
		p.Update(requestProgress(vr, time.Since(start)))
		return vr.Status.Phase.Finished()
	}
	ticker := time.NewTicker(time.Second)
	tickerDone := make(chan struct{})
	var tickerStopped sync.WaitGroup
	tickerStopped.Add(1)
	go func() {
		defer tickerStopped.Done()
		for {
			select {
			case <-tickerDone:
				return
			case <-ticker.C:
				lineMu.Lock()
				p.Update(requestProgress(last, time.Since(start)))
				lineMu.Unlock()
			}
		}
	}()
	// endLine stops the ticker and ends the line, so what follows starts on a fresh one.
	var endOnce sync.Once
	endLine := func() {
		endOnce.Do(func() {
			ticker.Stop()
			close(tickerDone)
			tickerStopped.Wait()
			p.Done()
		})
	}
	defer endLine()
	if show(first) {
		return first, nil
	}

	waitCtx, cancel := context.WithTimeoutCause(ctx, timeout, context.DeadlineExceeded)
	defer cancel()
	var (
		mu       sync.Mutex
		fatalErr error
	)
	stopCtx, stop := context.WithCancelCause(waitCtx)
	defer stop(nil)
	fatal := func(err error) {
		mu.Lock()
		defer mu.Unlock()
		if fatalErr == nil {
			fatalErr = err
			stop(err)
		}
	}
	gone := func() error {
		endLine()
		return fmt.Errorf("visualizationrequest %q was deleted while waiting for it (phase %s); nothing more will happen to it: create it again to retry", name, phase())
	}
	precondition := func(store cache.Store) (bool, error) {
		obj, exists, err := store.GetByKey(types.NamespacedName{Namespace: c.namespace, Name: name}.String())
		if err != nil {
			return false, err
		}
		if !exists || obj.(*vizv1.VisualizationRequest).UID != uid {
			return false, errDeleted
		}
		return show(obj.(*vizv1.VisualizationRequest)), nil
	}
	_, err = watchtools.UntilWithSync(stopCtx, requestListWatch(c, name, fatal), &vizv1.VisualizationRequest{}, precondition,
		func(ev watch.Event) (bool, error) {
			vr, ok := ev.Object.(*vizv1.VisualizationRequest)
			if !ok {
				return false, nil
			}
			if ev.Type == watch.Deleted || vr.UID != uid {
				return false, errDeleted
			}
			return show(vr), nil
		})
	switch {
	case err == nil:
		lineMu.Lock()
		defer lineMu.Unlock()
		return last, nil
	case errors.Is(err, errDeleted):
		return nil, gone()
	}
	mu.Lock()
	ferr := fatalErr
	mu.Unlock()
	endLine()
	switch {
	case ferr != nil:
		if apierrors.IsNotFound(ferr) {
			return nil, gone()
		}
		return nil, fmt.Errorf("following visualizationrequest %q: %w", name, apiError(ferr, "visualizationrequest", name, c.namespace))
	case ctx.Err() != nil:
		return nil, fmt.Errorf("stopped waiting for visualizationrequest %q (phase %s); it keeps going in the cluster", name, phase())
	case waitCtx.Err() != nil:
		waitingFor, hint := "", "is the operator running? "
		lineMu.Lock()
		bc := blockingCondition(last)
		lineMu.Unlock()
		if bc != nil {
			waitingFor, hint = fmt.Sprintf(", %s: %s", bc.Reason, oneLine(bc.Message)), ""
		}
		return nil, fmt.Errorf("visualizationrequest %q did not finish within %s (phase %s%s); %sfollow it with `kubectl get vr %s -n %s -w`", name, timeout, phase(), waitingFor, hint, name, c.namespace)
	}
	return nil, fmt.Errorf("following visualizationrequest %q: %s", name, oneLine(err.Error()))
}
