// Package pooltest is the warm-pool contract: one table of tests that every
// sandbox backend's Pool runs (Local with bubblewrap, Kubernetes with a fake API
// server and kubelet, E2B with its fake API), so that a caller sees one behaviour
// whichever backend it holds. A backend's test calls Run with a Fixture factory;
// docs/architecture.md ("The pool contract") says how to add one.
//
// The contract, as sandbox.Pool documents it:
//   - a pool keeps MinReady sandboxes ready, and a claim is refilled behind;
//   - a claim takes the sandbox that has been Ready longest (first ready, first
//     claimed);
//   - a claim beyond MaxSandboxes waits until a sandbox is free, its context ends or
//     the pool closes; it never makes the pool exceed MaxSandboxes;
//   - Resize grows and shrinks the pool without touching busy sandboxes, and rejects
//     an invalid size (minReady < 0, maxSandboxes < 1, minReady > maxSandboxes),
//     leaving the pool as it was;
//   - Close destroys every sandbox, ready and busy; later claims fail with
//     sandbox.ErrPoolClosed; Close is idempotent;
//   - Status comes from memory: it makes no call to the backend's provider;
//   - concurrent claims each get a sandbox of their own;
//   - a sandbox that breaks while idle is replaced, and handed out broken at most
//     once (its Execute then fails with sandbox.ErrSandboxLost);
//   - when creation fails, the pool backs off: the number of creations stays small,
//     a claim ends (sandbox.ErrUnavailable or its context), and the pool recovers
//     once creation works again.
package pooltest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/vizops/viz-operator/internal/sandbox"
)

// Fixture is one pool of a backend under test, with views of its provider (the
// processes, the API server, the E2B API) that do not go through the pool.
type Fixture struct {
	// Pool is the pool under test. Run closes it at the end of the test.
	Pool sandbox.Pool
	// Alive is how many of the pool's sandboxes exist at the provider now.
	Alive func() int
	// PeakAlive, if set, is the most of the pool's sandboxes that existed at the
	// provider at once so far (a count Alive's samples can miss).
	PeakAlive func() int
	// Created is how many sandbox creations the pool has asked the provider for
	// (failed ones included).
	Created func() int
	// Calls is how many requests the pool itself has made to its provider.
	Calls func() int
	// Break destroys sandbox id behind the pool's back (its process dies, its Pod
	// exits, E2B forgets it).
	Break func(id string)
	// FailCreation makes every later creation fail (true), or work again (false).
	FailCreation func(fail bool)
}

// Options tune the suite to a backend.
type Options struct {
	// Request is a job that succeeds in a healthy sandbox.
	Request sandbox.Request
	// Wait bounds each wait for the pool to reach a state (default 60 s: sandboxes
	// of some backends take seconds to start on a loaded machine).
	Wait time.Duration
}

// NewFunc makes a fixture whose pool wants minReady warm sandboxes and at most
// maxSandboxes in all.
type NewFunc func(t *testing.T, minReady, maxSandboxes int) Fixture

// Run runs every contract case against the backend newFixture makes.
func Run(t *testing.T, newFixture NewFunc, o Options) {
	if o.Wait == 0 {
		o.Wait = 60 * time.Second
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := newFixture(t, c.min, c.max)
			t.Cleanup(func() { _ = f.Pool.Close() })
			c.run(t, &env{Fixture: f, o: o, min: c.min, max: c.max})
		})
	}
}

type contractCase struct {
	name     string
	min, max int
	run      func(t *testing.T, e *env)
}

var cases = []contractCase{
	{"fills to minReady and refills behind a claim", 2, 3, fillsAndRefills},
	{"a claim takes the sandbox ready longest", 3, 3, claimsOldestFirst},
	{"a claim beyond maxSandboxes waits, and ends with its context", 1, 1, claimsBeyondCapacity},
	{"Resize grows and shrinks without touching busy sandboxes", 1, 3, resizes},
	{"Resize rejects an invalid size and keeps the old one", 1, 2, rejectsInvalidSizes},
	{"Close destroys every sandbox and later claims fail", 2, 3, closes},
	{"Status comes from memory", 2, 2, statusFromMemory},
	{"concurrent claims get sandboxes of their own", 2, 3, concurrentClaims},
	{"a sandbox broken while idle is replaced", 1, 2, brokenWhileIdle},
	{"failing creation backs off, and the pool recovers", 0, 2, failingCreation},
}

type env struct {
	Fixture
	o        Options
	min, max int
}

// eventually polls cond until it holds, failing the test after o.Wait.
func (e *env) eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(e.o.Wait)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting until %s; pool status %+v, %d alive at the provider", e.o.Wait, what, e.Pool.Status(), e.Alive())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (e *env) waitReady(t *testing.T, n int) {
	t.Helper()
	e.eventually(t, fmt.Sprintf("%d sandboxes are ready", n), func() bool { return e.Pool.Status().Ready >= n })
}

func (e *env) acquire(t *testing.T, owner string) sandbox.Sandbox {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), e.o.Wait)
	defer cancel()
	sb, err := e.Pool.Acquire(ctx, owner)
	if err != nil {
		t.Fatalf("Acquire(%s): %v", owner, err)
	}
	return sb
}

func (e *env) execute(t *testing.T, sb sandbox.Sandbox) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), e.o.Wait)
	defer cancel()
	res, err := sb.Execute(ctx, e.o.Request)
	if err != nil {
		t.Fatalf("Execute in %s: %v", sb.ID(), err)
	}
	if !res.Success {
		t.Fatalf("Execute in %s: the job failed: %+v", sb.ID(), res)
	}
}

// checkBounds fails when the pool or its provider holds more than maxSandboxes.
func (e *env) checkBounds(t *testing.T, maxSandboxes int) {
	t.Helper()
	if st := e.Pool.Status(); st.Total > maxSandboxes {
		t.Errorf("Status().Total = %d, over maxSandboxes %d", st.Total, maxSandboxes)
	}
	if n := e.Alive(); n > maxSandboxes {
		t.Errorf("%d sandboxes alive at the provider, over maxSandboxes %d", n, maxSandboxes)
	}
	e.checkPeak(t)
}

// checkPeak fails when the provider ever held more than the case's maxSandboxes
// (no case resizes a pool above it).
func (e *env) checkPeak(t *testing.T) {
	t.Helper()
	if e.PeakAlive == nil {
		return
	}
	if n := e.PeakAlive(); n > e.max {
		t.Errorf("%d sandboxes existed at once at the provider, over maxSandboxes %d", n, e.max)
	}
}

func fillsAndRefills(t *testing.T, e *env) {
	e.waitReady(t, 2)
	e.eventually(t, "2 sandboxes exist at the provider", func() bool { return e.Alive() == 2 })
	e.checkBounds(t, e.max)
	sb := e.acquire(t, "ns/one")
	if st := e.Pool.Status(); st.Busy != 1 || st.Running != 1 {
		t.Errorf("after a claim Status().Busy = %d, Running = %d, want 1 and 1 (Running is what a drain waits for)", st.Busy, st.Running)
	}
	e.waitReady(t, 2) // refilled behind the claim
	e.checkBounds(t, e.max)
	e.execute(t, sb)
	e.Pool.Release(sb)
	e.eventually(t, "the released sandbox is no longer busy", func() bool { st := e.Pool.Status(); return st.Busy == 0 && st.Running == 0 })
	e.waitReady(t, 2)
	e.checkBounds(t, e.max)
	e.Pool.Release(sb) // a second release is ignored
	if st := e.Pool.Status(); st.Busy != 0 {
		t.Errorf("after a second Release Status().Busy = %d, want 0", st.Busy)
	}
}

func claimsOldestFirst(t *testing.T, e *env) {
	e.waitReady(t, 3)
	st := e.Pool.Status()
	var oldest time.Time
	for _, s := range st.Sandboxes {
		if s.State == sandbox.StateReady && (oldest.IsZero() || s.Since.Before(oldest)) {
			oldest = s.Since
		}
	}
	sb := e.acquire(t, "ns/first")
	defer e.Pool.Release(sb)
	for _, s := range st.Sandboxes {
		if s.ID == sb.ID() {
			if s.State != sandbox.StateReady || !s.Since.Equal(oldest) {
				t.Errorf("the claim took %s (%s since %s); want the one ready longest (since %s) of %+v", s.ID, s.State, s.Since, oldest, st.Sandboxes)
			}
			return
		}
	}
	t.Errorf("the claim took %s, which the status before it did not list: %+v", sb.ID(), st.Sandboxes)
}

func claimsBeyondCapacity(t *testing.T, e *env) {
	held := e.acquire(t, "ns/held")
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	sb, err := e.Pool.Acquire(ctx, "ns/over")
	cancel()
	if err == nil {
		e.Pool.Release(sb)
		t.Fatalf("a claim beyond maxSandboxes 1 got %s while %s was held", sb.ID(), held.ID())
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("a claim beyond maxSandboxes ended with %v, want its context's error", err)
	}
	e.checkBounds(t, 1)
	// A waiting claim gets the next free sandbox when the held one is released.
	got := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), e.o.Wait)
		defer cancel()
		sb, err := e.Pool.Acquire(ctx, "ns/waiter")
		if err == nil {
			e.Pool.Release(sb)
		}
		got <- err
	}()
	e.Pool.Release(held)
	if err := <-got; err != nil {
		t.Errorf("the waiting claim, after the release: %v", err)
	}
	e.checkBounds(t, 1)
}

func resizes(t *testing.T, e *env) {
	e.waitReady(t, 1)
	if err := e.Pool.Resize(3, 3); err != nil {
		t.Fatalf("Resize(3, 3): %v", err)
	}
	e.waitReady(t, 3)
	e.checkBounds(t, 3)
	busy := e.acquire(t, "ns/busy")
	if err := e.Pool.Resize(0, 1); err != nil {
		t.Fatalf("Resize(0, 1): %v", err)
	}
	e.eventually(t, "the idle sandboxes over the new cap are gone", func() bool {
		return e.Pool.Status().Total <= 1 && e.Alive() <= 1
	})
	if st := e.Pool.Status(); st.Busy != 1 {
		t.Errorf("after shrinking Status().Busy = %d, want the busy sandbox kept", st.Busy)
	}
	e.execute(t, busy) // the busy sandbox still works
	e.Pool.Release(busy)
	e.eventually(t, "the released sandbox is no longer busy", func() bool { return e.Pool.Status().Busy == 0 })
	e.checkBounds(t, 1)
	if err := e.Pool.Resize(1, 2); err != nil {
		t.Fatalf("Resize(1, 2): %v", err)
	}
	e.waitReady(t, 1)
}

func rejectsInvalidSizes(t *testing.T, e *env) {
	e.waitReady(t, 1)
	for _, size := range [][2]int{{-1, 1}, {0, 0}, {3, 2}, {1, -1}} {
		if err := e.Pool.Resize(size[0], size[1]); err == nil {
			t.Errorf("Resize(%d, %d) = nil, want an error", size[0], size[1])
		}
	}
	// The pool still holds its old size: minReady 1, at most 2.
	a := e.acquire(t, "ns/a")
	b := e.acquire(t, "ns/b")
	e.checkBounds(t, 2)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	sb, err := e.Pool.Acquire(ctx, "ns/c")
	cancel()
	if err == nil {
		e.Pool.Release(sb)
		t.Errorf("a third claim got a sandbox: the cap of 2 did not hold after rejected resizes")
	}
	e.Pool.Release(a)
	e.Pool.Release(b)
	e.waitReady(t, 1)
}

func closes(t *testing.T, e *env) {
	e.waitReady(t, 2)
	busy := e.acquire(t, "ns/busy")
	e.eventually(t, "a sandbox exists beside the busy one", func() bool { return e.Alive() >= 2 })
	if err := e.Pool.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	e.eventually(t, "no sandbox is left at the provider", func() bool { return e.Alive() == 0 })
	if st := e.Pool.Status(); st.Total != 0 || st.Ready != 0 || st.Busy != 0 || st.Starting != 0 {
		t.Errorf("Status after Close = %+v, want no sandboxes", st)
	}
	if _, err := e.Pool.Acquire(context.Background(), "ns/late"); !errors.Is(err, sandbox.ErrPoolClosed) {
		t.Errorf("Acquire after Close = %v, want sandbox.ErrPoolClosed", err)
	}
	e.Pool.Release(busy) // after Close: ignored
	if err := e.Pool.Close(); err != nil {
		t.Errorf("a second Close: %v", err)
	}
	e.eventually(t, "no sandbox is left at the provider", func() bool { return e.Alive() == 0 })
}

func statusFromMemory(t *testing.T, e *env) {
	e.waitReady(t, 2)
	sb := e.acquire(t, "ns/busy")
	defer e.Pool.Release(sb)
	e.waitReady(t, 1)
	before := e.Calls()
	var st sandbox.PoolStatus
	for range 50 {
		st = e.Pool.Status()
	}
	if n := e.Calls() - before; n != 0 {
		t.Errorf("50 calls of Status made %d requests to the provider, want none", n)
	}
	if st.Busy != 1 || st.Total < st.Ready+st.Busy+st.Starting || st.Total > e.max || len(st.Sandboxes) != st.Total {
		t.Errorf("Status = %+v, want one busy, Ready+Busy+Starting <= Total <= %d, and each sandbox listed", st, e.max)
	}
	found := false
	for _, s := range st.Sandboxes {
		if s.ID == sb.ID() {
			found = true
			if s.State != sandbox.StateBusy || s.Owner != "ns/busy" {
				t.Errorf("the claimed sandbox's status is %+v, want Busy for ns/busy", s)
			}
		}
	}
	if !found {
		t.Errorf("Status does not list the claimed sandbox %s: %+v", sb.ID(), st.Sandboxes)
	}
}

func concurrentClaims(t *testing.T, e *env) {
	const claims = 12
	var (
		mu     sync.Mutex
		holder = map[string]string{}
		wg     sync.WaitGroup
		errs   = make(chan error, claims)
	)
	for i := range claims {
		wg.Add(1)
		go func() {
			defer wg.Done()
			owner := fmt.Sprintf("ns/claim-%d", i)
			ctx, cancel := context.WithTimeout(context.Background(), e.o.Wait)
			defer cancel()
			sb, err := e.Pool.Acquire(ctx, owner)
			if err != nil {
				errs <- fmt.Errorf("%s: %w", owner, err)
				return
			}
			mu.Lock()
			if other, ok := holder[sb.ID()]; ok {
				errs <- fmt.Errorf("sandbox %s went to %s while %s held it", sb.ID(), owner, other)
			}
			holder[sb.ID()] = owner
			mu.Unlock()
			if st := e.Pool.Status(); st.Total > e.max {
				errs <- fmt.Errorf("Status().Total = %d, over maxSandboxes %d", st.Total, e.max)
			}
			if n := e.Alive(); n > e.max {
				errs <- fmt.Errorf("%d sandboxes alive at the provider, over maxSandboxes %d", n, e.max)
			}
			res, err := sb.Execute(ctx, e.o.Request)
			if err != nil || !res.Success {
				errs <- fmt.Errorf("%s: Execute in %s: %v %+v", owner, sb.ID(), err, res)
			}
			mu.Lock()
			delete(holder, sb.ID())
			mu.Unlock()
			e.Pool.Release(sb)
		}()
	}
	wg.Wait()
	close(errs)
	e.checkPeak(t)
	for err := range errs {
		t.Error(err)
	}
	e.eventually(t, "no sandbox is busy", func() bool { return e.Pool.Status().Busy == 0 })
	e.checkBounds(t, e.max)
}

func brokenWhileIdle(t *testing.T, e *env) {
	e.waitReady(t, 1)
	var victim sandbox.SandboxStatus
	for _, s := range e.Pool.Status().Sandboxes {
		if s.State == sandbox.StateReady {
			victim = s
			break
		}
	}
	e.Break(victim.ID)
	// Claims go on until one runs its job. The broken sandbox may be handed out once
	// (to a backend that learns of the break only on use), never twice; every other
	// claim must work.
	failed := 0
	for {
		sb := e.acquire(t, "ns/after-break")
		ctx, cancel := context.WithTimeout(context.Background(), e.o.Wait)
		res, err := sb.Execute(ctx, e.o.Request)
		cancel()
		e.Pool.Release(sb)
		if err == nil && res.Success {
			break
		}
		failed++
		if failed > 1 {
			t.Fatalf("a second claim after sandbox %s broke failed too, in %s: %v %+v", victim.ID, sb.ID(), err, res)
		}
		if sb.ID() != victim.ID {
			t.Fatalf("the claim after sandbox %s broke got %s, which failed: %v %+v", victim.ID, sb.ID(), err, res)
		}
		if !errors.Is(err, sandbox.ErrSandboxLost) {
			t.Errorf("Execute in the broken sandbox = %v, want sandbox.ErrSandboxLost", err)
		}
	}
	// A replacement may reuse the broken one's ID, not its start.
	e.eventually(t, "the broken sandbox is gone and one is ready again", func() bool {
		st := e.Pool.Status()
		for _, s := range st.Sandboxes {
			if s.ID == victim.ID && s.Since.Equal(victim.Since) && s.State != sandbox.StateBusy {
				return false
			}
		}
		return st.Ready >= 1
	})
	e.checkBounds(t, e.max)
}

// creationBound is how many creations a pool may attempt while every creation
// fails for a few seconds: a backoff keeps it to a handful, a loop makes hundreds.
const creationBound = 25

func failingCreation(t *testing.T, e *env) {
	e.FailCreation(true)
	before := e.Created()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	sb, err := e.Pool.Acquire(ctx, "ns/doomed")
	cancel()
	if err == nil {
		e.Pool.Release(sb)
		t.Fatalf("a claim got sandbox %s while every creation failed", sb.ID())
	}
	if !errors.Is(err, sandbox.ErrUnavailable) && !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("the claim ended with %v, want sandbox.ErrUnavailable or its context's error", err)
	}
	// Claims keep coming, as callers retry.
	for i := range 5 {
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		if sb, err := e.Pool.Acquire(ctx, fmt.Sprintf("ns/retry-%d", i)); err == nil {
			e.Pool.Release(sb)
		}
		cancel()
	}
	if n := e.Created() - before; n > creationBound {
		t.Errorf("%d creations in about 4 s of failures, want at most %d (a backoff)", n, creationBound)
	}
	if n := e.Created() - before; n == 0 {
		t.Errorf("no creation was tried for a waiting claim")
	}
	e.checkBounds(t, e.max)
	// Creation works again: the pool recovers for the claims that keep coming,
	// although it keeps none warm (minReady 0).
	e.FailCreation(false)
	deadline := time.Now().Add(e.o.Wait)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		sb, err := e.Pool.Acquire(ctx, "ns/recovered")
		cancel()
		if err == nil {
			e.execute(t, sb)
			e.Pool.Release(sb)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no claim succeeded within %s after creation worked again: %v", e.o.Wait, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	e.checkBounds(t, e.max)
}
