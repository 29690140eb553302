package sandbox

import (
	"errors"
	"fmt"
)

// ErrInvalidSize is returned by Pool.Resize (and a backend's NewPool) for a size no
// pool can have. The pool keeps its old size.
var ErrInvalidSize = errors.New("invalid pool size")

// ValidSize checks a pool size: 0 <= minReady <= maxSandboxes and maxSandboxes >= 1.
// Every backend rejects what it rejects, and clamps nothing.
func ValidSize(minReady, maxSandboxes int) error {
	if minReady < 0 || maxSandboxes < 1 || minReady > maxSandboxes {
		return fmt.Errorf("%w: minReady %d, maxSandboxes %d (want 0 <= minReady <= maxSandboxes, maxSandboxes >= 1)", ErrInvalidSize, minReady, maxSandboxes)
	}
	return nil
}
