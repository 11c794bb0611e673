package proxy

import (
	"net/netip"
	"strings"
	"testing"
)

// TestTargetRefusalEmbedded: an IPv4-compatible IPv6 address is judged by
// the IPv4 address it carries ([::127.0.0.1] is loopback).
func TestTargetRefusalEmbedded(t *testing.T) {
	for _, tt := range []struct {
		addr, want string
	}{
		{"::127.0.0.1", "loopback"},
		{"::7f00:1", "loopback"},
		{"::169.254.169.254", "metadata"},
		{"::a9fe:a9fe", "metadata"},
		{"::ffff:127.0.0.1", "loopback"},
		{"::1", "loopback"},
		{"::", "unspecified"},
		{"::8.8.8.8", ""},
		{"2001:db8::1", ""},
	} {
		got := targetRefusal(netip.MustParseAddr(tt.addr), false)
		if (tt.want == "") != (got == "") || !strings.Contains(got, tt.want) {
			t.Errorf("targetRefusal(%s) = %q, want one saying %q", tt.addr, got, tt.want)
		}
	}
}
