// Package progress draws one status line for the command-line tools: redrawn in place
// on a terminal, and printed only when it says something new elsewhere (CI, a pipe),
// so that a moving timer does not flood logs.
package progress

import (
	"fmt"
	"io"
	"os"
)

// Line is one status line.
type Line struct {
	w     io.Writer
	tty   bool
	last  string
	shown bool
}

// NewLine returns a line writing to w; it redraws in place when w is a terminal.
func NewLine(w io.Writer) *Line {
	l := &Line{w: w}
	if f, ok := w.(*os.File); ok {
		if st, err := f.Stat(); err == nil && st.Mode()&os.ModeCharDevice != 0 {
			l.tty = true
		}
	}
	return l
}

// Update shows text. On a terminal it is redrawn each time (so a timer moves); off a
// terminal it is printed only when key (the text without its timer) changes.
func (l *Line) Update(key, text string) {
	if l.tty {
		fmt.Fprintf(l.w, "\r\033[K%s", text)
		l.shown = true
		return
	}
	if key == l.last {
		return
	}
	l.last = key
	fmt.Fprintln(l.w, text)
}

// Println prints a line above the status line.
func (l *Line) Println(text string) {
	if l.tty && l.shown {
		fmt.Fprint(l.w, "\r\033[K")
		l.shown = false
	}
	fmt.Fprintln(l.w, text)
}

// Done ends the line, so what follows starts on a fresh one.
func (l *Line) Done() {
	if l.tty && l.shown {
		fmt.Fprintln(l.w)
		l.shown = false
	}
}
