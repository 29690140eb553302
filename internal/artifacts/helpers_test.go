package artifacts

import (
	"bytes"
	"encoding/xml"
	"errors"
	"image"
	"image/color"
	"image/png"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// debianPython is the system interpreter, which has python3-matplotlib and
// python3-plotly from Debian (the pyenv python3 on PATH does not).
const debianPython = "/usr/bin/python3"

// runPython runs script with args under the Debian interpreter, matplotlib on Agg.
func runPython(t *testing.T, script string, args ...string) {
	t.Helper()
	home := t.TempDir()
	cmd := exec.Command(debianPython, append([]string{"-c", script}, args...)...)
	cmd.Env = append(os.Environ(), "MPLBACKEND=Agg", "HOME="+home, "MPLCONFIGDIR="+filepath.Join(home, "mpl"), "PYTHONDONTWRITEBYTECODE=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s failed: %v\n%s", debianPython, err, out)
	}
}

// makePNG encodes a w×h image filled with c.
func makePNG(t testing.TB, w, h int, c color.Color) []byte {
	t.Helper()
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			img.Set(x, y, c)
		}
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// svgElem is one element of an SVG in document order, for comparing documents.
type svgElem struct {
	Name  string
	Attrs map[string]string // whitespace-normalized values
	Text  string            // direct text, whitespace-normalized
}

// outline parses data strictly as XML and lists its SVG elements (skipping anything
// inside <metadata>, whose RDF the sanitizer drops on purpose). It fails the test when
// data is not well-formed.
func outline(t *testing.T, data []byte) []svgElem {
	t.Helper()
	dec := xml.NewDecoder(bytes.NewReader(data))
	dec.Strict = true
	var (
		out      []svgElem
		stack    []int
		inMeta   int
		metaOpen bool
	)
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("not well-formed XML: %v", err)
		}
		switch tk := tok.(type) {
		case xml.StartElement:
			if metaOpen {
				inMeta++
				stack = append(stack, -1)
				continue
			}
			e := svgElem{Name: tk.Name.Local, Attrs: map[string]string{}}
			for _, a := range tk.Attr {
				if a.Name.Space == "xmlns" || a.Name.Local == "xmlns" {
					continue
				}
				key := a.Name.Local
				if a.Name.Space == xlinkNS {
					key = "xlink:" + key
				}
				e.Attrs[key] = strings.Join(strings.Fields(a.Value), " ")
			}
			out = append(out, e)
			stack = append(stack, len(out)-1)
			if tk.Name.Local == "metadata" {
				metaOpen = true
			}
		case xml.EndElement:
			i := stack[len(stack)-1]
			stack = stack[:len(stack)-1]
			if i == -1 {
				inMeta--
			} else if out[i].Name == "metadata" {
				metaOpen = false
			}
		case xml.CharData:
			if len(stack) > 0 && stack[len(stack)-1] >= 0 {
				i := stack[len(stack)-1]
				out[i].Text = strings.TrimSpace(strings.Join(strings.Fields(out[i].Text+" "+string(tk)), " "))
			}
		}
	}
	return out
}
