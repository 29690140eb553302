package e2b_test

import (
	"context"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/vizops/viz-operator/internal/sandbox"
	"github.com/vizops/viz-operator/internal/sandbox/e2b"
)

// TestBackendTrustsCABundleFromSSLCertDir: the chart's caBundle mounts a ConfigMap
// (files behind ..data symlinks) and sets SSL_CERT_DIR; the backend's default client
// then trusts a private CA. Go reads the system CAs once per process, so the check
// runs in a child process of this test binary.
func TestBackendTrustsCABundleFromSSLCertDir(t *testing.T) {
	if url := os.Getenv("E2B_CA_CHILD_URL"); url != "" {
		b := e2b.NewBackend(e2b.Options{})
		p, err := b.NewPool(sandbox.PoolConfig{MaxSandboxes: 1}, e2b.Config{APIURL: url, APIKey: testKey, TemplateID: "t", PoolUID: "u", KeySource: "test"})
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = p.Close() }()
		c := &e2b.Client{APIURL: url, APIKey: testKey}
		if _, err := c.List(context.Background(), nil); err != nil {
			t.Fatalf("TLS to the private CA's server: %v", err)
		}
		return
	}
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte("[]"))
	}))
	defer srv.Close()
	// A ConfigMap volume's layout: ca.crt -> ..data/ca.crt, ..data -> ..<timestamp>.
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "..2026_01_01"), 0o755); err != nil {
		t.Fatal(err)
	}
	pemCert := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	if err := os.WriteFile(filepath.Join(dir, "..2026_01_01", "ca.crt"), pemCert, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("..2026_01_01", filepath.Join(dir, "..data")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("..data/ca.crt", filepath.Join(dir, "ca.crt")); err != nil {
		t.Fatal(err)
	}
	child := func(certDir string) error {
		cmd := exec.Command(os.Args[0], "-test.run=^TestBackendTrustsCABundleFromSSLCertDir$", "-test.count=1")
		cmd.Env = append(os.Environ(), "E2B_CA_CHILD_URL="+srv.URL, "SSL_CERT_DIR="+certDir, "SSL_CERT_FILE=/nonexistent")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Logf("child: %s", out)
		}
		return err
	}
	if err := child(t.TempDir()); err == nil {
		t.Fatal("without the bundle the server's certificate should not be trusted: the test proves nothing")
	}
	if err := child(dir + ":/etc/ssl/certs"); err != nil {
		t.Fatalf("with the bundle in SSL_CERT_DIR the backend should trust the server: %v", err)
	}
}
