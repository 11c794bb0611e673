package proxy

import (
	"crypto/subtle"
	"encoding/base64"
	"fmt"
	"net/netip"
	"strings"
)

// DefaultClients are the networks served when Proxy.AllowClients is nil:
// loopback, RFC 1918, RFC 4193 (fc00::/7) and link-local.
var DefaultClients = []netip.Prefix{
	netip.MustParsePrefix("127.0.0.0/8"),
	netip.MustParsePrefix("::1/128"),
	netip.MustParsePrefix("10.0.0.0/8"),
	netip.MustParsePrefix("172.16.0.0/12"),
	netip.MustParsePrefix("192.168.0.0/16"),
	netip.MustParsePrefix("fc00::/7"),
	netip.MustParsePrefix("169.254.0.0/16"),
	netip.MustParsePrefix("fe80::/10"),
}

// metadata are cloud instance metadata addresses, refused as targets.
var metadata = []netip.Addr{
	netip.MustParseAddr("169.254.169.254"),
	netip.MustParseAddr("fd00:ec2::254"),
	netip.MustParseAddr("100.100.100.200"), // Alibaba Cloud
}

// ParsePrefixes parses a comma-separated list of CIDR prefixes or single
// addresses, as --allow-clients takes them.
func ParsePrefixes(s string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for part := range strings.SplitSeq(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		if strings.Contains(part, "/") {
			p, err := netip.ParsePrefix(part)
			if err != nil {
				return nil, fmt.Errorf("network %q: %w", part, err)
			}
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(part)
		if err != nil {
			return nil, fmt.Errorf("network %q: %w", part, err)
		}
		out = append(out, netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()))
	}
	return out, nil
}

func allowedClient(nets []netip.Prefix, a netip.Addr) bool {
	a = a.Unmap()
	for _, p := range nets {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// targetRefusal says why a target address may not be dialled, or "" if it
// may. Private (RFC 1918, ULA) targets are allowed: they are the corporate
// network. The metadata addresses are refused even when private targets
// are allowed.
func targetRefusal(a netip.Addr, allowPrivate bool) string {
	a = unembed(a.Unmap())
	for _, m := range metadata {
		if a == m {
			return fmt.Sprintf("target %s is a cloud metadata address", a)
		}
	}
	if allowPrivate {
		return ""
	}
	switch {
	case !a.IsValid():
		return "target address is invalid"
	case a.IsLoopback():
		return fmt.Sprintf("target %s is a loopback address", a)
	case a.IsUnspecified():
		return fmt.Sprintf("target %s is an unspecified address", a)
	case a.IsLinkLocalUnicast():
		return fmt.Sprintf("target %s is a link-local address", a)
	case a.IsMulticast(), a.IsLinkLocalMulticast(), a.IsInterfaceLocalMulticast():
		return fmt.Sprintf("target %s is a multicast address", a)
	case a.Is4() && a.As4()[0] == 0:
		return fmt.Sprintf("target %s is in 0.0.0.0/8", a)
	}
	return ""
}

// unembed returns the IPv4 address an IPv4-compatible IPv6 address
// (::a.b.c.d, RFC 4291 §2.5.5.1, deprecated but still parsed) carries, so
// that [::127.0.0.1] is judged as 127.0.0.1; other addresses as they are.
func unembed(a netip.Addr) netip.Addr {
	if !a.Is6() || a.IsUnspecified() || a.IsLoopback() {
		return a
	}
	b := a.As16()
	for _, x := range b[:12] {
		if x != 0 {
			return a
		}
	}
	return netip.AddrFrom4([4]byte(b[12:]))
}

// checkBasic checks a Proxy-Authorization header value against user and
// pass. It returns the user name the client sent (even when wrong) and
// whether the credentials match.
func checkBasic(header, user, pass string) (string, bool) {
	scheme, cred, ok := strings.Cut(header, " ")
	if !ok || !strings.EqualFold(scheme, "Basic") {
		return "", false
	}
	raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(cred))
	if err != nil {
		return "", false
	}
	u, p, ok := strings.Cut(string(raw), ":")
	if !ok {
		return "", false
	}
	uok := subtle.ConstantTimeCompare([]byte(u), []byte(user)) == 1
	pok := subtle.ConstantTimeCompare([]byte(p), []byte(pass)) == 1
	return u, uok && pok
}
