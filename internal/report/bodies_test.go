package report

import (
	"bytes"
	"compress/gzip"
	"strconv"
	"strings"
	"testing"

	"github.com/pilotwire/pilotwire/internal/flow"
)

func TestWriteBodies(t *testing.T) {
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write([]byte(strings.Repeat("line\n", 100)))
	zw.Close()
	cut := gz.Bytes()[:len(gz.Bytes())-12] // the end (CRC, size) missing: still decodes as far as it goes
	for _, tc := range []struct {
		name string
		f    flow.Flow
		want string
	}{
		{"text", flow.Flow{BytesUp: 3, BytesDown: 5, Bodies: flow.EncodeBodies(flow.Bodies{Request: []byte("a=1"), Response: []byte("ok\r\nx")})},
			"  > request body, 3 bytes:\n    a=1\n  < response body, 5 bytes:\n    ok\n    x\n"},
		{"cut", flow.Flow{BytesUp: 10, Bodies: flow.EncodeBodies(flow.Bodies{Request: []byte("abc")})},
			"  > request body, the first 3 of 10 bytes:\n    abc\n"},
		{"terminal escape is binary", flow.Flow{BytesDown: 4, Bodies: flow.EncodeBodies(flow.Bodies{Response: []byte("\x1b[2J")})},
			"  < response body, 4 bytes, binary:\n    00000000  1b 5b 32 4a                                       |.[2J|\n"},
		{"lone carriage return", flow.Flow{BytesDown: 3, Bodies: flow.EncodeBodies(flow.Bodies{Response: []byte("a\rb")})},
			"  < response body, 3 bytes:\n    a\\rb\n"},
		{"gzip", flow.Flow{BytesDown: int64(gz.Len()), Headers: "> Accept-Encoding: gzip\n< content-encoding: GZIP",
			Bodies: flow.EncodeBodies(flow.Bodies{Response: gz.Bytes()})},
			"  < response body, " + itoa(gz.Len()) + " bytes, gzip, 500 bytes decoded:\n" + strings.Repeat("    line\n", 100)},
		{"gzip cut", flow.Flow{BytesDown: int64(gz.Len()), Headers: "< Content-Encoding: gzip", Bodies: flow.EncodeBodies(flow.Bodies{Response: cut})},
			"  < response body, the first " + itoa(len(cut)) + " of " + itoa(gz.Len()) + " bytes, gzip, 500 bytes decoded:\n" + strings.Repeat("    line\n", 100)},
		{"damaged", flow.Flow{Bodies: []byte{9}}, "  (kept bodies: format 9, want 1 (written by a newer pilotwire?))\n"},
	} {
		var out strings.Builder
		if err := WriteBodies(&out, &tc.f, "  "); err != nil {
			t.Fatal(err)
		}
		if out.String() != tc.want {
			t.Errorf("%s:\n got %q\nwant %q", tc.name, out.String(), tc.want)
		}
	}
}

func itoa(n int) string { return strconv.Itoa(n) }
