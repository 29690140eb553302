package agent

import (
	"os"
	"path/filepath"
	"testing"
)

func TestReadOOMKills(t *testing.T) {
	dir := t.TempDir()
	v2 := filepath.Join(dir, "memory.events")
	v1 := filepath.Join(dir, "memory.oom_control")
	if err := os.WriteFile(v2, []byte("low 0\nhigh 0\nmax 3\noom 2\noom_kill 2\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(v1, []byte("oom_kill_disable 0\nunder_oom 0\noom_kill 7\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for name, tc := range map[string]struct {
		paths []string
		want  int64
	}{
		"cgroup v2":       {[]string{v2, v1}, 2},
		"cgroup v1":       {[]string{filepath.Join(dir, "absent"), v1}, 7},
		"neither":         {[]string{filepath.Join(dir, "absent")}, -1},
		"no oom_kill row": {[]string{filepath.Join(dir, "absent"), filepath.Join(dir, "empty")}, -1},
	} {
		t.Run(name, func(t *testing.T) {
			if got := readOOMKills(tc.paths); got != tc.want {
				t.Errorf("readOOMKills = %d, want %d", got, tc.want)
			}
		})
	}
}
