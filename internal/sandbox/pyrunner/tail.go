package pyrunner

import "sync"

// TailBuffer keeps the last bytes written to it: a kernel's or the agent's diagnostic
// output, bounded however much it writes.
type TailBuffer struct {
	mu  sync.Mutex
	max int
	buf []byte
}

// NewTailBuffer keeps at most limit bytes.
func NewTailBuffer(limit int) *TailBuffer { return &TailBuffer{max: limit} }

func (t *TailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if len(t.buf) > t.max {
		t.buf = append([]byte(nil), t.buf[len(t.buf)-t.max:]...)
	}
	return len(p), nil
}

func (t *TailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.buf)
}
