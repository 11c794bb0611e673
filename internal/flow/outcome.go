package flow

import (
	"strconv"
	"strings"
)

// What a flow proves: the timeline fires a milestone (a claim that
// something happened, "the Autopilot profile downloaded") only on flows
// that succeeded, lists refused and failed ones under "needs attention",
// and the live page and Filter.Problems select those. What succeeded
// means depends on the kind of flow:
//
//   - every kind: the proxy did not deny it and no error was recorded
//     (a DNS failure, a refused, reset or timed-out connection, a
//     cut-off transfer all set Error);
//   - http: a response came back with a status below 400, or 401 (an
//     authentication challenge is part of a normal exchange); a 4xx or
//     5xx, whoever sent it, is a failure, and no status at all is "no
//     response" once the flow has ended (a response body alone, with a
//     status the source did not record, counts);
//   - connect, tls, quic: the proxy (for connect) did not answer with a
//     4xx or 5xx (401 excepted, as for http), and the server sent back at least handshakeBytes: a TLS alert is 7 bytes,
//     the smallest ServerHello about 90, so fewer means no handshake;
//   - tcp: the server sent something back;
//   - dns: an answer without error. A resolved name shows intent, not a
//     conversation with the service, so DNS flows count only for matchers
//     that name the dns kind; a DNS failure is still a failure.
//
// A tunnel or connection that the client opened and never used (nothing
// sent, no SNI) and a flow still open with nothing back yet are neither:
// they fire nothing and need no attention.
const handshakeBytes = 64

// Outcome is what a flow says as evidence.
type Outcome uint8

const (
	Succeeded Outcome = iota // evidence for a milestone
	Undecided                // open with nothing back yet, or never used
	Refused                  // the proxy denied it
	Failed                   // it was tried and did not work
)

var outcomeNames = [...]string{"succeeded", "undecided", "refused", "failed"}

// String is the outcome's name in the JSON of the page and the API.
func (o Outcome) String() string {
	if int(o) < len(outcomeNames) {
		return outcomeNames[o]
	}
	return "outcome(" + strconv.Itoa(int(o)) + ")"
}

// Problem reports whether the outcome is a refusal or a failure: what
// needs attention.
func (o Outcome) Problem() bool { return o == Refused || o == Failed }

// Judge decides a flow's outcome and, for refusals and failures, the
// reason in a few plain words.
func Judge(f *Flow) (Outcome, string) {
	if f.Decision == DecisionDenied {
		d := "refused by the proxy"
		if f.Reason != "" {
			d += ": " + f.Reason
		}
		return Refused, d
	}
	if f.Error != "" {
		return Failed, plainError(f.Error)
	}
	switch f.Kind {
	case KindDNS:
		return Succeeded, ""
	case KindConnect, KindTLS, KindQUIC, KindTCP:
		if f.Kind == KindConnect && f.Status >= 400 && f.Status != 401 {
			return Failed, httpStatus(f.Status)
		}
		need := int64(handshakeBytes)
		if f.Kind == KindTCP {
			need = 1
		}
		switch {
		case f.BytesDown >= need:
			return Succeeded, ""
		case f.BytesUp == 0 && f.SNI == "" || f.Open():
			return Undecided, ""
		case f.Kind == KindTCP:
			return Failed, "no answer from the server"
		}
		return Failed, "no TLS handshake (the server sent " + strconv.FormatInt(f.BytesDown, 10) + " bytes)"
	}
	// http, and flows whose source named no kind.
	switch {
	case f.Status >= 400 && f.Status != 401:
		return Failed, httpStatus(f.Status)
	case f.Status > 0 || f.BytesDown > 0:
		return Succeeded, ""
	case f.Open():
		return Undecided, ""
	}
	return Failed, "no response"
}

func httpStatus(code int) string {
	d := "HTTP " + strconv.Itoa(code)
	if code == 407 {
		d += " (proxy authentication: provisioning runs as SYSTEM and cannot answer)"
	}
	return d
}

// errorClasses name the failures that every source words its own way
// (Go's resolver, Chromium's net errors, pcap's DNS codes, Squid), so
// that the attempts of one host group into one line.
var errorClasses = []struct {
	phrase string
	words  []string
}{
	{"name not resolved", []string{"no such host", "name_not_resolved", "name not resolved", "nxdomain", "name or service not known", "servfail", "server misbehaving"}},
	{"connection refused", []string{"connection refused", "connection_refused", "econnrefused"}},
	{"connection reset", []string{"connection reset", "connection_reset", "econnreset"}},
	{"timed out", []string{"timeout", "timed out", "timed_out", "deadline exceeded"}},
	{"host unreachable", []string{"no route to host", "network is unreachable", "address_unreachable", "host unreachable"}},
}

// plainError says an error in a few words when it is one of the common
// ones, and gives it as recorded otherwise.
func plainError(e string) string {
	l := strings.ToLower(e)
	for _, c := range errorClasses {
		for _, w := range c.words {
			if strings.Contains(l, w) {
				return c.phrase
			}
		}
	}
	return e
}
