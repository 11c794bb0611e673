// Package export owns writing flows out in other tools' formats: HAR 1.2
// today (the page's "HAR" download and `pilotwire export`), which browser
// DevTools, Fiddler and HAR viewers open. pilotwire's own facts that HAR
// has no field for (client address, SNI, ALPN, tunnel bytes, the proxy's
// decision) go in an "_pilotwire" object on each entry, which pilotwire's
// HAR importer reads back: export then import gives the same flows.
//
// It imports flow only.
package export

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/url"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/pilotwire/pilotwire/internal/flow"
)

// HARInfo describes the export.
type HARInfo struct {
	Version string // pilotwire's version, for log.creator
	Comment string // log.comment: what the file holds ("session 3 of pilotwire.db")
}

// The HAR 1.2 objects pilotwire writes (http://www.softwareishard.com/blog/har-12-spec/).
type harEntry struct {
	StartedDateTime string      `json:"startedDateTime"`
	Time            float64     `json:"time"`
	Request         harRequest  `json:"request"`
	Response        harResponse `json:"response"`
	Cache           struct{}    `json:"cache"`
	Timings         harTimings  `json:"timings"`
	Connection      string      `json:"connection,omitempty"`
	Comment         string      `json:"comment,omitempty"`
	Pilotwire       Extra       `json:"_pilotwire"`
}

type nameValue struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

type harRequest struct {
	Method      string      `json:"method"`
	URL         string      `json:"url"`
	HTTPVersion string      `json:"httpVersion"`
	Cookies     []nameValue `json:"cookies"`
	Headers     []nameValue `json:"headers"`
	QueryString []nameValue `json:"queryString"`
	PostData    *harPost    `json:"postData,omitempty"`
	HeadersSize int64       `json:"headersSize"`
	BodySize    int64       `json:"bodySize"`
}

// harPost is a request body kept (proxy --bodies) and exported with
// --bodies. HAR has no encoding for it: a body that is not text is
// written in base64 and says so in "_encoding".
type harPost struct {
	MimeType string `json:"mimeType"`
	Text     string `json:"text"`
	Encoding string `json:"_encoding,omitempty"`
	Comment  string `json:"comment,omitempty"`
}

type harResponse struct {
	Status      int         `json:"status"`
	StatusText  string      `json:"statusText"`
	HTTPVersion string      `json:"httpVersion"`
	Cookies     []nameValue `json:"cookies"`
	Headers     []nameValue `json:"headers"`
	Content     struct {
		Size     int64  `json:"size"`
		MimeType string `json:"mimeType"`
		Text     string `json:"text,omitempty"`
		Encoding string `json:"encoding,omitempty"`
		Comment  string `json:"comment,omitempty"`
	} `json:"content"`
	RedirectURL string `json:"redirectURL"`
	HeadersSize int64  `json:"headersSize"`
	BodySize    int64  `json:"bodySize"`
	Error       string `json:"_error,omitempty"`
}

type harTimings struct {
	Blocked float64 `json:"blocked"`
	DNS     float64 `json:"dns"`
	Connect float64 `json:"connect"`
	Send    float64 `json:"send"`
	Wait    float64 `json:"wait"`
	Receive float64 `json:"receive"`
	SSL     float64 `json:"ssl"`
}

// Extra is the "_pilotwire" object of an entry: the flow's facts HAR has
// no field for. The HAR importer reads it back.
type Extra struct {
	ID         int64  `json:"id,omitempty"`
	Kind       string `json:"kind"`
	Scheme     string `json:"scheme,omitempty"`
	Port       int    `json:"port"`
	Source     string `json:"source,omitempty"`
	Client     string `json:"client,omitempty"`
	ClientPort int    `json:"client_port,omitempty"`
	Device     string `json:"device,omitempty"`
	Session    string `json:"session,omitempty"`
	SNI        string `json:"sni,omitempty"`
	ALPN       string `json:"alpn,omitempty"`
	TLSVersion string `json:"tls_version,omitempty"`
	BytesUp    int64  `json:"bytes_up"`
	BytesDown  int64  `json:"bytes_down"`
	Error      string `json:"error,omitempty"`
	Decision   string `json:"decision,omitempty"`
	Reason     string `json:"reason,omitempty"`
	Note       string `json:"note,omitempty"`
	Open       bool   `json:"open,omitempty"`
	Tunnel     string `json:"tunnel,omitempty"`
	Proxy      string `json:"proxy,omitempty"`
	// Headers is Flow.Headers as it is (the HAR's header lists hold the
	// same, split): the importer takes it from here.
	Headers string `json:"headers,omitempty"`
}

// WriteHAR writes the flows each gives (in the order given: start order
// for a HAR) as one HAR 1.2 log, one entry at a time. each calls fn for
// every flow and stops at fn's error.
func WriteHAR(ctx context.Context, w io.Writer, info HARInfo, each func(fn func(*flow.Flow) error) error) error {
	bw := bufio.NewWriterSize(w, 64<<10)
	type creator struct {
		Name    string `json:"name"`
		Version string `json:"version"`
	}
	head := struct {
		Version string  `json:"version"`
		Creator creator `json:"creator"`
		Comment string  `json:"comment,omitempty"`
	}{"1.2", creator{"pilotwire", info.Version}, info.Comment}
	hb, err := json.Marshal(head)
	if err != nil {
		return err
	}
	// The log object is written by hand around the entries, so that they
	// stream: {"log":{<head>,"pages":[],"entries":[ … ]}}.
	fmt.Fprintf(bw, `{"log":%s,"pages":[],"entries":[`, hb[:len(hb)-1])
	enc := json.NewEncoder(bw)
	n := 0
	err = each(func(f *flow.Flow) error {
		if n%1024 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		if n > 0 {
			bw.WriteByte(',')
		}
		n++
		return enc.Encode(entryOf(f))
	})
	if err != nil {
		return err
	}
	bw.WriteString("]}}\n")
	return bw.Flush()
}

func entryOf(f *flow.Flow) harEntry {
	e := harEntry{StartedDateTime: f.Start.Format("2006-01-02T15:04:05.000Z07:00")}
	ms := 0.0
	if !f.End.IsZero() {
		ms = float64(f.End.Sub(f.Start).Microseconds()) / 1000
	}
	e.Time = max(ms, 0)
	e.Timings = harTimings{Blocked: -1, DNS: -1, Connect: -1, SSL: -1, Wait: e.Time}
	e.Request = harRequest{Method: f.Method, HTTPVersion: "HTTP/1.1", Cookies: []nameValue{}, Headers: []nameValue{},
		QueryString: []nameValue{}, HeadersSize: -1, BodySize: max(f.BytesUp, 0)}
	if e.Request.Method == "" {
		e.Request.Method = "GET"
		if f.Kind != flow.KindHTTP {
			e.Request.Method = "CONNECT"
		}
	}
	e.Request.URL = f.URL
	if e.Request.URL == "" {
		scheme := f.Scheme
		if scheme == "" || f.Kind != flow.KindHTTP {
			scheme = "https"
		}
		host := f.Host
		if f.Port > 0 {
			host = net.JoinHostPort(f.Host, strconv.Itoa(f.Port))
		} else if ip := net.ParseIP(f.Host); ip != nil && ip.To4() == nil {
			host = "[" + f.Host + "]"
		}
		e.Request.URL = scheme + "://" + host + "/"
	}
	if u, err := url.Parse(e.Request.URL); err == nil {
		for k, vs := range u.Query() {
			for _, v := range vs {
				e.Request.QueryString = append(e.Request.QueryString, nameValue{k, v})
			}
		}
	}
	e.Response = harResponse{Status: max(f.Status, 0), HTTPVersion: "HTTP/1.1", Cookies: []nameValue{}, Headers: []nameValue{},
		HeadersSize: -1, BodySize: max(f.BytesDown, 0), Error: f.Error}
	e.Response.StatusText = statusText(e.Response.Status)
	e.Response.Content.Size = max(f.BytesDown, 0)
	addHeaders(&e, f.Headers)
	if f.Bodies != nil {
		addBodies(&e, f)
	}
	e.Pilotwire = Extra{ID: f.ID, Kind: string(f.Kind), Scheme: f.Scheme, Port: f.Port, Source: string(f.Source), Client: f.Client, ClientPort: f.ClientPort,
		Device: f.Device, Session: f.Session, SNI: f.SNI, ALPN: f.ALPN, TLSVersion: f.TLSVersion, BytesUp: f.BytesUp,
		BytesDown: f.BytesDown, Error: f.Error, Decision: string(f.Decision), Reason: f.Reason, Note: f.Note, Open: f.Open(),
		Tunnel: f.Tunnel, Proxy: f.Proxy, Headers: f.Headers}
	return e
}

func statusText(code int) string {
	if code == 0 {
		return ""
	}
	return httpStatusText[code]
}

// httpStatusText names the statuses a proxy's flows carry; others stay
// without a text (HAR allows an empty one). Kept here rather than taken
// from net/http so that this package imports no HTTP stack.
var httpStatusText = map[int]string{
	100: "Continue", 101: "Switching Protocols", 200: "OK", 201: "Created", 202: "Accepted", 204: "No Content",
	206: "Partial Content", 301: "Moved Permanently", 302: "Found", 303: "See Other", 304: "Not Modified",
	307: "Temporary Redirect", 308: "Permanent Redirect", 400: "Bad Request", 401: "Unauthorized", 403: "Forbidden",
	404: "Not Found", 405: "Method Not Allowed", 407: "Proxy Authentication Required", 408: "Request Timeout",
	409: "Conflict", 410: "Gone", 413: "Content Too Large", 429: "Too Many Requests", 431: "Request Header Fields Too Large",
	500: "Internal Server Error", 501: "Not Implemented", 502: "Bad Gateway", 503: "Service Unavailable",
	504: "Gateway Timeout", 508: "Loop Detected",
}

// addHeaders fills the entry's header lists from a flow's Headers ("> "
// lines sent, "< " received, secrets already REDACTED), and the
// response's mimeType from its Content-Type.
func addHeaders(e *harEntry, headers string) {
	for h := range flow.Headers(headers) {
		if h.Sent {
			e.Request.Headers = append(e.Request.Headers, nameValue{h.Name, h.Value})
			continue
		}
		e.Response.Headers = append(e.Response.Headers, nameValue{h.Name, h.Value})
		if strings.EqualFold(h.Name, "Content-Type") {
			e.Response.Content.MimeType = h.Value
		}
	}
}

// addBodies writes a flow's kept bodies (proxy --bodies) where HAR keeps
// them: the request's as postData, the response's as content text (in
// base64 when it is not UTF-8 text), each saying when it was cut.
func addBodies(e *harEntry, f *flow.Flow) {
	b, err := flow.DecodeBodies(f.Bodies)
	if err != nil {
		e.Comment = err.Error()
		return
	}
	cut := func(kept []byte, size int64) string {
		if int64(len(kept)) < size {
			return fmt.Sprintf("the first %d of %d bytes", len(kept), size)
		}
		return ""
	}
	if b.Request != nil {
		p := &harPost{MimeType: headerValue(e.Request.Headers, "Content-Type"), Comment: cut(b.Request, f.BytesUp)}
		p.Text, p.Encoding = textOrBase64(b.Request)
		e.Request.PostData = p
	}
	if b.Response != nil {
		c := &e.Response.Content
		c.Text, c.Encoding = textOrBase64(b.Response)
		c.Comment = cut(b.Response, f.BytesDown)
	}
}

func textOrBase64(b []byte) (text, encoding string) {
	if utf8.Valid(b) {
		return string(b), ""
	}
	return base64.StdEncoding.EncodeToString(b), "base64"
}

func headerValue(hs []nameValue, name string) string {
	for _, h := range hs {
		if strings.EqualFold(h.Name, name) {
			return h.Value
		}
	}
	return ""
}
