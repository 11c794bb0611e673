package flow

import (
	"bufio"
	"bytes"
	"compress/flate"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"
)

// Bodies are the kept first bytes of a request's body and of its
// response's body, as they travelled (after HTTP/1.1 chunking or HTTP/2
// framing is taken off; a Content-Encoding such as gzip is kept). Whether
// a body was kept whole is told by the flow's BytesUp and BytesDown: a
// kept body shorter than those was cut.
type Bodies struct {
	Request  []byte
	Response []byte
}

// MaxBody is the most of one body a flow may keep (proxy --bodies), and
// so the most DecodeBodies gives back for each: a stored value that
// claims more is damaged.
const MaxBody = 64 << 20

// bodiesVersion is the first byte of Flow.Bodies: the format below,
// compressed with DEFLATE.
const bodiesVersion = 1

// EncodeBodies is b as Flow.Bodies keeps it: a version byte, then DEFLATE
// of each body as a length (uvarint) and its bytes, request first. Two
// empty bodies are nil: nothing kept.
func EncodeBodies(b Bodies) []byte {
	if len(b.Request) == 0 && len(b.Response) == 0 {
		return nil
	}
	var out bytes.Buffer
	out.Grow(1 + (len(b.Request)+len(b.Response))/2)
	out.WriteByte(bodiesVersion)
	w := flateWriters.Get().(*flate.Writer)
	defer flateWriters.Put(w)
	w.Reset(&out)
	var n [binary.MaxVarintLen64]byte
	for _, body := range [][]byte{b.Request, b.Response} {
		// Writes into a bytes.Buffer cannot fail.
		_, _ = w.Write(n[:binary.PutUvarint(n[:], uint64(len(body)))])
		_, _ = w.Write(body)
	}
	_ = w.Close()
	return out.Bytes()
}

// flateWriters are EncodeBodies' compressors: each holds several hundred
// kilobytes of state, too much to make again for every request.
var flateWriters = sync.Pool{New: func() any {
	w, _ := flate.NewWriter(nil, flate.BestSpeed) // a valid level: no error
	return w
}}

// DecodeBodies reads what EncodeBodies wrote. Damaged or hostile data is
// an error that says what was wrong, never more than MaxBody bytes a body.
func DecodeBodies(data []byte) (Bodies, error) {
	var b Bodies
	if len(data) == 0 {
		return b, nil
	}
	if data[0] != bodiesVersion {
		return b, fmt.Errorf("kept bodies: format %d, want %d (written by a newer pilotwire?)", data[0], bodiesVersion)
	}
	r := flate.NewReader(bytes.NewReader(data[1:]))
	defer r.Close()
	br := bufio.NewReader(r) // ReadUvarint needs an io.ByteReader
	for i, name := range []string{"request", "response"} {
		n, err := binary.ReadUvarint(br)
		if err != nil {
			return Bodies{}, fmt.Errorf("kept bodies: %s body's length: %w", name, noEOF(err))
		}
		if n > MaxBody {
			return Bodies{}, fmt.Errorf("kept bodies: %s body of %d bytes, more than the most kept (%d)", name, n, MaxBody)
		}
		body := make([]byte, 0, min(n, 64<<10))
		body, err = appendFull(body, br, int(n))
		if err != nil {
			return Bodies{}, fmt.Errorf("kept bodies: %s body (%d bytes): %w", name, n, noEOF(err))
		}
		if n == 0 {
			body = nil
		}
		if i == 0 {
			b.Request = body
		} else {
			b.Response = body
		}
	}
	if _, err := br.ReadByte(); err != io.EOF {
		if err == nil {
			err = errors.New("bytes after the response body")
		}
		return Bodies{}, fmt.Errorf("kept bodies: %w", err)
	}
	return b, nil
}

// appendFull appends n bytes read from r to b, growing b as the bytes
// come rather than trusting n up front.
func appendFull(b []byte, r io.Reader, n int) ([]byte, error) {
	for n > 0 {
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)]
		}
		k := min(cap(b)-len(b), n)
		m, err := io.ReadFull(r, b[len(b):len(b)+k])
		b = b[:len(b)+m]
		n -= m
		if err != nil {
			return b, err
		}
	}
	return b, nil
}

func noEOF(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}
