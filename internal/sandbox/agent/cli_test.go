package agent

import (
	"os"
	"path/filepath"
	"testing"
)

func TestReadToken(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	tests := map[string]struct {
		path, listen string
		want         string
		wantErr      bool
	}{
		"a Secret's file, newline trimmed":       {path: write("tok", "s3cret\n"), listen: ":49999", want: "s3cret"},
		"no file on loopback (development)":      {listen: "127.0.0.1:49999"},
		"no file on localhost":                   {listen: "localhost:49999"},
		"no file on IPv6 loopback":               {listen: "[::1]:49999"},
		"no file on every address is refused":    {listen: ":49999", wantErr: true},
		"no file on a Pod address is refused":    {listen: "10.0.0.7:49999", wantErr: true},
		"an empty token file is refused":         {path: write("empty", " \n"), listen: ":49999", wantErr: true},
		"a missing token file is refused":        {path: filepath.Join(dir, "missing"), listen: "127.0.0.1:49999", wantErr: true},
		"a malformed listen address is reported": {listen: "49999", wantErr: true},
		"no file on a Unix socket (Local)":       {listen: "unix:/run/vizops/agent.sock"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got, err := readToken(tc.path, tc.listen)
			if (err != nil) != tc.wantErr || got != tc.want {
				t.Errorf("readToken = %q, %v; want %q, error %v", got, err, tc.want, tc.wantErr)
			}
		})
	}
}
