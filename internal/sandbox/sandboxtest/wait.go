package sandboxtest

import (
	"testing"
	"time"
)

// WaitFor polls cond until it holds, failing t after 10 s: the pools under test
// move on their own goroutines (a fake clock moves only when a test steps it).
func WaitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}
