package artifacts

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"hash/crc32"
)

var pngSignature = []byte("\x89PNG\r\n\x1a\n")

// maxPNGPixels bounds width×height so a tiny file cannot claim a canvas that makes a
// browser allocate gigabytes (a decompression bomb): 100 megapixels is far beyond any
// chart (a 20×20 inch figure at 300 dpi is 36 MP).
const maxPNGPixels = 100_000_000

// checkPNG walks the PNG's chunks: the signature, IHDR first (13 bytes, sane
// dimensions, known bit depth and colour type), every chunk's length within the file and
// its CRC correct, at least one IDAT, and IEND last. It returns the file cut at the end
// of IEND (bytes after it are not part of the image; they are how PNG polyglots smuggle
// other content) and whether anything was cut.
func checkPNG(data []byte) (clean []byte, trimmed bool, err error) {
	if len(data) < len(pngSignature) || !bytes.Equal(data[:8], pngSignature) {
		return nil, false, fmt.Errorf("no PNG signature")
	}
	pos := 8
	sawIDAT := false
	for i := 0; ; i++ {
		if len(data)-pos < 12 {
			return nil, false, fmt.Errorf("truncated: chunk %d is cut off at byte %d", i, pos)
		}
		n := binary.BigEndian.Uint32(data[pos:])
		if n > 1<<31-1 || int64(n) > int64(len(data)-pos-12) {
			return nil, false, fmt.Errorf("truncated: chunk %d claims %d bytes, %d remain", i, n, len(data)-pos-12)
		}
		typ := string(data[pos+4 : pos+8])
		body := data[pos+8 : pos+8+int(n)]
		sum := binary.BigEndian.Uint32(data[pos+8+int(n):])
		if crc32.ChecksumIEEE(data[pos+4:pos+8+int(n)]) != sum {
			return nil, false, fmt.Errorf("chunk %q has a bad CRC", typ)
		}
		for _, c := range []byte(typ) {
			if !isLetter(c) {
				return nil, false, fmt.Errorf("chunk %d has an invalid type", i)
			}
		}
		if i == 0 {
			if typ != "IHDR" || n != 13 {
				return nil, false, fmt.Errorf("first chunk is %q, not IHDR", typ)
			}
			if err := checkIHDR(body); err != nil {
				return nil, false, err
			}
		} else if typ == "IHDR" {
			return nil, false, fmt.Errorf("second IHDR")
		}
		pos += 12 + int(n)
		switch typ {
		case "IDAT":
			sawIDAT = true
		case "IEND":
			if !sawIDAT {
				return nil, false, fmt.Errorf("no image data (IDAT)")
			}
			return data[:pos], pos != len(data), nil
		}
	}
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
