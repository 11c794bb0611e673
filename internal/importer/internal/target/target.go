// Package target fills a flow's target (scheme, host, port, URL) from what
// the importers find in request lines: absolute URLs and CONNECT
// authorities.
package target

import (
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strconv"
	"strings"

	"github.com/pilotwire/pilotwire/internal/flow"
)

// SetURL sets f's URL, Scheme, Host and Port from an absolute URL; the port
// defaults from the scheme.
func SetURL(f *flow.Flow, raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("request url %q: %w", Clip(raw), err)
	}
	if u.Host == "" {
		return fmt.Errorf("request url %q has no host", Clip(raw))
	}
	host := strings.ToLower(u.Hostname())
	if why := HostProblem(host); why != "" {
		return fmt.Errorf("request url %q: host %s", Clip(raw), why)
	}
	port := DefaultPort(strings.ToLower(u.Scheme))
	if p := u.Port(); p != "" {
		n, err := strconv.ParseUint(p, 10, 16)
		if err != nil {
			return fmt.Errorf("request url %q: port %s is not a port", Clip(raw), p)
		}
		port = int(n)
	}
	f.URL = raw
	f.Scheme = strings.ToLower(u.Scheme)
	f.Host = host
	f.Port = port
	return nil
}

// parsePort is a port number, or 0 when s is none.
func parsePort(s string) int {
	n, err := strconv.ParseUint(s, 10, 16)
	if err != nil {
		return 0
	}
	return int(n)
}

// DefaultPort is the port a URL of scheme uses when it names none, or 0.
func DefaultPort(scheme string) int {
	switch scheme {
	case "https", "wss":
		return 443
	case "http", "ws":
		return 80
	}
	return 0
}

// SetConnect makes f a tunnel to a CONNECT authority ("host:port", with a
// scheme or a trailing slash as some tools write it); the port defaults to
// 443.
func SetConnect(f *flow.Flow, authority string) {
	f.Kind = flow.KindConnect
	if i := strings.Index(authority, "://"); i >= 0 {
		authority = authority[i+3:]
	}
	authority = strings.TrimSuffix(authority, "/")
	host, port, err := net.SplitHostPort(authority)
	if err != nil {
		host, port = authority, "443"
	}
	f.Host = strings.ToLower(strings.Trim(host, "[]"))
	if HostProblem(f.Host) != "" {
		// Not a host: the flow says it has none rather than keep it.
		f.Host = ""
	}
	f.Port = parsePort(port)
}

// Clip shortens s for an error message.
func Clip(s string) string {
	if len(s) > 80 {
		return s[:80] + "…"
	}
	return s
}

// HostProblem says what is wrong with h as a flow's Host, or "" when it
// is valid: an IP address literal (no brackets, no zone), or a name in
// lower-case ASCII letters, digits, '-' and '_', in dot-separated labels of
// 1 to 63 bytes, 253 bytes at most. Importers leave out a host that is not
// (see importtest.Check).
func HostProblem(h string) string {
	if _, err := netip.ParseAddr(h); err == nil {
		if strings.Contains(h, "%") {
			return "is an IP address with a zone"
		}
		return ""
	}
	if strings.ToLower(h) != h {
		return "is not lower-case"
	}
	if len(h) > 253 {
		return fmt.Sprintf("is %d bytes long, more than 253", len(h))
	}
	// Label by label without strings.Split: Squid checks every host it
	// has not cached, and this should not allocate.
	for off := 0; off <= len(h); {
		end := strings.IndexByte(h[off:], '.')
		if end < 0 {
			end = len(h) - off
		}
		label := h[off : off+end]
		if label == "" {
			return "has an empty label"
		}
		if len(label) > 63 {
			return fmt.Sprintf("has a label of %d bytes, more than 63", len(label))
		}
		for j := 0; j < len(label); j++ {
			c := label[j]
			if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
				return fmt.Sprintf("has %+q at byte %d (not a letter, digit, '-' or '_' of ASCII)", c, off+j)
			}
		}
		off += end + 1
	}
	return ""
}
