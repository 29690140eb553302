package e2e

import (
	"context"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	vizv1 "github.com/vizops/viz-operator/api/v1alpha1"
	"github.com/vizops/viz-operator/test/conformance"
)

// agentLoopback is where E2B's SDK in debug mode looks for the code interpreter; it
// cannot be changed, so the spec forwards it to the sandbox Pod's IP.
const agentLoopback = "127.0.0.1:49999"

var _ = Describe("E2B's official client against a real sandbox Pod", Label("e2e"), func() {
	It("passes test/conformance's checks through a warm Pod of a pool", func(ctx SpecContext) {
		node, dir := e2bJSClient()
		ns := newNamespace(ctx)
		pool := createKubernetesPool(ctx, ns, "conformance", sandboxImage, poolOptions{minReady: 1, maxSandboxes: 1})
		pod := waitPoolReady(ctx, pool, 1)[0]
		// The pool's token, from the Secret the manager made for it (the only Secret
		// with the pool's label).
		var secrets corev1.SecretList
		Expect(k8sClient.List(ctx, &secrets, client.InNamespace(ns),
			client.MatchingLabels{vizv1.LabelSandboxPoolUID: string(pool.UID)})).To(Succeed())
		Expect(secrets.Items).To(HaveLen(1))
		token := strings.TrimSpace(string(secrets.Items[0].Data["token"]))
		Expect(token).NotTo(BeEmpty())

		stop := forward(ctx, agentLoopback, net.JoinHostPort(pod.Status.PodIP, "49999"))
		defer stop()
		cctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
		defer cancel()
		run := exec.CommandContext(cctx, node, "conformance.mjs")
		run.Dir = dir
		run.Env = append(os.Environ(), "VIZOPS_AGENT_TOKEN="+token, "E2B_DEBUG=", "E2B_SANDBOX_URL=")
		out, err := run.CombinedOutput()
		GinkgoWriter.Printf("conformance.mjs against Pod %s (%s):\n%s\n", pod.Name, pod.Status.PodIP, out)
		Expect(err).NotTo(HaveOccurred(), "E2B's JS client failed against the sandbox Pod; see the FAIL lines")
		passed, _ := conformance.ParseOutput(out)
		Expect(passed).To(Equal(8))
	})
})

// e2bJSClient is node and the folder of test/conformance's scripts with E2B's official
// JS client (@e2b/code-interpreter, pinned there) installed.
func e2bJSClient() (node, dir string) {
	node, err := exec.LookPath("node")
	Expect(err).NotTo(HaveOccurred(), "node is needed (make conformance-deps)")
	dir = filepath.Join(root, "test", "conformance", "e2b-js")
	_, err = os.Stat(filepath.Join(dir, "node_modules", "@e2b", "code-interpreter"))
	Expect(err).NotTo(HaveOccurred(), "E2B's JS client is not installed: make conformance-deps")
	return node, dir
}

// forward listens on from (loopback) and copies each connection to to (a Pod IP on
// the cluster's bridge). The address may be taken for a while by another test run
// on this machine; it is retried for a minute.
func forward(ctx context.Context, from, to string) (stop func()) {
	var ln net.Listener
	Eventually(func() error {
		var err error
		ln, err = net.Listen("tcp", from)
		return err
	}).WithContext(ctx).WithTimeout(time.Minute).WithPolling(time.Second).Should(Succeed(), "%s is in use", from)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				up, err := net.DialTimeout("tcp", to, 5*time.Second)
				if err != nil {
					return
				}
				defer up.Close()
				done := make(chan struct{}, 2)
				go func() { _, _ = io.Copy(up, c); closeWrite(up); done <- struct{}{} }()
				go func() { _, _ = io.Copy(c, up); closeWrite(c); done <- struct{}{} }()
				<-done
				<-done
			}()
		}
	}()
	return func() { _ = ln.Close() }
}

func closeWrite(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.CloseWrite()
	}
}
