package pyrunner

import "testing"

func TestTailBuffer(t *testing.T) {
	tests := map[string]struct {
		limit  int
		writes []string
		want   string
	}{
		"under the limit": {limit: 8, writes: []string{"ab", "cd"}, want: "abcd"},
		"keeps the tail":  {limit: 4, writes: []string{"abc", "def"}, want: "cdef"},
		"one big write":   {limit: 3, writes: []string{"abcdefgh"}, want: "fgh"},
		"nothing":         {limit: 3, want: ""},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			b := NewTailBuffer(tc.limit)
			for _, w := range tc.writes {
				if n, err := b.Write([]byte(w)); n != len(w) || err != nil {
					t.Fatalf("Write(%q) = %d, %v", w, n, err)
				}
			}
			if got := b.String(); got != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}
