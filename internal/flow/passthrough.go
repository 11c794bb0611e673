package flow

import (
	"context"
	"time"
)

// PassThrough is a host that TLS interception learned to leave alone: a
// client refused the certificate the proxy minted for it (an alert, or a
// close right after the handshake with no request), so its next
// connections are tunnelled untouched.
//
// Its JSON is the shape of `pilotwire endpoints learned --json` and of the
// page's /api/passthrough.
type PassThrough struct {
	Host    string    `json:"host"`    // the server name the certificate was minted for, lower case
	Learned time.Time `json:"learned"` // when it was first learned
	Client  string    `json:"client"`  // the client that refused it, first time
	Reason  string    `json:"reason"`  // what the client did, e.g. "client refused the certificate: remote error: tls: unknown certificate authority"
	Flow    string    `json:"flow"`    // the Key of the flow that recorded the refusal
}

// PassThroughStore is a Store that also keeps the learned pass-through
// list. It is an interface of its own, beside Store, so that stores and
// test doubles that never back an intercepting proxy need not carry it;
// the SQLite and in-memory stores implement it (storetest checks both).
type PassThroughStore interface {
	Store
	// LearnPassThrough adds p to the list. A host already listed keeps
	// its first entry (when and why it was first learned); the call
	// then does nothing.
	LearnPassThrough(ctx context.Context, p PassThrough) error
	// PassThroughs returns the list, ordered by host.
	PassThroughs(ctx context.Context) ([]PassThrough, error)
}
