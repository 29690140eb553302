package e2b_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"testing"
	"time"

	"github.com/vizops/viz-operator/internal/sandbox"
	"github.com/vizops/viz-operator/internal/sandbox/e2b"
)

// TestLiveE2B runs one chart in the real E2B cloud. It needs E2B_API_KEY (and takes
// E2B_API_URL, E2B_DOMAIN and E2B_TEMPLATE when set); it costs a few seconds of one
// sandbox.
func TestLiveE2B(t *testing.T) {
	key := os.Getenv("E2B_API_KEY")
	if key == "" {
		t.Skip("E2B_API_KEY is not set: the live test against the E2B cloud is skipped (set it to run one chart in a real E2B sandbox)")
	}
	env := func(name, def string) string {
		if v := os.Getenv(name); v != "" {
			return v
		}
		return def
	}
	uid := make([]byte, 6)
	_, _ = rand.Read(uid)
	c := e2b.Config{
		APIURL: env("E2B_API_URL", "https://api.e2b.app"), Domain: env("E2B_DOMAIN", "e2b.app"),
		TemplateID: env("E2B_TEMPLATE", "code-interpreter-v1"), APIKey: e2b.APIKey(key), KeySource: "$E2B_API_KEY",
		SandboxTimeout: 60 * time.Second, MaxCreatesPerSecond: 1,
		PoolKey: "live-test/pool", PoolUID: "live-test-" + hex.EncodeToString(uid),
	}
	b := e2b.NewBackend(e2b.Options{})
	p, err := b.NewPool(sandbox.PoolConfig{MinReady: 0, MaxSandboxes: 1, Network: sandbox.NetworkNone}, c)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = p.Close() }()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	res, err := sandbox.Run(ctx, p, "live-test/request", sandbox.Request{
		Code:    "import matplotlib.pyplot as plt\nplt.bar(['a', 'b'], [1, 2])\nplt.title('live')\nplt.show()\nprint('done')",
		Timeout: 60 * time.Second,
		Formats: []sandbox.Format{sandbox.FormatPNG},
	})
	if err != nil {
		t.Fatal(err)
	}
	if !res.Success || res.SandboxID == "" {
		t.Fatalf("the chart did not run: %+v", res.Error)
	}
	var pngs int
	for _, f := range res.Files {
		if f.MIMEType == "image/png" && len(f.Data) > 8 && string(f.Data[1:4]) == "PNG" {
			pngs++
		}
	}
	if pngs != 1 {
		t.Fatalf("want one PNG figure, got %d of %d files (stdout %q)", pngs, len(res.Files), res.Stdout)
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	api := &e2b.Client{APIURL: c.APIURL, APIKey: c.APIKey}
	left, err := api.List(context.Background(), map[string]string{e2b.MetaPoolUID: c.PoolUID})
	if err != nil {
		t.Fatal(err)
	}
	if len(left) != 0 {
		t.Errorf("%d sandbox(es) of the test left running after Close", len(left))
	}
}
