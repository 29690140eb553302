package local

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
)

// The benchmarks' reference. The operator never uses it: the sandbox benchmarks
// (bench_test.go) and the end-to-end benchmark (hack/bench/e2e) compare against it.

// SeedBarChart is the seed's first example (e2b-sandbox-architecture.md), the chart
// every benchmark renders.
const SeedBarChart = `import matplotlib.pyplot as plt
import numpy as np
treatments = ['Hydroxyurea', 'Voxelotor', 'Crizanlizumab']
effectiveness = [85, 70, 75]
plt.bar(treatments, effectiveness)
plt.ylabel('Effectiveness (%)')
plt.title('SCD Treatment Effectiveness')
plt.show()`

// floorDriver keeps one hot python3 (no sandbox) that renders each script it is sent
// to PNG in-process: the floor no backend can beat.
const floorDriver = `
import sys, io, struct, matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt, numpy, pandas, seaborn, plotly
def show(*a, **k):
    for n in plt.get_fignums():
        plt.figure(n).savefig(io.BytesIO(), format="png")
    plt.close("all")
plt.show = show
inp, out = sys.stdin.buffer, sys.stdout.buffer
while True:
    hdr = inp.read(4)
    if len(hdr) < 4:
        break
    code = inp.read(struct.unpack(">I", hdr)[0]).decode()
    exec(compile(code, "<cell>", "exec"), {"__name__": "__main__"})
    out.write(b"ok\n"); out.flush()
`

// forkFloorDriver is the floor with process isolation and nothing else: the same hot
// interpreter forks a child per script, the child renders it to PNG and sends the
// bytes back through a pipe, the parent waits for the child and hands the PNG on. A
// fresh process per job is the isolation between one request and the next, so this is
// the physical price of that isolation on the machine the benchmark runs on: its
// copy-on-write page faults after fork are paid here as in every real sandbox.
const forkFloorDriver = `
import sys, io, os, struct, matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt, numpy, pandas, seaborn, plotly
def render(code):
    pngs = []
    def show(*a, **k):
        for n in plt.get_fignums():
            b = io.BytesIO()
            plt.figure(n).savefig(b, format="png")
            pngs.append(b.getvalue())
        plt.close("all")
    plt.show = show
    exec(compile(code, "<cell>", "exec"), {"__name__": "__main__"})
    show()
    return b"".join(pngs)
# Hot: import and use everything once in the parent, as a warm sandbox has.
render(sys.argv[1])
inp, out = sys.stdin.buffer, sys.stdout.buffer
while True:
    hdr = inp.read(4)
    if len(hdr) < 4:
        break
    code = inp.read(struct.unpack(">I", hdr)[0]).decode()
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        png = render(code)
        with os.fdopen(w, "wb") as f:
            f.write(png)
        os._exit(0)
    os.close(w)
    with os.fdopen(r, "rb") as f:
        png = f.read()
    _, status = os.waitpid(pid, 0)
    if status != 0 or not png.startswith(b"\x89PNG"):
        out.write(b"fail\n"); out.flush(); continue
    out.write(b"ok\n"); out.flush()
`

// Floor is a hot interpreter (Options.Python, every library imported and already
// used) that renders scripts in-process: no sandbox, no IPC beyond a pipe. A fork
// floor (StartForkFloor) renders each script in a freshly forked child instead.
type Floor struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	out    *bufio.Reader
	stderr bytes.Buffer
	once   sync.Once
}

// StartFloor starts a floor interpreter and renders SeedBarChart three times, so it
// is hot when it returns.
func StartFloor(opts Options) (*Floor, error) {
	return launchFloor(opts, exec.Command(opts.withDefaults().Python, "-c", floorDriver))
}

// StartForkFloor starts a fork floor (forkFloorDriver): the floor plus a fresh
// process per script, the price of isolating one job from the next.
func StartForkFloor(opts Options) (*Floor, error) {
	return launchFloor(opts, exec.Command(opts.withDefaults().Python, "-c", forkFloorDriver, SeedBarChart))
}

func launchFloor(opts Options, cmd *exec.Cmd) (*Floor, error) {
	opts = opts.withDefaults()
	f := &Floor{cmd: cmd}
	f.cmd.Env = envWith("MPLCONFIGDIR", filepath.Join(opts.CacheDir, "mpl"))
	var err error
	if f.stdin, err = f.cmd.StdinPipe(); err != nil {
		return nil, err
	}
	stdout, err := f.cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	f.out = bufio.NewReader(stdout)
	f.cmd.Stderr = &f.stderr
	if err := f.cmd.Start(); err != nil {
		return nil, err
	}
	for i := 0; i < 3; i++ {
		if err := f.Render(SeedBarChart); err != nil {
			f.Close()
			return nil, err
		}
	}
	return f, nil
}

// Render runs code and renders its figures to PNG. Not safe for concurrent use.
func (f *Floor) Render(code string) error {
	var hdr [4]byte
	binary.BigEndian.PutUint32(hdr[:], uint32(len(code)))
	if _, err := f.stdin.Write(append(hdr[:], code...)); err != nil {
		return fmt.Errorf("floor interpreter: %w", err)
	}
	if line, err := f.out.ReadString('\n'); err != nil || line != "ok\n" {
		return fmt.Errorf("floor interpreter: %q %v %s", line, err, f.stderr.String())
	}
	return nil
}

// Close stops the interpreter.
func (f *Floor) Close() {
	f.once.Do(func() {
		f.stdin.Close()
		_ = f.cmd.Wait()
	})
}

// envWith is the sandbox environment with one variable replaced.
func envWith(key, value string) []string {
	env := sandboxEnv()
	for i, kv := range env {
		if strings.HasPrefix(kv, key+"=") {
			env[i] = key + "=" + value
		}
	}
	return env
}
