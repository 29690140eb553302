package agent

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/vizops/viz-operator/internal/sandbox"
)

// ReexecEnv, set to "1" in a process's environment, makes RunIfReexec run the agent
// in place of the program: the Local backend starts the manager's own binary (or a
// test binary) this way inside bubblewrap, so no second binary is installed on a node.
const ReexecEnv = "VIZOPS_SANDBOX_AGENT"

// reexecReady: this program called RunIfReexec, so its binary can be re-executed as
// the agent.
var reexecReady atomic.Bool

// ReexecReady reports whether this program called RunIfReexec: a Local sandbox started
// from a binary that did not would run the program itself, not the agent.
func ReexecReady() bool { return reexecReady.Load() }

// RunIfReexec runs the agent (Main with os.Args[1:]) and exits when ReexecEnv is set;
// otherwise it returns at once. Call it first thing in main (and in TestMain of tests
// that start Local sandboxes).
func RunIfReexec() {
	if os.Getenv(ReexecEnv) != "1" {
		reexecReady.Store(true)
		return
	}
	if err := Main(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "sandbox-agent:", err)
		os.Exit(1)
	}
	os.Exit(0)
}

// Main runs the sandbox-agent's command line (args without the program name) until
// SIGTERM or SIGINT: cmd/sandbox-agent, and the Local backend, which re-executes the
// manager's own binary as the agent inside bubblewrap (RunIfReexec).
func Main(args []string) error {
	fs := flag.NewFlagSet("sandbox-agent", flag.ContinueOnError)
	var (
		listen, tokenFile, isolation, python, bwrap, workDir, network, plotlyJS, logLevel, seccompArch string
		maxContexts, warmKernels                                                                       int
		memoryMiB, scratchMiB, pids                                                                    int64
	)
	fs.StringVar(&listen, "listen", "127.0.0.1:49999", "address to serve on (a sandbox Pod uses :49999), or unix:PATH for a Unix socket (the Local backend)")
	fs.StringVar(&tokenFile, "token-file", "", "file holding the access token (a mounted Secret); every route but /health requires it in X-Access-Token. Required unless --listen is a loopback address")
	fs.StringVar(&isolation, "isolation", "auto", "how kernels are isolated: bwrap (bubblewrap, for hosts), none (inside a hardened sandbox Pod), or auto (none when KUBERNETES_SERVICE_HOST is set, else bwrap)")
	fs.StringVar(&python, "python", "/usr/bin/python3", "the interpreter, with matplotlib, numpy, pandas, seaborn and plotly")
	fs.StringVar(&bwrap, "bwrap", "bwrap", "the bubblewrap binary (isolation bwrap)")
	fs.StringVar(&workDir, "work-dir", "", "where contexts work (isolation none; default $TMPDIR/sandbox-agent-<pid>); a Pod mounts its size-limited emptyDir here")
	fs.StringVar(&network, "network", string(sandbox.NetworkNone), "None or Egress: whether bwrap kernels may reach the network (in a Pod the NetworkPolicy decides)")
	fs.StringVar(&plotlyJS, "plotly-js-url", "", "where plotly HTML loads plotly.js from (default the CDN; \"inline\" embeds it)")
	fs.StringVar(&logLevel, "log-level", "info", "debug, info, warn or error")
	fs.StringVar(&seccompArch, "seccomp-arch", "", "for tests: the machine name kernels pick their seccomp filter by (default the machine's); a kernel with no filter for it refuses to start")
	fs.IntVar(&maxContexts, "max-contexts", 16, "the most contexts at once")
	fs.IntVar(&warmKernels, "warm-kernels", 1, "kernels kept started for new contexts (-1 for none)")
	fs.Int64Var(&memoryMiB, "memory-mib", 0, "per-kernel memory rlimit in MiB (0: none; a Pod's cgroup limit applies)")
	fs.Int64Var(&scratchMiB, "scratch-mib", 512, "per-context tmpfs size in MiB (isolation bwrap, or none with --private-mounts)")
	fs.Int64Var(&pids, "pids", 0, "per-kernel process rlimit (0: none; a Pod's pids limit applies)")
	forkKernels := fs.Bool("fork-kernels", false, "isolation none: fork each kernel from one interpreter that has imported the plotting stack, instead of starting a new interpreter (needs --warm-kernels > 0; the Local backend sets it)")
	privateMounts := fs.Bool("private-mounts", false, "isolation none: give each kernel a /proc of its own PID namespace and a private /tmp of --scratch-mib, refusing kernels without a PID namespace (the Local backend sets it)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}

	var level slog.Level
	if err := level.UnmarshalText([]byte(logLevel)); err != nil {
		return fmt.Errorf("--log-level: %w", err)
	}
	log := slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: level}))

	iso := Isolation(isolation)
	if isolation == "auto" {
		iso = IsolationBwrap
		if os.Getenv("KUBERNETES_SERVICE_HOST") != "" {
			iso = IsolationNone
		}
	}
	if network != string(sandbox.NetworkNone) && network != string(sandbox.NetworkEgress) {
		return fmt.Errorf("--network must be %s or %s", sandbox.NetworkNone, sandbox.NetworkEgress)
	}
	opts := Options{
		Isolation:   iso,
		Python:      python,
		Bwrap:       bwrap,
		WorkDir:     workDir,
		Network:     sandbox.Network(network),
		Resources:   sandbox.Resources{MemoryBytes: memoryMiB << 20, ScratchBytes: scratchMiB << 20, Pids: pids},
		MaxContexts: maxContexts,
		WarmKernels: warmKernels,
		PlotlyJSURL: plotlyJS,
		Log:         log,
		// The agent's process starts nothing but kernels: what their code leaves
		// behind when a context ends is killed (a PID namespace per kernel does it
		// already where one can be made).
		KillOrphans:   true,
		PrivateMounts: *privateMounts,
		ForkKernels:   *forkKernels,
		SeccompArch:   seccompArch,
		// Kernels with namespaces of their own cannot read the token's directory.
		HidePaths: hideTokenDir(tokenFile),
	}
	// The kernel zygote's imports begin now, beside what follows.
	opts = PrestartZygote(opts)
	// Before the token is in memory.
	kernelNS, err := ProtectMemory(opts)
	if err != nil {
		return err
	}
	if iso == IsolationNone {
		if kernelNS {
			log.Info("each kernel runs as PID 1 of its own PID, user and mount namespaces")
		} else {
			log.Warn("kernels share the agent's namespaces: no user namespace can be made here (a runtime's default seccomp profile refuses them; docs/security.md says what that costs and how vizops's profile allows them)")
		}
	}
	token, err := readToken(tokenFile, listen)
	if err != nil {
		return err
	}
	if token == "" {
		log.Warn("no --token-file: serving without an access token, on a loopback address only")
	}
	opts.Token = token
	srv, err := NewServer(opts)
	if err != nil {
		return err
	}
	defer srv.Close()

	ln, err := listenOn(listen)
	if err != nil {
		return err
	}
	hs := &http.Server{
		Handler:           srv,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		// No write timeout: /execute streams for as long as the code runs.
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	log.Info("serving the code-interpreter protocol", "address", ln.Addr().String(), "isolation", string(iso))
	select {
	case err := <-errc:
		if !errors.Is(err, http.ErrServerClosed) {
			return err
		}
	case <-ctx.Done():
		log.Info("shutting down")
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = hs.Shutdown(sctx)
	}
	return nil
}

// readToken reads the access token from its file. Without a file the agent may only
// listen on loopback (development and tests) or on a Unix socket.
func readToken(path, listen string) (string, error) {
	if path == "" {
		if strings.HasPrefix(listen, "unix:") {
			return "", nil // reachable only by who can reach the socket's directory
		}
		host, _, err := net.SplitHostPort(listen)
		if err != nil {
			return "", fmt.Errorf("--listen %q: %w", listen, err)
		}
		if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
			return "", fmt.Errorf("--token-file is required when listening on %s (not a loopback address): mount the pool's token Secret and point --token-file at it", listen)
		}
		return "", nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("read the token: %w", err)
	}
	token := strings.TrimSpace(string(b))
	if token == "" {
		return "", fmt.Errorf("the token file %s is empty", path)
	}
	return token, nil
}

// hideTokenDir is the directory of the token file, to cover in kernels ("" when none).
func hideTokenDir(tokenFile string) []string {
	if tokenFile == "" {
		return nil
	}
	abs, err := filepath.Abs(tokenFile)
	if err != nil {
		return nil
	}
	return []string{filepath.Dir(abs)}
}

// listenOn listens on a TCP address, or on a Unix socket for "unix:PATH" (a stale
// socket file left by an earlier agent is replaced).
func listenOn(listen string) (net.Listener, error) {
	path, ok := strings.CutPrefix(listen, "unix:")
	if !ok {
		return net.Listen("tcp", listen)
	}
	if st, err := os.Lstat(path); err == nil && st.Mode()&os.ModeSocket != 0 {
		_ = os.Remove(path)
	}
	return net.Listen("unix", path)
}
