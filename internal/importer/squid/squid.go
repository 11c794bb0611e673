// Package squid reads Squid access.log files into flows.
//
// It reads, line by line and telling them apart by shape:
//
//   - the native logformat ("squid"):
//     %ts.%03tu %6tr %>a %Ss/%03>Hs %<st %rm %ru %[un %Sh/%<a %mt
//     optionally followed by one more field, %ssl::>sni, which is how
//     docs/squid.md asks peek-and-splice proxies to log the TLS server name;
//   - the "common" and "combined" logformats:
//     %>a %[ui %[un [%tl] "%rm %ru HTTP/%rv" %>Hs %<st [%{Referer}>h %{User-Agent}>h] %Ss:%Sh
//
// Squid writes a line when a transaction ends, so a native line's start is
// the logged time minus the elapsed milliseconds. The common formats carry
// no duration: their flows start and end at the logged time, in the zone the
// line gives. CONNECT lines (TCP_TUNNEL/200 from Squid 3.2 on, TCP_MISS/200
// before) become tunnel flows; TCP_DENIED lines are flows the proxy denied.
//
// Lines of any other layout (a custom logformat) are skipped, each with the
// reason, and reading goes on.
package squid

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/pilotwire/pilotwire/internal/flow"
	"github.com/pilotwire/pilotwire/internal/importer/internal/stretch"
	"github.com/pilotwire/pilotwire/internal/importer/internal/target"
)

// maxLine bounds one line; Squid truncates URLs far below this.
const maxLine = 1 << 20

// Read parses the access.log in r, calling emit for each transaction and
// skip for each line it cannot read, both in line order. Keys are
// "line:N", N counting from 1. It returns emit's error, ctx's error, or the
// error that stopped reading r (with the line it stopped at).
//
// Lines are parsed in parallel, in chunks of a few thousand: one goroutine
// reads, up to four parse, and the caller's goroutine emits in order. At
// most a few MiB are in flight whatever the size of the file.
func Read(ctx context.Context, r io.Reader, emit func(flow.Flow) error, skip func(where string, err error)) error {
	return ReadLayout(ctx, r, nil, emit, skip)
}

// Options are the Squid reader's own options, which the importer hands it
// (importer.Options.FormatOptions).
type Options struct {
	// Layout, when set, is the custom logformat the log was written with
	// (see ParseLogformat); nil reads the native, common and combined
	// formats.
	Layout *Layout
}

// ReadLayout is Read for a log written with a custom logformat: each line
// is read by layout (see ParseLogformat). A nil layout reads the native,
// common and combined formats, as Read does.
func ReadLayout(ctx context.Context, r io.Reader, layout *Layout, emit func(flow.Flow) error, skip func(where string, err error)) error {
	workers := min(max(runtime.GOMAXPROCS(0), 1), 4)
	stop := make(chan struct{})
	order := make(chan *chunk, 2*workers+2)
	work := make(chan *chunk, workers)
	// Chunks go back to the producer once emitted, so their buffers are
	// reused instead of collected.
	free := make(chan *chunk, cap(order)+workers+2)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer close(order)
		defer close(work)
		produce(r, stop, free, order, work)
	}()
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p := Parser{Layout: layout}
			for c := range work {
				c.parse(&p)
				close(c.done)
			}
		}()
	}
	defer wg.Wait()
	defer close(stop)

	// A long run of lines that are not a log ends the read (a wrong
	// file, /dev/zero): see package stretch.
	bound := stretch.Bound{Unit: "line", What: "a Squid access.log"}
	for {
		// Waiting for the next chunk watches ctx too: a reader that
		// blocks (a pipe, a slow share) must not hold up a cancel.
		var c *chunk
		select {
		case next, ok := <-order:
			if !ok {
				return nil
			}
			c = next
		case <-ctx.Done():
			return ctx.Err()
		}
		select {
		case <-c.done:
		case <-ctx.Done():
			return ctx.Err()
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		fi, si := 0, 0
		for fi < len(c.flows) || si < len(c.skips) {
			if si < len(c.skips) && (fi == len(c.flows) || c.skips[si].line < c.flowLines[fi]) {
				sk := c.skips[si]
				if err := bound.Check(sk.line, sk.end); err != nil {
					return err
				}
				skip(fmt.Sprintf("line %d", sk.line), sk.err)
				si++
				continue
			}
			if err := emit(c.flows[fi]); err != nil {
				return err
			}
			bound.Good(c.flowLines[fi], c.flowEnds[fi])
			fi++
		}
		// Blank and comment lines leave no skip: the chunk's end
		// measures them.
		if err := bound.Check(c.next-1, c.end); err != nil {
			return err
		}
		if c.err != nil {
			return fmt.Errorf("line %d: %w", c.next, c.err)
		}
		select {
		case free <- c:
		default:
		}
	}
}

// chunk is a run of lines parsed together.
type chunk struct {
	data  []byte // lines, each ending in '\n'
	first int    // number of the first line in data
	long  []int  // lines that were too long: data holds an empty line for each
	// longBytes holds, for each of long, how many bytes of the file its
	// empty line in data stands for beyond the newline.
	longBytes []int64
	start     int64 // file offset of data[0]
	end       int64 // file offset after the chunk's last line
	next      int   // number of the line after the chunk
	err       error // the read error that ended the file after this chunk

	flows     []flow.Flow
	flowLines []int
	flowEnds  []int64 // file offset after each flow's line
	keys      []byte  // the flows' keys, end to end
	keyEnds   []int
	skips     []lineSkip
	done      chan struct{}
}

type lineSkip struct {
	line int
	err  error
	end  int64 // file offset after the line
}

// chunkBytes is how much a chunk holds, unless one line needs more.
const chunkBytes = 256 << 10

// produce cuts r into chunks of whole lines and hands each to the workers
// and, in order, to the emitter.
//
// It reads blocks straight into the chunk's buffer and cuts at the last
// newline, carrying the unfinished line over to the next chunk, so a line
// costs no copy and no search of its own here: bytes.Count keeps the line
// numbers. A line that does not fit makes the buffer grow, up to maxLine;
// past that the line is read and dropped, leaving an empty line in its
// place and its number in chunk.long.
func produce(r io.Reader, stop <-chan struct{}, free <-chan *chunk, order, work chan<- *chunk) {
	newChunk := func(first int) *chunk {
		select {
		case c := <-free:
			*c = chunk{data: c.data[:0], flows: c.flows[:0], flowLines: c.flowLines[:0], flowEnds: c.flowEnds[:0], skips: c.skips[:0],
				long: c.long[:0], longBytes: c.longBytes[:0], keys: c.keys[:0], keyEnds: c.keyEnds[:0]}
			c.first = first
			c.done = make(chan struct{})
			return c
		default:
			return &chunk{first: first, data: make([]byte, 0, chunkBytes+4096), done: make(chan struct{})}
		}
	}
	c := newChunk(1)
	// c.data is c.data[:whole], lines - c.first of them, then the start
	// of an unfinished line. The buffer is full at want bytes. extra is
	// what c's long lines add to its length in the file.
	whole, lines, want := 0, 0, chunkBytes
	var extra int64
	// send hands c on and starts the next chunk with the unfinished line.
	send := func() bool {
		c.next = c.first + lines
		c.end = c.start + int64(whole) + extra
		nc := newChunk(c.next)
		nc.start = c.end
		nc.data = append(nc.data, c.data[whole:]...)
		c.data = c.data[:whole]
		select {
		case order <- c:
		case <-stop:
			return false
		}
		select {
		case work <- c:
		case <-stop:
			return false
		}
		c, whole, lines, want, extra = nc, 0, 0, chunkBytes, 0
		return true
	}
	// markLong puts an empty line in c.data[:whole] for the line too long
	// to keep, n bytes long without its newline, followed by rest.
	markLong := func(rest []byte, n int64) {
		c.long = append(c.long, c.first+lines)
		c.longBytes = append(c.longBytes, n)
		extra += n
		c.data = append(append(c.data[:whole], '\n'), rest...)
		whole++
		lines++
	}
	// finish sends the last chunk, ended by err (io.EOF at the end of r).
	finish := func(err error) {
		if len(c.data) > whole {
			// The last line has no newline.
			if n := len(c.data) - whole; n >= maxLine {
				c.data = c.data[:whole]
				markLong(nil, int64(n-1)) // its newline is the one added here
			} else {
				c.data = append(c.data, '\n')
				whole = len(c.data)
				lines++
			}
		}
		if err != io.EOF {
			c.err = err
		}
		send()
	}
	empty := 0
	for {
		select {
		case <-stop:
			return
		default:
		}
		if len(c.data) >= want {
			switch {
			case whole > 0:
				if !send() {
					return
				}
			case len(c.data) < maxLine:
				// One unfinished line fills the buffer: let it grow.
				want = min(2*want, maxLine)
				if cap(c.data) < want {
					c.data = append(make([]byte, 0, want), c.data...)
				}
			default:
				// The line is at least maxLine long: drop it, up to
				// the longest stretch of input without a record.
				held := len(c.data) - whole
				rest, dropped, err := discardLine(r, c.data[:cap(c.data)], stop, stretch.MaxBytes-int64(held))
				if errors.Is(err, errStopped) {
					return
				}
				markLong(rest, int64(held)+dropped)
				if i := bytes.LastIndexByte(c.data, '\n'); i >= whole {
					lines += bytes.Count(c.data[whole:i+1], []byte{'\n'})
					whole = i + 1
				}
				want = chunkBytes
				if err != nil {
					finish(err)
					return
				}
			}
			continue
		}
		n, err := r.Read(c.data[len(c.data):want])
		if n > 0 {
			empty = 0
			read := c.data[len(c.data) : len(c.data)+n]
			c.data = c.data[:len(c.data)+n]
			if i := bytes.LastIndexByte(read, '\n'); i >= 0 {
				end := len(c.data) - n + i + 1
				if whole == 0 && want > chunkBytes {
					// The line the buffer grew for is done; it may
					// still be too long by its last bytes.
					if j := bytes.IndexByte(c.data, '\n'); j+1 >= maxLine {
						rest := c.data[j+1:]
						end -= j
						markLong(rest, int64(j))
						whole--
						lines--
					}
				}
				lines += bytes.Count(c.data[whole:end], []byte{'\n'})
				whole = end
			}
		} else if err == nil {
			if empty++; empty >= 100 {
				err = io.ErrNoProgress
			}
		}
		if err != nil {
			finish(err)
			return
		}
	}
}

var errStopped = errors.New("stopped")

// discardLine reads r into buf until a newline, returning what followed
// the newline in buf and how many bytes came before it. It returns the read
// error that came first, errStopped once stop is closed, or errNoLineEnd
// once limit bytes went by without a newline.
func discardLine(r io.Reader, buf []byte, stop <-chan struct{}, limit int64) ([]byte, int64, error) {
	empty := 0
	var dropped int64
	for {
		select {
		case <-stop:
			return nil, dropped, errStopped
		default:
		}
		n, err := r.Read(buf)
		if i := bytes.IndexByte(buf[:n], '\n'); i >= 0 {
			return buf[i+1 : n], dropped + int64(i), err
		}
		dropped += int64(n)
		if n == 0 && err == nil {
			if empty++; empty >= 100 {
				err = io.ErrNoProgress
			}
		}
		if err == nil && dropped >= limit {
			err = errNoLineEnd
		}
		if err != nil {
			return nil, dropped, err
		}
		if n > 0 {
			empty = 0
		}
	}
}

// errNoLineEnd ends a read inside a line longer than any stretch of input
// without a record may be; the emitter says so with the place (see gap in
// ReadLayout), since the line's end offset makes that run too long.
var errNoLineEnd = errors.New("no line end")

// parse turns the chunk's lines into flows and skips.
func (c *chunk) parse(p *Parser) {
	// One string for the whole chunk: every flow's strings are slices of
	// it (or of the key arena below), so a line costs no allocation.
	data := string(c.data)
	lineNo := c.first
	longs, longBytes := c.long, c.longBytes
	pos := c.start // file offset of the line read next
	keyBuf := c.keys[:0]
	// The number in a key, in decimal: counted up from the previous
	// key's rather than formatted afresh for every line.
	var digitsBuf [24]byte
	digits, digitsOf := strconv.AppendInt(digitsBuf[:0], int64(lineNo), 10), lineNo
	if cap(c.flows) == 0 {
		// A fresh chunk; a reused one keeps the room it grew to.
		lines := strings.Count(data, "\n")
		c.flows = make([]flow.Flow, 0, lines)
		c.flowLines = make([]int, 0, lines)
	}
	for len(data) > 0 {
		i := strings.IndexByte(data, '\n')
		line := data[:i]
		data = data[i+1:]
		n := lineNo
		lineNo++
		pos += int64(i) + 1
		if len(longs) > 0 && longs[0] == n {
			pos += longBytes[0]
			longs, longBytes = longs[1:], longBytes[1:]
			c.skips = append(c.skips, lineSkip{n, errLongLine, pos})
			continue
		}
		if len(line) == 0 || !trimmed(line[0]) || !trimmed(line[len(line)-1]) {
			line = strings.TrimSpace(line)
		}
		if len(line) == 0 || line[0] == '#' {
			continue
		}
		// Parse straight into the slice: a flow is a few hundred bytes,
		// not worth copying in.
		c.flows = append(c.flows, flow.Flow{})
		if err := p.ParseLine(line, &c.flows[len(c.flows)-1]); err != nil {
			c.flows = c.flows[:len(c.flows)-1]
			c.skips = append(c.skips, lineSkip{n, err, pos})
			continue
		}
		if n-digitsOf > 16 {
			digits, digitsOf = strconv.AppendInt(digits[:0], int64(n), 10), n
		}
		for ; digitsOf < n; digitsOf++ {
			digits = incDecimal(digits)
		}
		keyBuf = append(append(keyBuf, "line:"...), digits...)
		c.keyEnds = append(c.keyEnds, len(keyBuf))
		c.flowLines = append(c.flowLines, n)
		c.flowEnds = append(c.flowEnds, pos)
	}
	keys := string(keyBuf)
	from := 0
	for i, to := range c.keyEnds {
		c.flows[i].Key = keys[from:to]
		from = to
	}
	c.keys = keyBuf
}

// incDecimal adds one to the positive decimal number in d.
func incDecimal(d []byte) []byte {
	for i := len(d) - 1; i >= 0; i-- {
		if d[i] != '9' {
			d[i]++
			return d
		}
		d[i] = '0'
	}
	// All nines, now all zeros: one digit more.
	d = append(d, '0')
	d[0] = '1'
	return d
}

// trimmed reports whether a line starting or ending in b needs no
// strings.TrimSpace: b is printable ASCII other than a space (Unicode
// spaces end in a byte of 0x80 or more).
func trimmed(b byte) bool { return b > ' ' && b < 0x7f }

var errLongLine = fmt.Errorf("line longer than %d bytes", maxLine)

// Parser parses single lines. It keeps small caches that make repeated
// clients, methods and codes cost no allocation; the zero value is ready.
// A Parser is not safe for concurrent use.
type Parser struct {
	// Layout, when set, is the custom logformat every line follows.
	Layout *Layout

	recent [1024]string // by hash(…) >> 22
	strs   map[string]string
	buf    []byte
	hosts  [256]hostEntry // by hash(…) >> 24
	codes  [32]codeEntry  // by hash(…) >> 27
	auths  [256]authEntry // by hash(…) >> 24

	sec      string // the whole seconds of the last Unix time read, copied
	secValue int64
}

// hostEntry is a slot of Parser.hosts: a host as logged and lower-cased.
// Both are copies, never slices of a line, so the cache keeps no chunk of
// the file alive.
type hostEntry struct{ raw, lower string }

// hash picks the cache slot of b, a non-empty string, from its length
// and a few of its bytes: the first, the middle and the last four (where
// client addresses and notes with a peer address differ). Its top bits
// are the best mixed: a table of 1<<k slots takes hash(b) >> (32-k).
func hash[T string | []byte](b T) uint32 {
	n := len(b)
	x := uint32(n) ^ uint32(b[0])<<8 ^ uint32(b[n/2])<<16
	if n >= 4 {
		x ^= uint32(b[n-4]) | uint32(b[n-3])<<8 | uint32(b[n-2])<<16 | uint32(b[n-1])<<24
	} else {
		x ^= uint32(b[n-1]) << 24
	}
	return x * 0x9E3779B1
}

// authEntry is a slot of Parser.auths: an authority as logged, copied,
// whether a user part was cut, and what authority made of it.
type authEntry struct {
	raw      string
	userinfo bool
	host     string
	port     int
}

// authority splits a, the "host:port" of a CONNECT or the authority of a
// URL (which may start with "user@" when userinfo is set), into its host,
// lower-cased, and its port (0 when it has none). Each line has one and
// they repeat, so a direct-mapped cache answers most calls with one
// string comparison.
func (p *Parser) authority(a string, userinfo bool) (string, int) {
	if len(a) == 0 || len(a) > 96 {
		return splitAuthority(a, userinfo)
	}
	e := &p.auths[hash(a)>>24]
	if e.raw == a && e.userinfo == userinfo {
		return e.host, e.port
	}
	raw := strings.Clone(a)
	host, port := splitAuthority(raw, userinfo)
	*e = authEntry{raw, userinfo, host, port}
	return host, port
}

// splitAuthority is authority without the cache.
func splitAuthority(a string, userinfo bool) (string, int) {
	if userinfo {
		if i := strings.LastIndexByte(a, '@'); i >= 0 {
			a = a[i+1:]
		}
	}
	host, port := splitHostPort(a)
	host = lowerASCII(host)
	if target.HostProblem(host) != "" {
		// Not a host (the line is damaged, or Squid logged what a client
		// sent): the flow has none rather than keep it.
		host = ""
	}
	return host, port
}

// host returns h lower-cased, as lowerASCII does. Hosts repeat on almost
// every line, so a direct-mapped cache answers most calls with one string
// comparison instead of a scan of the host.
func (p *Parser) host(h string) string {
	if len(h) == 0 || len(h) > 96 {
		return lowerASCII(h)
	}
	e := &p.hosts[hash(h)>>24]
	if e.raw == h {
		return e.lower
	}
	raw := strings.Clone(h)
	lower := lowerASCII(raw)
	*e = hostEntry{raw, lower}
	return lower
}

// intern returns b as a string, sharing the string for repeated values
// (clients, hosts, hierarchy codes repeat on almost every line). A small
// direct-mapped cache answers most lookups with one comparison; the map
// behind it catches the rest.
func (p *Parser) intern(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	if len(b) > 96 {
		return string(b)
	}
	h := hash(b) >> 22
	if s := p.recent[h]; s == string(b) {
		return s
	}
	s, ok := p.strs[string(b)] // no allocation: the compiler optimises the lookup
	if !ok {
		if p.strs == nil {
			p.strs = make(map[string]string)
		}
		if len(p.strs) > 4096 {
			clear(p.strs)
		}
		s = string(b)
		p.strs[s] = s
	}
	p.recent[h] = s
	return s
}

// ParseLine fills f from one log line (without its newline). It does not
// set Key. The strings in f share line's memory.
func (p *Parser) ParseLine(line string, f *flow.Flow) error {
	if p.Layout != nil {
		return p.parseLayout(line, f)
	}
	var fields [12]string
	n := splitFields(line, fields[:])
	if n == 0 {
		return errors.New("empty line")
	}
	// A field parseUnix reads is a number, so most lines read their time
	// once; isNumber sends the other numbers to parseNative for its error.
	end, err := p.unixTime(fields[0])
	if err == nil || isNumber(fields[0], true) {
		return p.parseNative(fields[:n], n == len(fields), end, err, f)
	}
	if n >= 4 && len(fields[3]) > 0 && fields[3][0] == '[' {
		return p.parseCommon(line, f)
	}
	return fmt.Errorf("not a Squid native, common or combined line: first field %q is neither a Unix time nor a client followed by [time]", clip(fields[0]))
}

// splitFields splits line at runs of spaces and tabs into out, returning how
// many fields it found (at most len(out); the last field then holds the
// rest of the line).
func splitFields(line string, out []string) int {
	if strings.IndexByte(line, '\t') >= 0 {
		return splitFieldsSlow(line, out)
	}
	// Fast path, spaces only: find each field's end with IndexByte.
	n := 0
	for len(line) > 0 && n < len(out) {
		for len(line) > 0 && line[0] == ' ' {
			line = line[1:]
		}
		if len(line) == 0 {
			break
		}
		if n == len(out)-1 {
			out[n] = strings.TrimRight(line, " ")
			return n + 1
		}
		j := strings.IndexByte(line, ' ')
		if j < 0 {
			out[n] = line
			return n + 1
		}
		out[n] = line[:j]
		line = line[j+1:]
		n++
	}
	return n
}

func splitFieldsSlow(line string, out []string) int {
	n := 0
	i := 0
	for i < len(line) && n < len(out) {
		for i < len(line) && (line[i] == ' ' || line[i] == '\t') {
			i++
		}
		if i == len(line) {
			break
		}
		start := i
		if n == len(out)-1 {
			out[n] = strings.TrimRight(line[start:], " \t")
			return n + 1
		}
		for i < len(line) && line[i] != ' ' && line[i] != '\t' {
			i++
		}
		out[n] = line[start:i]
		n++
	}
	return n
}

// parseNative reads a native line split into fs; end and err are what
// parseUnix returned for fs[0].
func (p *Parser) parseNative(fs []string, overflow bool, end time.Time, err error, f *flow.Flow) error {
	if len(fs) < 10 {
		return fmt.Errorf("native line has %d fields, want 10 (time elapsed client code/status bytes method URL user hierarchy/peer type) or 11 (… sni)", len(fs))
	}
	if err != nil {
		return fmt.Errorf("field 1 (time) %q: %w", clip(fs[0]), err)
	}
	var elapsed int64
	if fs[1] != "-" {
		elapsed, err = parseUint(fs[1])
		if err != nil {
			return fmt.Errorf("field 2 (elapsed ms) %q: %w", clip(fs[1]), err)
		}
	}
	code, kind, status, err := p.codeStatus(fs[3])
	if err != nil {
		return fmt.Errorf("field 4 (result code/status) %q: %w (a custom logformat? see docs/squid.md)", clip(fs[3]), err)
	}
	if overflow || len(fs) > 11 {
		return fmt.Errorf("native line has more than 11 fields: a custom logformat? (see docs/squid.md)")
	}
	var size int64
	if fs[4] != "-" {
		size, err = parseUint(fs[4])
		if err != nil {
			return fmt.Errorf("field 5 (bytes) %q: %w", clip(fs[4]), err)
		}
	}
	f.Source = flow.SourceSquid
	f.End = end
	f.Start = end.Add(-time.Duration(elapsed) * time.Millisecond)
	f.Client = fs[2]
	f.Status = status
	f.BytesDown = size
	p.request(fs[5], fs[6], f)
	p.outcome(code, kind, status, f)
	// The note keeps what has no field of its own: result code,
	// hierarchy/peer and user, e.g. "squid TCP_MISS DIRECT/175.16.199.115
	// user badeyek". It repeats a lot, so it is interned.
	b := append(p.buf[:0], "squid "...)
	b = append(append(append(b, code...), ' '), fs[8]...)
	if u := fs[7]; u != "-" {
		b = append(append(b, " user "...), u...)
	}
	p.buf = b
	f.Note = p.intern(b)
	if len(fs) == 11 && fs[10] != "-" {
		f.SNI = p.host(fs[10])
	}
	return nil
}

// request sets Method, Kind, Scheme, Host, Port and URL from the method and
// the URL Squid logged.
func (p *Parser) request(method, u string, f *flow.Flow) {
	switch method {
	case "GET":
		f.Method = "GET"
	case "CONNECT":
		f.Method = "CONNECT"
	case "POST":
		f.Method = "POST"
	default:
		f.Method = method
	}
	if method == "CONNECT" {
		f.Kind = flow.KindConnect
		f.Host, f.Port = p.authority(u, false)
		if f.Port == 0 {
			f.Port = 443
		}
		return
	}
	if method == "-" {
		f.Method = ""
	}
	if strings.HasPrefix(u, "error:") {
		// A connection that never made a request (a client that closed
		// early, a port probe): Squid logs "- error:transaction-end-…".
		f.Kind = flow.KindTCP
		f.Error = "no request (squid " + u + ")"
		return
	}
	f.Kind = flow.KindHTTP
	if u == "-" || len(u) == 0 {
		return
	}
	f.URL = u
	rest := u
	// Nearly every URL starts with a lower-case http:// or https://:
	// skip the search for "://" for those.
	if strings.HasPrefix(u, "http://") {
		f.Scheme = "http"
		rest = u[len("http://"):]
	} else if strings.HasPrefix(u, "https://") {
		f.Scheme = "https"
		rest = u[len("https://"):]
	} else if i := strings.Index(u, "://"); i > 0 {
		switch sch := lowerASCII(u[:i]); sch {
		case "http":
			f.Scheme = "http"
		case "https":
			f.Scheme = "https"
		default:
			f.Scheme = sch
		}
		rest = u[i+3:]
	} else if u[0] == '/' {
		return // origin-form: Squid as an accelerator, host unknown
	}
	// A byte loop: '/', '?' and '#' are never part of a UTF-8 sequence.
	for i := 0; i < len(rest); i++ {
		if c := rest[i]; c == '/' || c == '?' || c == '#' {
			rest = rest[:i]
			break
		}
	}
	f.Host, f.Port = p.authority(rest, true)
	if f.Port == 0 {
		switch f.Scheme {
		case "https", "wss":
			f.Port = 443
		case "ftp":
			f.Port = 21
		default:
			f.Port = 80
		}
	}
}

// outcome sets Decision, Reason and Error from Squid's result code, of
// kind p.codeKind(code).
func (p *Parser) outcome(code string, kind codeKind, status int, f *flow.Flow) {
	switch {
	case kind&codeDenied != 0:
		f.Decision = flow.DecisionDenied
		// The whole reason is built in p.buf and interned: denials repeat.
		b := strconv.AppendInt(append(append(append(p.buf[:0], "squid "...), code...), '/'), int64(status), 10)
		switch status {
		case 407:
			b = append(b, " (proxy authentication required)"...)
		case 403:
			b = append(b, " (forbidden by access rules)"...)
		}
		p.buf = b
		f.Reason = p.intern(b)
	case f.Kind == flow.KindTCP:
		// No request, so nothing was decided.
	default:
		f.Decision = flow.DecisionAllowed
		if kind&codeAborted != 0 {
			p.buf = append(append(append(p.buf[:0], "aborted (squid "...), code...), ')')
			f.Error = p.intern(p.buf)
		} else if status == 0 && kind&codeUDP == 0 {
			p.buf = append(append(append(p.buf[:0], "no reply (squid "...), code...), "/000)"...)
			f.Error = p.intern(p.buf)
		}
	}
}

// codeKind says what outcome and codeStatus need to know of a result code.
type codeKind uint8

const (
	codeValid   codeKind = 1 << iota // only A-Z, 0-9 and _, as Squid writes codes
	codeDenied                       // has DENIED: the proxy refused
	codeAborted                      // has ABORTED
	codeUDP                          // starts with UDP_ (ICP, no reply expected)
)

// codeEntry is a slot of Parser.codes: a result code, copied, and its kind.
type codeEntry struct {
	code string
	kind codeKind
}

// codeKind classifies code. A handful of codes make up every log, so a
// small direct-mapped cache answers with one comparison.
func (p *Parser) codeKind(code string) codeKind {
	if len(code) == 0 || len(code) > 48 {
		return classifyCode(code)
	}
	e := &p.codes[hash(code)>>27]
	if e.code == code {
		return e.kind
	}
	k := classifyCode(code)
	*e = codeEntry{strings.Clone(code), k}
	return k
}

func classifyCode(code string) codeKind {
	k := codeValid
	for _, c := range []byte(code) {
		if !(c >= 'A' && c <= 'Z' || c == '_' || c >= '0' && c <= '9') {
			k = 0
			break
		}
	}
	if strings.Contains(code, "DENIED") {
		k |= codeDenied
	}
	if strings.Contains(code, "ABORTED") {
		k |= codeAborted
	}
	if strings.HasPrefix(code, "UDP_") {
		k |= codeUDP
	}
	return k
}

// codeStatus splits "TCP_MISS/200", and says what kind of code it has.
func (p *Parser) codeStatus(b string) (string, codeKind, int, error) {
	i := strings.IndexByte(b, '/')
	if i <= 0 {
		return "", 0, 0, errors.New("want CODE/STATUS such as TCP_MISS/200")
	}
	code := b[:i]
	kind := p.codeKind(code)
	if kind&codeValid == 0 {
		return "", 0, 0, errors.New("want CODE/STATUS such as TCP_MISS/200")
	}
	st, err := parseUint(b[i+1:])
	if err != nil || st > 999 {
		return "", 0, 0, errors.New("status is not a 3-digit number")
	}
	return code, kind, int(st), nil
}

// parseCommon reads the common and combined logformats.
func (p *Parser) parseCommon(line string, f *flow.Flow) error {
	// client ident user [time zone] "request" status bytes ...
	var head [3]string
	rest := line
	for i := range head {
		rest = strings.TrimLeft(rest, " \t")
		j := strings.IndexAny(rest, " \t")
		if j < 0 {
			return errors.New("common line ends before its [time]")
		}
		head[i], rest = rest[:j], rest[j:]
	}
	rest = strings.TrimLeft(rest, " \t")
	end := strings.IndexByte(rest, ']')
	if len(rest) == 0 || rest[0] != '[' || end < 0 {
		return errors.New("common line: field 4 is not a [time]")
	}
	ts, err := time.Parse("02/Jan/2006:15:04:05 -0700", rest[1:end])
	if err != nil {
		return fmt.Errorf("common line: time [%s]: %w", clip(rest[1:end]), err)
	}
	rest = strings.TrimLeft(rest[end+1:], " \t")
	if len(rest) == 0 || rest[0] != '"' {
		return errors.New("common line: no quoted request after the time")
	}
	q := strings.IndexByte(rest[1:], '"')
	if q < 0 {
		return errors.New("common line: request quote is not closed")
	}
	req := rest[1 : 1+q]
	rest = rest[q+2:]
	var tail [8]string
	n := splitFields(rest, tail[:])
	if n < 2 {
		return errors.New("common line: status and bytes missing after the request")
	}
	st, err := parseUint(tail[0])
	if err != nil || st > 999 {
		return fmt.Errorf("common line: status %q is not a number", clip(tail[0]))
	}
	var size int64
	if tail[1] != "-" {
		size, err = parseUint(tail[1])
		if err != nil {
			return fmt.Errorf("common line: bytes %q: %w", clip(tail[1]), err)
		}
	}
	var rf [3]string
	if splitFields(req, rf[:]) < 2 {
		return fmt.Errorf("common line: request %q is not METHOD URL [VERSION]", clip(req))
	}
	f.Source = flow.SourceSquid
	f.Start, f.End = ts, ts
	f.Client = head[0]
	f.Status = int(st)
	f.BytesDown = size
	p.request(rf[0], rf[1], f)
	// The last field is %Ss:%Sh, e.g. TCP_MISS:HIER_DIRECT.
	code := tail[n-1]
	if i := strings.IndexByte(code, ':'); i > 0 {
		code = code[:i]
	} else {
		code = ""
	}
	p.outcome(code, p.codeKind(code), f.Status, f)
	note := "squid common log, duration unknown"
	if code != "" {
		note = "squid " + code + ", duration unknown"
	}
	if u := head[2]; u != "-" {
		note += " user " + u
	}
	f.Note = note
	return nil
}

// parseUnix reads "1157689312.049" as a UTC time (Squid logs Unix time).
func parseUnix(b string) (time.Time, error) {
	var sec, frac int64
	i := 0
	for ; i < len(b) && b[i] != '.'; i++ {
		c := b[i]
		if c < '0' || c > '9' || i >= 12 {
			return time.Time{}, errors.New("not a Unix time")
		}
		sec = sec*10 + int64(c-'0')
	}
	if i == 0 {
		return time.Time{}, errors.New("not a Unix time")
	}
	if i < len(b) {
		var ok bool
		if frac, ok = parseFrac(b[i+1:]); !ok {
			return time.Time{}, errors.New("not a Unix time")
		}
	}
	return time.Unix(sec, frac).UTC(), nil
}

// parseFrac reads the digits after a Unix time's dot as nanoseconds.
func parseFrac(b string) (int64, bool) {
	var frac int64
	digits := 0
	for i := 0; i < len(b); i++ {
		c := b[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		if digits < 9 {
			frac = frac*10 + int64(c-'0')
			digits++
		}
	}
	for ; digits < 9; digits++ {
		frac *= 10
	}
	return frac, true
}

// unixTime is parseUnix remembering the last whole second it read, which
// the next lines mostly share: their time costs a comparison and the
// fraction.
func (p *Parser) unixTime(b string) (time.Time, error) {
	if n := len(p.sec); n > 0 && len(b) > n && b[n] == '.' && b[:n] == p.sec {
		frac, ok := parseFrac(b[n+1:])
		if !ok {
			return time.Time{}, errors.New("not a Unix time")
		}
		return time.Unix(p.secValue, frac).UTC(), nil
	}
	t, err := parseUnix(b)
	if i := strings.IndexByte(b, '.'); err == nil && i > 0 {
		p.sec, p.secValue = strings.Clone(b[:i]), t.Unix()
	}
	return t, err
}

func parseUint(b string) (int64, error) {
	if len(b) == 0 || len(b) > 18 {
		return 0, errors.New("not a number")
	}
	var n int64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, errors.New("not a number")
		}
		n = n*10 + int64(c-'0')
	}
	return n, nil
}

func isNumber(b string, frac bool) bool {
	if len(b) == 0 {
		return false
	}
	dots := 0
	for _, c := range b {
		if c == '.' && frac {
			dots++
			continue
		}
		if c < '0' || c > '9' {
			return false
		}
	}
	return dots <= 1
}

// splitHostPort splits "host:port", "[v6]:port" or a bare host.
func splitHostPort(b string) (string, int) {
	if len(b) > 0 && b[0] == '[' {
		if j := strings.IndexByte(b, ']'); j > 0 {
			host := b[1:j]
			if j+1 < len(b) && b[j+1] == ':' {
				if port, err := parseUint(b[j+2:]); err == nil && port < 65536 {
					return host, int(port)
				}
			}
			return host, 0
		}
	}
	i := strings.LastIndexByte(b, ':')
	if i < 0 || strings.IndexByte(b[:i], ':') >= 0 { // no port, or a bare IPv6 literal
		return b, 0
	}
	port, err := parseUint(b[i+1:])
	if err != nil || port >= 65536 {
		return b[:i], 0
	}
	return b[:i], int(port)
}

// lowerASCII returns b lower-cased, allocating only when b has an
// upper-case letter.
func lowerASCII(b string) string {
	for i := 0; i < len(b); i++ {
		if c := b[i]; c >= 'A' && c <= 'Z' {
			return strings.ToLower(b)
		}
	}
	return b
}

// clip shortens a field quoted in an error message.
func clip(b string) string {
	if len(b) > 40 {
		return b[:40] + "…"
	}
	return b
}
