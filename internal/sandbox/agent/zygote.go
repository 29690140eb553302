package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/vizops/viz-operator/internal/sandbox/pyrunner"
)

// kernelZygote is the fork-ahead of Options.ForkKernels: one interpreter that has
// imported the plotting stack forks every kernel (kernel.py's kernel_zygote_main), so a
// kernel starts in the time of a fork and a warm-up render instead of an interpreter's
// start and imports. The zygote runs in user, PID and mount namespaces of its own
// (kernelAttr), so that it can fork each kernel straight into a new PID namespace:
// each kernel is still a fresh process, PID 1 of its own PID, mount and IPC
// namespaces, and is never reused for another context.
type kernelZygote struct {
	cmd  *exec.Cmd
	conn *net.UnixConn
	diag *pyrunner.TailBuffer
	dead chan struct{} // closed when the control socket ends: the zygote is gone
	// warm is closed when the zygote has imported the whole plotting stack: it reports
	// ready with matplotlib and numpy only, so a new sandbox's first kernel starts at
	// once, and imports the rest after that first fork.
	warm     chan struct{}
	warmOnce sync.Once

	req     sync.Mutex // one fork request at a time: replies come in order
	replies chan zygoteMessage

	mu      sync.Mutex
	watches map[int]*exitWatch
}

type zygoteMessage struct {
	Type string `json:"type"`
	// PID is the kernel's in the zygote's PID namespace: what its exit names.
	PID     int    `json:"pid"`
	Status  int    `json:"status"`
	Message string `json:"message"`
	// hostPID is the forked kernel's PID here, read from the pidfd the zygote sends.
	hostPID int
}

// exitWatch is how one forked kernel ended.
type exitWatch struct {
	done   chan struct{}
	status syscall.WaitStatus
	known  bool
}

// zygoteWanted reports whether o's kernels are forked by a kernel zygote (which forks
// spare kernels only: none without WarmKernels).
func zygoteWanted(o Options) bool {
	return o.ForkKernels && o.Isolation == IsolationNone && !o.NoPIDNamespace && o.WarmKernels > 0
}

// zygoteStart is a kernel zygote started ahead of the server (PrestartZygote).
type zygoteStart struct {
	done chan struct{} // closed when z or err is set
	z    *kernelZygote
	err  error
}

// discard stops the zygote once it has started: the server that would have taken it
// closed first.
func (p *zygoteStart) discard() {
	<-p.done
	if p.z != nil {
		p.z.close()
	}
}

// PrestartZygote starts o's kernel zygote now, in the background, and returns o with
// it for NewServer to take: its imports are most of a new sandbox's start, and they
// then run beside the namespace probe, the token's read and the listener's start
// instead of after them. o is returned unchanged where kernels are not forked, or
// where o is invalid (NewServer says why). The zygote runs no code of a request and
// never sees the token.
func PrestartZygote(o Options) Options {
	d, err := o.withDefaults()
	if err != nil || !zygoteWanted(d) || prepareWorkDir(d) != nil {
		return o
	}
	p := &zygoteStart{done: make(chan struct{})}
	go func() {
		defer close(p.done)
		p.z, p.err = startKernelZygote(context.Background(), d)
	}()
	o.prestarted = p
	return o
}

// startKernelZygote starts the zygote and waits until it has imported everything.
func startKernelZygote(ctx context.Context, o Options) (*kernelZygote, error) {
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_SEQPACKET|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	ours, theirs := os.NewFile(uintptr(fds[0]), "zygote-ctl"), os.NewFile(uintptr(fds[1]), "zygote-ctl-child")
	defer theirs.Close()
	fc, err := net.FileConn(ours)
	ours.Close()
	if err != nil {
		return nil, err
	}
	conn := fc.(*net.UnixConn)
	home := filepath.Join(o.WorkDir, "home", "zygote")
	if err := os.MkdirAll(home, 0o700); err != nil {
		conn.Close()
		return nil, err
	}
	if os.Geteuid() == 0 {
		_ = os.Chown(home, o.UID, o.GID)
	}
	cfg := kernelConfig(o)
	cfg.Zygote = true
	cfgJSON, _ := json.Marshal(cfg)
	cmd := exec.Command(o.Python, "-I", "-B", "-c", pyrunner.KernelSource, string(cfgJSON))
	cmd.Dir = home
	cmd.Env = kernelEnv(home)
	// Namespaces of its own, with CAP_SYS_ADMIN there: what lets it unshare a PID
	// namespace for each kernel and return to its own after the fork.
	cmd.SysProcAttr = kernelAttr(o, true)
	cmd.Stdin = theirs
	z := &kernelZygote{cmd: cmd, conn: conn, diag: pyrunner.NewTailBuffer(8 << 10), dead: make(chan struct{}), warm: make(chan struct{}),
		replies: make(chan zygoteMessage, 1), watches: map[int]*exitWatch{}}
	cmd.Stdout, cmd.Stderr = z.diag, z.diag
	if err := cmd.Start(); err != nil {
		conn.Close()
		return nil, err
	}
	kernelPIDs.Store(cmd.Process.Pid, struct{}{}) // not an orphan to sweep
	go func() {
		_ = cmd.Wait()
		kernelPIDs.Delete(cmd.Process.Pid)
		conn.Close()
	}()
	ready := make(chan zygoteMessage, 1)
	go z.read(ready)
	timer := time.NewTimer(o.StartTimeout)
	defer timer.Stop()
	fail := func(err error) (*kernelZygote, error) {
		z.close()
		if tail := strings.TrimSpace(z.diag.String()); tail != "" {
			err = fmt.Errorf("%w; its stderr: %s", err, tail)
		}
		return nil, err
	}
	select {
	case m := <-ready:
		if m.Type != "ready" {
			return fail(fmt.Errorf("the kernel zygote failed to start: %s", m.Message))
		}
		return z, nil
	case <-z.dead:
		return fail(errors.New("the kernel zygote exited during start"))
	case <-timer.C:
		return fail(fmt.Errorf("the kernel zygote was not ready after %s", o.StartTimeout))
	case <-ctx.Done():
		return fail(ctx.Err())
	}
}

// read dispatches the zygote's messages: the first (ready or fatal) to ready, fork
// replies to the waiting request, exits to their kernels.
func (z *kernelZygote) read(ready chan<- zygoteMessage) {
	defer func() {
		close(z.dead)
		z.mu.Lock()
		for pid, w := range z.watches {
			close(w.done) // its kernel dies with the zygote (PR_SET_PDEATHSIG)
			delete(z.watches, pid)
		}
		z.mu.Unlock()
	}()
	buf := make([]byte, 64<<10)
	oob := make([]byte, syscall.CmsgSpace(4*4))
	first := true
	for {
		n, oobn, _, _, err := z.conn.ReadMsgUnix(buf, oob)
		if err != nil || n == 0 {
			return
		}
		hostPID := pidOfPidfds(oob[:oobn])
		var m zygoteMessage
		if json.Unmarshal(buf[:n], &m) != nil {
			continue
		}
		m.hostPID = hostPID
		switch {
		case first:
			first = false
			ready <- m
		case m.Type == "forked":
			z.mu.Lock()
			z.watches[m.PID] = &exitWatch{done: make(chan struct{})}
			z.mu.Unlock()
			z.replies <- m
		case m.Type == "error":
			z.replies <- m
		case m.Type == "warm":
			z.warmOnce.Do(func() { close(z.warm) })
		case m.Type == "exit":
			z.mu.Lock()
			if w := z.watches[m.PID]; w != nil {
				w.status, w.known = syscall.WaitStatus(m.Status), true
				close(w.done)
				delete(z.watches, m.PID)
			}
			z.mu.Unlock()
		}
	}
}

// isWarm reports whether the zygote has imported the whole plotting stack.
func (z *kernelZygote) isWarm() bool {
	select {
	case <-z.warm:
		return true
	default:
		return false
	}
}

func (z *kernelZygote) alive() bool {
	select {
	case <-z.dead:
		return false
	default:
		return true
	}
}

// fork asks the zygote for a kernel with cfg and env and waits until it is ready.
func (z *kernelZygote) fork(ctx context.Context, o Options, k *kernel, cfg pyrunner.Config, env []string) (*kernel, error) {
	var files [4][2]*os.File // stdin, results, stdout, stderr: [ours, the kernel's]
	closeAll := func() {
		for _, p := range files {
			for _, f := range p {
				if f != nil {
					f.Close()
				}
			}
		}
	}
	for i := range files {
		r, w, err := os.Pipe()
		if err != nil {
			closeAll()
			return nil, err
		}
		if i == 0 {
			files[i] = [2]*os.File{w, r}
		} else {
			files[i] = [2]*os.File{r, w}
		}
	}
	envMap := map[string]string{}
	for _, kv := range env {
		if key, v, ok := strings.Cut(kv, "="); ok {
			envMap[key] = v
		}
	}
	msg, _ := json.Marshal(map[string]any{"config": cfg, "env": envMap})
	rights := syscall.UnixRights(int(files[0][1].Fd()), int(files[1][1].Fd()), int(files[2][1].Fd()), int(files[3][1].Fd()))
	k.oomKills = oomKillCount()

	z.req.Lock()
	_, _, err := z.conn.WriteMsgUnix(msg, rights, nil)
	var reply zygoteMessage
	if err == nil {
		select {
		case reply = <-z.replies:
		case <-z.dead:
			err = errors.New("the kernel zygote exited")
		}
	}
	z.req.Unlock()
	for i := range files {
		files[i][1].Close() // the kernel holds its own copies
	}
	if err == nil && reply.Type != "forked" {
		err = fmt.Errorf("the kernel zygote could not fork: %s", reply.Message)
	}
	if err != nil {
		for i := range files {
			files[i][0].Close()
		}
		return nil, err
	}
	z.mu.Lock()
	w := z.watches[reply.PID]
	z.mu.Unlock()
	if w == nil { // it ended already, or the zygote did
		w = &exitWatch{done: make(chan struct{})}
		close(w.done)
	}
	if reply.hostPID == 0 {
		// Without its PID here the kernel could not be signalled: end it by its stdin.
		for i := range files {
			files[i][0].Close()
		}
		return nil, errors.New("the kernel zygote sent no pidfd for its kernel")
	}
	k.pid = max(reply.hostPID, 0) // -1: reaped already; its exit comes next
	// The zygote reports warm before it answers a later fork request, and read hands
	// messages on in order: a kernel forked after that notice has the whole stack.
	k.partial = !z.isWarm()
	k.stdin = files[0][0]
	k.status = func() (syscall.WaitStatus, bool) { return w.status, w.known }
	go func() {
		<-w.done
		close(k.done)
	}()
	return k.awaitReady(ctx, o, files[1][0], files[2][0], files[3][0])
}

// pidOfPidfds closes every fd a control message carries and returns the PID, in
// this process's PID namespace, of the first that is a pidfd (0: none).
func pidOfPidfds(oob []byte) int {
	msgs, err := syscall.ParseSocketControlMessage(oob)
	if err != nil {
		return 0
	}
	pid := 0
	for i := range msgs {
		fds, err := syscall.ParseUnixRights(&msgs[i])
		if err != nil {
			continue
		}
		for _, fd := range fds {
			if pid == 0 {
				pid = pidfdPID(fd)
			}
			syscall.Close(fd)
		}
	}
	return pid
}

// pidfdPID reads a pidfd's "Pid:" line in /proc/self/fdinfo: the process's PID in
// the namespace of this /proc (0 when fd is no pidfd, -1 once the process is reaped).
func pidfdPID(fd int) int {
	data, err := os.ReadFile(fmt.Sprintf("/proc/self/fdinfo/%d", fd))
	if err != nil {
		return 0
	}
	pid, _ := strconv.Atoi(procField(string(data), "Pid"))
	return pid
}

// procField is the value of a "Key:\tvalue" line of a /proc file ("" when absent).
func procField(data, key string) string {
	for line := range strings.Lines(data) {
		if v, ok := strings.CutPrefix(line, key+":"); ok {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// close stops the zygote (its kernels die with it).
func (z *kernelZygote) close() {
	if z.cmd.Process != nil {
		_ = z.cmd.Process.Kill()
	}
	_ = z.conn.Close()
}
