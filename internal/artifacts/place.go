package artifacts

import (
	"fmt"
	"strings"
)

// Storage says where artifacts are kept (the request's spec.artifactStorage).
type Storage string

const (
	// StorageAuto keeps artifacts in status while they total at most InlineLimitBytes,
	// and in a ConfigMap above that.
	StorageAuto Storage = "Auto"
	// StorageStatus always keeps them in status (at most InlineLimitBytes).
	StorageStatus Storage = "Status"
	// StorageConfigMap always keeps them in a ConfigMap (at most ConfigMapBudgetBytes).
	StorageConfigMap Storage = "ConfigMap"
)

const (
	// InlineLimitBytes is the most artifact data (raw bytes) kept in a request's status.
	// Custom resources are stored as JSON, so this is about 342 KiB of base64 in etcd,
	// well inside its 1.5 MiB request limit, and small enough that listing requests
	// stays cheap.
	InlineLimitBytes = 256 << 10
	// ConfigMapLimitBytes is what a ConfigMap holds: the API server refuses a ConfigMap
	// whose data and binaryData values total more than 1 MiB (core.MaxSecretSize).
	ConfigMapLimitBytes = 1 << 20
	// ConfigMapHeadroomBytes is kept free below ConfigMapLimitBytes. The API server
	// counts only values; we also count every key, and leave room for anything else the
	// controller writes into the same ConfigMap (an index, a manifest). Metadata
	// (labels, owner references, managed fields) goes to etcd's 1.5 MiB limit, which a
	// 1 MiB ConfigMap does not approach.
	ConfigMapHeadroomBytes = 32 << 10
	// ConfigMapBudgetBytes is what artifacts may use in one ConfigMap: the sum over
	// artifacts of len(ConfigMapKey) + SizeBytes must be at most this.
	ConfigMapBudgetBytes = ConfigMapLimitBytes - ConfigMapHeadroomBytes
)

// Placement is where Place put the artifacts.
type Placement struct {
	// InStatus is true when the artifacts go in the request's status, false when they
	// go in a ConfigMap (as binaryData under ConfigMapKey(a)).
	InStatus bool
}

// Place decides where arts are stored. It returns a *TooLargeError when they fit
// nowhere storage allows, and a plain error for an unknown storage.
func Place(arts []Artifact, storage Storage) (Placement, error) {
	return PlaceWithin(arts, storage, -1)
}

// PlaceWithin is Place for a status with statusRoom bytes left (-1: no limit beyond
// InlineLimitBytes). Inline data is base64 in the stored object, so it counts 4/3 of
// its size against the room. Auto moves artifacts that would not fit the room to a
// ConfigMap; Status that does not fit is left to the caller's own size check.
func PlaceWithin(arts []Artifact, storage Storage, statusRoom int64) (Placement, error) {
	var total, keys int64
	tooLarge := &TooLargeError{Storage: storage, Count: len(arts), Formats: formatsOf(arts)}
	for _, a := range arts {
		size := a.SizeBytes
		if size == 0 {
			size = int64(len(a.Data))
		}
		total += size
		keys += int64(len(ConfigMapKey(a)))
		if tooLarge.Largest == "" || size > tooLarge.LargestBytes {
			tooLarge.Largest, tooLarge.LargestBytes = a.Name, size
		}
	}
	tooLarge.TotalBytes = total
	// The keys share the ConfigMap's budget with the data.
	cmRoom := ConfigMapBudgetBytes - keys
	fitsStatus := total <= InlineLimitBytes
	fitsCM := total <= cmRoom
	switch storage {
	case StorageAuto, "":
		if fitsStatus && (statusRoom < 0 || (total+2)/3*4 <= statusRoom) {
			return Placement{InStatus: true}, nil
		}
		if fitsCM {
			return Placement{InStatus: false}, nil
		}
		tooLarge.LimitBytes = cmRoom
		return Placement{}, tooLarge
	case StorageStatus:
		if fitsStatus {
			return Placement{InStatus: true}, nil
		}
		tooLarge.LimitBytes, tooLarge.ConfigMapWouldFit = InlineLimitBytes, fitsCM
		return Placement{}, tooLarge
	case StorageConfigMap:
		if fitsCM {
			return Placement{InStatus: false}, nil
		}
		tooLarge.LimitBytes = cmRoom
		return Placement{}, tooLarge
	default:
		return Placement{}, fmt.Errorf("unknown artifact storage %q: use Auto, Status or ConfigMap", storage)
	}
}

func formatsOf(arts []Artifact) []string {
	seen := map[string]bool{}
	var out []string
	for _, a := range arts {
		if !seen[a.Format] {
			seen[a.Format] = true
			out = append(out, a.Format)
		}
	}
	return out
}

// TooLargeError says the artifacts fit nowhere the storage allows.
type TooLargeError struct {
	// Storage is what was asked for.
	Storage Storage
	// Count is the number of artifacts.
	Count int
	// TotalBytes is the artifacts' total size.
	TotalBytes int64
	// LimitBytes is the limit that was exceeded: InlineLimitBytes for status; for a
	// ConfigMap, ConfigMapBudgetBytes less the bytes of the artifacts' keys.
	LimitBytes int64
	// Largest and LargestBytes name the biggest artifact.
	Largest      string
	LargestBytes int64
	// Formats are the artifacts' formats, used for the advice.
	Formats []string
	// ConfigMapWouldFit is set for Storage=Status when a ConfigMap would hold them.
	ConfigMapWouldFit bool
}

// Reason is the condition and Event reason.
func (e *TooLargeError) Reason() string { return "ArtifactTooLarge" }

// Error names the size, the limit and what to do.
func (e *TooLargeError) Error() string {
	total, limit := humanBytes(e.TotalBytes), humanBytes(e.LimitBytes)
	if total == limit {
		total = fmt.Sprintf("%s (%d bytes)", total, e.TotalBytes)
		limit = fmt.Sprintf("%s (%d bytes)", limit, e.LimitBytes)
	}
	what := fmt.Sprintf("the artifacts total %s", total)
	if e.Count == 1 {
		what = fmt.Sprintf("the %s %s is %s", strings.ToUpper(e.Formats[0]), e.Largest, total)
	} else if e.Largest != "" {
		what += fmt.Sprintf(" (largest: %s, %s)", e.Largest, humanBytes(e.LargestBytes))
	}
	if e.Storage == StorageStatus {
		advice := "Set artifactStorage to ConfigMap or Auto"
		if !e.ConfigMapWouldFit {
			advice += fmt.Sprintf(" (a ConfigMap holds %s, so also make the figure smaller: %s)",
				humanBytes(ConfigMapBudgetBytes), strings.ToLower(strings.TrimSuffix(e.shrinkAdvice(), ".")))
		}
		return fmt.Sprintf("%s: %s; status holds at most %s inline. %s.", e.Reason(), what, limit, advice)
	}
	return fmt.Sprintf("%s: %s; a ConfigMap holds %s of artifacts. %s", e.Reason(), what, limit, e.shrinkAdvice())
}

func (e *TooLargeError) shrinkAdvice() string {
	var tips []string
	has := func(f string) bool {
		for _, x := range e.Formats {
			if x == f {
				return true
			}
		}
		return false
	}
	if has(FormatPNG) {
		tips = append(tips, "lower the figure's dpi")
	}
	if has(FormatHTML) {
		tips = append(tips, "load plotly.js from a URL instead of inlining it")
	}
	if len(e.Formats) > 1 {
		tips = append(tips, "ask for fewer formats")
	}
	if has(FormatPNG) && !has(FormatSVG) {
		tips = append(tips, "choose svg")
	}
	if len(tips) == 0 {
		tips = append(tips, "plot fewer points or write smaller files")
	}
	s := strings.Join(tips, ", ")
	if len(tips) > 1 {
		i := strings.LastIndex(s, ", ")
		s = s[:i] + ", or " + s[i+2:]
	}
	return strings.ToUpper(s[:1]) + s[1:] + "."
}

// ConfigMapKey is the artifact's key in a ConfigMap's binaryData: a valid key
// ([-._a-zA-Z0-9]+, at most 253 bytes, not "." or "..", not starting with "..")
// derived from its name. Names made by Prepare are already valid and kept as is.
func ConfigMapKey(a Artifact) string {
	var b strings.Builder
	for _, r := range a.Name {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '_', r == '.':
			b.WriteRune(r)
		default:
			b.WriteByte('_')
		}
	}
	k := b.String()
	for strings.HasPrefix(k, ".") {
		k = "_" + k[1:]
	}
	if k == "" {
		k = "artifact"
	}
	if len(k) > 253 {
		k = k[:253]
	}
	return k
}
