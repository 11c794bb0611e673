// Package target fills a flow's target (scheme, host, port, URL) from what
// the importers find in request lines: absolute URLs and CONNECT
// authorities.
package target

import (
	"fmt"
	"net"
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
	f.URL = raw
	f.Scheme = strings.ToLower(u.Scheme)
	f.Host = strings.ToLower(u.Hostname())
	if p, err := strconv.Atoi(u.Port()); err == nil {
		f.Port = p
	} else {
		f.Port = DefaultPort(f.Scheme)
	}
	return nil
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
	f.Port, _ = strconv.Atoi(port)
}

// Clip shortens s for an error message.
func Clip(s string) string {
	if len(s) > 80 {
		return s[:80] + "…"
	}
	return s
}
