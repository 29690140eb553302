// Package seccompprofile makes the sandbox agent's Localhost seccomp profile: the
// container runtime's default profile (moby's, which containerd and CRI-O follow)
// with one addition, so that the agent can start each context's kernel in a user,
// PID and mount namespace of its own inside a restricted Pod.
//
// Why the default is not enough: it allows clone with namespace flags, unshare and
// mount only to a process holding CAP_SYS_ADMIN, and a restricted Pod holds no
// capability. The kernel (the Linux one) needs no capability to make a user
// namespace, so these seccomp rules are the only thing in the way. The addition:
//   - clone with CLONE_NEWUSER, CLONE_NEWPID and CLONE_NEWNS (no other namespace
//     flag; the network, IPC, UTS and cgroup namespaces stay refused);
//   - mount, which the kernel still refuses outside a user namespace the caller
//     owns (the kernel covers the agent's token directory with it).
//
// unshare, setns, umount, pivot_root, bpf and the rest stay as in the default. The
// sandbox code itself never runs under this profile alone: before it runs, the
// kernel drops every capability and installs its own, stricter filter
// (internal/sandbox/pyrunner), which refuses new namespaces and mount again.
package seccompprofile

import (
	"bytes"
	"encoding/json"
	"slices"

	"github.com/moby/profiles/seccomp"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// Path is where the profile is kept in this repository (make seccomp-profile writes
// it; a test checks that it is current).
const Path = "config/seccomp/sandbox-agent.json"

// LocalhostProfile is the profile's conventional path in the kubelet's seccomp
// directory (/var/lib/kubelet/seccomp), as a SandboxClass names it.
const LocalhostProfile = "vizops/sandbox-agent.json"

// The clone flags the agent needs and the ones that stay refused without
// CAP_SYS_ADMIN (<linux/sched.h>).
const (
	cloneNewNS     = 0x00020000
	cloneNewCgroup = 0x02000000
	cloneNewUTS    = 0x04000000
	cloneNewIPC    = 0x08000000
	cloneNewUser   = 0x10000000
	cloneNewPID    = 0x20000000
	cloneNewNet    = 0x40000000

	// refusedNamespaces are the namespace flags clone keeps refusing.
	refusedNamespaces = cloneNewCgroup | cloneNewUTS | cloneNewIPC | cloneNewNet
)

// Profile is the agent's profile in the runtimes' JSON format.
func Profile() *seccomp.Seccomp {
	p := seccomp.DefaultProfile()
	for _, s := range p.Syscalls {
		if s.Includes == nil || len(s.Includes.Caps) != 1 || s.Includes.Caps[0] != "CAP_SYS_ADMIN" {
			continue
		}
		// mount moves from the CAP_SYS_ADMIN rule to the rule below.
		names := make([]string, 0, len(s.Names))
		for _, n := range s.Names {
			if n != "mount" {
				names = append(names, n)
			}
		}
		s.Names = names
	}
	p.Syscalls = append(p.Syscalls,
		&seccomp.Syscall{
			LinuxSyscall: specs.LinuxSyscall{Names: []string{"mount"}, Action: specs.ActAllow},
			Comment:      "vizops: the agent's kernels cover its token directory in their own mount namespace; the kernel refuses mount outside a user namespace the caller owns",
		},
		&seccomp.Syscall{
			LinuxSyscall: specs.LinuxSyscall{
				Names:  []string{"clone"},
				Action: specs.ActAllow,
				// arg & refusedNamespaces == 0: user, PID and mount namespaces only.
				Args: []specs.LinuxSeccompArg{{Index: 0, Value: refusedNamespaces, ValueTwo: 0, Op: specs.OpMaskedEqual}},
			},
			Comment:  "vizops: each context's kernel starts in a user, PID and mount namespace of its own",
			Excludes: &seccomp.Filter{Arches: []string{"s390", "s390x"}},
		},
		&seccomp.Syscall{
			LinuxSyscall: specs.LinuxSyscall{
				Names:  []string{"clone"},
				Action: specs.ActAllow,
				Args:   []specs.LinuxSeccompArg{{Index: 1, Value: refusedNamespaces, ValueTwo: 0, Op: specs.OpMaskedEqual}},
			},
			Comment:  "vizops: as above, s390 parameter ordering",
			Includes: &seccomp.Filter{Arches: []string{"s390", "s390x"}},
		},
	)
	return p
}

// Arches are the node architectures the file is made for (Go's names, as moby's
// rules name them), and their seccomp architectures.
var Arches = map[string][]specs.Arch{
	"amd64": {specs.ArchX86_64, specs.ArchX86, specs.ArchX32},
	"arm64": {specs.ArchAARCH64, specs.ArchARM},
}

// Resolved is Profile as the runtime-spec's plain seccomp (the format containerd reads
// a Localhost profile in, verbatim, and CRI-O reads too): moby's conditions decided
// for a restricted container, which holds no capability, on the architectures of
// Arches, with any kernel (its one kernel condition, ptrace from 4.8, holds on every
// kernel Kubernetes supports). containerd does not decide moby's conditions: given
// Profile's own format, it drops "includes" and "excludes" and so allows every rule
// meant for a capability (unshare, setns, bpf, mount, ...) to everyone.
func Resolved() *specs.LinuxSeccomp {
	p := Profile()
	out := &specs.LinuxSeccomp{
		DefaultAction:    p.DefaultAction,
		DefaultErrnoRet:  p.DefaultErrnoRet,
		ListenerPath:     p.ListenerPath,
		ListenerMetadata: p.ListenerMetadata,
		Flags:            p.Flags,
	}
	for _, a := range []string{"amd64", "arm64"} {
		out.Architectures = append(out.Architectures, Arches[a]...)
	}
	for _, s := range p.Syscalls {
		for _, arch := range []string{"amd64", "arm64"} {
			if applies(s, arch) {
				out.Syscalls = append(out.Syscalls, s.LinuxSyscall)
				break
			}
		}
	}
	return out
}

// applies reports whether rule s holds for a container without capabilities on arch.
func applies(s *seccomp.Syscall, arch string) bool {
	if in := s.Includes; in != nil {
		if len(in.Caps) > 0 {
			return false
		}
		if len(in.Arches) > 0 && !slices.Contains(in.Arches, arch) {
			return false
		}
	}
	if ex := s.Excludes; ex != nil {
		if slices.Contains(ex.Arches, arch) {
			return false
		}
		// Excludes.Caps name capabilities the container would need to lose the
		// rule; it has none. Excludes.MinKernel is not used by the default.
	}
	return true
}

// JSON is Resolved as the file a node keeps (indented, newline-terminated).
func JSON() []byte {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetIndent("", "  ")
	if err := enc.Encode(Resolved()); err != nil {
		panic(err) // plain values: cannot fail
	}
	return b.Bytes()
}
