package artifacts

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"hash/crc32"
)

var pngSignature = []byte("\x89PNG\r\n\x1a\n")

// maxPNGPixels is the hard ceiling on one PNG's width×height, whatever the limits say.
const maxPNGPixels = 100_000_000

// PNG limits applied when Limits leaves them zero. A tiny file can claim a canvas that
// makes a browser allocate gigabytes (a decompression bomb: 97 KB declaring
// 10000×10000). 40 megapixels is above any chart (a 20×20 inch figure at 300 dpi is
// 36 MP); 100 MP bounds all PNGs of one request; and 1000:1 is near deflate's own
// ceiling (about 1032:1), so a legitimate image, even a blank one, stays under it while
// a header that claims far more pixels than its data can hold does not.
const (
	DefaultMaxPNGPixels      = 40_000_000
	DefaultMaxTotalPNGPixels = 100_000_000
	DefaultMaxPNGRatio       = 1000
)

// pngInfo is what checkPNG learns about an image.
type pngInfo struct {
	width, height int64
	decoded       int64 // bytes of filtered scanlines the IDAT stream must inflate to
	compressed    int64 // bytes of IDAT data
}

func (i pngInfo) pixels() int64 { return i.width * i.height }

// checkPNG walks the PNG's chunks: the signature, IHDR first (13 bytes, sane
// dimensions, known bit depth and colour type), every chunk's length within the file and
// its CRC correct, at least one IDAT, and IEND last. It returns the file cut at the end
// of IEND (bytes after it are not part of the image; they are how PNG polyglots smuggle
// other content) and whether anything was cut.
func checkPNG(data []byte) (clean []byte, trimmed bool, err error) {
	clean, trimmed, _, err = inspectPNG(data)
	return clean, trimmed, err
}

// pngWithinLimits applies the per-image pixel and decoded-to-compressed ratio limits.
func pngWithinLimits(info pngInfo, maxPixels, maxRatio int64) error {
	if info.pixels() > maxPixels {
		return fmt.Errorf("the PNG is %d×%d, %d pixels, more than the %d allowed per image; lower the figure's size or dpi",
			info.width, info.height, info.pixels(), maxPixels)
	}
	if info.decoded > maxRatio*max(info.compressed, 1) {
		return fmt.Errorf("the PNG's %d bytes of image data claim %d×%d pixels (%d bytes decoded), more than %d:1: a decompression bomb",
			info.compressed, info.width, info.height, info.decoded, maxRatio)
	}
	return nil
}

func inspectPNG(data []byte) (clean []byte, trimmed bool, info pngInfo, err error) {
	if len(data) < len(pngSignature) || !bytes.Equal(data[:8], pngSignature) {
		return nil, false, info, fmt.Errorf("no PNG signature")
	}
	pos := 8
	sawIDAT := false
	for i := 0; ; i++ {
		if len(data)-pos < 12 {
			return nil, false, info, fmt.Errorf("truncated: chunk %d is cut off at byte %d", i, pos)
		}
		n := binary.BigEndian.Uint32(data[pos:])
		if n > 1<<31-1 || int64(n) > int64(len(data)-pos-12) {
			return nil, false, info, fmt.Errorf("truncated: chunk %d claims %d bytes, %d remain", i, n, len(data)-pos-12)
		}
		typ := string(data[pos+4 : pos+8])
		body := data[pos+8 : pos+8+int(n)]
		sum := binary.BigEndian.Uint32(data[pos+8+int(n):])
		if crc32.ChecksumIEEE(data[pos+4:pos+8+int(n)]) != sum {
			return nil, false, info, fmt.Errorf("chunk %q has a bad CRC", typ)
		}
		for _, c := range []byte(typ) {
			if !isLetter(c) {
				return nil, false, info, fmt.Errorf("chunk %d has an invalid type", i)
			}
		}
		if i == 0 {
			if typ != "IHDR" || n != 13 {
				return nil, false, info, fmt.Errorf("first chunk is %q, not IHDR", typ)
			}
			if err := checkIHDR(body); err != nil {
				return nil, false, info, err
			}
			info = ihdrInfo(body)
		} else if typ == "IHDR" {
			return nil, false, info, fmt.Errorf("second IHDR")
		}
		pos += 12 + int(n)
		switch typ {
		case "IDAT":
			sawIDAT = true
			info.compressed += int64(n)
		case "IEND":
			if !sawIDAT {
				return nil, false, info, fmt.Errorf("no image data (IDAT)")
			}
			return data[:pos], pos != len(data), info, nil
		}
	}
}

// ihdrInfo computes the decoded size from a checked IHDR: one filter byte plus the
// packed pixels per scanline (interlaced images are slightly larger; ignored).
func ihdrInfo(b []byte) pngInfo {
	w := int64(binary.BigEndian.Uint32(b[0:]))
	h := int64(binary.BigEndian.Uint32(b[4:]))
	channels := map[byte]int64{0: 1, 2: 3, 3: 1, 4: 2, 6: 4}[b[9]]
	bits := int64(b[8]) * channels
	return pngInfo{width: w, height: h, decoded: h * (1 + (w*bits+7)/8)}
}

func checkIHDR(b []byte) error {
	w := binary.BigEndian.Uint32(b[0:])
	h := binary.BigEndian.Uint32(b[4:])
	depth, colour := b[8], b[9]
	if w == 0 || h == 0 || w > 1<<31-1 || h > 1<<31-1 {
		return fmt.Errorf("invalid dimensions %dx%d", w, h)
	}
	if uint64(w)*uint64(h) > maxPNGPixels {
		return fmt.Errorf("%dx%d pixels is more than %d", w, h, maxPNGPixels)
	}
	valid := map[byte][]byte{0: {1, 2, 4, 8, 16}, 2: {8, 16}, 3: {1, 2, 4, 8}, 4: {8, 16}, 6: {8, 16}}
	depths, ok := valid[colour]
	if !ok || !bytes.Contains(depths, []byte{depth}) {
		return fmt.Errorf("invalid colour type %d with bit depth %d", colour, depth)
	}
	if b[10] != 0 || b[11] != 0 || b[12] > 1 {
		return fmt.Errorf("invalid compression, filter or interlace method")
	}
	return nil
}
