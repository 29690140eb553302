package local

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestSweepStaleCgroups uses a plain directory tree shaped like cgroup v1: the sweep
// removes only old, empty groups (the kernel refuses to remove a group with tasks,
// which a non-empty directory stands in for here).
func TestSweepStaleCgroups(t *testing.T) {
	root := t.TempDir()
	now := time.Now()
	mk := func(ctrl, id string, age time.Duration, busy bool) string {
		dir := filepath.Join(root, ctrl, cgroupParent, id)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if busy {
			if err := os.WriteFile(filepath.Join(dir, "cgroup.procs"), []byte("1\n"), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		if err := os.Chtimes(dir, now.Add(-age), now.Add(-age)); err != nil {
			t.Fatal(err)
		}
		return dir
	}
	stale := []string{mk("memory", "local-aaaaaa-1", time.Hour, false), mk("pids", "local-aaaaaa-1", time.Hour, false)}
	kept := []string{
		mk("memory", "local-bbbbbb-1", time.Minute, false), // being set up by someone
		mk("cpu", "local-cccccc-1", time.Hour, true),       // still has tasks
	}
	if got := sweepStaleCgroups(root, now); got != len(stale) {
		t.Fatalf("removed %d groups, want %d", got, len(stale))
	}
	for _, d := range stale {
		if _, err := os.Stat(d); !os.IsNotExist(err) {
			t.Errorf("stale group %s still there", d)
		}
	}
	for _, d := range kept {
		if _, err := os.Stat(d); err != nil {
			t.Errorf("live or young group %s removed", d)
		}
	}
	if got := sweepStaleCgroups("none", now); got != 0 {
		t.Errorf("cgroups disabled, yet removed %d", got)
	}
}
