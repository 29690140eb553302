// Package cluster runs a one-node Kubernetes cluster on this machine for the e2e tests:
// etcd and kube-apiserver (envtest's, from hack/envtest-assets.sh), kube-scheduler and
// kube-controller-manager (garbage collection, namespaces, service accounts), a
// kubelet with containerd, runc and a CNI bridge, and kube-router's firewall enforcing
// NetworkPolicies (netpol.go). Every part is a pinned binary from
// a cache (hack/e2e/build-k8s.sh, Debian packages); images come from OCI archives
// built by hack/images/build and imported into containerd. Stop tears all of it down,
// containers, network namespaces and mounts included. docs/e2e.md explains each choice.
package cluster

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/vizops/viz-operator/internal/sandbox/seccompprofile"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
)

// Options say where the parts are.
type Options struct {
	// Assets holds kube-apiserver and etcd (hack/envtest-assets.sh).
	Assets string
	// Kubelet, Scheduler and ControllerManager are binaries (hack/e2e/build-k8s.sh).
	Kubelet, Scheduler, ControllerManager string
	// CRDs is the directory of the CRDs to install.
	CRDs string
	// Images are OCI archives imported into containerd before the kubelet starts.
	Images []string
	// PauseImage is the Pod sandbox image's name (in one of Images).
	PauseImage string
	// StateDir holds what lives across runs (containerd's content store and snapshots).
	StateDir string
	// RunDir holds what one run makes (kubelet root, sockets, configs); removed by Stop.
	RunDir string
	// LogDir gets each component's log.
	LogDir string
	// NodeName of the one node.
	NodeName string
	// PodCIDR is the bridge's subnet; the bridge's host address is its first address.
	PodCIDR string
	// Bridge is the CNI bridge's interface name.
	Bridge string
	// KubeRouter is kube-router's binary (hack/e2e/build-kube-router.sh); when set, its
	// network-policy firewall enforces NetworkPolicies on the node. Empty: nothing does.
	KubeRouter string
	// Log reports progress.
	Log func(format string, args ...any)
}

// Cluster is a running cluster.
type Cluster struct {
	opts       Options
	env        *envtest.Environment
	Config     *rest.Config
	Kubeconfig string
	Client     kubernetes.Interface
	procs      []*proc
	containerd string // its socket
	netnsStart map[string]bool
	// restoreBridgeNF is net.bridge.bridge-nf-call-iptables before the run changed it.
	restoreBridgeNF string
}

type proc struct {
	name string
	cmd  *exec.Cmd
	done chan struct{}
	log  *os.File
}

// Start brings the cluster up and waits for the node to be Ready. On error it tears
// down what it started.
func Start(ctx context.Context, o Options) (c *Cluster, err error) {
	if o.Log == nil {
		o.Log = func(string, ...any) {}
	}
	SweepStale(filepath.Dir(o.RunDir), o.Log)
	c = &Cluster{opts: o, netnsStart: netnsSet()}
	defer func() {
		if err != nil {
			c.Stop()
			c = nil
		}
	}()
	for _, d := range []string{o.StateDir, o.RunDir, o.LogDir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return c, err
		}
	}

	t := time.Now()
	c.env = &envtest.Environment{
		CRDDirectoryPaths: []string{o.CRDs}, ErrorIfCRDPathMissing: true,
		BinaryAssetsDirectory: o.Assets, ControlPlaneStopTimeout: time.Minute,
	}
	if c.Config, err = c.env.Start(); err != nil {
		return c, fmt.Errorf("starting kube-apiserver and etcd: %w", err)
	}
	admin, err := c.kubeconfig("admin", "e2e-admin", "system:masters")
	if err != nil {
		return c, err
	}
	c.Kubeconfig = admin
	// The kubelet authenticates as its node (NodeRestriction applies to it); envtest's
	// API server authorizes with RBAC only, so it is also in system:masters.
	kubeletKC, err := c.kubeconfig("kubelet", "system:node:"+o.NodeName, "system:nodes", "system:masters")
	if err != nil {
		return c, err
	}
	if c.Client, err = kubernetes.NewForConfig(c.Config); err != nil {
		return c, err
	}
	o.Log("kube-apiserver and etcd up in %s", time.Since(t).Round(time.Millisecond))

	if err := c.startContainerd(ctx); err != nil {
		return c, err
	}
	if err := c.startKubelet(kubeletKC); err != nil {
		return c, err
	}
	if o.Scheduler == "" || o.ControllerManager == "" {
		o.Log("no kube-scheduler or kube-controller-manager given: Pods are not scheduled, owned objects not collected")
	} else if err := c.startControllers(admin); err != nil {
		return c, err
	}
	t = time.Now()
	if err := c.waitNodeReady(ctx, 3*time.Minute); err != nil {
		return c, err
	}
	o.Log("node %s Ready %s after the kubelet started", o.NodeName, time.Since(t).Round(time.Millisecond))
	if o.KubeRouter == "" {
		o.Log("no kube-router given: NetworkPolicies are not enforced")
	} else if err := c.startKubeRouter(ctx); err != nil {
		return c, err
	}
	return c, nil
}

func (c *Cluster) startControllers(admin string) error {
	o := c.opts
	if err := c.start("kube-scheduler", o.Scheduler, "--kubeconfig="+admin, "--leader-elect=false", "--secure-port=0", "--v=1"); err != nil {
		return err
	}
	if err := c.start("kube-controller-manager", o.ControllerManager, "--kubeconfig="+admin, "--leader-elect=false",
		"--secure-port=0", "--controllers=garbagecollector,namespace,serviceaccount,nodelifecycle", "--v=1"); err != nil {
		return err
	}
	return nil
}

func (c *Cluster) kubeconfig(file, user string, groups ...string) (string, error) {
	u, err := c.env.AddUser(envtest.User{Name: user, Groups: groups}, nil)
	if err != nil {
		return "", fmt.Errorf("adding user %s: %w", user, err)
	}
	data, err := u.KubeConfig()
	if err != nil {
		return "", err
	}
	p := filepath.Join(c.opts.RunDir, file+".kubeconfig")
	return p, os.WriteFile(p, data, 0o600)
}

func (c *Cluster) startContainerd(ctx context.Context) error {
	o := c.opts
	root := filepath.Join(o.StateDir, "containerd")
	state := filepath.Join(o.RunDir, "containerd-state")
	c.containerd = filepath.Join(o.RunDir, "containerd.sock")
	cniConf := filepath.Join(o.RunDir, "net.d")
	if err := os.MkdirAll(cniConf, 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(cniConf, "10-vizops-e2e.conflist"), []byte(cniConfig(o)), 0o644); err != nil {
		return err
	}
	cfg := fmt.Sprintf(`version = 2
root = %q
state = %q
[grpc]
  address = %q
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = %q
  enable_unprivileged_ports = false
  # This machine does not let a process lower its oom_score_adj below its own (runc
  # fails with "failed to update /proc/self/oom_score_adj: Permission denied" for the
  # Pod sandbox's -998): clamp to containerd's own instead.
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        BinaryName = "/usr/sbin/runc"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = %q
`, root, state, c.containerd, o.PauseImage, cniConf)
	cfgPath := filepath.Join(o.RunDir, "containerd.toml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		return err
	}
	t := time.Now()
	if err := c.start("containerd", "/usr/bin/containerd", "--config", cfgPath); err != nil {
		return err
	}
	if err := waitFor(ctx, time.Minute, func() bool {
		return exec.Command("ctr", "--address", c.containerd, "version").Run() == nil
	}); err != nil {
		return fmt.Errorf("containerd did not answer on %s: %w", c.containerd, err)
	}
	o.Log("containerd up in %s", time.Since(t).Round(time.Millisecond))
	for _, img := range o.Images {
		t := time.Now()
		out, err := c.ctr("images", "import", img)
		if err != nil {
			return fmt.Errorf("ctr images import %s: %w\n%s", img, err, out)
		}
		o.Log("imported %s in %s", filepath.Base(img), time.Since(t).Round(time.Millisecond))
	}
	return nil
}

func (c *Cluster) ctr(args ...string) ([]byte, error) {
	return exec.Command("ctr", append([]string{"--address", c.containerd, "--namespace", "k8s.io"}, args...)...).CombinedOutput()
}

// cniConfig is a bridge with host-local addresses from PodCIDR; the host is the
// gateway (so the manager and the kubelet's probes reach Pod IPs), no masquerading
// (nothing leaves the machine).
func cniConfig(o Options) string {
	return fmt.Sprintf(`{
  "cniVersion": "0.4.0",
  "name": "vizops-e2e",
  "plugins": [
    {
      "type": "bridge",
      "bridge": %q,
      "isGateway": true,
      "ipMasq": false,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "dataDir": %q,
        "ranges": [[{"subnet": %q}]],
        "routes": [{"dst": "0.0.0.0/0"}]
      }
    },
    {"type": "loopback"}
  ]
}
`, o.Bridge, filepath.Join(o.RunDir, "cni-ipam"), o.PodCIDR)
}

func (c *Cluster) startKubelet(kubeconfig string) error {
	o := c.opts
	root := filepath.Join(o.RunDir, "kubelet")
	// vizops's agent seccomp profile, where a node keeps Localhost profiles (the
	// kubelet's seccomp directory), as docs/security.md tells platform teams to.
	profile := filepath.Join(root, "seccomp", seccompprofile.LocalhostProfile)
	if err := os.MkdirAll(filepath.Dir(profile), 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(profile, seccompprofile.JSON(), 0o644); err != nil {
		return err
	}
	cfg := fmt.Sprintf(`apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
containerRuntimeEndpoint: unix://%s
cgroupDriver: cgroupfs
failCgroupV1: false
failSwapOn: false
port: 10350
readOnlyPort: 0
healthzPort: 0
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: false}
authorization:
  mode: AlwaysAllow
resolvConf: /etc/resolv.conf
podCIDR: %s
maxPods: 32
serializeImagePulls: false
imageGCHighThresholdPercent: 100
evictionHard:
  memory.available: "100Mi"
  nodefs.available: "1%%"
  imagefs.available: "1%%"
  nodefs.inodesFree: "1%%"
syncFrequency: 10s
nodeStatusUpdateFrequency: 2s
enableServer: true
`, c.containerd, o.PodCIDR)
	cfgPath := filepath.Join(o.RunDir, "kubelet.yaml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		return err
	}
	return c.start("kubelet", o.Kubelet,
		"--config="+cfgPath, "--kubeconfig="+kubeconfig, "--root-dir="+root,
		"--cert-dir="+filepath.Join(o.RunDir, "kubelet-pki"),
		"--hostname-override="+o.NodeName, "--v=1")
}

func (c *Cluster) start(name, bin string, args ...string) error {
	log, err := os.Create(filepath.Join(c.opts.LogDir, name+".log"))
	if err != nil {
		return err
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = log, log
	// A process group of its own, so Stop reaches whatever it started; and it dies
	// with the test process if that is killed.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		log.Close()
		return fmt.Errorf("starting %s: %w", name, err)
	}
	p := &proc{name: name, cmd: cmd, done: make(chan struct{}), log: log}
	go func() { _ = cmd.Wait(); close(p.done) }()
	c.procs = append(c.procs, p)
	c.opts.Log("started %s (pid %d, log %s)", name, cmd.Process.Pid, log.Name())
	return nil
}

func (c *Cluster) waitNodeReady(ctx context.Context, d time.Duration) error {
	var last string
	err := waitFor(ctx, d, func() bool {
		for _, p := range c.procs {
			select {
			case <-p.done:
				last = p.name + " exited; see " + p.log.Name()
				return true
			default:
			}
		}
		n, err := c.Client.CoreV1().Nodes().Get(ctx, c.opts.NodeName, metav1.GetOptions{})
		if err != nil {
			last = err.Error()
			return false
		}
		for _, cond := range n.Status.Conditions {
			if cond.Type == corev1.NodeReady {
				last = fmt.Sprintf("Ready=%s: %s", cond.Status, cond.Message)
				return cond.Status == corev1.ConditionTrue
			}
		}
		return false
	})
	if err == nil && strings.Contains(last, "exited") {
		err = errors.New(last)
	}
	if err != nil {
		return fmt.Errorf("node %s not Ready: %w (last: %s)", c.opts.NodeName, err, last)
	}
	return nil
}

// Stop tears everything down: Pods (so the kubelet stops their sandboxes and CNI
// releases their addresses), the kubelet, the controllers, what is left in
// containerd, containerd, network namespaces, mounts and cgroups, and the API server.
// It is safe on a half-started cluster.
func (c *Cluster) Stop() {
	o := c.opts
	if c.Client != nil && c.hasProc("kubelet") {
		ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
		c.deleteAllPods(ctx)
		cancel()
	}
	for i := len(c.procs) - 1; i >= 0; i-- {
		p := c.procs[i]
		if p.name == "containerd" {
			c.sweepContainerd()
		}
		stopProc(p, 20*time.Second)
		o.Log("stopped %s", p.name)
	}
	if c.opts.KubeRouter != "" {
		c.stopKubeRouter()
	}
	c.sweepHost()
	if c.env != nil {
		if err := c.env.Stop(); err != nil {
			o.Log("stopping kube-apiserver and etcd: %v", err)
		}
	}
	_ = os.RemoveAll(o.RunDir)
}

func (c *Cluster) hasProc(name string) bool {
	for _, p := range c.procs {
		if p.name == name {
			return true
		}
	}
	return false
}

func (c *Cluster) deleteAllPods(ctx context.Context) {
	nss, err := c.Client.CoreV1().Namespaces().List(ctx, metav1.ListOptions{})
	if err != nil {
		return
	}
	for _, ns := range nss.Items {
		_ = c.Client.CoreV1().Pods(ns.Name).DeleteCollection(ctx, metav1.DeleteOptions{GracePeriodSeconds: ptrInt64(1)}, metav1.ListOptions{})
	}
	_ = waitFor(ctx, 80*time.Second, func() bool {
		pods, err := c.Client.CoreV1().Pods("").List(ctx, metav1.ListOptions{})
		return err == nil && len(pods.Items) == 0
	})
}

func ptrInt64(v int64) *int64 { return &v }

// sweepContainerd kills and removes whatever containers are left (the kubelet is
// stopped by now), so no shim or container process outlives the run.
func (c *Cluster) sweepContainerd() {
	out, err := c.ctr("tasks", "ls", "-q")
	if err == nil {
		for _, id := range strings.Fields(string(out)) {
			_, _ = c.ctr("tasks", "kill", "--signal", "SIGKILL", id)
		}
		for _, id := range strings.Fields(string(out)) {
			for i := 0; i < 20; i++ {
				if _, err := c.ctr("tasks", "delete", "--force", id); err == nil {
					break
				}
				time.Sleep(250 * time.Millisecond)
			}
		}
	}
	if out, err := c.ctr("containers", "ls", "-q"); err == nil {
		for _, id := range strings.Fields(string(out)) {
			_, _ = c.ctr("containers", "delete", id)
		}
	}
}

// sweepHost removes the network namespaces this run made, the bridge, mounts under
// the run directory, and the kubelet's cgroups.
func (c *Cluster) sweepHost() {
	killCgroupTree("/sys/fs/cgroup/pids/kubepods")
	for ns := range netnsSet() {
		if !c.netnsStart[ns] && strings.HasPrefix(ns, "cni-") {
			_ = exec.Command("ip", "netns", "delete", ns).Run()
		}
	}
	_ = exec.Command("ip", "link", "delete", c.opts.Bridge).Run()
	mounts := mountsUnder(c.opts.RunDir)
	for i := len(mounts) - 1; i >= 0; i-- {
		_ = syscall.Unmount(mounts[i], syscall.MNT_DETACH)
	}
	for _, ctrl := range []string{"cpu", "cpuacct", "cpuset", "memory", "devices", "freezer", "blkio", "pids", "systemd", "hugetlb", "net_cls", "net_prio", "perf_event"} {
		removeCgroupTree(filepath.Join("/sys/fs/cgroup", ctrl, "kubepods"))
	}
}

func netnsSet() map[string]bool {
	m := map[string]bool{}
	entries, _ := os.ReadDir("/var/run/netns")
	for _, e := range entries {
		m[e.Name()] = true
	}
	return m
}

func mountsUnder(dir string) []string {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) > 4 && (fields[4] == dir || strings.HasPrefix(fields[4], dir+"/")) {
			out = append(out, fields[4])
		}
	}
	sort.Strings(out)
	return out
}

func removeCgroupTree(dir string) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range entries {
		if e.IsDir() {
			removeCgroupTree(filepath.Join(dir, e.Name()))
		}
	}
	_ = os.Remove(dir)
}

func stopProc(p *proc, grace time.Duration) {
	defer p.log.Close()
	pgid := p.cmd.Process.Pid
	select {
	case <-p.done:
	default:
		_ = syscall.Kill(-pgid, syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(grace):
			_ = syscall.Kill(-pgid, syscall.SIGKILL)
			<-p.done
		}
	}
	_ = syscall.Kill(-pgid, syscall.SIGKILL)
}

func waitFor(ctx context.Context, d time.Duration, ok func() bool) error {
	end := time.Now().Add(d)
	for {
		if ok() {
			return nil
		}
		if time.Now().After(end) {
			return fmt.Errorf("timed out after %s", d)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// Pods lists every Pod of the cluster (for diagnostics).
func (c *Cluster) Pods(ctx context.Context) string {
	pods, err := c.Client.CoreV1().Pods("").List(ctx, metav1.ListOptions{})
	if err != nil {
		return err.Error()
	}
	var b strings.Builder
	for _, p := range pods.Items {
		fmt.Fprintf(&b, "%s/%s %s node=%q ip=%s\n", p.Namespace, p.Name, p.Status.Phase, p.Spec.NodeName, p.Status.PodIP)
	}
	return b.String()
}

// SweepStale cleans up after runs whose process died without Stop (killed test
// binaries): for each directory under parent (one per run, named by the run's pid)
// whose process is gone, it kills the containerd shims that served it and their
// containers, unmounts what is mounted below it and removes it.
func SweepStale(parent string, log func(string, ...any)) {
	entries, err := os.ReadDir(parent)
	if err != nil {
		return
	}
	for _, e := range entries {
		var pid int
		if _, err := fmt.Sscanf(e.Name(), "%d", &pid); err != nil || pid <= 0 {
			continue
		}
		if syscall.Kill(pid, 0) == nil {
			continue // still running
		}
		dir := filepath.Join(parent, e.Name())
		log("sweeping the stale run %s", dir)
		procs, _ := os.ReadDir("/proc")
		for _, p := range procs {
			cmdline, err := os.ReadFile(filepath.Join("/proc", p.Name(), "cmdline"))
			if err != nil {
				continue
			}
			if strings.Contains(string(cmdline), "containerd-shim") && strings.Contains(string(cmdline), dir) {
				var spid int
				if _, err := fmt.Sscanf(p.Name(), "%d", &spid); err == nil {
					// The shim's children are the containers; killing its process
					// group (the shim is a group leader) ends them too.
					_ = syscall.Kill(-spid, syscall.SIGKILL)
					_ = syscall.Kill(spid, syscall.SIGKILL)
				}
			}
		}
		// What is left of the Pods: every process in the kubelet's cgroups (only this
		// suite's kubelet makes "kubepods" on this machine).
		killCgroupTree("/sys/fs/cgroup/pids/kubepods")
		mounts := mountsUnder(dir)
		for i := len(mounts) - 1; i >= 0; i-- {
			_ = syscall.Unmount(mounts[i], syscall.MNT_DETACH)
		}
		_ = os.RemoveAll(dir)
	}
}

func killCgroupTree(dir string) {
	_ = filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || d.Name() != "cgroup.procs" {
			return nil //nolint:nilerr // cgroups vanish while the walk runs: skip what cannot be read
		}
		data, _ := os.ReadFile(path)
		for _, f := range strings.Fields(string(data)) {
			var pid int
			if _, err := fmt.Sscanf(f, "%d", &pid); err == nil && pid > 1 {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		}
		return nil
	})
}
