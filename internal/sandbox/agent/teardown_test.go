package agent

import (
	"context"
	"strings"
	"testing"
	"time"
)

// A new context waits until the last deleted one's kernel is gone: what is left of a
// job (a fork bomb's tree being killed) must not count against the next one's pids
// and memory. TestAbuse (internal/sandbox/local) met this under load: the next
// kernel could not fork.
func TestNewContextWaitsForTheLastTeardown(t *testing.T) {
	srv, _ := serve(t, Options{Token: "t", Isolation: IsolationNone, WorkDir: workDir(t, "", "agent-teardown-"), WarmKernels: -1})

	srv.tearingDownOne() // a deleted context's kernel is still being reaped
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	_, err := srv.createContext(ctx, "python", "")
	cancel()
	if err == nil || !strings.Contains(err.Error(), "torn down") {
		t.Fatalf("a context was created beside a teardown in progress (err %v)", err)
	}

	srv.tornDown()
	ctx, cancel = context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, err := srv.createContext(ctx, "python", "")
	if err != nil {
		t.Fatalf("no context once the teardown ended: %v", err)
	}
	srv.deleteContext(c)
	if err := srv.waitTornDown(ctx); err != nil {
		t.Fatalf("the deleted context's teardown did not end: %v", err)
	}
}
