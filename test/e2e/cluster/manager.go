package cluster

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"
)

// Manager is the operator's manager binary running against the cluster, in a process
// group of its own (hack/internal/controlplane does the same for make demo; test/e2e
// cannot import it).
type Manager struct {
	cmd  *exec.Cmd
	log  *os.File
	done chan struct{}
}

// StartManager runs bin with the cluster's admin kubeconfig, metrics and probes off,
// its output to logPath; args are extra flags. The gateway (cmd/gateway) takes the same
// flags and runs the same way.
func (c *Cluster) StartManager(bin, logPath string, args ...string) (*Manager, error) {
	log, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, append([]string{"--metrics-bind-address=0", "--health-probe-bind-address=0"}, args...)...)
	cmd.Env = append(os.Environ(), "KUBECONFIG="+c.Kubeconfig)
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		log.Close()
		return nil, fmt.Errorf("starting %s: %w", bin, err)
	}
	m := &Manager{cmd: cmd, log: log, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(m.done) }()
	return m, nil
}

// Stop sends SIGTERM and waits; past grace it kills the group and says so.
func (m *Manager) Stop(grace time.Duration) error {
	defer m.log.Close()
	pgid := m.cmd.Process.Pid
	var err error
	select {
	case <-m.done:
	default:
		_ = syscall.Kill(-pgid, syscall.SIGTERM)
		select {
		case <-m.done:
		case <-time.After(grace):
			err = fmt.Errorf("the manager did not stop within %s; killed it", grace)
		}
	}
	_ = syscall.Kill(-pgid, syscall.SIGKILL)
	<-m.done
	return err
}

// Exited says whether the manager has exited.
func (m *Manager) Exited() bool {
	select {
	case <-m.done:
		return true
	default:
		return false
	}
}

// Tail returns the last n lines of a file.
func Tail(path string, n int) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
