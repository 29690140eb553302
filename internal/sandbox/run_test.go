package sandbox_test

import (
	"context"
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/vizops/viz-operator/internal/sandbox"
)

// recordingPool is the smallest Pool that records claims and releases. It runs no code.
type recordingPool struct {
	acquireErr error
	execErr    error
	events     []string
}

type recordingSandbox struct{ p *recordingPool }

func (s recordingSandbox) ID() string { return "sb-1" }
func (s recordingSandbox) Execute(ctx context.Context, req sandbox.Request) (*sandbox.Result, error) {
	s.p.events = append(s.p.events, "execute")
	if s.p.execErr != nil {
		return nil, s.p.execErr
	}
	return &sandbox.Result{Success: true, Text: req.Code, SandboxID: s.ID()}, nil
}

func (p *recordingPool) Acquire(ctx context.Context, owner string) (sandbox.Sandbox, error) {
	p.events = append(p.events, "acquire "+owner)
	if p.acquireErr != nil {
		return nil, p.acquireErr
	}
	return recordingSandbox{p}, nil
}
func (p *recordingPool) Release(sb sandbox.Sandbox) { p.events = append(p.events, "release "+sb.ID()) }
func (p *recordingPool) Resize(int, int) error      { return nil }
func (p *recordingPool) Status() sandbox.PoolStatus { return sandbox.PoolStatus{} }
func (p *recordingPool) Close() error               { return nil }

func TestRunClaimsExecutesAndReleases(t *testing.T) {
	tests := map[string]struct {
		pool       *recordingPool
		wantErr    error
		wantEvents []string
	}{
		"success": {
			pool:       &recordingPool{},
			wantEvents: []string{"acquire me", "execute", "release sb-1"},
		},
		"sandbox lost is returned and the sandbox still released": {
			pool:       &recordingPool{execErr: sandbox.ErrSandboxLost},
			wantErr:    sandbox.ErrSandboxLost,
			wantEvents: []string{"acquire me", "execute", "release sb-1"},
		},
		"closed pool": {
			pool:       &recordingPool{acquireErr: sandbox.ErrPoolClosed},
			wantErr:    sandbox.ErrPoolClosed,
			wantEvents: []string{"acquire me"},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			r, err := sandbox.Run(context.Background(), tc.pool, "me", sandbox.Request{Code: "1"})
			if !errors.Is(err, tc.wantErr) || (tc.wantErr == nil && (r == nil || r.Text != "1")) {
				t.Errorf("Run = %+v, %v; want error %v", r, err, tc.wantErr)
			}
			if diff := cmp.Diff(tc.wantEvents, tc.pool.events); diff != "" {
				t.Errorf("events (-want +got):\n%s", diff)
			}
		})
	}
}
