// Package agent is the sandbox-agent: an HTTP server that speaks E2B's
// code-interpreter protocol (see package codeinterpreter) and runs Python in
// per-context kernels built on the Local backend's runner (package pyrunner). It runs
// in each sandbox Pod (cmd/sandbox-agent) and, isolated with bubblewrap, on any host
// for development and tests:
//
//	srv, err := agent.NewServer(agent.Options{Token: "t"})
//	defer srv.Close()
//	ts := httptest.NewServer(srv) // or http.Serve(listener, srv)
//	err = srv.WaitReady(ctx)      // the first kernel is warm (optional)
//	c := &codeinterpreter.Client{BaseURL: ts.URL, AccessToken: "t"}
package agent

import (
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/vizops/viz-operator/internal/sandbox"
)

// Isolation is how kernels are isolated from the host.
type Isolation string

const (
	// IsolationBwrap runs each kernel in its own bubblewrap sandbox (every namespace
	// unshared, read-only system paths, a size-capped tmpfs), as the Local backend
	// does: for running the agent on a host.
	IsolationBwrap Isolation = "bwrap"
	// IsolationNone runs kernels as plain child processes: for a hardened sandbox Pod,
	// whose security context, cgroup and NetworkPolicy are the isolation. Kernels still
	// drop capabilities, install the runner's seccomp filter and run as UID when the
	// agent is root.
	IsolationNone Isolation = "none"
)

// Options configure a Server. Every zero value has a sensible default.
type Options struct {
	// Token is the access token every route but /health requires in X-Access-Token.
	// Empty disables the check (cmd/sandbox-agent allows that only on loopback).
	Token string
	// Isolation defaults to IsolationBwrap.
	Isolation Isolation
	// Python is the interpreter (default /usr/bin/python3, Debian's, with matplotlib,
	// numpy, pandas, seaborn and plotly). Bwrap is bubblewrap (default "bwrap").
	Python, Bwrap string
	// WorkDir holds the contexts' working directories with IsolationNone (default
	// $TMPDIR/sandbox-agent-<pid>). With IsolationBwrap each context works in its own
	// tmpfs and WorkDir holds only the font cache.
	WorkDir string
	// UID and GID kernels run as when the agent runs as root (default 65534).
	UID, GID int
	// Network lets kernels reach the network (bwrap only; in a Pod the NetworkPolicy
	// decides). Default none.
	Network sandbox.Network
	// Resources: ScratchBytes sizes each bwrap context's tmpfs (default 512 MiB);
	// MemoryBytes and Pids become rlimits of each kernel when set (a Pod's cgroup is
	// the real limit there).
	Resources sandbox.Resources
	// MaxContexts caps the live contexts (default 16).
	MaxContexts int
	// WarmKernels is how many started kernels wait for new contexts (default 1), so
	// a context starts without the plotting stack's import time.
	WarmKernels int
	// StartTimeout bounds a kernel's start (default sandbox.DefaultLimits', 60s).
	// InterruptGrace is how long an interrupted execution may take to stop before its
	// kernel is killed and restarted (default 3s). KeepaliveInterval is how often a silent execution's
	// stream gets a keepalive, so a vanished client is noticed (default 5s).
	StartTimeout, InterruptGrace, KeepaliveInterval time.Duration
	// MaxOutputBytes caps the text of a cell's value (default 1 MiB);
	// MaxFigureBytes one figure (default 32 MiB, what a job may return in all): both
	// from sandbox.DefaultLimits.
	MaxOutputBytes int
	MaxFigureBytes int64
	// PlotlyJSURL is where plotly HTML loads plotly.js from ("" = CDN, "inline").
	PlotlyJSURL string
	// Log receives the agent's logs (never code, output or tokens). Default: discard.
	Log *slog.Logger
	// KillOrphans makes the agent a child subreaper that, whenever a kernel ends,
	// kills every child process it did not start as a kernel: what setsid children and
	// double-forked daemons of ended contexts leave behind (procs.go). Set it only
	// where the agent's process starts no other children (cmd/sandbox-agent does with
	// isolation none); kernels without a PID namespace depend on it.
	KillOrphans bool
	// HidePaths are directories IsolationNone kernels must not read (the token's,
	// --token-file's directory): where kernels get namespaces of their own, each is
	// covered by an empty read-only tmpfs in the kernel's mount namespace before any
	// code runs. Without namespaces they stay readable (docs/security.md).
	HidePaths []string
	// PrivateMounts gives each IsolationNone kernel a /proc of its own PID namespace
	// and a private /tmp of Resources.ScratchBytes, and refuses kernels where no PID
	// namespace can be made: the Local backend runs the agent so, in one bubblewrap
	// sandbox whose /tmp the contexts would otherwise share.
	PrivateMounts bool
	// ForkKernels starts IsolationNone kernels by forking them from one interpreter
	// that has imported the plotting stack (zygote.go) instead of starting a new
	// interpreter for each: a kernel per context still, each in namespaces of its own.
	// Where that zygote cannot start, kernels start as new interpreters.
	ForkKernels bool
	// NoPIDNamespace starts IsolationNone kernels without a PID namespace of their own
	// even where one can be made (tests of the orphan sweep).
	NoPIDNamespace bool
	// SeccompArch, when set, replaces the machine name kernels pick their seccomp
	// filter by (tests: a kernel with no filter for its architecture must refuse to
	// start, and /health must say why).
	SeccompArch string

	// prestarted is the kernel zygote PrestartZygote started, which the server takes
	// instead of starting one.
	prestarted *zygoteStart
}

func (o Options) withDefaults() (Options, error) {
	if o.Isolation == "" {
		o.Isolation = IsolationBwrap
	}
	if o.Isolation != IsolationBwrap && o.Isolation != IsolationNone {
		return o, fmt.Errorf("unknown isolation %q (want %q or %q)", o.Isolation, IsolationBwrap, IsolationNone)
	}
	if o.Python == "" {
		o.Python = "/usr/bin/python3"
	}
	if o.Bwrap == "" {
		o.Bwrap = "bwrap"
	}
	if o.WorkDir == "" {
		o.WorkDir = filepath.Join(os.TempDir(), fmt.Sprintf("sandbox-agent-%d", os.Getpid()))
	}
	if o.UID == 0 && o.GID == 0 {
		o.UID, o.GID = 65534, 65534
	}
	if o.Network == "" {
		o.Network = sandbox.NetworkNone
	}
	if o.Resources.ScratchBytes <= 0 {
		o.Resources.ScratchBytes = 512 << 20
	}
	if o.MaxContexts <= 0 {
		o.MaxContexts = 16
	}
	if o.WarmKernels < 0 {
		o.WarmKernels = 0
	} else if o.WarmKernels == 0 {
		o.WarmKernels = 1
	}
	if o.StartTimeout <= 0 {
		o.StartTimeout = sandbox.DefaultLimits.StartTimeout
	}
	if o.InterruptGrace <= 0 {
		o.InterruptGrace = 3 * time.Second
	}
	if o.KeepaliveInterval <= 0 {
		o.KeepaliveInterval = 5 * time.Second
	}
	if o.MaxOutputBytes <= 0 {
		o.MaxOutputBytes = sandbox.DefaultLimits.MaxOutputBytes
	}
	if o.MaxFigureBytes <= 0 {
		o.MaxFigureBytes = sandbox.DefaultLimits.MaxArtifactBytes
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.PrivateMounts && o.Isolation == IsolationNone && (o.WorkDir == "/tmp" || strings.HasPrefix(filepath.Clean(o.WorkDir), "/tmp/")) {
		return o, fmt.Errorf("the work directory %s is below /tmp, which each kernel replaces with a private one (private mounts): choose another", o.WorkDir)
	}
	if st, err := os.Stat(o.Python); err != nil || st.IsDir() {
		return o, fmt.Errorf("%w: interpreter %s not found: install python3-matplotlib python3-numpy python3-pandas python3-seaborn python3-plotly (Debian) or set the interpreter", sandbox.ErrUnavailable, o.Python)
	}
	if o.Isolation == IsolationBwrap {
		p, err := exec.LookPath(o.Bwrap)
		if err != nil {
			return o, fmt.Errorf("%w: bubblewrap (%q) not found: install bubblewrap, or run inside a sandbox Pod with isolation %q", sandbox.ErrUnavailable, o.Bwrap, IsolationNone)
		}
		o.Bwrap = p
	}
	return o, nil
}
