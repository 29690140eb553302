package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/pflag"
	"sigs.k8s.io/controller-runtime/pkg/client"

	vizv1 "github.com/vizops/viz-operator/api/v1alpha1"
	"github.com/vizops/viz-operator/internal/artifacts"
	"github.com/vizops/viz-operator/internal/vizclient"
)

// Every command that writes files (get, create --wait, exec, render) writes them through
// writeOutput: names checked against the operator's rules (artifacts.CheckName), HTML
// pointed at the chosen plotly.js, and one writer (artifacts.WriteFiles) that never
// follows a symlink and never writes outside the output directory.

// plotly.js modes of --plotly-js, besides an http(s) URL.
const (
	plotlyInline = "inline"
	plotlyLocal  = "local"
	plotlyCDN    = "cdn"
)

// plotlyOptions are --plotly-js and --plotly-js-file.
type plotlyOptions struct {
	mode     string
	file     string
	explicit bool // --plotly-js was given: a missing local plotly.js is an error

	lib     []byte // read once, on first need
	libPath string
	libErr  error
}

func (o *plotlyOptions) addFlags(fs *pflag.FlagSet) {
	fs.StringVar(&o.mode, "plotly-js", plotlyLocal, `where HTML charts load plotly.js from: "local" (write `+artifacts.PlotlyJSFile+` beside them), "inline" (embed it), "cdn" (the public CDN, needs internet) or an http(s) URL`)
	fs.StringVar(&o.file, "plotly-js-file", "", "plotly.js to use for local and inline (default: the local plotly installation, e.g. Debian's python3-plotly)")
}

// complete validates the flags; fs is the command's flag set.
func (o *plotlyOptions) complete(fs *pflag.FlagSet) error {
	o.explicit = fs.Changed("plotly-js") || fs.Changed("plotly-js-file")
	switch o.mode {
	case plotlyInline, plotlyLocal, plotlyCDN:
		return nil
	}
	if u, err := url.Parse(o.mode); err == nil && (u.Scheme == "https" || u.Scheme == "http") && u.Host != "" {
		return nil
	}
	return usage("--plotly-js %q: use local, inline, cdn or an absolute http(s) URL", o.mode)
}

func (o *plotlyOptions) library() ([]byte, error) {
	if o.lib == nil && o.libErr == nil {
		o.lib, o.libPath, o.libErr = artifacts.ReadLocalPlotlyJS(o.file)
	}
	return o.lib, o.libErr
}

// apply points each plotly HTML page of files at the chosen plotly.js, adding
// plotly.min.js to files for the local mode. Pages are changed in copies.
func (o *plotlyOptions) apply(files []artifacts.File) ([]artifacts.File, []string, error) {
	out := append(make([]artifacts.File, 0, len(files)+1), files...)
	var warnings []string
	withFile := false
	for i, f := range out {
		if !strings.HasSuffix(f.Name, "."+artifacts.FormatHTML) {
			continue
		}
		loader, ok := artifacts.FindPlotlyJS(f.Data)
		if !ok {
			continue
		}
		var src artifacts.PlotlyJSSource
		switch o.mode {
		case plotlyInline, plotlyLocal:
			lib, err := o.library()
			if err != nil {
				if o.explicit {
					return nil, nil, fmt.Errorf("--plotly-js %s: %v; pass --plotly-js-file PATH, or --plotly-js cdn", o.mode, err)
				}
				where := loader.Src
				if where == "" {
					where = "its inline copy"
				}
				warnings = append(warnings, fmt.Sprintf("%s keeps loading plotly.js from %s (%v; pass --plotly-js-file PATH)", f.Name, where, err))
				continue
			}
			if o.mode == plotlyInline {
				src.Inline = lib
			} else {
				src.File, withFile = artifacts.PlotlyJSFile, true
			}
		case plotlyCDN:
			if strings.HasPrefix(loader.Src, "https://cdn.plot.ly/") {
				continue
			}
			version := loader.Version
			if version == "" {
				if lib, err := o.library(); err == nil {
					version = artifacts.PlotlyJSVersion(lib)
				}
			}
			if version == "" {
				return nil, nil, fmt.Errorf("--plotly-js cdn: %s does not say which plotly.js version it needs; pass --plotly-js with the URL", f.Name)
			}
			src.URL = artifacts.CDNPlotlyJS(version)
		default:
			src.URL = o.mode
		}
		page, _, err := artifacts.SetPlotlyJS(f.Data, src)
		if err != nil {
			return nil, nil, err
		}
		out[i].Data = page
	}
	if withFile {
		out = append(out, artifacts.File{Name: artifacts.PlotlyJSFile, Data: o.lib})
	}
	return out, warnings, nil
}

// written is one file written to the output directory.
type written struct {
	Name      string
	MIMEType  string
	SizeBytes int64
	SHA256    string
	Path      string
}

// writeOutput writes the artifacts (and, for local plotly.js, plotly.min.js) into dir
// and returns what was written, artifacts first. Without overwrite an existing name is
// an error, except a plotly.min.js identical to the one to write.
func writeOutput(dir string, arts []artifacts.Artifact, overwrite bool, plotly *plotlyOptions, warn io.Writer) ([]written, error) {
	files := make([]artifacts.File, len(arts))
	for i, a := range arts {
		if err := artifacts.CheckName(a.Name); err != nil {
			return nil, fmt.Errorf("%v; nothing was written", err)
		}
		files[i] = artifacts.File{Name: a.Name, Data: a.Data}
	}
	files, warnings, err := plotly.apply(files)
	if err != nil {
		return nil, err
	}
	for _, w := range warnings {
		fmt.Fprintln(warn, "warning:", w)
	}
	if !overwrite && len(files) > len(arts) {
		last := files[len(files)-1]
		if fi, err := os.Lstat(filepath.Join(dir, last.Name)); err == nil && fi.Mode().IsRegular() {
			if old, err := os.ReadFile(filepath.Join(dir, last.Name)); err == nil && bytes.Equal(old, last.Data) {
				files = files[:len(files)-1]
			}
		}
	}
	paths, err := artifacts.WriteFiles(dir, files, overwrite)
	out := make([]written, 0, len(paths))
	for i, p := range paths {
		f := files[i]
		sum := sha256.Sum256(f.Data)
		w := written{Name: f.Name, SizeBytes: int64(len(f.Data)), SHA256: hex.EncodeToString(sum[:]), Path: p, MIMEType: "text/javascript"}
		if i < len(arts) {
			w.MIMEType = arts[i].MIMEType
		}
		out = append(out, w)
	}
	if errors.Is(err, artifacts.ErrFileExists) {
		err = fmt.Errorf("%v; remove it, choose another output directory, or pass --overwrite", strings.TrimSuffix(err.Error(), ": "+artifacts.ErrFileExists.Error()))
	}
	return out, err
}

// saveArtifacts downloads every artifact of vr, checks each against its sha256, and
// only then writes them all into dir (replacing files of the same name, never through
// a symlink).
func saveArtifacts(ctx context.Context, c client.Reader, vr *vizv1.VisualizationRequest, dir string, plotly *plotlyOptions, warn io.Writer) ([]written, error) {
	var arts []artifacts.Artifact
	for _, a := range vr.Status.Artifacts {
		data, err := vizclient.ArtifactData(ctx, c, vr.Namespace, a)
		if err != nil {
			return nil, err
		}
		arts = append(arts, artifacts.Artifact{Name: a.Name, Format: a.Format, MIMEType: a.MIMEType, Data: data, SizeBytes: int64(len(data)), SHA256: a.SHA256})
	}
	return writeOutput(dir, arts, true, plotly, warn)
}

func printWritten(w io.Writer, files []written) {
	for _, f := range files {
		fmt.Fprintf(w, "wrote %s (%s, %d bytes, sha256 %s)\n", f.Path, f.MIMEType, f.SizeBytes, shortSum(f.SHA256))
	}
}

func shortSum(s string) string {
	if len(s) > 12 {
		return s[:12]
	}
	return s
}
