package main

import (
	"archive/tar"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"runtime"
	"time"
)

// layer is an uncompressed layer tar on disk and its digest (also its diff ID).
type layer struct {
	path   string
	digest string
	size   int64
}

func fileLayer(path string) (layer, error) {
	f, err := os.Open(path)
	if err != nil {
		return layer{}, err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return layer{}, err
	}
	return layer{path: path, digest: "sha256:" + hex.EncodeToString(h.Sum(nil)), size: n}, nil
}

// fileEntry is one file of a small layer made here.
type fileEntry struct {
	path string // inside the image, without a leading slash
	src  string // on this machine
	mode int64
}

// writeFilesLayer writes a layer of the given files (owned by root) and their parent
// directories, with a fixed time so the same input gives the same digest.
func writeFilesLayer(out string, files []fileEntry) (layer, error) {
	f, err := os.Create(out)
	if err != nil {
		return layer{}, err
	}
	defer f.Close()
	tw := tar.NewWriter(f)
	epoch := time.Unix(0, 0)
	dirs := map[string]bool{}
	for _, e := range files {
		var parents []string
		for d := dirOf(e.path); d != ""; d = dirOf(d) {
			parents = append([]string{d}, parents...)
		}
		for _, d := range parents {
			if dirs[d] {
				continue
			}
			dirs[d] = true
			if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: d + "/", Mode: 0o755, ModTime: epoch, Format: tar.FormatPAX}); err != nil {
				return layer{}, err
			}
		}
		src, err := os.Open(e.src)
		if err != nil {
			return layer{}, err
		}
		st, err := src.Stat()
		if err == nil {
			err = tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: e.path, Mode: e.mode, Size: st.Size(), ModTime: epoch, Format: tar.FormatPAX})
		}
		if err == nil {
			_, err = io.Copy(tw, src)
		}
		src.Close()
		if err != nil {
			return layer{}, err
		}
	}
	if err := tw.Close(); err != nil {
		return layer{}, err
	}
	if err := f.Close(); err != nil {
		return layer{}, err
	}
	return fileLayer(out)
}

func dirOf(p string) string {
	for i := len(p) - 1; i >= 0; i-- {
		if p[i] == '/' {
			return p[:i]
		}
	}
	return ""
}

// ImageConfig is the part of an OCI image config the sandbox and pause images set.
type ImageConfig struct {
	User         string              `json:"User,omitempty"`
	Env          []string            `json:"Env,omitempty"`
	Entrypoint   []string            `json:"Entrypoint,omitempty"`
	ExposedPorts map[string]struct{} `json:"ExposedPorts,omitempty"`
	WorkingDir   string              `json:"WorkingDir,omitempty"`
}

type descriptor struct {
	MediaType   string            `json:"mediaType"`
	Digest      string            `json:"digest"`
	Size        int64             `json:"size"`
	Annotations map[string]string `json:"annotations,omitempty"`
	Platform    *platform         `json:"platform,omitempty"`
}

type platform struct {
	Architecture string `json:"architecture"`
	OS           string `json:"os"`
}

// writeOCIArchive writes an OCI image layout as a tar (what `ctr images import`
// reads), naming the image name (the io.containerd.image.name annotation).
func writeOCIArchive(out, name string, cfg ImageConfig, layers []layer) (string, error) {
	diffIDs := make([]string, len(layers))
	for i, l := range layers {
		diffIDs[i] = l.digest
	}
	config, err := json.Marshal(map[string]any{
		"architecture": runtime.GOARCH,
		"os":           "linux",
		"config":       cfg,
		"rootfs":       map[string]any{"type": "layers", "diff_ids": diffIDs},
	})
	if err != nil {
		return "", err
	}
	blob := func(b []byte) (string, []byte) {
		s := sha256.Sum256(b)
		return "sha256:" + hex.EncodeToString(s[:]), b
	}
	cfgDigest, _ := blob(config)
	var lds []descriptor
	for _, l := range layers {
		lds = append(lds, descriptor{MediaType: "application/vnd.oci.image.layer.v1.tar", Digest: l.digest, Size: l.size})
	}
	manifest, err := json.Marshal(map[string]any{
		"schemaVersion": 2,
		"mediaType":     "application/vnd.oci.image.manifest.v1+json",
		"config":        descriptor{MediaType: "application/vnd.oci.image.config.v1+json", Digest: cfgDigest, Size: int64(len(config))},
		"layers":        lds,
	})
	if err != nil {
		return "", err
	}
	mDigest, _ := blob(manifest)
	tag := name
	if i := lastIndexByte(name, ':'); i > lastIndexByte(name, '/') {
		tag = name[i+1:]
	}
	index, err := json.Marshal(map[string]any{
		"schemaVersion": 2,
		"mediaType":     "application/vnd.oci.image.index.v1+json",
		"manifests": []descriptor{{
			MediaType: "application/vnd.oci.image.manifest.v1+json", Digest: mDigest, Size: int64(len(manifest)),
			Annotations: map[string]string{"io.containerd.image.name": name, "org.opencontainers.image.ref.name": tag},
			Platform:    &platform{Architecture: runtime.GOARCH, OS: "linux"},
		}},
	})
	if err != nil {
		return "", err
	}

	f, err := os.Create(out)
	if err != nil {
		return "", err
	}
	defer f.Close()
	tw := tar.NewWriter(f)
	epoch := time.Unix(0, 0)
	put := func(path string, b []byte) error {
		if err := tw.WriteHeader(&tar.Header{Name: path, Mode: 0o644, Size: int64(len(b)), ModTime: epoch}); err != nil {
			return err
		}
		_, err := tw.Write(b)
		return err
	}
	blobPath := func(d string) string { return "blobs/sha256/" + d[len("sha256:"):] }
	if err := put("oci-layout", []byte(`{"imageLayoutVersion":"1.0.0"}`)); err != nil {
		return "", err
	}
	if err := put("index.json", index); err != nil {
		return "", err
	}
	if err := put(blobPath(mDigest), manifest); err != nil {
		return "", err
	}
	if err := put(blobPath(cfgDigest), config); err != nil {
		return "", err
	}
	seen := map[string]bool{}
	for _, l := range layers {
		if seen[l.digest] {
			continue
		}
		seen[l.digest] = true
		src, err := os.Open(l.path)
		if err != nil {
			return "", err
		}
		err = tw.WriteHeader(&tar.Header{Name: blobPath(l.digest), Mode: 0o644, Size: l.size, ModTime: epoch})
		if err == nil {
			_, err = io.Copy(tw, src)
		}
		src.Close()
		if err != nil {
			return "", fmt.Errorf("writing layer %s: %w", l.path, err)
		}
	}
	if err := tw.Close(); err != nil {
		return "", err
	}
	return mDigest, f.Close()
}

func lastIndexByte(s string, c byte) int {
	for i := len(s) - 1; i >= 0; i-- {
		if s[i] == c {
			return i
		}
	}
	return -1
}
