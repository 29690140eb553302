package artifacts

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestCheckName(t *testing.T) {
	tests := map[string]struct {
		name string
		ok   bool
	}{
		"figure":              {name: "figure_1.png", ok: true},
		"plotly json":         {name: "plotly_1.plotly.json", ok: true},
		"dashes":              {name: "a-b.svg", ok: true},
		"longest":             {name: strings.Repeat("a", MaxNameLen-4) + ".png", ok: true},
		"too long":            {name: strings.Repeat("a", MaxNameLen-3) + ".png"},
		"empty":               {name: ""},
		"parent":              {name: ".."},
		"dot":                 {name: "."},
		"hidden":              {name: ".bashrc"},
		"traversal":           {name: "../../etc/passwd"},
		"subdirectory":        {name: "outputs/a.txt"},
		"absolute":            {name: "/etc/passwd"},
		"backslash":           {name: `..\evil.png`},
		"NUL":                 {name: "a\x00.png"},
		"space":               {name: "a b.png"},
		"unicode":             {name: "café.png"},
		"newline":             {name: "a\n.png"},
		"windows drive":       {name: "C:x.png"},
		"trailing slash only": {name: "x/"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if err := CheckName(tc.name); (err == nil) != tc.ok {
				t.Errorf("CheckName(%q) = %v, want ok %v", tc.name, err, tc.ok)
			}
		})
	}
}

// SafeName's output always passes CheckName: the writer accepts what Prepare makes.
func TestSafeNamePassesCheckName(t *testing.T) {
	for _, in := range []string{"../../etc/passwd", ".bashrc", "a b/c d.png", strings.Repeat("x", 500), "", "..", "é.svg", `C:\tmp\x.csv`} {
		for _, format := range []string{FormatPNG, FormatSVG, FormatHTML, FormatPlotly, FormatCSV} {
			if n := SafeName(in, format); CheckName(n) != nil {
				t.Errorf("SafeName(%q, %s) = %q fails CheckName: %v", in, format, n, CheckName(n))
			}
		}
	}
}

func TestWriteFiles(t *testing.T) {
	// setup makes base/out holding the user's own file, a symlink to a file outside
	// (victim), a symlink to a directory outside (sibling), a dangling symlink and a
	// subdirectory.
	setup := func(t *testing.T) (out, victim, sibling string) {
		base := t.TempDir()
		out, victim, sibling = filepath.Join(base, "out"), filepath.Join(base, "victim.txt"), filepath.Join(base, "sibling")
		for _, d := range []string{out, sibling, filepath.Join(out, "subdir.png")} {
			if err := os.MkdirAll(d, 0o755); err != nil {
				t.Fatal(err)
			}
		}
		for path, data := range map[string]string{victim: "untouched", filepath.Join(out, "mine.png"): "mine"} {
			if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		for link, target := range map[string]string{"link.png": victim, "dir.png": sibling, "dangling.png": filepath.Join(base, "nowhere")} {
			if err := os.Symlink(target, filepath.Join(out, link)); err != nil {
				t.Fatal(err)
			}
		}
		return out, victim, sibling
	}
	tests := map[string]struct {
		files     []File
		overwrite bool
		wantErr   string
		exists    bool   // the error wraps ErrFileExists
		wantPaths int    // written before the error
		regular   string // a name that must be a regular file holding "new" afterwards
	}{
		"a new file":                         {files: []File{{"new.png", []byte("new")}}, wantPaths: 1, regular: "new.png"},
		"an existing file, kept":             {files: []File{{"new.png", []byte("new")}, {"mine.png", []byte("new")}}, wantErr: "mine.png already exists", exists: true, wantPaths: 1},
		"an existing file, replaced":         {files: []File{{"mine.png", []byte("new")}}, overwrite: true, wantPaths: 1, regular: "mine.png"},
		"a symlink to a file, kept":          {files: []File{{"link.png", []byte("new")}}, wantErr: "link.png already exists", exists: true},
		"a symlink to a file, replaced":      {files: []File{{"link.png", []byte("new")}}, overwrite: true, wantPaths: 1, regular: "link.png"},
		"a symlink to a directory, kept":     {files: []File{{"dir.png", []byte("new")}}, wantErr: "dir.png already exists", exists: true},
		"a symlink to a directory, replaced": {files: []File{{"dir.png", []byte("new")}}, overwrite: true, wantPaths: 1, regular: "dir.png"},
		"a dangling symlink, kept":           {files: []File{{"dangling.png", []byte("new")}}, wantErr: "dangling.png already exists", exists: true},
		"a dangling symlink, replaced":       {files: []File{{"dangling.png", []byte("new")}}, overwrite: true, wantPaths: 1, regular: "dangling.png"},
		"a directory is never replaced":      {files: []File{{"subdir.png", []byte("new")}}, overwrite: true, wantErr: "write subdir.png"},
		"traversal writes nothing":           {files: []File{{"ok.png", []byte("new")}, {"../victim.txt", []byte("new")}}, overwrite: true, wantErr: "not a plain file name"},
		"an absolute path writes nothing":    {files: []File{{"/tmp/x.png", []byte("new")}}, wantErr: "not a plain file name"},
		"through a symlinked directory":      {files: []File{{"dir.png/x.png", []byte("new")}}, overwrite: true, wantErr: "not a plain file name"},
		"a hidden name":                      {files: []File{{".profile", []byte("new")}}, wantErr: "not a plain file name"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			out, victim, sibling := setup(t)
			paths, err := WriteFiles(out, tc.files, tc.overwrite)
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("error %v", err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Fatalf("error %v, want %q", err, tc.wantErr)
			case errors.Is(err, ErrFileExists) != tc.exists:
				t.Errorf("errors.Is(%v, ErrFileExists) = %v", err, !tc.exists)
			}
			if len(paths) != tc.wantPaths {
				t.Errorf("paths %v, want %d", paths, tc.wantPaths)
			}
			for _, p := range paths {
				if filepath.Dir(p) != out {
					t.Errorf("%s is not directly in %s", p, out)
				}
			}
			if b, _ := os.ReadFile(victim); string(b) != "untouched" {
				t.Errorf("a write went through a symlink: the victim holds %q", b)
			}
			if entries, _ := os.ReadDir(sibling); len(entries) != 0 {
				t.Errorf("a write went through the directory symlink: %v", entries)
			}
			if tc.regular != "" {
				fi, err := os.Lstat(filepath.Join(out, tc.regular))
				if b, _ := os.ReadFile(filepath.Join(out, tc.regular)); err != nil || !fi.Mode().IsRegular() || string(b) != "new" {
					t.Errorf("%s: %v %v %q, want a regular file holding new", tc.regular, fi, err, b)
				}
			}
			if tmp, _ := filepath.Glob(filepath.Join(out, ".vizops-*")); len(tmp) != 0 {
				t.Errorf("temporary files left: %v", tmp)
			}
		})
	}

	t.Run("the directory is created", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "a", "b")
		paths, err := WriteFiles(dir, []File{{"x.csv", []byte("a\n")}}, false)
		if err != nil || cmp.Diff([]string{filepath.Join(dir, "x.csv")}, paths) != "" {
			t.Errorf("%v %v", paths, err)
		}
	})
}
