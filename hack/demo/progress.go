package main

import (
	"fmt"
	"io"
	"os"

	"github.com/go-logr/logr"
)

// statusLine is one line redrawn in place on a terminal; elsewhere (CI, a pipe) it
// is printed only when its text changes.
type statusLine struct {
	w     io.Writer
	tty   bool
	last  string
	shown bool
}

func newStatusLine(w io.Writer) *statusLine {
	s := &statusLine{w: w}
	if f, ok := w.(*os.File); ok {
		if st, err := f.Stat(); err == nil && st.Mode()&os.ModeCharDevice != 0 {
			s.tty = true
		}
	}
	return s
}

func (s *statusLine) update(text string) {
	if s.tty {
		fmt.Fprintf(s.w, "\r\033[K%s", text)
		s.shown = true
		return
	}
	// Off a terminal the timer would make every poll a new line: compare without it.
	key := text
	if i := len("    [   s]"); len(text) > i {
		key = text[i:]
	}
	if key != s.last {
		s.last = key
		fmt.Fprintln(s.w, text)
	}
}

// println prints a line above the status line.
func (s *statusLine) println(text string) {
	if s.tty && s.shown {
		fmt.Fprint(s.w, "\r\033[K")
		s.shown = false
	}
	fmt.Fprintln(s.w, text)
}

func (s *statusLine) done() {
	if s.tty && s.shown {
		fmt.Fprintln(s.w)
		s.shown = false
	}
}

// discardLogger keeps controller-runtime's client quiet: the demo prints its own story.
func discardLogger() logr.Logger { return logr.Discard() }
