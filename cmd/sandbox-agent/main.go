// Command sandbox-agent serves E2B's code-interpreter protocol (port 49999) in a
// sandbox Pod, and on a host for development and tests. Flags and wiring only; the
// server is internal/sandbox/agent.
//
//	sandbox-agent --listen 127.0.0.1:49999 --token-file /var/run/vizops/token
package main

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
	"syscall"
	"time"

	"github.com/vizops/viz-operator/internal/sandbox"
	"github.com/vizops/viz-operator/internal/sandbox/agent"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "sandbox-agent:", err)
		os.Exit(1)
	}
}

func run() error {
	var (
		listen, tokenFile, isolation, python, bwrap, workDir, network, plotlyJS, logLevel string
		maxContexts, warmKernels                                                          int
		memoryMiB, scratchMiB, pids                                                       int64
	)
	flag.StringVar(&listen, "listen", "127.0.0.1:49999", "address to serve on (a sandbox Pod uses :49999)")
	flag.StringVar(&tokenFile, "token-file", "", "file holding the access token (a mounted Secret); every route but /health requires it in X-Access-Token. Required unless --listen is a loopback address")
	flag.StringVar(&isolation, "isolation", "auto", "how kernels are isolated: bwrap (bubblewrap, for hosts), none (inside a hardened sandbox Pod), or auto (none when KUBERNETES_SERVICE_HOST is set, else bwrap)")
	flag.StringVar(&python, "python", "/usr/bin/python3", "the interpreter, with matplotlib, numpy, pandas, seaborn and plotly")
	flag.StringVar(&bwrap, "bwrap", "bwrap", "the bubblewrap binary (isolation bwrap)")
	flag.StringVar(&workDir, "work-dir", "", "where contexts work (isolation none; default $TMPDIR/sandbox-agent-<pid>); a Pod mounts its size-limited emptyDir here")
	flag.StringVar(&network, "network", string(sandbox.NetworkNone), "None or Egress: whether bwrap kernels may reach the network (in a Pod the NetworkPolicy decides)")
	flag.StringVar(&plotlyJS, "plotly-js-url", "", "where plotly HTML loads plotly.js from (default the CDN; \"inline\" embeds it)")
	flag.StringVar(&logLevel, "log-level", "info", "debug, info, warn or error")
	flag.IntVar(&maxContexts, "max-contexts", 16, "the most contexts at once")
	flag.IntVar(&warmKernels, "warm-kernels", 1, "kernels kept started for new contexts (-1 for none)")
	flag.Int64Var(&memoryMiB, "memory-mib", 0, "per-kernel memory rlimit in MiB (0: none; a Pod's cgroup limit applies)")
	flag.Int64Var(&scratchMiB, "scratch-mib", 512, "per-context tmpfs size in MiB (isolation bwrap)")
	flag.Int64Var(&pids, "pids", 0, "per-kernel process rlimit (0: none; a Pod's pids limit applies)")
	flag.Parse()

	var level slog.Level
	if err := level.UnmarshalText([]byte(logLevel)); err != nil {
		return fmt.Errorf("--log-level: %w", err)
	}
	log := slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: level}))

	iso := agent.Isolation(isolation)
	if isolation == "auto" {
		iso = agent.IsolationBwrap
		if os.Getenv("KUBERNETES_SERVICE_HOST") != "" {
			iso = agent.IsolationNone
		}
	}
	if network != string(sandbox.NetworkNone) && network != string(sandbox.NetworkEgress) {
		return fmt.Errorf("--network must be %s or %s", sandbox.NetworkNone, sandbox.NetworkEgress)
	}
	opts := agent.Options{
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
		KillOrphans: true,
		// Kernels with namespaces of their own cannot read the token's directory.
		HidePaths: hideTokenDir(tokenFile),
	}
	// Before the token is in memory.
	kernelNS, err := agent.ProtectMemory(opts)
	if err != nil {
		return err
	}
	if iso == agent.IsolationNone {
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
	srv, err := agent.NewServer(opts)
	if err != nil {
		return err
	}
	defer srv.Close()

	ln, err := net.Listen("tcp", listen)
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
// listen on loopback (development and tests).
func readToken(path, listen string) (string, error) {
	if path == "" {
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
