// Command up starts the e2e cluster (test/e2e/cluster) and keeps it until interrupted,
// for looking at it by hand: it prints the admin kubeconfig's path. make e2e does not
// use it; the suite starts its own cluster.
//
//	go run ./hack/e2e/up -kubelet bin/e2e/kubelet -assets bin/e2e/assets ...
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/vizops/viz-operator/test/e2e/cluster"
)

func main() {
	var o cluster.Options
	var images string
	flag.StringVar(&o.Assets, "assets", "bin/e2e/assets", "kube-apiserver and etcd")
	flag.StringVar(&o.Kubelet, "kubelet", "bin/e2e/kubelet", "kubelet binary")
	flag.StringVar(&o.Scheduler, "kube-scheduler", "bin/e2e/kube-scheduler", "kube-scheduler binary (empty: none)")
	flag.StringVar(&o.ControllerManager, "kube-controller-manager", "bin/e2e/kube-controller-manager", "kube-controller-manager binary (empty: none)")
	flag.StringVar(&images, "images", "bin/e2e/images", "directory of pause.tar and sandbox.tar (missing ones are skipped)")
	flag.StringVar(&o.PauseImage, "pause-image", "vizops.local/pause:e2e", "Pod sandbox image")
	flag.StringVar(&o.StateDir, "state-dir", "/var/lib/vizops-e2e", "containerd's root (kept)")
	flag.StringVar(&o.RunDir, "run-dir", fmt.Sprintf("/run/vizops-e2e/%d", os.Getpid()), "this run's files (removed at the end)")
	flag.StringVar(&o.LogDir, "log-dir", "bin/e2e/logs-up", "logs")
	flag.StringVar(&o.NodeName, "node", "vizops-e2e", "node name")
	flag.StringVar(&o.PodCIDR, "pod-cidr", "10.244.77.0/24", "bridge subnet")
	flag.StringVar(&o.Bridge, "bridge", "vizops-e2e0", "bridge name")
	flag.Parse()
	o.CRDs = "config/crd/bases"
	for _, n := range []string{"pause.tar", "sandbox.tar"} {
		if _, err := os.Stat(filepath.Join(images, n)); err == nil {
			o.Images = append(o.Images, filepath.Join(images, n))
		}
	}
	for _, p := range []*string{&o.Scheduler, &o.ControllerManager} {
		if _, err := os.Stat(*p); err != nil {
			*p = ""
		}
	}
	o.Log = func(f string, a ...any) { fmt.Fprintf(os.Stderr, "up: "+f+"\n", a...) }
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	c, err := cluster.Start(ctx, o)
	if err != nil {
		fmt.Fprintln(os.Stderr, "up:", err)
		os.Exit(1)
	}
	fmt.Printf("cluster up; admin kubeconfig: %s (Ctrl-C stops it)\n", c.Kubeconfig)
	<-ctx.Done()
	c.Stop()
}
