package intercept

import (
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
	n := strings.ToLower(name)
	if secretParams[n] || secretHeaders[n] || strings.HasSuffix(n, "key") {
		return true // "key", "api_key", "X-Api-Key", "Ocp-Apim-Subscription-Key"
	}
	for _, s := range []string{"token", "secret", "password", "signature"} {
		if strings.Contains(n, s) {
			return true
		}
	}
	return false
}

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
	for _, side := range []struct {
		mark string
		h    map[string][]string
	}{{"> ", req}, {"< ", resp}} {
		names := make([]string, 0, len(side.h))
		for k := range side.h {
			names = append(names, k)
		}
		slices.Sort(names)
		for _, k := range names {
			for _, v := range side.h[k] {
				if secretName(k) {
					v = Redacted
				}
				line := side.mark + k + ": " + strings.Map(noControl, v) + "\n"
				if b.Len()+len(line) > MaxHeaders {
					b.WriteString("… (cut at " + strconv.Itoa(MaxHeaders) + " bytes)\n")
					return strings.TrimSuffix(b.String(), "\n")
				}
				b.WriteString(line)
			}
		}
	}
	return strings.TrimSuffix(b.String(), "\n")
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
