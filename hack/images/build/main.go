// Command build makes the e2e cluster's images without a container engine or a
// registry, as OCI archives that `ctr images import` reads:
//
//   - the sandbox image, from Dockerfile.sandbox's own final stage (ParseDockerfile): a
//     Debian root filesystem made by mmdebstrap with the Dockerfile's apt packages and
//     RUN steps (cached by their hash, machine-wide, as it takes minutes), and a layer
//     with the sandbox-agent, built as the Dockerfile's build stage builds it;
//   - the pause image, from hack/images/pause.
//
// Usage: go run ./hack/images/build -out bin/e2e/images
package main

import (
	"crypto/sha256"
	"encoding/hex"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

func main() {
	var (
		dockerfile, out, cache, sources, sandboxName, pauseName string
	)
	flag.StringVar(&dockerfile, "dockerfile", "Dockerfile.sandbox", "the sandbox image's Dockerfile")
	flag.StringVar(&out, "out", "bin/e2e/images", "where the OCI archives go")
	flag.StringVar(&cache, "cache", "/var/cache/vizops-e2e", "machine-wide cache of root filesystems (falls back to -out)")
	flag.StringVar(&sources, "sources", "/etc/apt/sources.list.d/debian.sources", "apt sources for mmdebstrap (this machine's)")
	flag.StringVar(&sandboxName, "sandbox-image", "ghcr.io/vizops/sandbox:e2e", "name of the sandbox image")
	flag.StringVar(&pauseName, "pause-image", "vizops.local/pause:e2e", "name of the pause image")
	flag.Parse()
	if err := run(dockerfile, out, cache, sources, sandboxName, pauseName); err != nil {
		fmt.Fprintln(os.Stderr, "images:", err)
		os.Exit(1)
	}
}

func say(format string, args ...any) { fmt.Fprintf(os.Stderr, "images: "+format+"\n", args...) }

func run(dockerfile, out, cache, sources, sandboxName, pauseName string) error {
	f, err := os.Open(dockerfile)
	if err != nil {
		return err
	}
	rec, err := ParseDockerfile(f)
	f.Close()
	if err != nil {
		return fmt.Errorf("%s: %w", dockerfile, err)
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	if err := os.MkdirAll(cache, 0o755); err != nil {
		cache = out
	}
	src, err := os.ReadFile(sources)
	if err != nil {
		return fmt.Errorf("apt sources: %w", err)
	}
	rootfs, err := debianRootfs(rec, cache, sources, src)
	if err != nil {
		return err
	}
	base, err := fileLayer(rootfs)
	if err != nil {
		return err
	}

	agent := filepath.Join(out, "sandbox-agent")
	// As the Dockerfile's build stage: static, trimmed, stripped.
	if err := goBuild(agent, "./cmd/sandbox-agent"); err != nil {
		return err
	}
	agentLayer, err := writeFilesLayer(filepath.Join(out, "agent-layer.tar"), []fileEntry{
		{path: strings.TrimPrefix(rec.AgentPath, "/"), src: agent, mode: 0o755},
	})
	if err != nil {
		return err
	}
	cfg := ImageConfig{
		User:       rec.User,
		Env:        []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"},
		Entrypoint: rec.Entrypoint,
		WorkingDir: "/",
	}
	if len(rec.Exposed) > 0 {
		cfg.ExposedPorts = map[string]struct{}{}
		for _, p := range rec.Exposed {
			cfg.ExposedPorts[p] = struct{}{}
		}
	}
	d, err := writeOCIArchive(filepath.Join(out, "sandbox.tar"), sandboxName, cfg, []layer{base, agentLayer})
	if err != nil {
		return err
	}
	say("%s %s -> %s", sandboxName, d, filepath.Join(out, "sandbox.tar"))

	pause := filepath.Join(out, "pause")
	if err := goBuild(pause, "./hack/images/pause"); err != nil {
		return err
	}
	pauseLayer, err := writeFilesLayer(filepath.Join(out, "pause-layer.tar"), []fileEntry{{path: "pause", src: pause, mode: 0o755}})
	if err != nil {
		return err
	}
	d, err = writeOCIArchive(filepath.Join(out, "pause.tar"), pauseName, ImageConfig{User: "65535:65535", Entrypoint: []string{"/pause"}}, []layer{pauseLayer})
	if err != nil {
		return err
	}
	say("%s %s -> %s", pauseName, d, filepath.Join(out, "pause.tar"))
	return nil
}

func goBuild(out, pkg string) error {
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w", "-o", out, pkg)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("go build %s: %w", pkg, err)
	}
	return nil
}

// debianRootfs is the path of a tar of the recipe's Debian root filesystem, made with
// mmdebstrap when the cache lacks it (a few minutes: apt downloads and unpacks the
// packages).
func debianRootfs(rec *Recipe, cache, sourcesPath string, sources []byte) (string, error) {
	h := sha256.New()
	fmt.Fprintf(h, "suite=%s\nrecommends=%t\npackages=%q\nrun=%q\nsources=%s\n", rec.Suite, rec.Recommends, rec.Packages, rec.Run, sources)
	key := hex.EncodeToString(h.Sum(nil))[:16]
	path := filepath.Join(cache, "sandbox-rootfs-"+key+".tar")
	if _, err := os.Stat(path); err == nil {
		say("Debian root filesystem from the cache: %s", path)
		return path, nil
	}
	if _, err := exec.LookPath("mmdebstrap"); err != nil {
		return "", fmt.Errorf("mmdebstrap is not installed (apt-get install mmdebstrap)")
	}
	say("first run: building the Debian %s root filesystem with mmdebstrap (%d packages; a few minutes)", rec.Suite, len(rec.Packages))
	started := time.Now()
	// As the Dockerfile's apt-get install: mmdebstrap installs Recommends by default
	// (with them, gcc and the boost headers make the image 1.4 GB).
	args := []string{"--variant=minbase", "--mode=root", "--format=tar", fmt.Sprintf("--aptopt=APT::Install-Recommends \"%t\"", rec.Recommends),
		"--include=" + strings.Join(rec.Packages, ",")}
	for _, r := range rec.Run {
		args = append(args, "--customize-hook=chroot \"$1\" sh -ec "+shellQuote(r))
	}
	tmp := strings.TrimSuffix(path, ".tar") + ".partial.tar"
	args = append(args, rec.Suite, tmp, sourcesPath)
	cmd := exec.Command("mmdebstrap", args...)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		os.Remove(tmp)
		return "", fmt.Errorf("mmdebstrap: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return "", err
	}
	say("root filesystem built in %s: %s", time.Since(started).Round(time.Second), path)
	return path, nil
}

func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }
