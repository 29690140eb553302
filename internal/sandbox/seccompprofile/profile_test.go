package seccompprofile

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/moby/profiles/seccomp"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// restricted is a restricted container's process: no capabilities at all.
var restricted = &specs.Spec{Process: &specs.Process{Capabilities: &specs.LinuxCapabilities{}}}

// compiled is a moby-format profile as a runtime applies it to a restricted container
// (how RuntimeDefault is made).
func compiled(t *testing.T, p *seccomp.Seccomp) *specs.LinuxSeccomp {
	t.Helper()
	b, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	oci, err := seccomp.LoadProfile(string(b), restricted)
	if err != nil {
		t.Fatal(err)
	}
	return oci
}

// readers are the two ways runtimes read a Localhost profile's file: containerd
// unmarshals it as the runtime-spec's seccomp, verbatim; CRI-O (and moby) parse it
// in moby's format and decide its conditions for the container.
var readers = map[string]func(t *testing.T, file []byte) *specs.LinuxSeccomp{
	"as containerd reads it": func(t *testing.T, file []byte) *specs.LinuxSeccomp {
		var s specs.LinuxSeccomp
		if err := json.Unmarshal(file, &s); err != nil {
			t.Fatal(err)
		}
		return &s
	},
	"as CRI-O reads it": func(t *testing.T, file []byte) *specs.LinuxSeccomp {
		s, err := seccomp.LoadProfile(string(file), restricted)
		if err != nil {
			t.Fatal(err)
		}
		return s
	},
}

// allows reports whether the compiled profile lets name run with args.
func allows(s *specs.LinuxSeccomp, name string, args ...uint64) bool {
	for _, r := range s.Syscalls {
		if r.Action != specs.ActAllow || !slices.Contains(r.Names, name) {
			continue
		}
		ok := true
		for _, a := range r.Args {
			if int(a.Index) >= len(args) {
				ok = false
				break
			}
			v := args[a.Index]
			switch a.Op {
			case specs.OpMaskedEqual:
				ok = ok && v&a.Value == a.ValueTwo
			case specs.OpEqualTo:
				ok = ok && v == a.Value
			case specs.OpLessThan:
				ok = ok && v < a.Value
			default:
				ok = false
			}
		}
		if ok {
			return true
		}
	}
	return s.DefaultAction == specs.ActAllow
}

const sigchld = 17

func TestProfileAllowsTheAgentsNamespacesOnly(t *testing.T) {
	// The committed file, which nodes get (TestCommittedProfileIsCurrent: it is JSON()).
	file, err := os.ReadFile(filepath.Join("..", "..", "..", Path))
	if err != nil {
		t.Fatal(err)
	}
	for reader, read := range readers {
		t.Run(reader, func(t *testing.T) { testProfileAllows(t, read(t, file)) })
	}
}

func testProfileAllows(t *testing.T, agent *specs.LinuxSeccomp) {
	def := compiled(t, seccomp.DefaultProfile())
	kernel := uint64(cloneNewUser | cloneNewPID | cloneNewNS | sigchld)
	thread := uint64(0x3d0f00) // CLONE_VM|FS|FILES|SIGHAND|THREAD|SYSVSEM|SETTLS|PARENT_SETTID|CHILD_CLEARTID
	cases := []struct {
		name        string
		syscall     string
		args        []uint64
		agent, dflt bool
	}{
		{"a kernel's clone: user, PID and mount namespaces", "clone", []uint64{kernel}, true, false},
		{"a plain fork", "clone", []uint64{sigchld}, true, true},
		{"a thread", "clone", []uint64{thread}, true, true},
		{"clone into a new network namespace", "clone", []uint64{cloneNewUser | cloneNewNet | sigchld}, false, false},
		{"clone into a new UTS namespace", "clone", []uint64{cloneNewUTS | sigchld}, false, false},
		{"clone into new IPC and cgroup namespaces", "clone", []uint64{cloneNewIPC | cloneNewCgroup | sigchld}, false, false},
		{"mount (the kernel still checks the caller's user namespace)", "mount", nil, true, false},
		{"unshare", "unshare", []uint64{cloneNewUser}, false, false},
		{"clone3 (refused, so that the C library falls back to clone)", "clone3", nil, false, false},
		{"perf_event_open", "perf_event_open", nil, false, false},
		{"sethostname", "sethostname", nil, false, false},
		{"setns", "setns", []uint64{0, 0}, false, false},
		{"umount2", "umount2", []uint64{0, 0}, false, false},
		{"pivot_root", "pivot_root", nil, false, false},
		{"bpf", "bpf", nil, false, false},
		{"ptrace", "ptrace", nil, true, true}, // as in the default (kernel >= 4.8)
		{"keyctl", "keyctl", nil, false, false},
		{"open_tree", "open_tree", nil, false, false},
		{"read", "read", nil, true, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := allows(agent, c.syscall, c.args...); got != c.agent {
				t.Errorf("agent profile allows %s%v = %v, want %v", c.syscall, c.args, got, c.agent)
			}
			if got := allows(def, c.syscall, c.args...); got != c.dflt {
				t.Errorf("default profile allows %s%v = %v, want %v", c.syscall, c.args, got, c.dflt)
			}
		})
	}
}

// Everything but the three added rules and the mount moved out of the CAP_SYS_ADMIN
// rule is the default, unchanged.
func TestProfileIsTheDefaultPlusTheAdditions(t *testing.T) {
	p, d := Profile(), seccomp.DefaultProfile()
	if p.DefaultAction != d.DefaultAction || len(p.Syscalls) != len(d.Syscalls)+3 {
		t.Fatalf("default action %s, %d rules; the default has %s, %d", p.DefaultAction, len(p.Syscalls), d.DefaultAction, len(d.Syscalls))
	}
	for i, s := range d.Syscalls {
		got, _ := json.Marshal(p.Syscalls[i])
		if s.Includes != nil && slices.Equal(s.Includes.Caps, []string{"CAP_SYS_ADMIN"}) {
			s.Names = slices.DeleteFunc(slices.Clone(s.Names), func(n string) bool { return n == "mount" })
		}
		want, _ := json.Marshal(s)
		if !bytes.Equal(got, want) {
			t.Errorf("rule %d changed:\n got %s\nwant %s", i, got, want)
		}
	}
}

func TestCommittedProfileIsCurrent(t *testing.T) {
	got, err := os.ReadFile(filepath.Join("..", "..", "..", Path))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, JSON()) {
		t.Errorf("%s is not what seccompprofile.Profile makes: run make seccomp-profile", Path)
	}
}
