// Package intercept is pilotwire's opt-in TLS interception: for a CONNECT
// tunnel the proxy hands it, it decides whether to look inside, and if so
// terminates the client's TLS with a leaf certificate minted by the lab CA
// (package ca), serves the client HTTP/1.1 or HTTP/2 as ALPN chose, and
// forwards each request to the real server over TLS that verifies the
// server's certificate fully. Every request becomes a flow of its own,
// linked to its tunnel's flow (flow.Flow.Tunnel).
//
// It is used by package proxy only, and only when the operator asks for it
// (pilotwire proxy --intercept): it is never on by default.
//
// # What is never intercepted
//
// Interception must never break provisioning, so a tunnel is passed
// through untouched (Decide) when its CONNECT host or its SNI is
//
//   - marked "do not inspect" by the catalog (client certificates or
//     pinning: Intune enrollment and check-in, device registration, TPM
//     and health attestation, Windows Update's service endpoints, …);
//   - matched by a --no-intercept pattern;
//   - on the learned pass-through list: a client once refused the minted
//     certificate there (an alert during the handshake, or a close right
//     after it with no request). The host is learned at once, in memory,
//     and handed to Options.OnLearn to be kept in the store, so a
//     restarted proxy tunnels it too;
//   - or, when --intercept-hosts names hosts, not matched by one of them.
//
// # What a request's flow holds
//
// Kind http, Scheme https, Method, the full URL (with the values of query
// parameters that carry secrets, such as sig or access_token, replaced by
// REDACTED: see RedactQuery), Status, timing, Tunnel (the CONNECT flow's
// Key), SNI, ALPN (the protocol the client side negotiated: h2 or
// http/1.1) and TLS version of the client's connection, and in Note the
// content types of the response and of the request body. BytesUp and
// BytesDown are the request's and the response's body bytes (as HTTP/2
// frames or HTTP/1.1 chunks carry them, without the framing); the tunnel's
// own flow keeps counting the encrypted bytes on the client's connection.
// Headers holds the request's and the response's headers (HeaderLines),
// with the values of Authorization, Cookie, Set-Cookie, keys, tokens and
// other secrets replaced by REDACTED, so they never reach the store.
//
// Bodies are kept only when Options.Bodies asks (proxy --bodies N): the
// first N bytes of the request's body and of the response's, as they
// travelled (a gzip Content-Encoding stays), compressed into Bodies
// (flow.EncodeBodies). Never for a host the catalog marks no-bodies
// (sign-in, activation: passwords, tokens, product keys): that request's
// Note says the bodies were not kept and why. Header redaction does not
// reach into bodies: a kept body is as the client or server sent it.
//
// An upstream certificate that does not verify is never accepted: the
// client is answered 502 with the reason, and every such request and the
// tunnel are recorded as refused (Decision denied).
package intercept

import (
	"cmp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/pilotwire/pilotwire/internal/ca"
	"github.com/pilotwire/pilotwire/internal/flow"
	"github.com/pilotwire/pilotwire/internal/pattern"
)

// Options configure an Interceptor.
type Options struct {
	// CA signs the leaf certificates. Required.
	CA *ca.CA
	// MaxLeaves bounds the leaf certificate cache; 0 means ca.DefaultLeaves.
	MaxLeaves int
	// Hosts, when not empty, are the only hosts intercepted
	// (--intercept-hosts).
	Hosts []pattern.Pattern
	// Never are hosts never intercepted (--no-intercept).
	Never []pattern.Pattern
	// DoNotInspect says whether the catalog marks host "do not inspect",
	// and why. Nil: nothing is marked.
	DoNotInspect func(host string) (why string, ok bool)
	// Learned is the pass-through list learned before (from the store).
	Learned []flow.PassThrough
	// OnLearn, if set, is called once for each host newly learned, on the
	// connection's goroutine: pilotwire keeps it in the store there.
	OnLearn func(flow.PassThrough)
	// Bodies, when more than 0, is how many bytes of each request body
	// and each response body a request's flow keeps (proxy --bodies; at
	// most flow.MaxBody). 0 keeps none.
	Bodies int
	// NoBodies says whether the catalog marks host's bodies as never to
	// be kept, and why. Nil: nothing is marked.
	NoBodies func(host string) (why string, ok bool)
	// Now returns the time; nil means time.Now. Tests set it.
	Now func() time.Time
}

// Interceptor decides which tunnels to intercept and serves them. It is
// safe for concurrent use.
type Interceptor struct {
	o      Options
	leaves *ca.Leaves

	mu      sync.Mutex
	learned map[string]flow.PassThrough
}

// New returns an Interceptor.
func New(o Options) *Interceptor {
	if o.Now == nil {
		o.Now = time.Now
	}
	i := &Interceptor{o: o, leaves: ca.NewLeaves(o.CA, o.MaxLeaves), learned: make(map[string]flow.PassThrough)}
	for _, p := range o.Learned {
		i.learned[p.Host] = p
	}
	return i
}

// Options returns the options the interceptor was made with.
func (i *Interceptor) Options() Options { return i.o }

// CA is the CA the interceptor signs with.
func (i *Interceptor) CA() *ca.CA { return i.o.CA }

// Leaves is the interceptor's leaf certificate cache (for its counters).
func (i *Interceptor) Leaves() *ca.Leaves { return i.leaves }

// Decision is what Decide chose for a tunnel.
type Decision struct {
	Intercept bool
	// Why says why a tunnel is passed through, e.g. "catalog: do not
	// inspect (Intune: TLS inspection unsupported)"; empty when it is
	// intercepted.
	Why string
}

// Decide says whether to intercept a tunnel to host whose ClientHello
// named sni (either may be empty). The checks, in order: the catalog's
// "do not inspect", --no-intercept, the learned list, --intercept-hosts.
// Either name being excluded is enough to pass the tunnel through.
func (i *Interceptor) Decide(host, sni string) Decision {
	names := []string{strings.ToLower(host)}
	if s := strings.ToLower(strings.TrimSuffix(sni, ".")); s != "" && s != names[0] {
		names = append(names, s)
	}
	if i.o.DoNotInspect != nil {
		for _, n := range names {
			if why, ok := i.o.DoNotInspect(n); ok {
				return Decision{Why: "catalog marks " + n + " do not inspect: " + why}
			}
		}
	}
	for _, n := range names {
		for _, p := range i.o.Never {
			if p.Match(n) {
				return Decision{Why: "--no-intercept " + p.String()}
			}
		}
	}
	i.mu.Lock()
	for _, n := range names {
		if p, ok := i.learned[n]; ok {
			i.mu.Unlock()
			return Decision{Why: "learned pass-through (" + p.Reason + ")"}
		}
	}
	i.mu.Unlock()
	if len(i.o.Hosts) > 0 {
		name := names[len(names)-1] // the SNI when there is one: the name the certificate is for
		for _, p := range i.o.Hosts {
			if p.Match(name) {
				return Decision{Intercept: true}
			}
		}
		return Decision{Why: "not in --intercept-hosts"}
	}
	return Decision{Intercept: true}
}

// Learned returns the pass-through list as it is now, ordered by host.
func (i *Interceptor) Learned() []flow.PassThrough {
	i.mu.Lock()
	defer i.mu.Unlock()
	out := make([]flow.PassThrough, 0, len(i.learned))
	for _, p := range i.learned {
		out = append(out, p)
	}
	sortPassThroughs(out)
	return out
}

// learn puts p on the list, and hands it to OnLearn if it is new.
func (i *Interceptor) learn(p flow.PassThrough) {
	i.mu.Lock()
	_, known := i.learned[p.Host]
	if !known {
		i.learned[p.Host] = p
	}
	i.mu.Unlock()
	if !known && i.o.OnLearn != nil {
		i.o.OnLearn(p)
	}
}

func sortPassThroughs(ps []flow.PassThrough) {
	slices.SortFunc(ps, func(a, b flow.PassThrough) int { return cmp.Compare(a.Host, b.Host) })
}
