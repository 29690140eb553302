package kubernetes

import (
	"context"
	"errors"
	"fmt"
	"sync"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/vizops/viz-operator/internal/sandbox"
)

// podSandbox is one of the pool's Pods.
type podSandbox struct {
	pool   *Pool
	mu     sync.Mutex
	pod    *corev1.Pod // as last read or written
	failed bool        // its job (or its claim) failed: the Pod is deleted, not reused
	taken  bool        // another manager claimed it: let go, not deleted
}

// setLost marks a Pod whose claim failed: not reused, and deleted unless taken.
func (s *podSandbox) setLost(taken bool) {
	s.mu.Lock()
	s.failed, s.taken = true, taken
	s.mu.Unlock()
}

func (s *podSandbox) isTaken() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.taken
}

func (s *podSandbox) ID() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.pod.Name
}

func (s *podSandbox) podUID() types.UID {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.pod.UID
}

func (s *podSandbox) snapshot() *corev1.Pod {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.pod.DeepCopy()
}

func (s *podSandbox) setPod(pod *corev1.Pod) {
	s.mu.Lock()
	s.pod = pod.DeepCopy()
	s.mu.Unlock()
}

// Execute runs req in the Pod's agent. Errors mean the Pod or its agent failed
// (sandbox.ErrSandboxLost): the Pod is then deleted, not reused.
func (s *podSandbox) Execute(ctx context.Context, req sandbox.Request) (*sandbox.Result, error) {
	if s.pool.opts.NewRunner == nil {
		s.failed = true
		return nil, fmt.Errorf("%w: %v", sandbox.ErrUnavailable, errNoRunner)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(s.pool.ctx, cancel) // Close ends the job
	defer stop()
	pod := s.snapshot()
	res, err := s.pool.opts.NewRunner(pod, PodToken(s.pool.s.TokenKey, pod)).Run(ctx, req)
	if err != nil {
		s.failed = true
		if s.pool.ctx.Err() != nil {
			return nil, fmt.Errorf("%w: the pool was closed while sandbox Pod %s ran the job", sandbox.ErrSandboxLost, pod.Name)
		}
		if ctx.Err() != nil && !errors.Is(err, sandbox.ErrSandboxLost) {
			return nil, err
		}
		return nil, fmt.Errorf("%w: sandbox Pod %s: %v", sandbox.ErrSandboxLost, pod.Name, err)
	}
	res.SandboxID = pod.Name
	return res, nil
}
