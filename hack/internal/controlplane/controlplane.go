// Package controlplane runs what `make demo` and `make bench` need around the operator:
// the envtest binaries (found, or built by hack/envtest-assets.sh), an embedded control
// plane (kube-apiserver and etcd) with the CRDs and an admin kubeconfig, and the real
// manager binary as a subprocess in a process group of its own.
package controlplane

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/envtest"
)

// K8sVersion is the Kubernetes version of go.mod's k8s.io/api (v0.37.2 → 1.37.2), the
// version hack/envtest-assets.sh finds or builds.
func K8sVersion(root string) string {
	data, err := os.ReadFile(filepath.Join(root, "go.mod"))
	if err != nil {
		return ""
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		for i := 0; i+1 < len(f); i++ {
			if f[i] == "k8s.io/api" && strings.HasPrefix(f[i+1], "v0.") {
				return "1." + strings.TrimPrefix(f[i+1], "v0.")
			}
		}
	}
	return ""
}

func completeAssets(dir string) bool {
	for _, b := range []string{"kube-apiserver", "etcd"} {
		st, err := os.Stat(filepath.Join(dir, b))
		if err != nil || st.Mode()&0o111 == 0 {
			return false
		}
	}
	return true
}

// CachedAssets is where kube-apiserver and etcd already are, or "" when
// hack/envtest-assets.sh would have to download or build them.
func CachedAssets(root string) string {
	if d := os.Getenv("KUBEBUILDER_ASSETS"); d != "" && completeAssets(d) {
		return d
	}
	v := K8sVersion(root)
	if v == "" {
		return ""
	}
	machine := os.Getenv("ENVTEST_MACHINE_CACHE")
	if machine == "" {
		machine = "/usr/local/kubebuilder/k8s"
	}
	for _, d := range []string{filepath.Join(root, "bin", "k8s", v), filepath.Join(machine, v)} {
		if completeAssets(d) {
			return d
		}
	}
	return ""
}

// FindAssets runs hack/envtest-assets.sh (its progress on stderr) and returns the
// directory it prints.
func FindAssets(root string, stderr io.Writer) (string, error) {
	cmd := exec.Command(filepath.Join(root, "hack", "envtest-assets.sh"))
	cmd.Dir = root
	cmd.Stderr = stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("hack/envtest-assets.sh: %w", err)
	}
	dir := strings.TrimSpace(string(out))
	if !completeAssets(dir) {
		return "", fmt.Errorf("hack/envtest-assets.sh printed %q, which lacks kube-apiserver or etcd", dir)
	}
	return dir, nil
}

// ControlPlane is an envtest API server with the CRDs, and an admin kubeconfig for it.
type ControlPlane struct {
	Env *envtest.Environment
	// Kubeconfig is the path of a kubeconfig for a system:masters user.
	Kubeconfig string
	tmp        string
}

// Start starts kube-apiserver and etcd from assets, installs the CRDs of crdDir and
// writes a kubeconfig for an admin user named userName.
func Start(assets, crdDir, userName string) (*ControlPlane, error) {
	cp := &ControlPlane{Env: &envtest.Environment{
		CRDDirectoryPaths:     []string{crdDir},
		ErrorIfCRDPathMissing: true,
		BinaryAssetsDirectory: assets,
		// On a loaded machine kube-apiserver can take longer than the default 20s.
		ControlPlaneStopTimeout: time.Minute,
	}}
	if _, err := cp.Env.Start(); err != nil {
		_ = cp.Env.Stop()
		return nil, fmt.Errorf("starting the control plane (kube-apiserver and etcd from %s): %w", assets, err)
	}
	user, err := cp.Env.AddUser(envtest.User{Name: userName, Groups: []string{"system:masters"}}, nil)
	if err == nil {
		var data []byte
		if data, err = user.KubeConfig(); err == nil {
			if cp.tmp, err = os.MkdirTemp("", userName+"-"); err == nil {
				cp.Kubeconfig = filepath.Join(cp.tmp, "kubeconfig")
				err = os.WriteFile(cp.Kubeconfig, data, 0o600)
			}
		}
	}
	if err != nil {
		_ = cp.Stop()
		return nil, fmt.Errorf("writing a kubeconfig for the control plane: %w", err)
	}
	return cp, nil
}

// Stop stops the control plane and removes the kubeconfig.
func (cp *ControlPlane) Stop() error {
	err := cp.Env.Stop()
	if cp.tmp != "" {
		_ = os.RemoveAll(cp.tmp)
	}
	return err
}

// BuildManager builds the operator's manager binary.
func BuildManager(root, out string, stderr io.Writer) error {
	cmd := exec.Command("go", "build", "-o", out, "./cmd")
	cmd.Dir = root
	cmd.Stdout, cmd.Stderr = stderr, stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("go build -o %s ./cmd: %w", out, err)
	}
	return nil
}

// Manager is the manager running as a subprocess, in a process group of its
// own so that stopping it also stops the sandboxes it started.
type Manager struct {
	cmd    *exec.Cmd
	log    *os.File
	exited chan struct{}
	err    error
}

// StartManager runs bin against kubeconfig with metrics and probes off, its output
// to logPath; args are extra flags.
func StartManager(bin, kubeconfig, logPath string, args ...string) (*Manager, error) {
	log, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, append([]string{"--metrics-bind-address=0", "--health-probe-bind-address=0"}, args...)...)
	cmd.Env = append(os.Environ(), "KUBECONFIG="+kubeconfig)
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		log.Close()
		return nil, fmt.Errorf("starting %s: %w", bin, err)
	}
	m := &Manager{cmd: cmd, log: log, exited: make(chan struct{})}
	go func() {
		m.err = cmd.Wait()
		close(m.exited)
	}()
	return m, nil
}

// Stop asks the manager to shut down (SIGTERM), and kills its process group when it
// has not within the grace period.
func (m *Manager) Stop(grace time.Duration) error {
	defer m.log.Close()
	pgid := m.cmd.Process.Pid
	select {
	case <-m.exited:
	default:
		_ = syscall.Kill(-pgid, syscall.SIGTERM)
		select {
		case <-m.exited:
		case <-time.After(grace):
			_ = syscall.Kill(-pgid, syscall.SIGKILL)
			<-m.exited
			_ = syscall.Kill(-pgid, syscall.SIGKILL) // whatever is left of the group
			return fmt.Errorf("the manager did not stop within %s; killed it", grace)
		}
	}
	_ = syscall.Kill(-pgid, syscall.SIGKILL) // sandboxes that outlived it, if any
	if !groupGone(pgid, 5*time.Second) {
		return fmt.Errorf("processes of the manager's group %d are still exiting", pgid)
	}
	return nil
}

// groupGone waits until no process is left in the process group.
func groupGone(pgid int, wait time.Duration) bool {
	for end := time.Now().Add(wait); ; time.Sleep(50 * time.Millisecond) {
		if err := syscall.Kill(-pgid, 0); errors.Is(err, syscall.ESRCH) {
			return true
		}
		if time.Now().After(end) {
			return false
		}
	}
}

// Exited is closed once the manager has exited.
func (m *Manager) Exited() <-chan struct{} { return m.exited }

// Pid is the manager's process ID.
func (m *Manager) Pid() int { return m.cmd.Process.Pid }

// ExitErr says how the manager ended, once it has.
func (m *Manager) ExitErr() error {
	if m.err == nil {
		return errors.New("the manager exited")
	}
	return fmt.Errorf("the manager exited: %w", m.err)
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
