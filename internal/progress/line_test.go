package progress

import (
	"bytes"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestLineOffTerminalPrintsOnlyNews(t *testing.T) {
	var buf bytes.Buffer
	l := NewLine(&buf)
	l.Update("Queued 1", "[1s] Queued 1")
	l.Update("Queued 1", "[2s] Queued 1") // only the timer moved
	l.Update("Running", "[3s] Running")
	l.Println("done: ok")
	l.Done()
	want := "[1s] Queued 1\n[3s] Running\ndone: ok\n"
	if diff := cmp.Diff(want, buf.String()); diff != "" {
		t.Fatalf("output (-want +got):\n%s", diff)
	}
}

func TestLineOnTerminalRedraws(t *testing.T) {
	var buf bytes.Buffer
	l := &Line{w: &buf, tty: true}
	l.Update("a", "one")
	l.Update("a", "two")
	l.Println("above")
	l.Update("b", "three")
	l.Done()
	want := "\r\033[Kone\r\033[Ktwo\r\033[Kabove\n\r\033[Kthree\n"
	if diff := cmp.Diff(want, buf.String()); diff != "" {
		t.Fatalf("output (-want +got):\n%q", diff)
	}
}
