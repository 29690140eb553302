package main

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

// k8sVersion is the Kubernetes version of go.mod's k8s.io/api (v0.37.2 → 1.37.2), the
// version hack/envtest-assets.sh finds or builds.
func k8sVersion(root string) string {
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

// cachedAssets is where kube-apiserver and etcd already are, or "" when
// hack/envtest-assets.sh would have to download or build them.
func cachedAssets(root string) string {
	if d := os.Getenv("KUBEBUILDER_ASSETS"); d != "" && completeAssets(d) {
		return d
	}
	v := k8sVersion(root)
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

// envtestAssets runs hack/envtest-assets.sh (its progress on stderr) and returns the
// directory it prints.
func envtestAssets(root string, stderr io.Writer) (string, error) {
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

// controlPlane is an envtest API server with the CRDs, and an admin kubeconfig for it.
type controlPlane struct {
	env        *envtest.Environment
	kubeconfig string
	tmp        string
}

func startControlPlane(assets, crdDir string) (*controlPlane, error) {
	cp := &controlPlane{env: &envtest.Environment{
		CRDDirectoryPaths:     []string{crdDir},
		ErrorIfCRDPathMissing: true,
		BinaryAssetsDirectory: assets,
	}}
	if _, err := cp.env.Start(); err != nil {
		_ = cp.env.Stop()
		return nil, fmt.Errorf("starting the control plane (kube-apiserver and etcd from %s): %w", assets, err)
	}
	user, err := cp.env.AddUser(envtest.User{Name: "vizops-demo", Groups: []string{"system:masters"}}, nil)
	if err == nil {
		var data []byte
		if data, err = user.KubeConfig(); err == nil {
			if cp.tmp, err = os.MkdirTemp("", "vizops-demo-"); err == nil {
				cp.kubeconfig = filepath.Join(cp.tmp, "kubeconfig")
				err = os.WriteFile(cp.kubeconfig, data, 0o600)
			}
		}
	}
	if err != nil {
		cp.stop()
		return nil, fmt.Errorf("writing a kubeconfig for the control plane: %w", err)
	}
	return cp, nil
}

func (cp *controlPlane) stop() error {
	err := cp.env.Stop()
	if cp.tmp != "" {
		_ = os.RemoveAll(cp.tmp)
	}
	return err
}

// buildManager builds the operator's manager binary.
func buildManager(root, out string, stderr io.Writer) error {
	cmd := exec.Command("go", "build", "-o", out, "./cmd")
	cmd.Dir = root
	cmd.Stdout, cmd.Stderr = stderr, stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("go build -o %s ./cmd: %w", out, err)
	}
	return nil
}

// managerProcess is the manager running as a subprocess, in a process group of its
// own so that stopping it also stops the sandboxes it started.
type managerProcess struct {
	cmd    *exec.Cmd
	log    *os.File
	exited chan struct{}
	err    error
}

func startManager(bin, kubeconfig, logPath string) (*managerProcess, error) {
	log, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, "--metrics-bind-address=0", "--health-probe-bind-address=0")
	cmd.Env = append(os.Environ(), "KUBECONFIG="+kubeconfig)
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		log.Close()
		return nil, fmt.Errorf("starting %s: %w", bin, err)
	}
	m := &managerProcess{cmd: cmd, log: log, exited: make(chan struct{})}
	go func() {
		m.err = cmd.Wait()
		close(m.exited)
	}()
	return m, nil
}

// stop asks the manager to shut down (SIGTERM), and kills its process group when it
// has not within the grace period.
func (m *managerProcess) stop(grace time.Duration) error {
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

// exitErr says how the manager ended, once it has.
func (m *managerProcess) exitErr() error {
	if m.err == nil {
		return errors.New("the manager exited")
	}
	return fmt.Errorf("the manager exited: %w", m.err)
}

// tail returns the last n lines of a file.
func tail(path string, n int) string {
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
