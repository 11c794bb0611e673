package postgres

import (
	"context"
	"encoding/binary"
	"io"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/pilotwire/pilotwire/internal/flow"
)

// copyColumn is one of the flows table's columns as writes give it, with
// how a flow's value is appended to a row in COPY's binary format. Writes
// give live rows only (imports are segments): file and part, which only
// rows an import made before segments have, are left out, NULL.
type copyColumn struct {
	name string
	put  func(b []byte, f *flow.Flow) []byte
}

func textColumn(name string, get func(f *flow.Flow) string) copyColumn {
	return copyColumn{name, func(b []byte, f *flow.Flow) []byte { return putText(b, get(f)) }}
}

func int4Column(name string, get func(f *flow.Flow) int) copyColumn {
	return copyColumn{name, func(b []byte, f *flow.Flow) []byte { return putInt4(b, int32(get(f))) }}
}

func int8Column(name string, get func(f *flow.Flow) int64) copyColumn {
	return copyColumn{name, func(b []byte, f *flow.Flow) []byte { return putInt8(b, get(f)) }}
}

// flowColumns are the flows table's columns in the order writes give
// them.
var flowColumns = []copyColumn{
	int8Column("id", func(f *flow.Flow) int64 { return f.ID }),
	textColumn("key", func(f *flow.Flow) string { return f.Key }),
	int8Column("start_ns", func(f *flow.Flow) int64 { return f.Start.UnixNano() }),
	int4Column("start_tz", func(f *flow.Flow) int {
		_, tz := f.Start.Zone()
		return tz
	}),
	{"end_ns", func(b []byte, f *flow.Flow) []byte {
		if f.End.IsZero() {
			return putNull(b)
		}
		return putInt8(b, f.End.UnixNano())
	}},
	textColumn("client", func(f *flow.Flow) string { return f.Client }),
	int4Column("client_port", func(f *flow.Flow) int { return f.ClientPort }),
	textColumn("device", func(f *flow.Flow) string { return f.Device }),
	textColumn("session", func(f *flow.Flow) string { return f.Session }),
	textColumn("source", func(f *flow.Flow) string { return string(f.Source) }),
	textColumn("source_file", func(f *flow.Flow) string { return f.SourceFile }),
	textColumn("kind", func(f *flow.Flow) string { return string(f.Kind) }),
	textColumn("method", func(f *flow.Flow) string { return f.Method }),
	textColumn("scheme", func(f *flow.Flow) string { return f.Scheme }),
	textColumn("host", func(f *flow.Flow) string { return f.Host }),
	int4Column("port", func(f *flow.Flow) int { return f.Port }),
	textColumn("url", func(f *flow.Flow) string { return f.URL }),
	int4Column("status", func(f *flow.Flow) int { return f.Status }),
	int8Column("bytes_up", func(f *flow.Flow) int64 { return f.BytesUp }),
	int8Column("bytes_down", func(f *flow.Flow) int64 { return f.BytesDown }),
	textColumn("sni", func(f *flow.Flow) string { return f.SNI }),
	textColumn("alpn", func(f *flow.Flow) string { return f.ALPN }),
	textColumn("tls_version", func(f *flow.Flow) string { return f.TLSVersion }),
	textColumn("error", func(f *flow.Flow) string { return f.Error }),
	textColumn("decision", func(f *flow.Flow) string { return string(f.Decision) }),
	textColumn("reason", func(f *flow.Flow) string { return f.Reason }),
	textColumn("note", func(f *flow.Flow) string { return f.Note }),
	int8Column("lost", func(f *flow.Flow) int64 { return f.Lost }),
	textColumn("tunnel", func(f *flow.Flow) string { return f.Tunnel }),
	textColumn("headers", func(f *flow.Flow) string { return f.Headers }),
	textColumn("proxy", func(f *flow.Flow) string { return f.Proxy }),
	{"bodies", func(b []byte, f *flow.Flow) []byte {
		if f.Bodies == nil {
			return putNull(b)
		}
		return append(binary.BigEndian.AppendUint32(b, uint32(len(f.Bodies))), f.Bodies...)
	}},
}

// columns are the flows table's columns in the order writes give them.
var columns = func() []string {
	var names []string
	for _, c := range flowColumns {
		names = append(names, c.name)
	}
	return names
}()

func putNull(b []byte) []byte { return binary.BigEndian.AppendUint32(b, 0xffffffff) }

func putInt8(b []byte, v int64) []byte {
	return binary.BigEndian.AppendUint64(binary.BigEndian.AppendUint32(b, 8), uint64(v))
}

func putInt4(b []byte, v int32) []byte {
	return binary.BigEndian.AppendUint32(binary.BigEndian.AppendUint32(b, 4), uint32(v))
}

// putText appends a text value: its bytes as they are (the server checks
// they are UTF-8, as it did for pgx's encoding).
func putText(b []byte, s string) []byte {
	return append(binary.BigEndian.AppendUint32(b, uint32(len(s))), s...)
}

// copyStatements are the COPY statements of the tables written, by name.
var copyStatements = func() map[string]string {
	var quoted []string
	for _, c := range columns {
		quoted = append(quoted, pgx.Identifier{c}.Sanitize())
	}
	out := map[string]string{}
	for _, t := range []string{"flows", "flows_batch"} {
		out[t] = `COPY ` + pgx.Identifier{t}.Sanitize() + ` (` + strings.Join(quoted, ", ") + `) FROM STDIN BINARY`
	}
	return out
}()

// copyRows COPYs the flows at the indexes given into table (flows or
// flows_batch), as live rows. The binary format
// is written here rather than by pgx's CopyFrom, which takes each row as a
// []any: 33 values boxed and each encoder looked up by type. That cost
// this process 4–7 µs of CPU a flow, 2–4 now (the server spends 6–9,
// which sets the rate; the benchmarks in bench_test.go print both).
func copyRows(ctx context.Context, tx pgx.Tx, table string, flows []flow.Flow, idx []int) error {
	if len(idx) == 0 {
		return nil
	}
	r := &copyReader{flows: flows, idx: idx}
	_, err := tx.Conn().PgConn().CopyFrom(ctx, r, copyStatements[table])
	return err
}

// copyHeader starts COPY's binary format: the signature, no flags, no
// header extension.
const copyHeader = "PGCOPY\n\377\r\n\000\x00\x00\x00\x00\x00\x00\x00\x00"

// copyReader is COPY's input, encoded as the connection reads it: pgx
// reads in a goroutine of its own and sends each chunk at once, so rows
// are encoded while the server stores the ones before.
type copyReader struct {
	flows []flow.Flow
	idx   []int
	next  int    // the next of idx to encode
	buf   []byte // encoded and not yet read: buf[off:]
	off   int
	begun bool
	ended bool
}

func (r *copyReader) Read(p []byte) (int, error) {
	if r.off == len(r.buf) {
		r.buf, r.off = r.buf[:0], 0
		if !r.begun {
			r.buf, r.begun = append(r.buf, copyHeader...), true
		}
		for r.next < len(r.idx) && len(r.buf) < len(p) {
			f := &r.flows[r.idx[r.next]]
			r.buf = binary.BigEndian.AppendUint16(r.buf, uint16(len(flowColumns)))
			for _, c := range flowColumns {
				r.buf = c.put(r.buf, f)
			}
			r.next++
		}
		if r.next == len(r.idx) && !r.ended && len(r.buf) < len(p) {
			r.buf, r.ended = binary.BigEndian.AppendUint16(r.buf, 0xffff), true // the trailer
		}
		if len(r.buf) == 0 {
			return 0, io.EOF
		}
	}
	n := copy(p, r.buf[r.off:])
	r.off += n
	return n, nil
}
