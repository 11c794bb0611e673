// Package segment is the encoding of a part of an imported file as one
// value (a segment: its flows sorted by start, strings written once) and
// the read that merges a store's rows, in start order, with the flows of
// the segments that may hold some of a selection. The SQLite and
// PostgreSQL stores keep imports this way: one stored value a part rather
// than a row a flow is what makes an import fast.
//
// It owns the blob format and the merge; it knows nothing of any database
// (a store hands it rows and blobs) and must not import a store.
package segment

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/pilotwire/pilotwire/internal/flow"
)

// A segment is one part of an imported file (see flow.Store.PutFileFlows)
// kept as one row of a store's segments table: its flows encoded into one
// blob, sorted by start time. One row per flow costs a database an index
// insert per flow and per index, which capped an import near 100,000
// flows/s on the pure-Go SQLite and near 120,000 on PostgreSQL's COPY; one
// row per few thousand flows costs the encoding alone.
//
// The blob, all integers varints:
//
//	version (4; version 1, read still, had no tunnel, version 2 no
//	  headers, version 3 no proxy)
//	n, the count of flows
//	the string table: a count, then each string as length and bytes;
//	  entry 0 is always ""
//	n flows, oldest first (ties by ID), each:
//	  ID − the segment's first ID
//	  key, front coded: bytes shared with the previous flow's key, then
//	    the length and bytes of the rest
//	  start − the previous flow's start (the first: start itself), zigzag
//	  zone offset in seconds, zigzag
//	  end: 0 when open, else 1 + zigzag(end − start)
//	  client port, port, status, bytes up and bytes down, zigzag
//	  the string table index of client, device, session, source, source
//	    file, kind, method, scheme, host, SNI, ALPN, TLS version, error,
//	    decision, reason, note, (version 2) tunnel, (version 3) headers and
//	    (version 4) proxy
//	  URL as length and bytes
//
// Strings that repeat from flow to flow are written once per segment, so a
// segment of Squid flows takes less room than the same flows as rows.
const Version = 4

// Info is what a segments table holds beside the blob, so reads can skip
// segments without decoding them.
type Info struct {
	ID       int64 // the store's own ID of the segment
	FirstID  int64
	N        int
	StartMin int64
	StartMax int64
	Source   flow.Source // of all its flows; "" when they are mixed
}

// Encode encodes flows (in any order) as a segment whose first ID
// will be the ID of flows[0]; the flow at index i gets first ID + i. It
// returns the blob and the start range.
func Encode(flows []flow.Flow) (blob []byte, startMin, startMax int64) {
	order := make([]int32, len(flows))
	starts := make([]int64, len(flows))
	for i := range flows {
		order[i] = int32(i)
		starts[i] = flows[i].Start.UnixNano()
	}
	slices.SortFunc(order, func(a, b int32) int {
		if starts[a] != starts[b] {
			if starts[a] < starts[b] {
				return -1
			}
			return 1
		}
		return int(a - b)
	})
	if len(flows) > 0 {
		startMin, startMax = starts[order[0]], starts[order[len(order)-1]]
	}

	e := segmentEncoder{index: map[string]uint64{"": 0}, table: []string{""}}
	body := make([]byte, 0, 96*len(flows))
	var prevKey string
	var prevStart int64
	var last [19]string
	var lastRef [19]uint64 // all "", string 0
	for _, i := range order {
		f := &flows[i]
		body = binary.AppendUvarint(body, uint64(i))
		shared := commonPrefix(prevKey, f.Key)
		body = binary.AppendUvarint(body, uint64(shared))
		body = appendString(body, f.Key[shared:])
		prevKey = f.Key
		start := starts[i]
		body = binary.AppendVarint(body, start-prevStart)
		prevStart = start
		_, tz := f.Start.Zone()
		body = binary.AppendVarint(body, int64(tz))
		if f.End.IsZero() {
			body = append(body, 0)
		} else {
			body = binary.AppendUvarint(body, 1+zigzag(f.End.UnixNano()-start))
		}
		body = binary.AppendVarint(body, int64(f.ClientPort))
		body = binary.AppendVarint(body, int64(f.Port))
		body = binary.AppendVarint(body, int64(f.Status))
		body = binary.AppendVarint(body, f.BytesUp)
		body = binary.AppendVarint(body, f.BytesDown)
		for col, s := range [...]string{f.Client, f.Device, f.Session, string(f.Source), f.SourceFile, string(f.Kind),
			f.Method, f.Scheme, f.Host, f.SNI, f.ALPN, f.TLSVersion, f.Error, string(f.Decision), f.Reason, f.Note, f.Tunnel, f.Headers, f.Proxy} {
			// Most columns repeat the previous flow's value: a string
			// comparison (of the same pointer, often) saves a map lookup.
			if s != last[col] {
				last[col], lastRef[col] = s, e.ref(s)
			}
			body = binary.AppendUvarint(body, lastRef[col])
		}
		body = appendString(body, f.URL)
	}

	size := 1 + binary.MaxVarintLen64*2 + e.size + len(body)
	blob = make([]byte, 0, size)
	blob = append(blob, Version)
	blob = binary.AppendUvarint(blob, uint64(len(flows)))
	blob = binary.AppendUvarint(blob, uint64(len(e.table)))
	for _, s := range e.table {
		blob = appendString(blob, s)
	}
	return append(blob, body...), startMin, startMax
}

// segmentEncoder builds a segment's string table.
type segmentEncoder struct {
	index map[string]uint64
	table []string
	size  int // bytes the table takes, roughly
}

func (e *segmentEncoder) ref(s string) uint64 {
	if s == "" {
		return 0
	}
	if i, ok := e.index[s]; ok {
		return i
	}
	i := uint64(len(e.table))
	e.index[s] = i
	e.table = append(e.table, s)
	e.size += len(s) + binary.MaxVarintLen32
	return i
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

func commonPrefix(a, b string) int {
	n := min(len(a), len(b))
	for i := range n {
		if a[i] != b[i] {
			return i
		}
	}
	return n
}

func zigzag(v int64) uint64 { return uint64(v<<1) ^ uint64(v>>63) }

func unzigzag(u uint64) int64 { return int64(u>>1) ^ -int64(u&1) }

// ErrDamaged is wrapped by every error about a damaged segment blob.
var ErrDamaged = errors.New("damaged segment")

// segmentDecoder reads a segment blob. It never panics on a damaged blob:
// every read is bounds-checked and the first error sticks.
type segmentDecoder struct {
	b   []byte
	off int
	err error
}

func (d *segmentDecoder) fail(what string) {
	if d.err == nil {
		d.err = fmt.Errorf("%w: %s at byte %d", ErrDamaged, what, d.off)
	}
}

func (d *segmentDecoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b[d.off:])
	if n <= 0 {
		d.fail("bad varint")
		return 0
	}
	d.off += n
	return v
}

func (d *segmentDecoder) varint() int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.b[d.off:])
	if n <= 0 {
		d.fail("bad varint")
		return 0
	}
	d.off += n
	return v
}

// bytes returns the next length-prefixed bytes, in place.
func (d *segmentDecoder) bytes() []byte {
	n := d.uvarint()
	if d.err != nil {
		return nil
	}
	if n > uint64(len(d.b)-d.off) {
		d.fail("string past the end")
		return nil
	}
	s := d.b[d.off : d.off+int(n)]
	d.off += int(n)
	return s
}

// Opts say how Decode decodes.
type Opts struct {
	In    Interner // strings repeated across segments; made when nil
	Zones Zones    // made when nil
	// Keep, when not nil, drops the flows it returns false for, before
	// their key and URL are copied out of the blob (they are empty when
	// Keep sees them, the URL unless KeepURL).
	Keep    func(*flow.Flow) bool
	KeepURL bool
	// Brief leaves Key and URL empty (see flow.Filter.Brief).
	Brief bool
}

// Decode decodes a segment's blob, appending its flows to dst[:0]
// in the order stored (by start, then ID).
func Decode(blob []byte, firstID int64, dst []flow.Flow, o *Opts) ([]flow.Flow, error) {
	r, err := Open(blob, firstID, o)
	if err != nil {
		return nil, err
	}
	out := dst[:0]
	if uint64(cap(out)) < r.n {
		out = make([]flow.Flow, 0, r.n)
	}
	for {
		// Decoded in place: a local Flow handed to keep would escape,
		// one allocation per flow.
		out = append(out, flow.Flow{})
		ok, err := r.Next(&out[len(out)-1])
		if err != nil {
			return nil, err
		}
		if !ok {
			return out[:len(out)-1], nil
		}
	}
}

// Reader decodes the flows of a segment one at a time, in the order
// stored, so that a read holds a segment as its compact blob, not as
// decoded flows. It never panics on a damaged blob: every read is
// bounds-checked and the first error sticks.
type Reader struct {
	d       segmentDecoder
	o       *Opts
	firstID int64
	n, i    uint64 // flows in the segment, flows decoded so far
	table   []string
	key     []byte // the previous flow's key
	start   int64  // the previous flow's start
	version byte   // of the blob: 1 has no tunnel
}

// Open reads a segment's header and string table. IDs are firstID
// plus the stored offsets, which must be below the segment's count.
func Open(blob []byte, firstID int64, o *Opts) (*Reader, error) {
	if o.In == nil {
		o.In = Interner{}
	}
	if o.Zones == nil {
		o.Zones = Zones{}
	}
	r := &Reader{d: segmentDecoder{b: blob}, o: o, firstID: firstID}
	d := &r.d
	if len(blob) == 0 || blob[0] < 1 || blob[0] > Version {
		return nil, fmt.Errorf("%w: unknown version", ErrDamaged)
	}
	r.version = blob[0]
	d.off = 1
	r.n = d.uvarint()
	ns := d.uvarint()
	// Each flow and each string takes at least one byte, so counts
	// beyond the blob's size are damage, not a reason to allocate.
	if d.err == nil && (r.n > uint64(len(blob)) || ns > uint64(len(blob)) || ns == 0) {
		d.fail("counts larger than the blob")
	}
	if d.err != nil {
		return nil, d.err
	}
	r.table = make([]string, ns)
	for i := range r.table {
		b := d.bytes()
		if d.err != nil {
			return nil, d.err
		}
		r.table[i] = o.In.GetBytes(b)
	}
	if r.table[0] != "" {
		d.fail("string 0 is not empty")
		return nil, d.err
	}
	return r, nil
}

func (r *Reader) str() string {
	i := r.d.uvarint()
	if i >= uint64(len(r.table)) {
		r.d.fail("string index out of range")
		return ""
	}
	return r.table[i]
}

// Next decodes the next flow that Opts.Keep accepts into *f, overwriting
// all of it; it reports false after the last.
func (r *Reader) Next(f *flow.Flow) (bool, error) {
	d, o := &r.d, r.o
	for r.i < r.n {
		r.i++
		*f = flow.Flow{}
		off := d.uvarint()
		if d.err == nil && off >= r.n {
			d.fail("ID offset out of range")
		}
		f.ID = r.firstID + int64(off)
		shared := d.uvarint()
		if d.err == nil && shared > uint64(len(r.key)) {
			d.fail("key prefix longer than the previous key")
		}
		if d.err != nil {
			return false, d.err
		}
		r.key = append(r.key[:shared], d.bytes()...)
		r.start += d.varint()
		loc := o.Zones.Get(d.varint())
		f.Start = time.Unix(0, r.start).In(loc)
		if e := d.uvarint(); e != 0 {
			f.End = time.Unix(0, r.start+unzigzag(e-1)).In(loc)
		}
		f.ClientPort = int(d.varint())
		f.Port = int(d.varint())
		f.Status = int(d.varint())
		f.BytesUp = d.varint()
		f.BytesDown = d.varint()
		f.Client = r.str()
		f.Device = r.str()
		f.Session = r.str()
		f.Source = flow.Source(r.str())
		f.SourceFile = r.str()
		f.Kind = flow.Kind(r.str())
		f.Method = r.str()
		f.Scheme = r.str()
		f.Host = r.str()
		f.SNI = r.str()
		f.ALPN = r.str()
		f.TLSVersion = r.str()
		f.Error = r.str()
		f.Decision = flow.Decision(r.str())
		f.Reason = r.str()
		f.Note = r.str()
		if r.version >= 2 {
			f.Tunnel = r.str()
		}
		if r.version >= 3 {
			f.Headers = r.str()
		}
		if r.version >= 4 {
			f.Proxy = r.str()
		}
		url := d.bytes()
		if d.err != nil {
			return false, d.err
		}
		if o.KeepURL {
			f.URL = string(url)
		}
		if o.Keep != nil && !o.Keep(f) {
			continue
		}
		if !o.Brief {
			f.Key = string(r.key)
			if !o.KeepURL {
				f.URL = string(url)
			}
		}
		return true, nil
	}
	if d.off != len(d.b) {
		d.fail("bytes after the last flow")
		return false, d.err
	}
	return false, nil
}
