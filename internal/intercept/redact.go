package intercept

import (
	"net/url"
	"strings"
)

// Redacted replaces the value of a secret query parameter.
const Redacted = "REDACTED"

// secretParams are query parameter names (lower case) whose values are
// credentials: an Azure SAS signature (sig), OAuth codes and tokens, keys.
// Names holding "token", "secret", "password" or "signature" are secret
// too (secretName).
var secretParams = map[string]bool{
	"sig": true, "code": true, "key": true, "apikey": true, "api_key": true, "pwd": true, "passwd": true,
	"assertion": true, "client_assertion": true, "x-amz-credential": true, "x-goog-credential": true,
	"auth": true, "authorization": true, "sessionid": true, "session": true,
}

func secretName(name string) bool {
	n := strings.ToLower(name)
	if secretParams[n] {
		return true
	}
	for _, s := range []string{"token", "secret", "password", "signature"} {
		if strings.Contains(n, s) {
			return true
		}
	}
	return false
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
