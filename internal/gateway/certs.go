package gateway

import (
	"crypto/tls"
	"fmt"
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
