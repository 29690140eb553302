package local

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/vizops/viz-operator/internal/sandbox"
)

// preflightScript imports what every job relies on. Run with MPLCONFIGDIR on the
// writable cache directory, it also builds matplotlib's font cache there.
const preflightScript = `
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot, numpy, pandas, seaborn, plotly, plotly.graph_objects
print("ok", matplotlib.__version__, numpy.__version__, pandas.__version__, plotly.__version__)
`

// preflightDone remembers environments already checked in this process, so pools
// created one after another (tests, the CLI) do not pay for the check again.
var preflightDone sync.Map

// preflight fails fast, with an error wrapping sandbox.ErrUnavailable that says what to
// install, when bwrap, the interpreter or its libraries are missing. It also prepares
// the font cache the sandboxes copy.
func preflight(opts Options) error {
	bwrap, err := exec.LookPath(opts.Bwrap)
	if err != nil {
		return fmt.Errorf("%w: bubblewrap (%q) not found: install bubblewrap (apt-get install bubblewrap) or set Options.Bwrap", sandbox.ErrUnavailable, opts.Bwrap)
	}
	if st, err := os.Stat(opts.Python); err != nil || st.IsDir() {
		return fmt.Errorf("%w: interpreter %s not found: install python3-matplotlib python3-numpy python3-pandas python3-seaborn python3-plotly (Debian) or set Options.Python", sandbox.ErrUnavailable, opts.Python)
	}
	key := bwrap + "\x00" + opts.Python + "\x00" + opts.CacheDir
	if _, ok := preflightDone.Load(key); ok {
		return nil
	}
	cache := filepath.Join(opts.CacheDir, "mpl")
	if err := os.MkdirAll(cache, 0o755); err != nil {
		return fmt.Errorf("%w: create cache dir %s: %v", sandbox.ErrUnavailable, cache, err)
	}
	for _, dir := range []string{opts.CacheDir, cache} {
		_ = os.Chmod(dir, 0o755)
		if os.Geteuid() == 0 {
			_ = os.Chown(dir, 0, 0)
		}
	}
	if os.Geteuid() == 0 {
		// The sandbox user builds the cache; its files stay readable by every sandbox.
		_ = os.Chown(cache, opts.UID, opts.GID)
	}
	args := append(baseBwrapArgs(sandbox.PoolConfig{}, sandbox.Resources{ScratchBytes: 64 << 20}),
		"--bind", cache, mplCacheMount,
		"--remount-ro", "/",
		"--", opts.Python, "-I", "-B", "-c", preflightScript)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bwrap, args...)
	env := sandboxEnv()
	for i, kv := range env {
		if strings.HasPrefix(kv, "MPLCONFIGDIR=") {
			env[i] = "MPLCONFIGDIR=" + mplCacheMount
		}
	}
	cmd.Env = env
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if os.Geteuid() == 0 {
		cmd.SysProcAttr.Credential = &syscall.Credential{Uid: uint32(opts.UID), Gid: uint32(opts.GID), Groups: []uint32{}}
	}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil || !strings.HasPrefix(out.String(), "ok") {
		msg := strings.TrimSpace(out.String())
		if len(msg) > 2000 {
			msg = "…" + msg[len(msg)-2000:]
		}
		hint := "install bubblewrap and python3-matplotlib python3-numpy python3-pandas python3-seaborn python3-plotly"
		if strings.Contains(msg, "execvp") {
			hint = "the interpreter must live under /usr, the only host tree the sandbox sees: use Debian's /usr/bin/python3 with python3-matplotlib python3-numpy python3-pandas python3-seaborn python3-plotly"
		} else if strings.Contains(msg, "bwrap:") {
			hint = "bubblewrap cannot create namespaces here: allow unprivileged user namespaces (sysctl user.max_user_namespaces) or run where bwrap works"
		}
		return fmt.Errorf("%w: sandboxed %s cannot import the plotting libraries (%v): %s; %s", sandbox.ErrUnavailable, opts.Python, err, msg, hint)
	}
	preflightDone.Store(key, true)
	return nil
}
