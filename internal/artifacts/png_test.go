package artifacts

import (
	"encoding/binary"
	"hash/crc32"
	"image/color"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// chunk builds one PNG chunk with a correct CRC.
func chunk(typ string, body []byte) []byte {
	b := binary.BigEndian.AppendUint32(nil, uint32(len(body)))
	b = append(b, typ...)
	b = append(b, body...)
	return binary.BigEndian.AppendUint32(b, crc32.ChecksumIEEE(append([]byte(typ), body...)))
}

func ihdr(w, h uint32, depth, colour byte) []byte {
	b := binary.BigEndian.AppendUint32(nil, w)
	b = binary.BigEndian.AppendUint32(b, h)
	return append(b, depth, colour, 0, 0, 0)
}

func join(parts ...[]byte) []byte {
	var out []byte
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

func TestCheckPNG(t *testing.T) {
	good := makePNG(t, 20, 10, color.RGBA{31, 119, 180, 255})
	idat := chunk("IDAT", []byte{0x78, 0x9c, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01})
	iend := chunk("IEND", nil)
	badCRC := append([]byte(nil), good...)
	badCRC[len(badCRC)-5] ^= 0xff // IEND's CRC
	tests := map[string]struct {
		in          []byte
		wantLen     int
		wantTrimmed bool
		wantErr     string
	}{
		"valid":                 {in: good, wantLen: len(good)},
		"trailing HTML trimmed": {in: append(append([]byte(nil), good...), "<script>alert(1)</script>"...), wantLen: len(good), wantTrimmed: true},
		"empty":                 {in: nil, wantErr: "no PNG signature"},
		"signature only":        {in: pngSignature, wantErr: "truncated"},
		"HTML claiming PNG":     {in: []byte("<html><script>alert(1)</script></html>"), wantErr: "no PNG signature"},
		"SVG claiming PNG":      {in: []byte(`<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"/>`), wantErr: "no PNG signature"},
		"JPEG claiming PNG":     {in: []byte("\xff\xd8\xff\xe0\x00\x10JFIF\x00"), wantErr: "no PNG signature"},
		"truncated in IHDR":     {in: good[:20], wantErr: "truncated"},
		"truncated in IDAT":     {in: good[:len(good)-20], wantErr: "truncated"},
		"truncated before IEND": {in: good[:len(good)-12], wantErr: "truncated"},
		"IEND missing its CRC":  {in: good[:len(good)-2], wantErr: "truncated"},
		"bad CRC":               {in: badCRC, wantErr: "bad CRC"},
		"first chunk not IHDR":  {in: join(pngSignature, idat, chunk("IHDR", ihdr(1, 1, 8, 2)), iend), wantErr: "not IHDR"},
		"zero width":            {in: join(pngSignature, chunk("IHDR", ihdr(0, 1, 8, 2)), idat, iend), wantErr: "invalid dimensions"},
		"decompression bomb":    {in: join(pngSignature, chunk("IHDR", ihdr(100000, 100000, 8, 2)), idat, iend), wantErr: "pixels is more than"},
		"bad bit depth":         {in: join(pngSignature, chunk("IHDR", ihdr(1, 1, 3, 2)), idat, iend), wantErr: "invalid colour type"},
		"bad interlace":         {in: join(pngSignature, chunk("IHDR", append(ihdr(1, 1, 8, 2)[:12], 7)), idat, iend), wantErr: "interlace"},
		"no IDAT":               {in: join(pngSignature, chunk("IHDR", ihdr(1, 1, 8, 2)), iend), wantErr: "no image data"},
		"two IHDR":              {in: join(pngSignature, chunk("IHDR", ihdr(1, 1, 8, 2)), chunk("IHDR", ihdr(1, 1, 8, 2)), idat, iend), wantErr: "second IHDR"},
		"chunk length overflow": {in: join(pngSignature, chunk("IHDR", ihdr(1, 1, 8, 2)), []byte{0xff, 0xff, 0xff, 0xf0, 'I', 'D', 'A', 'T'}), wantErr: "truncated"},
		"invalid chunk type":    {in: join(pngSignature, chunk("IHDR", ihdr(1, 1, 8, 2)), chunk("ID\x00T", nil), idat, iend), wantErr: "invalid type"},
		"minimal hand-built":    {in: join(pngSignature, chunk("IHDR", ihdr(1, 1, 8, 2)), idat, iend), wantLen: 8 + 25 + 20 + 12},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got, trimmed, err := checkPNG(tc.in)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want it to contain %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("unexpected error: %v", err)
			}
			if diff := cmp.Diff(tc.in[:tc.wantLen], got); diff != "" {
				t.Errorf("data (-want +got):\n%s", diff)
			}
			if trimmed != tc.wantTrimmed {
				t.Errorf("trimmed = %v, want %v", trimmed, tc.wantTrimmed)
			}
		})
	}
}

// TestCheckPNGEveryTruncation cuts a real PNG at every length: none may pass.
func TestCheckPNGEveryTruncation(t *testing.T) {
	good := makePNG(t, 8, 8, color.White)
	for n := 0; n < len(good); n++ {
		if _, _, err := checkPNG(good[:n]); err == nil {
			t.Errorf("PNG cut to %d of %d bytes passed", n, len(good))
		}
	}
}
