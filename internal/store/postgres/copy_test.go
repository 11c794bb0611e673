package postgres

import (
	"bytes"
	"encoding/binary"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/pilotwire/pilotwire/internal/flow"
)

// TestCopyReader: the COPY input is the same however the connection reads
// it (pgx reads 64 KiB at a time; a row may be bigger), and it is COPY's
// binary format: the header, a row of every column per flow with the
// values in flowColumns' order, the trailer.
func TestCopyReader(t *testing.T) {
	zone := time.FixedZone("", 3600)
	flows := []flow.Flow{
		{ID: 7, Key: "k7", Start: time.Unix(100, 5).In(zone), End: time.Unix(101, 0), Client: "10.0.0.1", ClientPort: -1,
			Host: "ü.example", Headers: strings.Repeat("h", 200_000), Proxy: "site-a", Lost: 3},
		{ID: 8, Key: "k8", Start: time.Unix(102, 0).UTC()}, // no end: NULL
		{ID: 9, Key: "skipped"},
	}
	read := func(chunk int) []byte {
		r := &copyReader{flows: flows, idx: []int{0, 1}}
		var out bytes.Buffer
		p := make([]byte, chunk)
		for {
			n, err := r.Read(p)
			out.Write(p[:n])
			if err == io.EOF {
				return out.Bytes()
			}
			if err != nil {
				t.Fatal(err)
			}
		}
	}
	whole := read(65531)
	for _, chunk := range []int{1, 7, 4096} {
		if got := read(chunk); !bytes.Equal(got, whole) {
			t.Fatalf("read %d bytes at a time: %d bytes, want the %d of a read of 64 KiB", chunk, len(got), len(whole))
		}
	}

	b := whole
	if !bytes.HasPrefix(b, []byte(copyHeader)) {
		t.Fatalf("no COPY header: %q", b[:min(len(b), 19)])
	}
	b = b[len(copyHeader):]
	field := func() []byte {
		n := int32(binary.BigEndian.Uint32(b))
		b = b[4:]
		if n < 0 {
			return nil
		}
		v := b[:n]
		b = b[n:]
		return v
	}
	var rows []map[string][]byte
	for {
		n := int16(binary.BigEndian.Uint16(b))
		b = b[2:]
		if n == -1 {
			break
		}
		if int(n) != len(columns) {
			t.Fatalf("a row of %d fields, want %d", n, len(columns))
		}
		row := map[string][]byte{}
		for _, c := range columns {
			row[c] = field()
		}
		rows = append(rows, row)
	}
	if len(b) != 0 || len(rows) != 2 {
		t.Fatalf("%d rows and %d bytes after the trailer, want 2 and 0", len(rows), len(b))
	}
	i8 := func(v int64) []byte { return binary.BigEndian.AppendUint64(nil, uint64(v)) }
	i4 := func(v int32) []byte { return binary.BigEndian.AppendUint32(nil, uint32(v)) }
	for c, want := range map[string][]byte{
		"id": i8(7), "key": []byte("k7"), "start_ns": i8(100_000_000_005),
		"start_tz": i4(3600), "end_ns": i8(101_000_000_000), "client": []byte("10.0.0.1"), "client_port": i4(-1),
		"host": []byte("ü.example"), "headers": []byte(flows[0].Headers), "proxy": []byte("site-a"), "lost": i8(3),
		"device": {}, "status": i4(0),
	} {
		if got := rows[0][c]; !bytes.Equal(got, want) || got == nil {
			t.Errorf("row 1, %s = %q, want %q", c, got, want)
		}
	}
	if _, ok := rows[0]["file"]; ok {
		t.Errorf("a live row wrote the file column")
	}
	if rows[1]["end_ns"] != nil || rows[1]["start_tz"] == nil {
		t.Errorf("row 2: end_ns %q (want NULL), start_tz %q", rows[1]["end_ns"], rows[1]["start_tz"])
	}
}
