// Package saz reads Fiddler session archives (.saz) into flows.
//
// A SAZ is a zip holding, for each session N, raw/N_c.txt (the request as
// sent: request line, headers, body), raw/N_s.txt (the response) and
// raw/N_m.xml (Fiddler's metadata: session timers and flags). Each session
// becomes one flow, in session-number order:
//
//   - method, URL, host and port from the request line (and the Host header
//     when the line has only a path); a CONNECT is a tunnel flow;
//   - status from the response's status line;
//   - bytes: the sizes of N_c.txt and N_s.txt, except for a CONNECT tunnel,
//     where Fiddler records the tunnelled bytes in the ClientToServerBytes
//     and ServerToClientBytes headers of its 200 response;
//   - Start and End from ClientBeginRequest and ClientDoneResponse, in the
//     zone Fiddler wrote (falling back to the other timers);
//   - client address and port (x-clientip, x-clientport), TLS version and
//     offered ALPN, SNI of a tunnel, server address and the client process
//     (x-processinfo, "msedge:12140") from the session flags.
//
// Only the first 64 KiB of each request and response are read (the line
// and headers); bodies are never loaded.
package saz

import (
	"archive/zip"
	"bufio"
	"bytes"
	"compress/flate"
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"math"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/pilotwire/pilotwire/internal/flow"
	"github.com/pilotwire/pilotwire/internal/importer/internal/target"
)

const (
	headLimit = 64 << 10 // bytes read of a request or response
	metaLimit = 1 << 20  // bytes read of a metadata file
)

// session gathers the zip members of one session.
type session struct {
	n                 int
	req, resp, meta   *member
	reqName, respName string
	metaName          string
}

// member is one file of the archive: from the zip's central directory, or
// recovered by scanning a truncated archive.
type member struct {
	name string
	size int64 // uncompressed size
	open func() (io.ReadCloser, error)
}

// Read reads the SAZ archive r of the given size, emitting one flow per
// session with Key "session:N". A session whose request is missing or
// unreadable is reported through skip ("raw/4_c.txt") and reading goes on.
//
// A truncated archive has lost its central directory (it sits at the end):
// Read then scans the file for the members' local headers, imports the
// sessions it finds, and returns an error saying the archive is cut short.
// The error is also non-nil when r holds no zip members or no sessions.
func Read(ctx context.Context, r io.ReaderAt, size int64, emit func(flow.Flow) error, skip func(where string, err error)) error {
	var members []member
	var truncated error
	zr, err := zip.NewReader(r, size)
	if err == nil {
		for _, zf := range zr.File {
			// A size past int64 is a damaged header, not a size.
			members = append(members, member{name: zf.Name, size: int64(min(zf.UncompressedSize64, math.MaxInt64)), open: zf.Open})
		}
	} else {
		members, err = scanMembers(ctx, r, size)
		if err != nil {
			return err
		}
		if len(members) == 0 {
			return errors.New("not a readable zip: no central directory and no member found by scanning")
		}
		truncated = fmt.Errorf("the zip's central directory is missing (file truncated?): %d members recovered by scanning", len(members))
	}
	byNum := map[int]*session{}
	for _, m := range members {
		name := strings.ReplaceAll(m.name, "\\", "/")
		if !strings.HasPrefix(name, "raw/") {
			continue
		}
		base := strings.TrimPrefix(name, "raw/")
		num, kind, ok := strings.Cut(base, "_")
		if !ok {
			continue
		}
		n, err := strconv.Atoi(num)
		if err != nil || n < 0 {
			continue
		}
		s := byNum[n]
		if s == nil {
			s = &session{n: n}
			byNum[n] = s
		}
		m := m
		switch kind {
		case "c.txt":
			s.req, s.reqName = &m, name
		case "s.txt":
			s.resp, s.respName = &m, name
		case "m.xml":
			s.meta, s.metaName = &m, name
		}
	}
	if len(byNum) == 0 {
		if truncated != nil {
			return truncated
		}
		return errors.New("a zip, but not a Fiddler archive: no raw/N_c.txt sessions")
	}
	nums := make([]int, 0, len(byNum))
	for n := range byNum {
		nums = append(nums, n)
	}
	sort.Ints(nums)
	for _, n := range nums {
		if err := ctx.Err(); err != nil {
			return err
		}
		s := byNum[n]
		f, err := s.flow(skip)
		if err != nil {
			skip(err.where, err.err)
			continue
		}
		if err := emit(f); err != nil {
			return err
		}
	}
	return truncated
}

// scanMembers finds zip local file headers ("PK\x03\x04") from the start of
// r, for an archive without its central directory.
func scanMembers(ctx context.Context, r io.ReaderAt, size int64) ([]member, error) {
	const sig = "PK\x03\x04"
	var out []member
	buf := make([]byte, 256<<10)
	for base := int64(0); base < size; {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		n, err := r.ReadAt(buf, base)
		if n <= 0 {
			if err != nil && err != io.EOF {
				return nil, err
			}
			break
		}
		chunk := buf[:n]
		for i := 0; ; {
			j := bytes.Index(chunk[i:], []byte(sig))
			if j < 0 {
				break
			}
			off := base + int64(i+j)
			if m, ok := localMember(r, off, size); ok {
				out = append(out, m)
			}
			i += j + 1
		}
		if int64(n) < int64(len(buf)) {
			break
		}
		base += int64(n) - int64(len(sig)) + 1 // overlap so a signature across chunks is seen
	}
	return out, nil
}

// localMember reads the local file header at off.
func localMember(r io.ReaderAt, off, size int64) (member, bool) {
	var h [30]byte
	if _, err := r.ReadAt(h[:], off); err != nil {
		return member{}, false
	}
	le16 := func(b []byte) int64 { return int64(b[0]) | int64(b[1])<<8 }
	le32 := func(b []byte) int64 { return le16(b) | le16(b[2:])<<16 }
	flags, method := le16(h[6:]), le16(h[8:])
	compSize, rawSize := le32(h[18:]), le32(h[22:])
	nameLen, extraLen := le16(h[26:]), le16(h[28:])
	if method != 0 && method != 8 || nameLen == 0 || nameLen > 1024 {
		return member{}, false
	}
	name := make([]byte, nameLen)
	if _, err := r.ReadAt(name, off+30); err != nil {
		return member{}, false
	}
	data := off + 30 + nameLen + extraLen
	if data > size {
		return member{}, false
	}
	known := flags&8 == 0 // sizes follow the data (bit 3) when unknown here
	if known && (compSize == 0xffffffff || rawSize == 0xffffffff) {
		// Zip64: the sizes are in extra field 0x0001 (uncompressed, then
		// compressed, 8 bytes each).
		known = false
		extra := make([]byte, extraLen)
		if _, err := r.ReadAt(extra, off+30+nameLen); err == nil {
			for len(extra) >= 4 {
				id, n := le16(extra), int(le16(extra[2:]))
				if n > len(extra)-4 {
					break
				}
				if id == 1 && n >= 16 {
					le64 := func(b []byte) int64 { return le32(b) | le32(b[4:])<<32 }
					rawSize, compSize = le64(extra[4:]), le64(extra[12:])
					known = rawSize >= 0 && compSize >= 0
					break
				}
				extra = extra[4+n:]
			}
		}
	}
	length := size - data
	if known && compSize < length {
		length = compSize
	}
	open := func() (io.ReadCloser, error) {
		sec := io.NewSectionReader(r, data, length)
		if method == 8 {
			return flate.NewReader(sec), nil
		}
		return io.NopCloser(sec), nil
	}
	m := member{name: string(name), size: rawSize, open: open}
	if !known {
		// The header does not say: count the bytes (bounded, against a
		// deflate bomb).
		rc, _ := open()
		n, _ := io.CopyN(io.Discard, rc, 1<<30)
		rc.Close()
		m.size = n
	}
	return m, true
}

type whereErr struct {
	where string
	err   error
}

// flow builds the session's flow. Problems with the response or metadata
// are reported through skip and the flow is kept; a missing or unreadable
// request drops the session.
func (s *session) flow(skip func(string, error)) (flow.Flow, *whereErr) {
	f := flow.Flow{Key: "session:" + strconv.Itoa(s.n), Source: flow.SourceSAZ, Kind: flow.KindHTTP}
	if s.req == nil {
		return f, &whereErr{fmt.Sprintf("session %d", s.n), errors.New("raw/" + strconv.Itoa(s.n) + "_c.txt (the request) is missing")}
	}
	reqLine, reqHdr, err := readHead(s.req)
	if err != nil {
		return f, &whereErr{s.reqName, err}
	}
	if err := setRequest(&f, reqLine, reqHdr); err != nil {
		return f, &whereErr{s.reqName, err}
	}
	f.BytesUp = s.req.size

	var respHdr map[string]string
	if s.resp != nil {
		statusLine, hdr, err := readHead(s.resp)
		if err != nil {
			skip(s.respName, err)
		} else {
			respHdr = hdr
			f.Status = statusOf(statusLine)
			if f.Status == 0 {
				skip(s.respName, fmt.Errorf("status line %q has no status", target.Clip(statusLine)))
			}
		}
		f.BytesDown = s.resp.size
	}
	if f.Kind == flow.KindConnect && respHdr != nil {
		up, errUp := strconv.ParseInt(respHdr["clienttoserverbytes"], 10, 64)
		down, errDown := strconv.ParseInt(respHdr["servertoclientbytes"], 10, 64)
		if errUp == nil && errDown == nil && up >= 0 && down >= 0 {
			f.BytesUp, f.BytesDown = up, down
		}
	}

	var m meta
	if s.meta != nil {
		if err := readMeta(s.meta, &m); err != nil {
			skip(s.metaName, err)
		}
	}
	m.apply(&f)
	if f.Start.IsZero() {
		return f, &whereErr{fmt.Sprintf("session %d", s.n), errors.New("no time recorded (metadata missing or without timers)")}
	}
	if f.Status == 0 && f.Error == "" {
		f.Error = "no response recorded"
	}
	return f, nil
}

// readHead returns the first line of a request or response and its
// headers (names lower-cased), reading at most headLimit bytes.
func readHead(zf *member) (string, map[string]string, error) {
	rc, err := zf.open()
	if err != nil {
		return "", nil, err
	}
	defer rc.Close()
	br := bufio.NewReader(io.LimitReader(rc, headLimit))
	first, err := br.ReadString('\n')
	if err != nil && (err != io.EOF || first == "") {
		if err == io.EOF {
			return "", nil, errors.New("empty")
		}
		return "", nil, err
	}
	first = strings.TrimPrefix(strings.TrimRight(first, "\r\n"), "\ufeff")
	hdr := map[string]string{}
	for {
		line, err := br.ReadString('\n')
		line = strings.TrimRight(line, "\r\n")
		if line == "" {
			break
		}
		if k, v, ok := strings.Cut(line, ":"); ok {
			hdr[strings.ToLower(strings.TrimSpace(k))] = strings.TrimSpace(v)
		}
		if err != nil {
			break
		}
	}
	return first, hdr, nil
}

func setRequest(f *flow.Flow, line string, hdr map[string]string) error {
	parts := strings.Fields(line)
	if len(parts) < 2 {
		return fmt.Errorf("request line %q is not METHOD TARGET [VERSION]", target.Clip(line))
	}
	f.Method = strings.ToUpper(parts[0])
	tgt := parts[1]
	if f.Method == "CONNECT" {
		target.SetConnect(f, tgt)
		return nil
	}
	if strings.HasPrefix(tgt, "/") {
		// Origin form: the host is in the Host header.
		h := hdr["host"]
		if h == "" {
			return fmt.Errorf("request line %q has a path but no Host header", target.Clip(line))
		}
		tgt = "http://" + h + tgt
	}
	if err := target.SetURL(f, tgt); err != nil {
		return fmt.Errorf("request target %q is not a URL", target.Clip(tgt))
	}
	if f.Port == 0 {
		f.Port = 80
	}
	return nil
}

// statusOf reads "HTTP/1.1 200 OK".
func statusOf(line string) int {
	parts := strings.Fields(line)
	if len(parts) < 2 || !strings.HasPrefix(parts[0], "HTTP/") {
		return 0
	}
	n, err := strconv.Atoi(parts[1])
	if err != nil || n < 100 || n > 999 {
		return 0
	}
	return n
}

// meta is the part of N_m.xml pilotwire uses.
type meta struct {
	Timers struct {
		ClientConnected    string `xml:"ClientConnected,attr"`
		ClientBeginRequest string `xml:"ClientBeginRequest,attr"`
		ClientDoneRequest  string `xml:"ClientDoneRequest,attr"`
		ServerDoneResponse string `xml:"ServerDoneResponse,attr"`
		ClientDoneResponse string `xml:"ClientDoneResponse,attr"`
	} `xml:"SessionTimers"`
	Flags []struct {
		N string `xml:"N,attr"`
		V string `xml:"V,attr"`
	} `xml:"SessionFlags>SessionFlag"`
}

func readMeta(zf *member, m *meta) error {
	rc, err := zf.open()
	if err != nil {
		return err
	}
	defer rc.Close()
	data, err := io.ReadAll(io.LimitReader(rc, metaLimit))
	if err != nil {
		return fmt.Errorf("metadata cut short: %w", err)
	}
	data = bytes.TrimPrefix(data, []byte("\xef\xbb\xbf"))
	dec := xml.NewDecoder(bytes.NewReader(data))
	// Fiddler declares utf-8; anything else is read as is.
	dec.CharsetReader = func(_ string, r io.Reader) (io.Reader, error) { return r, nil }
	if err := dec.Decode(m); err != nil {
		return fmt.Errorf("metadata: %w", err)
	}
	return nil
}

// apply sets times and the flags' facts on f.
func (m *meta) apply(f *flow.Flow) {
	t := &m.Timers
	f.Start = firstTime(t.ClientBeginRequest, t.ClientConnected, t.ClientDoneRequest)
	f.End = firstTime(t.ClientDoneResponse, t.ServerDoneResponse)
	if !f.End.IsZero() && f.End.Before(f.Start) {
		// Fiddler writes 0001-01-01 for timers it never reached.
		f.End = time.Time{}
	}
	flags := map[string]string{}
	for _, fl := range m.Flags {
		flags[strings.ToLower(fl.N)] = fl.V
	}
	if ip := flags["x-clientip"]; ip != "" {
		f.Client = strings.TrimPrefix(ip, "::ffff:")
	}
	if p, err := strconv.Atoi(flags["x-clientport"]); err == nil && p > 0 && p < 65536 {
		f.ClientPort = p
	}
	if v := flags["https-client-version"]; v != "" {
		f.TLSVersion = tlsVersion(v)
	}
	if v := flags["x-supported-client-alpn"]; v != "" {
		f.ALPN = strings.ReplaceAll(v, " ", "")
	}
	if v := flags["https-client-snihostname"]; v != "" {
		f.SNI = strings.ToLower(v)
	}
	if v := flags["x-fiddler-error"]; v != "" {
		f.Error = v
	}
	var notes []string
	if v := flags["x-hostip"]; v != "" {
		notes = append(notes, "server "+v)
	}
	if v := flags["x-processinfo"]; v != "" {
		notes = append(notes, "process "+v)
	}
	f.Note = strings.Join(notes, ", ")
}

// firstTime parses the first of the timers that is set and real.
func firstTime(vals ...string) time.Time {
	for _, v := range vals {
		if v == "" {
			continue
		}
		t, err := time.Parse(time.RFC3339Nano, v)
		if err != nil {
			t, err = time.Parse("2006-01-02T15:04:05.9999999", v)
		}
		if err == nil && t.Year() > 1 {
			return t
		}
	}
	return time.Time{}
}

// tlsVersion turns Fiddler's "Tls12" into "1.2".
func tlsVersion(v string) string {
	switch strings.ToLower(v) {
	case "tls13":
		return "1.3"
	case "tls12":
		return "1.2"
	case "tls11":
		return "1.1"
	case "tls", "tls10":
		return "1.0"
	case "ssl3":
		return "ssl3"
	}
	return v
}
