// Package har reads HAR 1.2 files (HTTP Archive: browser DevTools, Fiddler,
// Charles, mitmproxy, Insomnia exports) into flows.
//
// The file is streamed with a JSON token decoder: only one entry is held in
// memory at a time, and bodies (response.content.text, request.postData) are
// never kept, so a HAR of several GiB imports in bounded memory (bounded by
// the largest single entry, since encoding/json buffers one value).
//
// Each entry becomes one flow: Start is startedDateTime in the zone the file
// gives, End is Start plus the entry's time (or the sum of its non-negative
// timings, -1 meaning "not applicable"), Status 0 is a request that got no
// response (Error says why when the exporter recorded it in "_error").
// A UTF-8 byte order mark, missing pages, empty httpVersion and unknown
// custom "_" fields are all accepted.
package har

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/pilotwire/pilotwire/internal/export"
	"github.com/pilotwire/pilotwire/internal/flow"
	"github.com/pilotwire/pilotwire/internal/importer/internal/jsontok"
	"github.com/pilotwire/pilotwire/internal/importer/internal/stretch"
	"github.com/pilotwire/pilotwire/internal/importer/internal/target"
)

// entry is the part of a HAR entry pilotwire uses.
type entry struct {
	StartedDateTime string   `json:"startedDateTime"`
	Time            *float64 `json:"time"`
	Request         struct {
		Method      string `json:"method"`
		URL         string `json:"url"`
		HTTPVersion string `json:"httpVersion"`
		HeadersSize int64  `json:"headersSize"`
		BodySize    int64  `json:"bodySize"`
	} `json:"request"`
	Response struct {
		Status       int    `json:"status"`
		StatusText   string `json:"statusText"`
		HTTPVersion  string `json:"httpVersion"`
		HeadersSize  int64  `json:"headersSize"`
		BodySize     int64  `json:"bodySize"`
		TransferSize *int64 `json:"_transferSize"`
		Error        string `json:"_error"`
		Content      struct {
			Size int64 `json:"size"`
		} `json:"content"`
	} `json:"response"`
	Timings         map[string]any `json:"timings"`
	ServerIPAddress string         `json:"serverIPAddress"`
	Connection      string         `json:"connection"`
	FromCache       string         `json:"_fromCache"`
	// Client addresses some exporters add.
	ClientAddress string `json:"_clientAddress"`
	ClientIP      string `json:"_clientIP"`
	ClientPort    int    `json:"_clientPort"`
	// pilotwire's own facts, in a HAR pilotwire exported.
	Pilotwire *export.Extra `json:"_pilotwire"`
}

// Read streams the HAR in r, calling emit for each entry, in file order,
// with Key "entry:N" (N counting from 1). An entry whose fields have the
// wrong types or that lacks a usable startedDateTime or URL is reported
// through skip ("entry 3") and reading goes on. A JSON syntax error or a
// truncated file stops reading: the error says at which entry and byte
// offset. So does a long run of unreadable entries (see package stretch).
// A JSON object with a "log" but no "log.entries" array is not a HAR: an
// error, not a file of no flows.
func Read(ctx context.Context, r io.Reader, emit func(flow.Flow) error, skip func(where string, err error)) error {
	br := bufio.NewReaderSize(r, 64<<10)
	if b, err := br.Peek(3); err == nil && string(b) == "\xef\xbb\xbf" {
		br.Discard(3)
	}
	dec := json.NewDecoder(br)
	at := func(err error) error {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return fmt.Errorf("offset %#x: %w", dec.InputOffset(), err)
	}
	if err := jsontok.ExpectDelim(dec, '{'); err != nil {
		return at(fmt.Errorf("not a HAR file: %w", err))
	}
	// Top level: find "log".
	found, entries := false, false
	for dec.More() {
		key, err := jsontok.ObjectKey(dec)
		if err != nil {
			return at(err)
		}
		if key != "log" {
			if err := jsontok.SkipValue(dec); err != nil {
				return at(err)
			}
			continue
		}
		found = true
		if err := jsontok.ExpectDelim(dec, '{'); err != nil {
			return at(fmt.Errorf("log: %w", err))
		}
		for dec.More() {
			key, err := jsontok.ObjectKey(dec)
			if err != nil {
				return at(fmt.Errorf("log: %w", err))
			}
			if key != "entries" {
				if err := jsontok.SkipValue(dec); err != nil {
					return at(fmt.Errorf("log.%s: %w", key, err))
				}
				continue
			}
			entries = true
			if err := readEntries(ctx, dec, emit, skip); err != nil {
				return err
			}
		}
		if _, err := dec.Token(); err != nil { // '}' of log
			return at(err)
		}
	}
	if !found {
		return errors.New("not a HAR file: no \"log\" object")
	}
	if !entries {
		// A JSON object with a "log" but no entries is some other
		// document, not an empty capture.
		return errors.New("not a HAR: no log.entries array")
	}
	return nil
}

func readEntries(ctx context.Context, dec *json.Decoder, emit func(flow.Flow) error, skip func(string, error)) error {
	if err := jsontok.ExpectDelim(dec, '['); err != nil {
		return fmt.Errorf("log.entries at offset %#x: %w", dec.InputOffset(), err)
	}
	n := 0
	bound := stretch.Bound{Unit: "entry", What: "HAR entries"}
	// skipEntry reports entry n as skipped, unless it ends a run of
	// unreadable entries too long to go on with.
	skipEntry := func(err error) error {
		if berr := bound.Check(n, dec.InputOffset()); berr != nil {
			return berr
		}
		skip(fmt.Sprintf("entry %d", n), err)
		return nil
	}
	for dec.More() {
		n++
		if err := ctx.Err(); err != nil {
			return err
		}
		start := dec.InputOffset()
		var e entry
		err := dec.Decode(&e)
		var typeErr *json.UnmarshalTypeError
		var syntaxErr *json.SyntaxError
		ignored := ""
		switch {
		case errors.As(err, &typeErr):
			// The value was consumed whole and the other fields were
			// filled: keep the entry if what matters is there.
			ignored = typeErr.Field
		case err != nil && !errors.As(err, &syntaxErr) && !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF):
			// Read whole, but not into an entry (e.g. a bare string).
			if err := skipEntry(err); err != nil {
				return err
			}
			continue
		case err != nil:
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return fmt.Errorf("entry %d at offset %#x: %w", n, start, err)
		}
		f, err := toFlow(&e)
		if err != nil {
			if err := skipEntry(err); err != nil {
				return err
			}
			continue
		}
		if ignored != "" {
			f.Note = strings.TrimPrefix(f.Note+", field "+ignored+" ignored (wrong type)", ", ")
		}
		f.Key = "entry:" + strconv.Itoa(n)
		if err := emit(f); err != nil {
			return err
		}
		bound.Good(n, dec.InputOffset())
	}
	if _, err := dec.Token(); err != nil { // ']'
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return fmt.Errorf("after entry %d at offset %#x: %w", n, dec.InputOffset(), err)
	}
	return nil
}

// toFlow maps one entry.
func toFlow(e *entry) (flow.Flow, error) {
	f := flow.Flow{Source: flow.SourceHAR, Kind: flow.KindHTTP}
	start, err := parseTime(e.StartedDateTime)
	if err == nil && start.IsZero() {
		err = errors.New("the zero time, not a time something was captured")
	}
	if err != nil {
		return f, fmt.Errorf("startedDateTime %q: %w", e.StartedDateTime, err)
	}
	f.Start = start
	var ms float64
	if e.Time != nil && *e.Time >= 0 {
		ms = *e.Time
	} else {
		for _, v := range e.Timings {
			if v, ok := v.(float64); ok && v > 0 {
				ms += v
			}
		}
	}
	if ms > 7*24*3600*1000 {
		ms = 0 // a week-long request is a broken number, not a duration
	}
	f.End = start.Add(time.Duration(ms * float64(time.Millisecond)))

	f.Method = strings.ToUpper(e.Request.Method)
	if f.Method == "" {
		return f, errors.New("request has no method")
	}
	if err := setTarget(&f, e.Request.URL); err != nil {
		return f, err
	}

	f.Status = e.Response.Status
	if f.Status < 0 || f.Status > 999 {
		// Not an HTTP status: say so rather than keep a number that
		// means nothing.
		f.Error = fmt.Sprintf("status %d is not an HTTP status", f.Status)
		f.Status = 0
	} else if f.Status == 0 {
		f.Error = "no response (status 0)"
	}
	if e.Response.Error != "" {
		f.Error = e.Response.Error
	}
	f.BytesUp = nonNeg(e.Request.HeadersSize) + nonNeg(e.Request.BodySize)
	switch {
	case e.Response.TransferSize != nil && *e.Response.TransferSize > 0:
		f.BytesDown = *e.Response.TransferSize
	default:
		body := e.Response.BodySize
		if body < 0 {
			body = e.Response.Content.Size
		}
		f.BytesDown = nonNeg(e.Response.HeadersSize) + nonNeg(body)
	}

	if ip := firstNonEmpty(e.ClientAddress, e.ClientIP); ip != "" {
		if h, p, err := net.SplitHostPort(ip); err == nil {
			ip = h
			// A port that is no port (":100000") is left unknown.
			if port, err := strconv.ParseUint(p, 10, 16); err == nil {
				f.ClientPort = int(port)
			}
		}
		f.Client = strings.Trim(ip, "[]")
	}
	if e.ClientPort > 0 && e.ClientPort < 65536 {
		f.ClientPort = e.ClientPort
	}

	var notes []string
	if v := firstNonEmpty(e.Response.HTTPVersion, e.Request.HTTPVersion); v != "" {
		notes = append(notes, v)
	}
	if ip := strings.Trim(e.ServerIPAddress, "[]"); ip != "" {
		notes = append(notes, "server "+ip)
	}
	if e.FromCache != "" {
		notes = append(notes, "from "+e.FromCache+" cache")
	}
	f.Note = strings.Join(notes, ", ")
	if x := e.Pilotwire; x != nil {
		restore(&f, x)
	}
	return f, nil
}

// restore sets what a HAR pilotwire exported says of the flow beyond HAR
// (export.Extra), so that export then import gives the flow back.
func restore(f *flow.Flow, x *export.Extra) {
	switch k := flow.Kind(x.Kind); k {
	case flow.KindHTTP, flow.KindConnect, flow.KindTLS, flow.KindTCP, flow.KindDNS, flow.KindQUIC:
		f.Kind = k
	}
	if f.Kind != flow.KindHTTP && f.Method == "CONNECT" && x.Kind != string(flow.KindConnect) {
		f.Method = "" // the export names a method for every entry; this flow had none
	}
	if x.Client != "" && target.HostProblem(x.Client) == "" {
		f.Client = x.Client
	}
	if x.Port >= 0 && x.Port < 65536 {
		f.Port = x.Port
	}
	f.Scheme = x.Scheme
	if x.ClientPort > 0 && x.ClientPort < 65536 {
		f.ClientPort = x.ClientPort
	}
	f.Device, f.Session, f.SNI, f.ALPN, f.TLSVersion = x.Device, x.Session, x.SNI, x.ALPN, x.TLSVersion
	f.BytesUp, f.BytesDown = nonNeg(x.BytesUp), nonNeg(x.BytesDown)
	f.Error, f.Decision, f.Reason, f.Note = x.Error, flow.Decision(x.Decision), x.Reason, x.Note
	if x.Open {
		f.End = time.Time{}
	}
	// As the proxy writes them: a tunnel's key and a proxy's name are
	// short, the headers at most 8 KiB; a file that says more is not one
	// pilotwire wrote, and they are left out.
	if len(x.Tunnel) <= 256 && len(x.Proxy) <= 256 && len(x.Headers) <= 64<<10 {
		f.Tunnel, f.Proxy, f.Headers = x.Tunnel, x.Proxy, x.Headers
	}
}

// setTarget sets Scheme, Host, Port and URL from the request URL. A
// CONNECT's URL is the authority ("host:443"), sometimes with a scheme.
func setTarget(f *flow.Flow, raw string) error {
	if raw == "" {
		return errors.New("request has no url")
	}
	if f.Method == "CONNECT" {
		target.SetConnect(f, raw)
		return nil
	}
	return target.SetURL(f, raw)
}

// parseTime reads an ISO 8601 time, keeping its zone offset.
func parseTime(s string) (time.Time, error) {
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05.999999999Z0700", "2006-01-02T15:04:05.999999999"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t, nil
		}
	}
	return time.Time{}, errors.New("not an ISO 8601 time")
}

func nonNeg(n int64) int64 { return max(n, 0) }

func firstNonEmpty(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}
