package gateway

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func writePair(t *testing.T, dir, cn string, mod time.Time) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: cn}, NotBefore: mod, NotAfter: mod.Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, _ := x509.MarshalECPrivateKey(key)
	for name, b := range map[string][]byte{
		"tls.crt": pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		"tls.key": pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}),
	} {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(p, mod, mod); err != nil {
			t.Fatal(err)
		}
	}
}

// TestCertFilesReload: a renewed certificate (cert-manager rewriting the Secret) is
// served without a restart; a half-written pair keeps the last good one.
func TestCertFilesReload(t *testing.T) {
	dir := t.TempDir()
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	writePair(t, dir, "first", base)
	c := &CertFiles{CertFile: filepath.Join(dir, "tls.crt"), KeyFile: filepath.Join(dir, "tls.key")}
	cn := func() string {
		t.Helper()
		cert, err := c.GetCertificate(nil)
		if err != nil {
			t.Fatal(err)
		}
		leaf, err := x509.ParseCertificate(cert.Certificate[0])
		if err != nil {
			t.Fatal(err)
		}
		return leaf.Subject.CommonName
	}
	if got := cn(); got != "first" {
		t.Fatalf("serves %q", got)
	}
	writePair(t, dir, "second", base.Add(time.Minute))
	if got := cn(); got != "second" {
		t.Fatalf("after renewal serves %q", got)
	}
	if err := os.WriteFile(c.KeyFile, []byte("garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	_ = os.Chtimes(c.KeyFile, base.Add(2*time.Minute), base.Add(2*time.Minute))
	if got := cn(); got != "second" {
		t.Fatalf("mid-rotation serves %q", got)
	}
	if _, err := (&CertFiles{CertFile: c.CertFile, KeyFile: c.KeyFile}).GetCertificate(nil); err == nil {
		t.Error("a bad pair at start is not an error")
	}
}

// TestSelfSigned: the certificate verifies against its CA for the names it was made for
// (a wildcard covers a sandbox's host), and for no other.
func TestSelfSigned(t *testing.T) {
	caPEM, certPEM, keyPEM, err := SelfSigned("*.e2b.test", "api.e2b.test")
	if err != nil {
		t.Fatal(err)
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(caPEM) {
		t.Fatal("the CA is not PEM")
	}
	for name, want := range map[string]bool{
		"api.e2b.test":                        true,
		"49999-abcdefghij0123456789.e2b.test": true,
		"e2b.test":                            false,
		"api.other.test":                      false,
	} {
		_, err := leaf.Verify(x509.VerifyOptions{Roots: roots, DNSName: name})
		if (err == nil) != want {
			t.Errorf("%s: verify error %v, want valid %v", name, err, want)
		}
	}
	if _, _, _, err := SelfSigned(); err == nil {
		t.Error("no names: no error")
	}
}
