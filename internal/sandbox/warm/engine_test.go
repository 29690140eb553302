package warm

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	clocktesting "k8s.io/utils/clock/testing"

	"github.com/vizops/viz-operator/internal/sandbox"
	"github.com/vizops/viz-operator/internal/sandbox/pooltest"
	"github.com/vizops/viz-operator/internal/sandbox/sandboxtest"
)

// fake is a provider of in-memory sandboxes: it counts what exists, what was asked
// for, and can fail or hold its starts and destroys.
type fake struct {
	mu        sync.Mutex
	next      int
	alive     map[string]*fakeBox
	peak      int
	created   int
	calls     int
	destroyed []string
	failWith  error
	owners    []string
	// gate, when set, holds every Destroy until it is closed; startGate every Start.
	gate, startGate chan struct{}

	judge  func(Failure) Failure
	sweeps int
}

type fakeBox struct {
	f      *fake
	id     string
	broken bool
}

func (b *fakeBox) ID() string { return b.id }

func (b *fakeBox) Execute(ctx context.Context, req sandbox.Request) (*sandbox.Result, error) {
	b.f.mu.Lock()
	defer b.f.mu.Unlock()
	if b.broken || b.f.alive[b.id] != b {
		return nil, fmt.Errorf("%w: %s is gone", sandbox.ErrSandboxLost, b.id)
	}
	return &sandbox.Result{Success: true, SandboxID: b.id}, nil
}

func newFake() *fake { return &fake{alive: map[string]*fakeBox{}} }

func (f *fake) Start(ctx context.Context, owner string) (sandbox.Sandbox, error) {
	f.mu.Lock()
	gate := f.startGate
	f.mu.Unlock()
	if gate != nil {
		<-gate
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.created++
	f.calls++
	f.owners = append(f.owners, owner)
	if f.failWith != nil {
		return nil, f.failWith
	}
	f.next++
	b := &fakeBox{f: f, id: fmt.Sprintf("sb-%d", f.next)}
	f.alive[b.id] = b
	f.peak = max(f.peak, len(f.alive))
	return b, nil
}

func (f *fake) Destroy(ctx context.Context, sb sandbox.Sandbox) {
	f.mu.Lock()
	gate := f.gate
	f.mu.Unlock()
	if gate != nil {
		<-gate
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	delete(f.alive, sb.ID())
	f.destroyed = append(f.destroyed, sb.ID())
}

func (f *fake) count(fn func() int) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return fn()
}

// judged is a fake with a FailureJudge and a Sweeper.
type judged struct{ *fake }

func (j judged) Judge(fl Failure) Failure { return j.judge(fl) }

func (j judged) Sweep(ctx context.Context, held func(string) bool) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.sweeps++
	return nil
}

// recycling is a fake whose sandboxes serve again after a job, unless broken.
type recycling struct{ *fake }

func (r recycling) Recycle(ctx context.Context, sb sandbox.Sandbox) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	b := sb.(*fakeBox)
	return !b.broken && r.alive[b.id] == b
}

// TestContract runs the pool contract on the engine, with a provisioner that
// destroys every released sandbox and with one that recycles them.
func TestContract(t *testing.T) {
	for name, wrap := range map[string]func(*fake) Provisioner{
		"destroying": func(f *fake) Provisioner { return f },
		"recycling":  func(f *fake) Provisioner { return recycling{f} },
	} {
		t.Run(name, func(t *testing.T) { runContract(t, wrap) })
	}
}

func runContract(t *testing.T, wrap func(*fake) Provisioner) {
	pooltest.Run(t, func(t *testing.T, minReady, maxSandboxes int) pooltest.Fixture {
		f := newFake()
		e, err := New(wrap(f), Options{MinReady: minReady, MaxSandboxes: maxSandboxes, Kind: "fake", BackoffBase: 50 * time.Millisecond, BackoffMax: time.Second})
		if err != nil {
			t.Fatal(err)
		}
		return pooltest.Fixture{
			Pool:      e,
			Alive:     func() int { return f.count(func() int { return len(f.alive) }) },
			PeakAlive: func() int { return f.count(func() int { return f.peak }) },
			Created:   func() int { return f.count(func() int { return f.created }) },
			Calls:     func() int { return f.count(func() int { return f.calls }) },
			Break: func(id string) {
				f.mu.Lock()
				defer f.mu.Unlock()
				if b := f.alive[id]; b != nil {
					b.broken = true
					delete(f.alive, id)
				}
			},
			FailCreation: func(on bool) {
				f.mu.Lock()
				defer f.mu.Unlock()
				f.failWith = nil
				if on {
					f.failWith = errors.New("the fake provider is down")
				}
			},
		}
	}, pooltest.Options{Request: sandbox.Request{Code: "print(1)"}})
}

// newEngine starts an engine that the test closes at its end.
func newEngine(t *testing.T, prov Provisioner, o Options) *Engine {
	t.Helper()
	e, err := New(prov, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.Close() })
	return e
}

func TestNewRejectsInvalidSizes(t *testing.T) {
	for name, size := range map[string][2]int{
		"negative minReady":     {-1, 1},
		"no sandboxes":          {0, 0},
		"minReady over the cap": {3, 2},
		"negative maxSandboxes": {0, -1},
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := New(newFake(), Options{MinReady: size[0], MaxSandboxes: size[1]}); !errors.Is(err, sandbox.ErrInvalidSize) {
				t.Errorf("New(%d, %d) = %v, want ErrInvalidSize", size[0], size[1], err)
			}
		})
	}
}

// TestBackoffDoubles checks the holds between failed starts on a fake clock: base,
// twice, four times, capped at the maximum, and that one success resets them.
func TestBackoffDoubles(t *testing.T) {
	clk := clocktesting.NewFakeClock(time.Unix(0, 0))
	f := newFake()
	f.failWith = errors.New("down")
	e := newEngine(t, f, Options{MinReady: 1, MaxSandboxes: 1, Clock: clk, BackoffBase: time.Second, BackoffMax: 4 * time.Second})
	created := func() int { return f.count(func() int { return f.created }) }
	for i, hold := range []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 4 * time.Second} {
		sandboxtest.WaitFor(t, fmt.Sprintf("start %d", i+1), func() bool { return created() == i+1 })
		sandboxtest.WaitFor(t, "the loop waits on the clock", clk.HasWaiters)
		clk.Step(hold - time.Millisecond)
		time.Sleep(20 * time.Millisecond) // nothing may start before the hold ends
		if n := created(); n != i+1 {
			t.Fatalf("after failure %d a start came %s early: %d starts", i+1, time.Millisecond, n)
		}
		if i == 3 {
			f.mu.Lock()
			f.failWith = nil
			f.mu.Unlock()
		}
		clk.Step(time.Millisecond)
	}
	sandboxtest.WaitFor(t, "a sandbox is ready", func() bool { return e.Status().Ready == 1 })
	if st := e.Status(); st.Degraded != "" || st.Throttled != "" {
		t.Errorf("after a success the status still says %+v", st)
	}
}

// TestFailureJudge checks each verdict a provisioner's judge can give.
func TestFailureJudge(t *testing.T) {
	refused := errors.New("key refused")
	for name, tc := range map[string]struct {
		judge        func(Failure) Failure
		wantErr      error
		wantThrottle string
		wantDegraded string
		wantSweeps   int
	}{
		"a plain failure backs off and says why": {
			judge:        func(f Failure) Failure { return f },
			wantErr:      context.DeadlineExceeded,
			wantDegraded: "creating sandboxes fails: down",
		},
		"a fatal error ends claims at once": {
			judge:   func(f Failure) Failure { f.Fatal = refused; return f },
			wantErr: refused,
		},
		"a throttle shows in the status and the claim's error": {
			judge:        func(f Failure) Failure { f.Throttled, f.Reason = "429 until later", ""; return f },
			wantErr:      context.DeadlineExceeded,
			wantThrottle: "429 until later",
		},
		"an unsure start is swept before the next": {
			judge:        func(f Failure) Failure { f.Unsure = true; return f },
			wantErr:      context.DeadlineExceeded,
			wantDegraded: "creating sandboxes fails: down",
			wantSweeps:   1,
		},
	} {
		t.Run(name, func(t *testing.T) {
			clk := clocktesting.NewFakeClock(time.Unix(0, 0))
			f := newFake()
			f.failWith = errors.New("down")
			f.judge = tc.judge
			e := newEngine(t, judged{f}, Options{MinReady: 0, MaxSandboxes: 1, Clock: clk, Kind: "fake"})
			ctx, cancel := context.WithCancel(context.Background())
			got := make(chan error, 1)
			go func() {
				_, err := e.Acquire(ctx, "ns/a")
				got <- err
			}()
			sandboxtest.WaitFor(t, "one start", func() bool { return f.count(func() int { return f.created }) == 1 })
			sandboxtest.WaitFor(t, "the failure recorded", func() bool {
				st := e.Status()
				return e.Err() != nil || st.Degraded != "" || st.Throttled != ""
			})
			if errors.Is(tc.wantErr, context.DeadlineExceeded) {
				cancel()
			}
			err := <-got
			cancel()
			if errors.Is(tc.wantErr, context.DeadlineExceeded) {
				if !errors.Is(err, context.Canceled) {
					t.Errorf("the claim ended with %v, want its context's error", err)
				}
			} else if !errors.Is(err, tc.wantErr) {
				t.Errorf("the claim ended with %v, want %v", err, tc.wantErr)
			}
			if tc.wantThrottle != "" && (err == nil || !strings.Contains(err.Error(), tc.wantThrottle)) {
				t.Errorf("the claim's error %v does not say it was throttled", err)
			}
			st := e.Status()
			if st.Throttled != tc.wantThrottle || st.Degraded != tc.wantDegraded {
				t.Errorf("Status = Throttled %q Degraded %q, want %q %q", st.Throttled, st.Degraded, tc.wantThrottle, tc.wantDegraded)
			}
			if tc.wantSweeps > 0 {
				f.mu.Lock()
				f.failWith = nil
				f.mu.Unlock()
				go func() { _, _ = e.Acquire(context.Background(), "ns/b") }()
				sandboxtest.WaitFor(t, "the loop waits on the clock", clk.HasWaiters)
				clk.Step(time.Minute)
				sandboxtest.WaitFor(t, "a sweep, then a start", func() bool {
					return f.count(func() int { return f.sweeps }) == tc.wantSweeps && f.count(func() int { return f.created }) == 2
				})
			}
		})
	}
}

// TestDestroyingCountsAgainstTheCap: while a released sandbox is being destroyed no
// replacement starts beyond maxSandboxes.
func TestDestroyingCountsAgainstTheCap(t *testing.T) {
	f := newFake()
	e := newEngine(t, f, Options{MinReady: 1, MaxSandboxes: 1})
	sb, err := e.Acquire(context.Background(), "ns/a")
	if err != nil {
		t.Fatal(err)
	}
	gate := make(chan struct{})
	var once sync.Once
	open := func() { once.Do(func() { close(gate) }) }
	t.Cleanup(open)
	f.mu.Lock()
	f.gate = gate
	f.mu.Unlock()
	e.Release(sb)
	time.Sleep(20 * time.Millisecond) // give a wrong start its chance
	if n := f.count(func() int { return f.created }); n != 1 {
		open()
		t.Fatalf("%d starts while the released sandbox was still being destroyed, want 1", n)
	}
	open()
	f.mu.Lock()
	f.gate = nil
	f.mu.Unlock()
	sandboxtest.WaitFor(t, "a replacement is ready", func() bool { return e.Status().Ready == 1 })
}

// TestOwnersLabelStarts: a start made for a waiting claim names it.
func TestOwnersLabelStarts(t *testing.T) {
	f := newFake()
	e := newEngine(t, f, Options{MinReady: 0, MaxSandboxes: 2})
	sb, err := e.Acquire(context.Background(), "ns/a")
	if err != nil {
		t.Fatal(err)
	}
	e.Release(sb)
	if got := f.count(func() int { return len(f.owners) }); got != 1 || f.owners[0] != "ns/a" {
		t.Errorf("starts were made for %v, want [ns/a]", f.owners)
	}
}

// TestRetireAndHeld: a Maintainer's Retire drops a ready sandbox and a replacement
// follows; Fail ends claims with the given error.
func TestRetireAndFail(t *testing.T) {
	f := newFake()
	e := newEngine(t, f, Options{MinReady: 1, MaxSandboxes: 2})
	sandboxtest.WaitFor(t, "one ready", func() bool { return e.Status().Ready == 1 })
	ready, busy := e.Held()
	if len(ready) != 1 || len(busy) != 0 {
		t.Fatalf("Held = %v, %v", ready, busy)
	}
	if !e.Retire(ready[0]) {
		t.Fatal("Retire of a ready sandbox = false")
	}
	if e.Retire(ready[0]) {
		t.Error("a second Retire = true")
	}
	sandboxtest.WaitFor(t, "a replacement", func() bool {
		r, _ := e.Held()
		return len(r) == 1 && r[0] != ready[0]
	})
	stop := errors.New("stop")
	if err := e.Fail(stop); !errors.Is(err, stop) {
		t.Errorf("Fail = %v", err)
	}
	if err := e.Fail(errors.New("later")); !errors.Is(err, stop) {
		t.Errorf("a second Fail = %v, want the first", err)
	}
	if _, err := e.Acquire(context.Background(), "ns/x"); !errors.Is(err, stop) {
		t.Errorf("Acquire after Fail = %v", err)
	}
}

// TestRecycle: a recycled sandbox goes to the end of the ready list; one the
// Recycler refuses, or one over the cap, is destroyed.
func TestRecycle(t *testing.T) {
	for name, tc := range map[string]struct {
		breakIt    bool
		shrinkTo   int
		wantReused bool
	}{
		"a healthy sandbox serves again":        {wantReused: true},
		"a broken sandbox is destroyed":         {breakIt: true},
		"a sandbox over a new cap is destroyed": {shrinkTo: 1},
	} {
		t.Run(name, func(t *testing.T) {
			f := newFake()
			e := newEngine(t, recycling{f}, Options{MinReady: 2, MaxSandboxes: 2})
			sandboxtest.WaitFor(t, "two ready", func() bool { return e.Status().Ready == 2 })
			sb, err := e.Acquire(context.Background(), "ns/a")
			if err != nil {
				t.Fatal(err)
			}
			if tc.breakIt {
				f.mu.Lock()
				sb.(*fakeBox).broken = true
				f.mu.Unlock()
			}
			if tc.shrinkTo > 0 {
				// Another job holds the other sandbox: the cap of 1 is taken.
				other, err := e.Acquire(context.Background(), "ns/b")
				if err != nil {
					t.Fatal(err)
				}
				defer e.Release(other)
				if err := e.Resize(0, tc.shrinkTo); err != nil {
					t.Fatal(err)
				}
			}
			e.Release(sb)
			ready, _ := e.Held()
			reused := len(ready) > 0 && ready[len(ready)-1] == sb
			if reused != tc.wantReused {
				t.Errorf("after Release the ready list is %v; reused = %v, want %v", ready, reused, tc.wantReused)
			}
			destroyed := func() bool {
				f.mu.Lock()
				defer f.mu.Unlock()
				for _, id := range f.destroyed {
					if id == sb.ID() {
						return true
					}
				}
				return false
			}
			if !tc.wantReused {
				sandboxtest.WaitFor(t, "the sandbox destroyed", destroyed)
			} else if destroyed() {
				t.Errorf("the recycled sandbox was destroyed")
			}
		})
	}
}

// ranked is a fake whose Ranker gives each sandbox the rank set for it (0 unset).
type ranked struct {
	*fake
	rank map[string]int
}

func (r ranked) Rank(sb sandbox.Sandbox) int { return r.rank[sb.ID()] }

// TestRanker: a claim takes the sandbox ready longest among those of the highest
// rank, and none of a negative rank.
func TestRanker(t *testing.T) {
	for name, tc := range map[string]struct {
		ranks []int // of the ready sandboxes, oldest first
		want  int   // index of the one claimed, -1: none (the claim waits)
	}{
		"equal ranks: the one ready longest":  {ranks: []int{0, 0, 0}, want: 0},
		"the oldest of the highest rank":      {ranks: []int{0, 1, 1}, want: 1},
		"a negative rank is skipped":          {ranks: []int{-1, 0, 0}, want: 1},
		"every one negative: the claim waits": {ranks: []int{-1, -1, -1}, want: -1},
	} {
		t.Run(name, func(t *testing.T) {
			f := newFake()
			r := ranked{fake: f, rank: map[string]int{}}
			e := newEngine(t, r, Options{MinReady: 3, MaxSandboxes: 3})
			sandboxtest.WaitFor(t, "three ready", func() bool { return e.Status().Ready == 3 })
			ready, _ := e.Held()
			f.mu.Lock()
			for i, sb := range ready {
				r.rank[sb.ID()] = tc.ranks[i]
			}
			f.mu.Unlock()
			ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
			defer cancel()
			sb, err := e.Acquire(ctx, "ns/a")
			if tc.want < 0 {
				if err == nil {
					t.Fatalf("the claim took %s, want none", sb.ID())
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if sb != ready[tc.want] {
				t.Errorf("the claim took %s of %v, want %s", sb.ID(), ready, ready[tc.want].ID())
			}
		})
	}
}

// TestIdleTTL: ready sandboxes beyond minReady go once they have been ready for
// IdleTTL, the one ready longest first; minReady stay; without IdleTTL none goes.
func TestIdleTTL(t *testing.T) {
	for name, tc := range map[string]struct {
		ttl, step time.Duration
		wantReady int
	}{
		"no IdleTTL: spares stay":                 {ttl: 0, step: time.Hour, wantReady: 3},
		"spares stay until IdleTTL":               {ttl: time.Minute, step: time.Minute - 2*time.Second, wantReady: 3},
		"spares go after IdleTTL, minReady stays": {ttl: time.Minute, step: time.Minute, wantReady: 1},
	} {
		t.Run(name, func(t *testing.T) {
			clk := clocktesting.NewFakeClock(time.Unix(0, 0))
			f := newFake()
			e := newEngine(t, recycling{f}, Options{MinReady: 1, MaxSandboxes: 3, Clock: clk, IdleTTL: tc.ttl})
			a, err := e.Acquire(context.Background(), "ns/a")
			if err != nil {
				t.Fatal(err)
			}
			b, err := e.Acquire(context.Background(), "ns/b")
			if err != nil {
				t.Fatal(err)
			}
			sandboxtest.WaitFor(t, "one ready behind two claims", func() bool { return e.Status().Ready == 1 })
			clk.Step(time.Second) // a and b are now the newest
			e.Release(a)
			e.Release(b)
			if n := e.Status().Ready; n != 3 {
				t.Fatalf("%d ready after the releases, want 3", n)
			}
			oldest, _ := e.Held()
			if tc.ttl > 0 {
				sandboxtest.WaitFor(t, "the loop waits on the clock", clk.HasWaiters)
			}
			clk.Step(tc.step)
			if tc.wantReady == 3 {
				time.Sleep(20 * time.Millisecond) // give a wrong trim its chance
			}
			sandboxtest.WaitFor(t, fmt.Sprintf("%d ready", tc.wantReady), func() bool { return e.Status().Ready == tc.wantReady })
			if tc.wantReady == 1 {
				// The two ready longest went (the refill, then a); b, the newest, stays.
				sandboxtest.WaitFor(t, "two destroyed", func() bool { return f.count(func() int { return len(f.destroyed) }) == 2 })
				if ready, _ := e.Held(); ready[0] != oldest[2] {
					t.Errorf("kept %s, want the newest %s", ready[0].ID(), oldest[2].ID())
				}
			}
		})
	}
}

// TestFailClaimsAfter: with FailClaimsAfter a claim fails at once with
// sandbox.ErrUnavailable once that many starts in a row failed, and one more start
// follows so the pool recovers; without it the claim waits for its context.
func TestFailClaimsAfter(t *testing.T) {
	for name, after := range map[string]int{"claims wait": 0, "claims fail after 3": 3} {
		t.Run(name, func(t *testing.T) {
			clk := clocktesting.NewFakeClock(time.Unix(0, 0))
			f := newFake()
			f.failWith = errors.New("bwrap is broken")
			e := newEngine(t, f, Options{MinReady: 0, MaxSandboxes: 2, Clock: clk, Kind: "fake", FailClaimsAfter: after})
			created := func() int { return f.count(func() int { return f.created }) }
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			got := make(chan error, 1)
			go func() {
				_, err := e.Acquire(ctx, "ns/a")
				got <- err
			}()
			for i := 1; i <= 3; i++ {
				sandboxtest.WaitFor(t, fmt.Sprintf("start %d", i), func() bool { return created() == i })
				if i < 3 {
					sandboxtest.WaitFor(t, "the loop waits on the clock", clk.HasWaiters)
					clk.Step(time.Minute)
				}
			}
			if after == 0 {
				select {
				case err := <-got:
					t.Fatalf("the claim ended before its context: %v", err)
				case <-time.After(20 * time.Millisecond):
				}
				cancel()
				if err := <-got; !errors.Is(err, context.Canceled) {
					t.Errorf("the claim ended with %v, want its context's error", err)
				}
				return
			}
			var err error
			select {
			case err = <-got:
			case <-time.After(10 * time.Second):
				t.Fatal("the claim still waits after 3 failed starts")
			}
			if !errors.Is(err, sandbox.ErrUnavailable) || !strings.Contains(err.Error(), "bwrap is broken") {
				t.Fatalf("the claim ended with %v, want ErrUnavailable with the last start's error", err)
			}
			// A later claim fails at once too, and the pool tries once more.
			if _, err := e.Acquire(context.Background(), "ns/b"); !errors.Is(err, sandbox.ErrUnavailable) {
				t.Fatalf("a later claim: %v, want ErrUnavailable", err)
			}
			f.mu.Lock()
			f.failWith = nil
			f.mu.Unlock()
			sandboxtest.WaitFor(t, "the loop waits on the clock", clk.HasWaiters)
			clk.Step(time.Minute)
			sandboxtest.WaitFor(t, "the pool recovers with one ready", func() bool { return e.Status().Ready == 1 })
			if _, err := e.Acquire(context.Background(), "ns/c"); err != nil {
				t.Errorf("a claim after recovery: %v", err)
			}
		})
	}
}

// TestStartLandingOverTheCap: a start that ends after a Resize shrank the pool
// below what it holds is destroyed, not kept over the cap.
func TestStartLandingOverTheCap(t *testing.T) {
	f := newFake()
	e := newEngine(t, f, Options{MinReady: 1, MaxSandboxes: 2})
	sandboxtest.WaitFor(t, "one ready", func() bool { return e.Status().Ready == 1 })
	gate := make(chan struct{})
	f.mu.Lock()
	f.startGate = gate
	f.mu.Unlock()
	busy, err := e.Acquire(context.Background(), "ns/busy")
	if err != nil {
		t.Fatal(err)
	}
	sandboxtest.WaitFor(t, "a refill starting", func() bool { return e.Status().Starting == 1 })
	if err := e.Resize(0, 1); err != nil {
		t.Fatal(err)
	}
	close(gate)
	sandboxtest.WaitFor(t, "the late start destroyed", func() bool { return f.count(func() int { return len(f.destroyed) }) == 1 })
	if st := e.Status(); st.Total != 1 || st.Busy != 1 {
		t.Errorf("Status = %+v, want only the busy sandbox", st)
	}
	e.Release(busy)
}

// gated is a fake whose Admitter admits while slots are left.
type gated struct {
	*fake
	slots *int
}

func (g gated) Admit() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if *g.slots == 0 {
		return false
	}
	*g.slots--
	return true
}

// TestAdmitter: a start the Admitter refuses is not begun (nothing is starting,
// nothing fails) until a slot frees and Kick is called.
func TestAdmitter(t *testing.T) {
	f := newFake()
	slots := 1
	e := newEngine(t, gated{f, &slots}, Options{MinReady: 2, MaxSandboxes: 2})
	sandboxtest.WaitFor(t, "one ready", func() bool { return e.Status().Ready == 1 })
	time.Sleep(20 * time.Millisecond) // give a wrong start its chance
	if st := e.Status(); st.Total != 1 || st.Starting != 0 || st.Degraded != "" {
		t.Fatalf("Status = %+v, want one ready and nothing starting or failing", st)
	}
	if n := f.count(func() int { return f.created }); n != 1 {
		t.Fatalf("%d starts, want 1", n)
	}
	f.mu.Lock()
	slots = 1
	f.mu.Unlock()
	e.Kick()
	sandboxtest.WaitFor(t, "two ready", func() bool { return e.Status().Ready == 2 })
}

// filtered is a fake whose ClaimFilter lets a sandbox serve only the namespace set
// for it (any namespace when unset), as a Kubernetes Pod that served one does.
type filtered struct {
	*fake
	served map[string]string // sandbox ID: namespace
}

func (f filtered) Claimable(sb sandbox.Sandbox, owner string) bool {
	ns, _, _ := strings.Cut(owner, "/")
	s, ok := f.served[sb.ID()]
	return !ok || s == ns
}

// TestClaimFilter: a claim takes only a ready sandbox the filter accepts; one that
// no ready sandbox serves gets a start of its own, and at the cap the sandbox ready
// longest is destroyed to make room for it.
func TestClaimFilter(t *testing.T) {
	for name, tc := range map[string]struct {
		min, max  int
		served    []string // of the ready sandboxes, oldest first ("": any)
		want      string   // the sandbox the claim of ns "b" gets
		destroyed []string
		ready     []string // the ready list after the claim
	}{
		"no refusal: the one ready longest":                       {min: 2, max: 2, served: []string{"", ""}, want: "sb-1", ready: []string{"sb-2"}},
		"a refused sandbox is skipped":                            {min: 2, max: 3, served: []string{"a", ""}, want: "sb-2", ready: []string{"sb-1"}},
		"the one served by the claim's namespace is taken":        {min: 2, max: 2, served: []string{"a", "b"}, want: "sb-2", ready: []string{"sb-1"}},
		"none serves the claim: a start of its own":               {min: 1, max: 2, served: []string{"a"}, want: "sb-2", ready: []string{"sb-1"}},
		"none serves the claim at the cap: the oldest goes":       {min: 1, max: 1, served: []string{"a"}, want: "sb-2", destroyed: []string{"sb-1"}},
		"none serves the claim, room for one: others stay":        {min: 2, max: 3, served: []string{"a", "a"}, want: "sb-3", ready: []string{"sb-1", "sb-2"}},
		"none serves the claim, no room: the oldest of them goes": {min: 2, max: 2, served: []string{"a", "a"}, want: "sb-3", destroyed: []string{"sb-1"}, ready: []string{"sb-2"}},
	} {
		t.Run(name, func(t *testing.T) {
			clk := clocktesting.NewFakeClock(time.Unix(0, 0))
			f := newFake()
			p := filtered{fake: f, served: map[string]string{}}
			for i, ns := range tc.served {
				if ns != "" {
					p.served[fmt.Sprintf("sb-%d", i+1)] = ns
				}
			}
			e := newEngine(t, p, Options{MinReady: tc.min, MaxSandboxes: tc.max, Clock: clk})
			sandboxtest.WaitFor(t, "the ready sandboxes", func() bool { return e.Status().Ready == len(tc.served) })
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			sb, err := e.Acquire(ctx, "b/req")
			if err != nil {
				t.Fatal(err)
			}
			if sb.ID() != tc.want {
				t.Errorf("the claim of namespace b took %s, want %s", sb.ID(), tc.want)
			}
			f.mu.Lock()
			destroyed := append([]string(nil), f.destroyed...)
			f.mu.Unlock()
			if fmt.Sprint(destroyed) != fmt.Sprint(tc.destroyed) && !(len(destroyed) == 0 && len(tc.destroyed) == 0) {
				t.Errorf("destroyed %v, want %v", destroyed, tc.destroyed)
			}
			ready, _ := e.Held()
			var ids []string
			for _, r := range ready {
				if len(ids) < len(tc.ready) {
					ids = append(ids, r.ID())
				}
			}
			if fmt.Sprint(ids) != fmt.Sprint(tc.ready) {
				t.Errorf("the ready list starts %v, want %v", ids, tc.ready)
			}
		})
	}
}
