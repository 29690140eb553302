package agent

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// A context's end must end every process its code started, setsid children and
// double-forked daemons included: a process group is not enough. Two mechanisms, the
// first that works here:
//
//  1. A PID namespace per kernel (IsolationNone): the kernel is PID 1 of a namespace of
//     its own, and the Linux kernel kills every process of a PID namespace when its
//     PID 1 ends. An agent that is not root needs a user namespace for that too (its
//     user mapped to itself, nothing else); the kernel's RLIMIT_NPROC then counts only
//     that namespace's processes (Linux counts it per user namespace and user, and
//     charges the namespaces above only against their creators' limits), so each
//     context's process limit is its own. Where user namespaces cannot be made (a
//     container runtime's default seccomp profile refuses them without CAP_SYS_ADMIN,
//     as in a restricted sandbox Pod), kernels run without.
//  2. Orphan sweeping (Options.KillOrphans): the agent is a child subreaper, so what a
//     kernel's processes leave behind becomes the agent's child when its parent
//     ends; when a kernel ends, the agent kills every child process (and its
//     descendants) that it did not start as a kernel. In a Pod the agent is PID 1 of the
//     container anyway. IsolationBwrap needs neither: bubblewrap's own PID namespace
//     ends with its sandbox (--unshare-all, --die-with-parent).

// kernelPIDs are the processes this process started as kernels (and namespace
// probes): the orphan sweep leaves them and their descendants alone.
var kernelPIDs sync.Map // int -> struct{}

var pidNS struct {
	once sync.Once
	ok   bool
}

// pidNamespaces reports whether kernels can get a PID namespace here (probed once, by
// starting python in one as a kernel would start). "--version" exits before the
// interpreter starts (10 ms instead of 30, on every sandbox's cold start): the start
// itself is the probe, since exec fails unless the clone into the namespaces, the ID
// maps and the ambient CAP_SYS_ADMIN all succeeded.
func pidNamespaces(o Options) bool {
	pidNS.once.Do(func() {
		cmd := exec.Command(o.Python, "--version")
		cmd.Dir = "/"
		cmd.SysProcAttr = kernelAttr(o, true)
		pidNS.ok = cmd.Run() == nil
	})
	return pidNS.ok
}

// ProtectMemory keeps kernel code out of this process's memory (/proc/<pid>/mem,
// environ), which will hold the token; call it before the token is read and before
// any kernel starts. It reports whether kernels get namespaces of their own.
//
// Kernels in a user namespace of their own cannot reach this process's memory: Linux
// refuses ptrace-mode access from a child user namespace to a process unless the
// caller holds CAP_SYS_PTRACE in the target's namespace. Kernels that share this
// process's user namespace (bubblewrap isolation, or no user namespace could be made)
// are kept out by making this process non-dumpable. That is not done where kernels get
// user namespaces and this process is not root: a non-dumpable process's children
// start non-dumpable, their /proc/<pid>/uid_map then belongs to root, and this process
// could not write the ID maps, so no kernel would get its namespaces (as seen on a
// real node under vizops's seccomp profile).
func ProtectMemory(o Options) (kernelNamespaces bool, err error) {
	o, err = o.withDefaults()
	if err != nil {
		return false, err
	}
	kernelNamespaces = o.Isolation == IsolationNone && !o.NoPIDNamespace && pidNamespaces(o)
	if kernelNamespaces && os.Geteuid() != 0 {
		return true, nil
	}
	const prSetDumpable = 4 // PR_SET_DUMPABLE, <linux/prctl.h>
	if _, _, errno := syscall.RawSyscall(syscall.SYS_PRCTL, prSetDumpable, 0, 0); errno != 0 {
		return kernelNamespaces, fmt.Errorf("prctl(PR_SET_DUMPABLE): %w", errno)
	}
	return kernelNamespaces, nil
}

// kernelAttr is how an IsolationNone kernel is started: in a process group of its own,
// killed with the agent, as o.UID when the agent is root, and with pidNS in a new
// PID namespace and user namespace (the kernel's user and group mapped to themselves,
// nothing else).
func kernelAttr(o Options, pidNS bool) *syscall.SysProcAttr {
	attr := &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
	uid, gid := os.Geteuid(), os.Getegid()
	if uid == 0 {
		uid, gid = o.UID, o.GID
		attr.Credential = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), Groups: []uint32{}}
	}
	if pidNS {
		// A mount namespace too, and CAP_SYS_ADMIN (and CAP_SETPCAP, to drop the rest
		// later) in the new user namespace only, so that the kernel can cover the
		// token directory before it drops every capability (kernel_hide_paths).
		attr.Cloneflags |= syscall.CLONE_NEWPID | syscall.CLONE_NEWUSER | syscall.CLONE_NEWNS
		if o.PrivateMounts {
			// IPC too, where the agent runs under bubblewrap (Local): a SysV object
			// outlives its creator, and must not reach the next kernel. Not in a Pod:
			// its seccomp profile (internal/sandbox/seccompprofile) refuses
			// CLONE_NEWIPC, and the probe would then find no namespaces at all.
			attr.Cloneflags |= syscall.CLONE_NEWIPC
		}
		attr.AmbientCaps = []uintptr{capSysAdmin, capSetPCap}
		attr.UidMappings = []syscall.SysProcIDMap{{ContainerID: uid, HostID: uid, Size: 1}}
		attr.GidMappings = []syscall.SysProcIDMap{{ContainerID: gid, HostID: gid, Size: 1}}
		attr.GidMappingsEnableSetgroups = false
	}
	return attr
}

const (
	capSetPCap  = 8  // CAP_SETPCAP, <linux/capability.h>
	capSysAdmin = 21 // CAP_SYS_ADMIN
)

// becomeSubreaper makes orphaned descendants this process's children (KillOrphans).
func becomeSubreaper() error {
	const prSetChildSubreaper = 36 // PR_SET_CHILD_SUBREAPER, <linux/prctl.h>
	if _, _, errno := syscall.RawSyscall(syscall.SYS_PRCTL, prSetChildSubreaper, 1, 0); errno != 0 {
		return errno
	}
	return nil
}

// sweepOrphans kills every child process of this process that is not a kernel it
// started, with all their descendants, and reaps them. It repeats while it finds
// some (a process may fork while it is killed), a few rounds at most.
func sweepOrphans() {
	self := os.Getpid()
	for range 5 {
		parents := processParents()
		var orphans []int
		for pid, ppid := range parents {
			if ppid != self {
				continue
			}
			if _, ok := kernelPIDs.Load(pid); !ok {
				orphans = append(orphans, pid)
			}
		}
		if len(orphans) == 0 {
			return
		}
		children := map[int][]int{}
		for pid, ppid := range parents {
			children[ppid] = append(children[ppid], pid)
		}
		var tree []int
		for queue := orphans; len(queue) > 0; {
			pid := queue[0]
			queue = queue[1:]
			tree = append(tree, pid)
			queue = append(queue, children[pid]...)
		}
		for _, pid := range tree {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		deadline := time.Now().Add(time.Second)
		for _, pid := range orphans {
			for {
				var ws syscall.WaitStatus
				got, err := syscall.Wait4(pid, &ws, syscall.WNOHANG, nil)
				if got == pid || err != nil || time.Now().After(deadline) {
					break
				}
				time.Sleep(5 * time.Millisecond)
			}
		}
	}
}

// processParents maps every visible process to its parent, from /proc.
func processParents() map[int]int {
	out := map[int]int{}
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return out
	}
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...: comm may hold spaces and parentheses.
		s := string(b)
		i := strings.LastIndexByte(s, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(s[i+1:])
		if len(f) < 2 {
			continue
		}
		if ppid, err := strconv.Atoi(f[1]); err == nil {
			out[pid] = ppid
		}
	}
	return out
}
