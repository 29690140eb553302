package artifacts

import (
	"os"
	"testing"
)

// BenchmarkSanitizeSVG measures the committed matplotlib fixture; set VIZOPS_SVG to
// measure another file.
func BenchmarkSanitizeSVG(b *testing.B) {
	path := "testdata/matplotlib-bar.svg"
	if p := os.Getenv("VIZOPS_SVG"); p != "" {
		path = p
	}
	data, err := os.ReadFile(path)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		if _, _, err := sanitizeSVG(data); err != nil {
			b.Fatal(err)
		}
	}
}
