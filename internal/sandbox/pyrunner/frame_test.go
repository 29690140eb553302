package pyrunner

import (
	"bytes"
	"errors"
	"io"
	"testing"
)

func TestFrames(t *testing.T) {
	var buf bytes.Buffer
	if err := WriteFrame(&buf, map[string]int{"jobs": 3}); err != nil {
		t.Fatal(err)
	}
	if err := WriteFrame(&buf, "second"); err != nil {
		t.Fatal(err)
	}
	wire := buf.Bytes()
	if got := wire[:4]; !bytes.Equal(got, []byte{0, 0, 0, 10}) {
		t.Fatalf("length prefix %v, want big-endian 10", got)
	}
	tests := map[string]struct {
		in      []byte
		limit   int
		want    []string
		wantErr error
	}{
		"two frames":           {in: wire, limit: 64, want: []string{`{"jobs":3}`, `"second"`}, wantErr: io.EOF},
		"over the limit":       {in: wire, limit: 9, wantErr: ErrFrameTooLarge},
		"cut in the header":    {in: wire[:2], limit: 64, wantErr: io.ErrUnexpectedEOF},
		"cut in the body":      {in: wire[:8], limit: 64, wantErr: io.ErrUnexpectedEOF},
		"nothing":              {in: nil, limit: 64, wantErr: io.EOF},
		"exactly at the limit": {in: wire, limit: 10, want: []string{`{"jobs":3}`, `"second"`}, wantErr: io.EOF},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			r := bytes.NewReader(tc.in)
			var got []string
			var err error
			for {
				var f []byte
				if f, err = ReadFrame(r, tc.limit); err != nil {
					break
				}
				got = append(got, string(f))
			}
			if !errors.Is(err, tc.wantErr) {
				t.Errorf("error %v, want %v", err, tc.wantErr)
			}
			if len(got) != len(tc.want) {
				t.Fatalf("frames %q, want %q", got, tc.want)
			}
			for i := range got {
				if got[i] != tc.want[i] {
					t.Errorf("frame %d = %q, want %q", i, got[i], tc.want[i])
				}
			}
		})
	}
}
