package squid

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/pilotwire/pilotwire/internal/flow"
)

// A Layout says which field of a custom-logformat line holds what. Make
// one with ParseLogformat from the format's definition in squid.conf.
type Layout struct {
	spec   string
	fields []role
	last   int // index of the last field pilotwire uses
}

// role is what one logformat field holds, for pilotwire.
type role int

const (
	roleIgnore     role = iota
	roleUnixTime        // %ts.%03tu, %ts
	roleElapsed         // %tr
	roleLocalTime       // [%tl], [%tg]: "[dd/Mon/yyyy:hh:mm:ss +zzzz]"
	roleClient          // %>a
	roleClientPort      // %>p
	roleCodeStatus      // %Ss/%03>Hs
	roleCode            // %Ss
	roleStatus          // %>Hs
	roleBytesDown       // %<st
	roleBytesUp         // %>st
	roleMethod          // %rm
	roleURL             // %ru
	roleUser            // %[un, %un
	roleHier            // %Sh/%<a
	roleSNI             // %ssl::>sni
	roleRequest         // "%rm %ru HTTP/%rv"
)

// ParseLogformat reads the format part of a squid.conf logformat line,
// e.g. `%ts.%03tu %6tr %>a %>p %Ss/%03>Hs %<st %rm %ru %[un %Sh/%<a %mt`.
// Fields pilotwire does not use (sizes of headers, Referer, …) are allowed
// and ignored; quoted fields ("%{User-Agent}>h") are read as one field even
// when the value has spaces. The format must give a time, a method and a
// URL (or a quoted request line).
func ParseLogformat(spec string) (*Layout, error) {
	spec = strings.TrimSpace(spec)
	if strings.HasPrefix(spec, "logformat ") {
		// The whole squid.conf line: drop "logformat NAME".
		parts := strings.SplitN(spec, " ", 3)
		if len(parts) == 3 {
			spec = strings.TrimSpace(parts[2])
		}
	}
	tokens, err := splitQuoted(spec)
	if err != nil {
		return nil, fmt.Errorf("logformat %q: %w", spec, err)
	}
	if len(tokens) == 0 {
		return nil, errors.New("logformat is empty")
	}
	l := &Layout{spec: spec, last: -1}
	seen := map[role]bool{}
	for i, tok := range tokens {
		r := tokenRole(tok)
		if r != roleIgnore {
			if seen[r] {
				return nil, fmt.Errorf("logformat field %d %q: a second field for the same thing", i+1, tok)
			}
			seen[r] = true
			l.last = i
		}
		l.fields = append(l.fields, r)
	}
	if seen[roleUnixTime] && seen[roleLocalTime] {
		return nil, fmt.Errorf("logformat %q has two times (%%ts and [%%tl]): keep one", spec)
	}
	if seen[roleRequest] && (seen[roleMethod] || seen[roleURL]) {
		return nil, fmt.Errorf("logformat %q has the request twice (%%rm/%%ru and a quoted request line): keep one", spec)
	}
	if !seen[roleUnixTime] && !seen[roleLocalTime] {
		return nil, fmt.Errorf("logformat %q has no time (%%ts or [%%tl])", spec)
	}
	if !seen[roleRequest] && (!seen[roleMethod] || !seen[roleURL]) {
		return nil, fmt.Errorf("logformat %q has no method and URL (%%rm %%ru)", spec)
	}
	return l, nil
}

// String is the logformat the layout was made from.
func (l *Layout) String() string { return l.spec }

// tokenRole names one logformat token.
func tokenRole(tok string) role {
	t := strings.Trim(tok, `"`)
	// Drop the width and modifiers between % and the code: %6tr, %03tu,
	// %[un, %-10>a …
	norm := func(s string) string {
		var b strings.Builder
		for i := 0; i < len(s); i++ {
			if s[i] == '%' {
				b.WriteByte('%')
				i++
				for i < len(s) && (s[i] == '-' || s[i] == '[' || s[i] == '#' || s[i] == '\'' || s[i] >= '0' && s[i] <= '9' || s[i] == '.') {
					i++
				}
				if i < len(s) {
					b.WriteByte(s[i])
				}
				continue
			}
			b.WriteByte(s[i])
		}
		return b.String()
	}
	n := norm(t)
	switch {
	case strings.HasPrefix(tok, `"`) && strings.Contains(n, "%rm") && strings.Contains(n, "%ru"):
		return roleRequest
	case strings.HasPrefix(tok, `"`):
		return roleIgnore
	case strings.HasPrefix(n, "%ts"):
		return roleUnixTime
	case n == "[%tl]" || n == "[%tg]":
		return roleLocalTime
	case n == "%tr":
		return roleElapsed
	case n == "%>a":
		return roleClient
	case n == "%>p":
		return roleClientPort
	case n == "%Ss/%>Hs":
		return roleCodeStatus
	case n == "%Ss":
		return roleCode
	case n == "%>Hs":
		return roleStatus
	case n == "%<st":
		return roleBytesDown
	case n == "%>st":
		return roleBytesUp
	case n == "%rm":
		return roleMethod
	case n == "%ru":
		return roleURL
	case n == "%un" || n == "%ue" || n == "%ui":
		return roleUser
	case n == "%Sh/%<a" || n == "%Sh/%<A":
		return roleHier
	case n == "%ssl::>sni":
		return roleSNI
	}
	return roleIgnore
}

// splitQuoted splits s at runs of spaces, keeping "quoted" and [bracketed]
// fields whole (with their quotes or brackets).
func splitQuoted(s string) ([]string, error) {
	var out []string
	for {
		s = strings.TrimLeft(s, " \t")
		if s == "" {
			return out, nil
		}
		var end int
		switch s[0] {
		case '"':
			end = closing(s, '"')
		case '[':
			end = closing(s, ']')
		default:
			end = strings.IndexAny(s, " \t")
			if end < 0 {
				end = len(s)
			}
		}
		if end < 0 {
			return out, fmt.Errorf("field %d: %q is not closed", len(out)+1, s[:1])
		}
		out = append(out, s[:end])
		s = s[end:]
	}
}

// closing returns the index just past the quote or bracket that closes
// the field starting at s[0], honouring backslash escapes, or -1.
func closing(s string, c byte) int {
	for i := 1; i < len(s); i++ {
		switch s[i] {
		case '\\':
			i++
		case c:
			return i + 1
		}
	}
	return -1
}

// parseLayout reads one line with p.Layout.
func (p *Parser) parseLayout(line string, f *flow.Flow) error {
	l := p.Layout
	fields, err := splitQuoted(line)
	if err != nil {
		return err
	}
	if len(fields) <= l.last {
		return fmt.Errorf("%d fields, the logformat needs at least %d", len(fields), l.last+1)
	}
	var code, user, hier string
	status := -1
	var elapsed int64
	var end time.Time
	method, u := "", ""
	for i, r := range l.fields[:l.last+1] {
		v := fields[i]
		where := func(err error) error { return fmt.Errorf("field %d %q: %w", i+1, clip(v), err) }
		switch r {
		case roleUnixTime:
			if end, err = p.unixTime(v); err != nil {
				return where(err)
			}
		case roleLocalTime:
			if end, err = time.Parse("[02/Jan/2006:15:04:05 -0700]", v); err != nil {
				return where(errors.New("not a [dd/Mon/yyyy:hh:mm:ss +zzzz] time"))
			}
		case roleElapsed:
			if v != "-" {
				if elapsed, err = parseUint(v); err != nil {
					return where(err)
				}
			}
		case roleClient:
			f.Client = v
		case roleClientPort:
			if n, err := parseUint(v); err == nil && n < 65536 {
				f.ClientPort = int(n)
			}
		case roleCodeStatus:
			if code, _, status, err = p.codeStatus(v); err != nil {
				return where(err)
			}
		case roleCode:
			code = v
		case roleStatus:
			n, err := parseUint(v)
			if err != nil || n > 999 {
				return where(errors.New("status is not a number"))
			}
			status = int(n)
		case roleBytesDown:
			if v != "-" {
				if f.BytesDown, err = parseUint(v); err != nil {
					return where(err)
				}
			}
		case roleBytesUp:
			if v != "-" {
				if f.BytesUp, err = parseUint(v); err != nil {
					return where(err)
				}
			}
		case roleMethod:
			method = v
		case roleURL:
			u = v
		case roleRequest:
			var rf [3]string
			if splitFields(strings.Trim(v, `"`), rf[:]) < 2 {
				return where(errors.New("not METHOD URL [VERSION]"))
			}
			method, u = rf[0], rf[1]
		case roleUser:
			user = v
		case roleHier:
			hier = v
		case roleSNI:
			if v != "-" {
				f.SNI = lowerASCII(v)
			}
		}
	}
	if status < 0 {
		status = 0
	}
	f.Source = flow.SourceSquid
	f.End = end
	f.Start = end.Add(-time.Duration(elapsed) * time.Millisecond)
	f.Status = status
	p.request(method, u, f)
	p.outcome(code, p.codeKind(code), status, f)
	note := "squid"
	if code != "" {
		note += " " + code
	}
	if hier != "" {
		note += " " + hier
	}
	if user != "" && user != "-" {
		note += " user " + user
	}
	f.Note = p.intern([]byte(note))
	return nil
}
