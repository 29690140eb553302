package artifacts

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// File is one file to write into an output directory.
type File struct {
	Name string
	Data []byte
}

// ErrFileExists is wrapped by WriteFiles' error when a name is taken and overwrite is off.
var ErrFileExists = errors.New("file exists")

// CheckName accepts the names the operator gives artifacts (Prepare, SafeName): a plain
// file name of [-._a-zA-Z0-9], not starting with a dot, at most MaxNameLen bytes. A
// name from anywhere else (a request's status, a sandbox) is written only if it passes,
// so no name can reach a parent directory, a subdirectory or an absolute path.
func CheckName(name string) error {
	if name == "" || len(name) > MaxNameLen || strings.HasPrefix(name, ".") {
		return fmt.Errorf("artifact name %s is not a plain file name (1 to %d of [-._a-zA-Z0-9], no leading dot)", quoteName(name), MaxNameLen)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return fmt.Errorf("artifact name %s is not a plain file name (1 to %d of [-._a-zA-Z0-9], no leading dot)", quoteName(name), MaxNameLen)
		}
	}
	return nil
}

// WriteFiles writes each file directly in dir, which it creates if missing. Every name
// is checked first (CheckName): nothing is written when one fails. Files are opened
// through an os.Root on dir, so no write leaves it, and a name is never written
// through a symlink: without overwrite an existing entry of that name (a file, a
// directory, a symlink) is an error wrapping ErrFileExists; with overwrite the data
// goes to a new temporary file that is then renamed over the name, which replaces a
// symlink rather than writing through it. It returns the paths written, in order, up
// to the first failure.
func WriteFiles(dir string, files []File, overwrite bool) ([]string, error) {
	for _, f := range files {
		if err := CheckName(f.Name); err != nil {
			return nil, err
		}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, err
	}
	defer root.Close()
	var paths []string
	for _, f := range files {
		if err := writeOne(root, dir, f, overwrite); err != nil {
			return paths, err
		}
		paths = append(paths, filepath.Join(dir, f.Name))
	}
	return paths, nil
}

func writeOne(root *os.Root, dir string, f File, overwrite bool) error {
	target := f.Name
	if overwrite {
		var rnd [6]byte
		_, _ = rand.Read(rnd[:])
		target = ".vizops-" + hex.EncodeToString(rnd[:]) + ".tmp"
	}
	// O_EXCL: an existing name, a dangling or live symlink included, is never opened.
	out, err := root.OpenFile(target, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		if errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("%s already exists in %s: %w", f.Name, dir, ErrFileExists)
		}
		return fmt.Errorf("create %s in %s: %w", target, dir, err)
	}
	_, werr := out.Write(f.Data)
	if cerr := out.Close(); werr == nil {
		werr = cerr
	}
	if werr == nil && overwrite {
		werr = root.Rename(target, f.Name)
	}
	if werr != nil {
		if overwrite {
			_ = root.Remove(target)
		}
		return fmt.Errorf("write %s in %s: %w", f.Name, dir, werr)
	}
	return nil
}
