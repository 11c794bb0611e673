package importer

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
)

// tried is what Detect says it looked for when nothing matched.
const tried = "tried pcap and pcapng (magic number), Fiddler SAZ (zip), HAR (JSON object with \"log\"), " +
	"Chrome/Edge net-log (JSON object with \"constants\" or \"events\"), " +
	"Squid access.log (native, common or combined lines)"

// Detect names the format of a file from its first bytes (up to a MiB is
// plenty; less works for every format but a net-log whose first key comes
// late). It looks at content only, never at a name: magic numbers for
// pcap, pcapng and zip (SAZ), the first key of a JSON object for HAR
// ("log") and net-log ("constants", "events", "polledData"), and the shape
// of the first lines for Squid. The error lists the formats tried.
func Detect(head []byte) (Format, error) {
	if len(head) >= 4 {
		switch string(head[:4]) {
		case "\xd4\xc3\xb2\xa1", "\xa1\xb2\xc3\xd4", // pcap, µs
			"\x4d\x3c\xb2\xa1", "\xa1\xb2\x3c\x4d", // pcap, ns
			"\x0a\x0d\x0d\x0a": // pcapng section header block
			return FormatPcap, nil
		case "PK\x03\x04":
			return FormatSAZ, nil
		}
	}
	body := bytes.TrimPrefix(head, []byte("\xef\xbb\xbf"))
	body = bytes.TrimLeft(body, " \t\r\n")
	if len(body) > 0 && body[0] == '{' {
		key, err := firstKey(body)
		switch key {
		case "log":
			return FormatHAR, nil
		case "constants", "events", "polledData":
			return FormatNetlog, nil
		}
		if err != nil {
			return "", fmt.Errorf("%w: JSON that could not be read (%v); %s", ErrUnknownFormat, err, tried)
		}
		return "", fmt.Errorf("%w: a JSON object whose first key is %q; %s", ErrUnknownFormat, key, tried)
	}
	if looksSquid(body) {
		return FormatSquid, nil
	}
	if len(head) == 0 {
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
