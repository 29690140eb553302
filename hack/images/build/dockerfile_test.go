package main

import (
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/vizops/viz-operator/internal/sandbox/kubernetes"
)

// TestDockerfileSandboxAgrees reads the real Dockerfile.sandbox as the e2e image
// builder does, and checks it against what the sandbox Pod template expects: a change
// to one that the other does not follow fails here, not in a cluster.
func TestDockerfileSandboxAgrees(t *testing.T) {
	f, err := os.Open("../../../Dockerfile.sandbox")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rec, err := ParseDockerfile(f)
	if err != nil {
		t.Fatalf("hack/images/build cannot reproduce Dockerfile.sandbox: %v", err)
	}
	if rec.AgentPath != kubernetes.AgentBinary {
		t.Errorf("the Dockerfile puts the agent at %s; the Pod template runs %s", rec.AgentPath, kubernetes.AgentBinary)
	}
	if want := strconv.Itoa(kubernetes.SandboxUID); rec.User != want+":"+want {
		t.Errorf("USER %s; the Pod template runs as %s (runAsNonRoot needs a numeric user)", rec.User, want)
	}
	if port := strconv.Itoa(kubernetes.AgentPort) + "/tcp"; !slices.Contains(rec.Exposed, port) {
		t.Errorf("EXPOSE %v lacks the agent's port %s", rec.Exposed, port)
	}
	if len(rec.Entrypoint) == 0 || rec.Entrypoint[0] != kubernetes.AgentBinary {
		t.Errorf("ENTRYPOINT %v does not run %s", rec.Entrypoint, kubernetes.AgentBinary)
	}
	// The pool's default pythonPackages (api/v1alpha1) must all be in the image.
	for _, p := range []string{"matplotlib", "numpy", "pandas", "seaborn", "plotly"} {
		if !slices.Contains(rec.Packages, "python3-"+p) {
			t.Errorf("the image lacks python3-%s, a default pythonPackage", p)
		}
	}
	if rec.Recommends {
		t.Errorf("the Dockerfile installs Recommends; the image is meant to carry only what it names")
	}
	if rec.Suite != "bookworm" {
		t.Errorf("suite %q: the e2e node's sources are bookworm's", rec.Suite)
	}
}

func TestParseDockerfile(t *testing.T) {
	const good = `# syntax=docker/dockerfile:1
ARG GO_VERSION=1.26
FROM golang:${GO_VERSION}-bookworm AS build
RUN go build -o /out/sandbox-agent ./cmd/sandbox-agent
FROM debian:bookworm-slim
RUN apt-get update && \
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      python3 fonts-dejavu-core && \
    rm -rf /var/lib/apt/lists/*
RUN mkdir -p /opt/x
COPY --from=build /out/sandbox-agent /usr/local/bin/sandbox-agent
USER 65532:65532
EXPOSE 49999
ENTRYPOINT ["/usr/local/bin/sandbox-agent", "--listen", ":49999"]
`
	cases := map[string]struct {
		in      string
		want    *Recipe
		wantErr string
	}{
		"the shape of Dockerfile.sandbox": {in: good, want: &Recipe{
			Suite: "bookworm", Packages: []string{"python3", "fonts-dejavu-core"}, Run: []string{"mkdir -p /opt/x"},
			AgentPath: "/usr/local/bin/sandbox-agent", User: "65532:65532",
			Entrypoint: []string{"/usr/local/bin/sandbox-agent", "--listen", ":49999"}, Exposed: []string{"49999/tcp"},
		}},
		"an instruction the builder does not reproduce": {
			in: strings.Replace(good, "USER", "ENV FOO=bar\nUSER", 1), wantErr: "ENV is not reproduced",
		},
		"a base that is not Debian slim": {
			in: strings.Replace(good, "debian:bookworm-slim", "ubuntu:24.04", 1), wantErr: "only debian:<suite>-slim",
		},
		"a RUN step before the apt step": {
			in: strings.Replace(good, "FROM debian:bookworm-slim\n", "FROM debian:bookworm-slim\nRUN echo hi\n", 1), wantErr: "comes before the apt-get install step",
		},
		"a COPY of something else": {
			in: strings.Replace(good, "USER", "COPY extra /extra\nUSER", 1), wantErr: "only COPY --from=build",
		},
		"no agent": {
			in: strings.Replace(good, "COPY --from=build /out/sandbox-agent /usr/local/bin/sandbox-agent\n", "", 1), wantErr: "does not COPY the agent",
		},
		"a shell-form ENTRYPOINT": {
			in: strings.Replace(good, `ENTRYPOINT ["/usr/local/bin/sandbox-agent", "--listen", ":49999"]`, "ENTRYPOINT /usr/local/bin/sandbox-agent", 1), wantErr: "JSON array",
		},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			got, err := ParseDockerfile(strings.NewReader(c.in))
			if c.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), c.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, c.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if d := cmp.Diff(c.want, got); d != "" {
				t.Errorf("recipe (-want +got):\n%s", d)
			}
		})
	}
}
