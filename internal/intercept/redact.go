package intercept

import (
	"bytes"
	"net/url"
	"slices"
	"strconv"
	"strings"
)

// Redacted replaces the value of a secret query parameter.
const Redacted = "REDACTED"

// secretParams are query parameter names (lower case) whose values are
// credentials: an Azure SAS signature (sig), OAuth codes and tokens, keys.
// Names ending in "key" or holding "token", "secret", "password" or "signature" are secret
// too (secretName).
var secretParams = map[string]bool{
	"sig": true, "code": true, "key": true, "apikey": true, "api_key": true, "pwd": true, "passwd": true,
	"assertion": true, "client_assertion": true, "x-amz-credential": true, "x-goog-credential": true,
	"auth": true, "authorization": true, "sessionid": true, "session": true,
}

func secretName(name string) bool {
	// Lower-cased on the stack: this runs for every header of every
	// request, and names are short.
	var buf [64]byte
	if len(name) > len(buf) {
		return secretLower(strings.ToLower(name))
	}
	b := buf[:len(name)]
	for i := range len(name) {
		c := name[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		b[i] = c
	}
	if secretParams[string(b)] || secretHeaders[string(b)] {
		return true // map lookups with string(b) do not allocate
	}
	return secretWords(b)
}

// secretLower is secretName of a name already in lower case.
func secretLower(n string) bool {
	return secretParams[n] || secretHeaders[n] || secretWords([]byte(n))
}

// secretWords says whether a lower-case name ends in "key" ("api_key",
// "X-Api-Key", "Ocp-Apim-Subscription-Key") or holds a word of secretWord.
func secretWords(n []byte) bool {
	if bytes.HasSuffix(n, []byte("key")) {
		return true
	}
	for _, s := range secretWord {
		if bytes.Contains(n, s) {
			return true
		}
	}
	return false
}

var secretWord = [][]byte{[]byte("token"), []byte("secret"), []byte("password"), []byte("signature")}

// secretHeaders are header names (lower case) whose values are
// credentials, beside those secretName finds by their words.
var secretHeaders = map[string]bool{"cookie": true, "set-cookie": true, "proxy-authorization": true, "www-authenticate": true,
	"proxy-authenticate": true, "x-ms-refreshtokencredential": true, "x-ms-devicecredential": true}

// MaxHeaders bounds a flow's Headers text; past it the rest is cut and
// said so.
const MaxHeaders = 8 << 10

// HeaderLines writes the request's and the response's headers as a
// flow's Headers: "> Name: value" and "< Name: value" lines, names in
// order, values of secrets (secretName) replaced by Redacted, at most
// MaxHeaders bytes.
func HeaderLines(req, resp map[string][]string) string {
	var b strings.Builder
	b.Grow(headerLinesSize(req) + headerLinesSize(resp))
	var names [32]string // most messages have fewer headers: no allocation
	for _, side := range [2]struct {
		mark string
		h    map[string][]string
	}{{"> ", req}, {"< ", resp}} {
		keys := names[:0]
		for k := range side.h {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			secret := secretName(k)
			for _, v := range side.h[k] {
				if secret {
					v = Redacted
				}
				if hasControl(v) {
					v = strings.Map(noControl, v)
				}
				if b.Len()+len(side.mark)+len(k)+2+len(v)+1 > MaxHeaders {
					b.WriteString("… (cut at " + strconv.Itoa(MaxHeaders) + " bytes)\n")
					return strings.TrimSuffix(b.String(), "\n")
				}
				b.WriteString(side.mark)
				b.WriteString(k)
				b.WriteString(": ")
				b.WriteString(v)
				b.WriteByte('\n')
			}
		}
	}
	return strings.TrimSuffix(b.String(), "\n")
}

// headerLinesSize is about what HeaderLines writes for h, at most
// MaxHeaders: one allocation for the text instead of several as it grows.
func headerLinesSize(h map[string][]string) int {
	n := 0
	for k, vs := range h {
		for _, v := range vs {
			n += len(k) + len(v) + 5
		}
	}
	return min(n, MaxHeaders+64)
}

// hasControl says whether v has a byte noControl drops: strings.Map
// decodes every rune, a byte scan is several times quicker, and values
// with control characters are rare (net/http refuses them).
func hasControl(v string) bool {
	for i := range len(v) {
		if c := v[i]; c < 0x20 && c != '\t' || c == 0x7f {
			return true
		}
	}
	return false
}

// noControl drops control characters from a header value (net/http
// refuses them on the wire; a line break here would forge a line).
func noControl(r rune) rune {
	if r < 0x20 && r != '\t' || r == 0x7f {
		return -1
	}
	return r
}

// RedactRequestURI returns a request target (path and query) with the
// values of secret query parameters replaced by Redacted; everything else
// is kept byte for byte, so the URL stays the one the client asked for.
func RedactRequestURI(uri string) string {
	path, query, ok := strings.Cut(uri, "?")
	if !ok || query == "" {
		return uri
	}
	var b strings.Builder
	b.Grow(len(uri))
	b.WriteString(path)
	b.WriteByte('?')
	first := true
	for part := range strings.SplitSeq(query, "&") {
		if !first {
			b.WriteByte('&')
		}
		first = false
		name, _, hasValue := strings.Cut(part, "=")
		decoded, err := url.QueryUnescape(name)
		if err != nil {
			decoded = name
		}
		if hasValue && secretName(decoded) {
			b.WriteString(name)
			b.WriteString("=" + Redacted)
			continue
		}
		b.WriteString(part)
	}
	return b.String()
}
