package gateway

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"os"
	"sync"
	"time"
)

// CertFiles serves a certificate from files (a mounted kubernetes.io/tls Secret, as
// cert-manager writes it) and reads them again when they change, so a renewed
// certificate is used without a restart.
type CertFiles struct {
	CertFile, KeyFile string

	mu      sync.Mutex
	cert    *tls.Certificate
	modTime time.Time
}

// GetCertificate is tls.Config's GetCertificate.
func (c *CertFiles) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	mod := latestModTime(c.CertFile, c.KeyFile)
	if c.cert != nil && !mod.After(c.modTime) {
		return c.cert, nil
	}
	cert, err := tls.LoadX509KeyPair(c.CertFile, c.KeyFile)
	if err != nil {
		if c.cert != nil {
			return c.cert, nil // mid-rotation (one file new, one old): keep the last good pair
		}
		return nil, fmt.Errorf("load the TLS certificate %s and key %s: %w", c.CertFile, c.KeyFile, err)
	}
	c.cert, c.modTime = &cert, mod
	return c.cert, nil
}

func latestModTime(files ...string) time.Time {
	var t time.Time
	for _, f := range files {
		if st, err := os.Stat(f); err == nil && st.ModTime().After(t) {
			t = st.ModTime()
		}
	}
	return t
}

// SelfSigned makes a CA of its own and a server certificate for names (the first is
// its subject; wildcards such as "*.<domain>" allowed) signed by it, valid for a day,
// as PEM: what a gateway serves where no cert-manager issues one (the tests; a first
// try). The clients must trust caPEM (Node: NODE_EXTRA_CA_CERTS).
func SelfSigned(names ...string) (caPEM, certPEM, keyPEM []byte, err error) {
	if len(names) == 0 {
		return nil, nil, nil, fmt.Errorf("a certificate needs at least one name")
	}
	now := time.Now()
	ca, caKey, err := sign(&x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "vizops gateway self-signed CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}, nil, nil)
	if err != nil {
		return nil, nil, nil, err
	}
	leaf, key, err := sign(&x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: names[0]}, DNSNames: names,
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}, ca, caKey)
	if err != nil {
		return nil, nil, nil, err
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.Raw}),
		pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: leaf.Raw}),
		pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), nil
}

// sign makes a P-256 key and the certificate tmpl for it, signed by parent's key, or
// by its own when parent is nil (a self-signed CA).
func sign(tmpl, parent *x509.Certificate, parentKey *ecdsa.PrivateKey) (*x509.Certificate, *ecdsa.PrivateKey, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	if parent == nil {
		parent, parentKey = tmpl, key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, parentKey)
	if err != nil {
		return nil, nil, err
	}
	cert, err := x509.ParseCertificate(der)
	return cert, key, err
}
