package agent

import (
	"net/http/httptest"
	"os"
	"testing"

	"github.com/vizops/viz-operator/internal/sandbox/codeinterpreter"
)

// workDir makes a work directory under parent that kernels running as nobody can
// enter (t.TempDir's parent is private), removed after the test.
func workDir(t *testing.T, parent, prefix string) string {
	t.Helper()
	work, err := os.MkdirTemp(parent, prefix)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(work) })
	_ = os.Chmod(work, 0o755)
	return work
}

// serve starts an agent with o behind an HTTP test server, both closed after the
// test, and returns it with a client holding o.Token.
func serve(t *testing.T, o Options) (*Server, *codeinterpreter.Client) {
	t.Helper()
	srv, err := NewServer(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	ts := httptest.NewServer(srv)
	t.Cleanup(ts.Close)
	return srv, &codeinterpreter.Client{BaseURL: ts.URL, AccessToken: o.Token}
}
