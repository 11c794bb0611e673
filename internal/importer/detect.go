package importer

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strings"
)

// sniffed is what the format detectors look at in a file's head.
type sniffed struct {
	raw  []byte // the head as read
	text []byte // without a UTF-8 byte order mark and leading blanks
	json bool   // text starts a JSON object
	key  string // its first key, when json and it could be read
	// keyErr says why the first key could not be read.
	keyErr error
}

func sniff(head []byte) *sniffed {
	h := &sniffed{raw: head}
	h.text = bytes.TrimLeft(bytes.TrimPrefix(head, []byte("\xef\xbb\xbf")), " \t\r\n")
	if len(h.text) > 0 && h.text[0] == '{' {
		h.json = true
		h.key, h.keyErr = firstKey(h.text)
	}
	return h
}

// Detect names the format of a file from its first bytes (up to a MiB is
// plenty; less works for every format but a net-log whose first key comes
// late). It looks at content only, never at a name, asking each format of
// the registry in turn: magic numbers for pcap, pcapng and zip (SAZ), the
// first key of a JSON object for HAR ("log") and net-log ("constants",
// "events", "polledData"), and the shape of the first lines for Squid. The
// error lists the formats tried.
func Detect(head []byte) (Format, error) {
	h := sniff(head)
	descs := make([]string, len(registry))
	for i, e := range registry {
		if e.detect(h) {
			return e.name, nil
		}
		descs[i] = e.tried
	}
	tried := "tried " + strings.Join(descs, ", ")
	switch {
	case h.json && h.keyErr != nil:
		return "", fmt.Errorf("%w: JSON that could not be read (%v); %s", ErrUnknownFormat, h.keyErr, tried)
	case h.json:
		return "", fmt.Errorf("%w: a JSON object whose first key is %q; %s", ErrUnknownFormat, h.key, tried)
	case len(head) == 0:
		return "", fmt.Errorf("%w: the file is empty; %s", ErrUnknownFormat, tried)
	}
	return "", fmt.Errorf("%w: %s", ErrUnknownFormat, tried)
}

// firstKey returns the first key of the JSON object at the start of b.
func firstKey(b []byte) (string, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	if _, err := dec.Token(); err != nil { // '{'
		return "", err
	}
	tok, err := dec.Token()
	if err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return "", err
	}
	if k, ok := tok.(string); ok {
		return k, nil
	}
	return "", nil
}

// looksSquid reports whether the first non-blank lines of b look like a
// Squid access.log: native ("1157689312.049   5006 10.0.0.1 TCP_MISS/200
// …") or common/combined ("10.0.0.1 - user [08/Sep/2006:04:21:52 +0000]
// \"GET …"). Up to five lines are checked; a majority must match, so one
// damaged first line does not hide a good log.
func looksSquid(b []byte) bool {
	good, seen := 0, 0
	for len(b) > 0 && seen < 5 {
		line := b
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			line, b = b[:i], b[i+1:]
		} else {
			// The last line of the head may be cut short: only count it
			// when it is all there is.
			b = nil
			if seen > 0 {
				break
			}
		}
		line = bytes.TrimSpace(line)
		if len(line) == 0 || line[0] == '#' {
			continue
		}
		seen++
		if squidNativeShape(line) || squidCommonShape(line) {
			good++
		}
	}
	return seen > 0 && good*2 > seen
}

// squidNativeShape: "<unix time with fraction> <elapsed ms> <client> <code>/<status> …".
func squidNativeShape(line []byte) bool {
	f := bytes.Fields(line)
	if len(f) < 7 {
		return false
	}
	return isDecimal(f[0], true) && isDecimal(f[1], false) && bytes.IndexByte(line, '/') > 0
}

// squidCommonShape: "<client> <ident> <user> [<time>] \"<request>\" <status> <bytes> …".
func squidCommonShape(line []byte) bool {
	f := bytes.Fields(line)
	if len(f) < 9 {
		return false
	}
	return f[3][0] == '[' && bytes.Contains(line, []byte("] \""))
}

// isDecimal reports whether b is digits, with at most one '.' when frac.
func isDecimal(b []byte, frac bool) bool {
	if len(b) == 0 {
		return false
	}
	dots := 0
	for _, c := range b {
		switch {
		case c >= '0' && c <= '9':
		case c == '.' && frac:
			dots++
		case c == '-' && len(b) == 1:
			// Squid writes "-" for an unknown elapsed time.
		default:
			return false
		}
	}
	return dots <= 1
}
