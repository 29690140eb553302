package artifacts

import (
	"os"
	"strings"
	"testing"
)

// FuzzSanitizeSVG: whatever the input, the sanitizer either refuses it or returns
// well-formed XML with no active content, and sanitizing that again changes nothing.
// `go test` runs the seeds; `go test -fuzz FuzzSanitizeSVG` explores further.
func FuzzSanitizeSVG(f *testing.F) {
	for _, s := range svgAttacks {
		f.Add(strings.ReplaceAll(strings.ReplaceAll(s, "MARK", "alert(1)"), "LEAK", "https://evil.example/x"))
	}
	f.Add(useBomb(3))
	if chart, err := os.ReadFile("testdata/matplotlib-bar.svg"); err == nil {
		f.Add(string(chart))
	}
	f.Add(`<svg xmlns="http://www.w3.org/2000/svg"><style>*{fill: url(#a)} a{x:y}</style><g style="fill: rgb(1,2,3); font: 10px 'A'"/></svg>`)
	f.Fuzz(func(t *testing.T, in string) {
		out, _, err := sanitizeSVG([]byte(in))
		if err != nil {
			return
		}
		outline(t, out)
		assertNoActiveContent(t, out)
		again, removed, err := sanitizeSVG(out)
		if err != nil {
			t.Fatalf("sanitized output refused: %v\n%s", err, out)
		}
		if string(again) != string(out) || len(removed) != 0 {
			t.Fatalf("not idempotent (removed %v):\n%s\n%s", removed, out, again)
		}
	})
}
