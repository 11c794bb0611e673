package report

import (
	"bytes"
	"compress/gzip"
	"encoding/hex"
	"fmt"
	"io"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/pilotwire/pilotwire/internal/flow"
)

// A kept body is shown as it is when it is text, as a hex dump when it is
// not, and decoded first when the response says gzip (kept bodies are as
// they travelled). Bodies come from the network: a control character in
// text makes it binary, so nothing a body holds can move a terminal's
// cursor.

// Body is one kept body made ready to show.
type Body struct {
	Kept     int    // bytes kept
	Size     int64  // bytes the body had (BytesUp or BytesDown; -1 unknown)
	Gzip     bool   // Data is the kept bytes gunzipped (Content-Encoding: gzip)
	Text     bool   // Data is UTF-8 text without control characters but tab and newline
	Data     []byte // what to show
	Complete bool   // the whole body was kept
}

// KeptBodies decodes f's kept bodies: the request's and the response's,
// each nil when none was kept.
func KeptBodies(f *flow.Flow) (req, resp *Body, err error) {
	b, err := flow.DecodeBodies(f.Bodies)
	if err != nil {
		return nil, nil, err
	}
	if b.Request != nil {
		req = newBody(b.Request, f.BytesUp, gzipped(f.Headers, true))
	}
	if b.Response != nil {
		resp = newBody(b.Response, f.BytesDown, gzipped(f.Headers, false))
	}
	return req, resp, nil
}

func newBody(kept []byte, size int64, gzipped bool) *Body {
	b := &Body{Kept: len(kept), Size: size, Data: kept, Complete: size >= 0 && int64(len(kept)) >= size}
	if gzipped {
		// A cut body still decodes as far as it goes.
		if zr, err := gzip.NewReader(bytes.NewReader(kept)); err == nil {
			var out bytes.Buffer
			_, _ = io.Copy(&out, io.LimitReader(zr, flow.MaxBody))
			if out.Len() > 0 {
				b.Data, b.Gzip = out.Bytes(), true
			}
		}
	}
	b.Text = printable(b.Data)
	return b
}

// gzipped reports whether the headers say the request's body (sent) or
// the response's is gzip-encoded.
func gzipped(headers string, sent bool) bool {
	for h := range flow.Headers(headers) {
		if h.Sent == sent && strings.EqualFold(h.Name, "Content-Encoding") && strings.Contains(strings.ToLower(h.Value), "gzip") {
			return true
		}
	}
	return false
}

// printable reports whether b is UTF-8 text whose only control
// characters are tab, newline and carriage return.
func printable(b []byte) bool {
	if !utf8.Valid(b) {
		return false
	}
	for _, r := range string(b) {
		if unicode.IsControl(r) && r != '\t' && r != '\n' && r != '\r' {
			return false
		}
	}
	return true
}

// JSON is b as FlowJSON gives it: what was kept, and its bytes as text
// or in base64.
func (b *Body) JSON() map[string]any {
	m := map[string]any{"kept": b.Kept, "complete": b.Complete}
	if b.Gzip {
		m["gzip_decoded"] = true
	}
	if b.Text {
		m["text"] = string(b.Data)
	} else {
		m["base64"] = b.Data // encoding/json writes []byte in base64
	}
	return m
}

// Describe is the line that introduces the body: its size, how much was
// kept, and how it is shown.
func (b *Body) Describe() string {
	var s string
	switch {
	case b.Complete:
		s = fmt.Sprintf("%d bytes", b.Kept)
	case b.Size >= 0:
		s = fmt.Sprintf("the first %d of %d bytes", b.Kept, b.Size)
	default:
		s = fmt.Sprintf("the first %d bytes", b.Kept)
	}
	if b.Gzip {
		s += fmt.Sprintf(", gzip, %d bytes decoded", len(b.Data))
	}
	if !b.Text {
		s += ", binary"
	}
	return s
}

// WriteBodies writes f's kept bodies for a person: after a line naming
// each, its text or a hex dump, every line indented by indent.
func WriteBodies(w io.Writer, f *flow.Flow, indent string) error {
	req, resp, err := KeptBodies(f)
	if err != nil {
		_, werr := fmt.Fprintf(w, "%s(%v)\n", indent, err)
		return werr
	}
	var out strings.Builder
	for _, part := range []struct {
		name string
		b    *Body
	}{{"> request body", req}, {"< response body", resp}} {
		if part.b == nil {
			continue
		}
		fmt.Fprintf(&out, "%s%s, %s:\n", indent, part.name, part.b.Describe())
		text := string(part.b.Data)
		if !part.b.Text {
			text = hex.Dump(part.b.Data)
		}
		text = strings.ReplaceAll(strings.ReplaceAll(text, "\r\n", "\n"), "\r", `\r`)
		for line := range strings.Lines(text) {
			out.WriteString(indent + "  " + strings.TrimSuffix(line, "\n") + "\n")
		}
	}
	_, err = io.WriteString(w, out.String())
	return err
}
