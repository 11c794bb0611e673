// Package flow is pilotwire's shared vocabulary: the Flow record that every
// source produces, the Filter used to read flows back, the Store interface
// that the storage packages implement, and the Recorder that batches flows
// into a Store off the proxy's data path.
//
// A Flow holds raw facts only. Meaning (service, phase, milestone) is
// computed later from flows plus the catalog, so a better catalog improves
// old captures too. Of the project this package imports only pattern (a
// Filter's host patterns), and never net/http or database/sql.
package flow

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"iter"
	"reflect"
	"strings"
	"time"

	"github.com/pilotwire/pilotwire/internal/pattern"
)

// Source says where a flow was observed.
type Source string

// The sources pilotwire knows.
const (
	SourceProxy  Source = "proxy"
	SourceHAR    Source = "har"
	SourceSquid  Source = "squid"
	SourcePcap   Source = "pcap"
	SourceNetlog Source = "netlog"
	SourceSAZ    Source = "saz"
	// SourceGateway is pilotwire gateway: connections its redirect took
	// transparently (no proxy setting on the device) and the DNS queries
	// it forwarded.
	SourceGateway Source = "gateway"
)

// Kind says what sort of conversation a flow is.
type Kind string

// The kinds of flow.
const (
	KindHTTP    Kind = "http"    // a plain HTTP exchange whose request line was seen
	KindConnect Kind = "connect" // a CONNECT tunnel through a proxy
	KindTLS     Kind = "tls"     // a TLS connection seen on the wire (no proxy)
	KindDNS     Kind = "dns"     // a DNS query and its answer
	KindTCP     Kind = "tcp"     // any other TCP connection
	KindQUIC    Kind = "quic"    // a QUIC connection (UDP)
	KindUDP     Kind = "udp"     // other UDP: an association's datagrams (NTP, …)
	// KindPAC is pilotwire's own proxy auto-config file (or status page)
	// served to a client that asked the proxy for it directly. It is the
	// proxy's traffic, not the device's: it never starts or extends a
	// session and never fires a milestone.
	KindPAC Kind = "pac"
	// KindLost records flows that were seen but never stored: the Recorder
	// dropped them because the store could not be written for so long that
	// its backlog reached its bound. Lost says how many, Start and End
	// when (the first and last of their starts), Client whose; the other
	// fields are empty. It stands for real activity of the client, so
	// sessions are split as if its flows were there, and count them as
	// lost.
	KindLost Kind = "lost"
)

// Decision is what the proxy decided about a flow.
type Decision string

// The proxy's decisions. The zero value means the source made none (imports).
const (
	DecisionNone    Decision = ""
	DecisionAllowed Decision = "allowed"
	DecisionDenied  Decision = "denied"
)

// Flow is one conversation as a capture saw it.
//
// Zero values mean "not seen": a zero End is a flow that is still open (or
// whose end the source did not record), a zero Status is no HTTP status, an
// empty SNI is a tunnel that sent no server_name.
type Flow struct {
	// ID is assigned by the Store; it is zero until the flow has been read
	// back from one.
	ID int64
	// Key identifies the flow across writes: a later write with the same Key
	// replaces the earlier one (an open tunnel completed; a file imported
	// twice). Sources must set it.
	Key string

	Start time.Time // when the conversation began, in the zone the source gave
	End   time.Time // when it ended; zero while open

	Client     string // client IP address, without port
	ClientPort int    // client TCP/UDP port, 0 when unknown
	Device     string // readable label of the client, when known
	Session    string // explicit session name, when the user gave one

	Source     Source
	SourceFile string // file the flow was imported from; empty for live flows

	Kind   Kind
	Method string // HTTP method, CONNECT for tunnels
	Scheme string // http, https, ws, …
	Host   string // target host name or IP literal, lower case, no port
	Port   int    // target port
	URL    string // full URL or path when seen (plain HTTP, HAR, …)

	Status    int   // HTTP status; for tunnels the status the proxy answered
	BytesUp   int64 // bytes from client to server, as seen by the source
	BytesDown int64 // bytes from server to client

	SNI        string // TLS server_name from the ClientHello
	ALPN       string // ALPN protocols offered, comma separated
	TLSVersion string // highest TLS version offered, e.g. "1.3"

	Error    string   // why the conversation failed, if it did
	Decision Decision // the proxy's decision
	Reason   string   // why the proxy refused, or how a tunnel ended
	Note     string   // anything else worth saying (e.g. "host named from DNS")

	// Lost is, for a KindLost flow, how many flows of Client that started
	// between Start and End were dropped before they could be stored.
	Lost int64

	// Tunnel is, for a request the proxy read inside an intercepted TLS
	// connection, the Key of that connection's CONNECT flow: the tunnel
	// the request travelled in. Empty for every other flow.
	Tunnel string

	// Headers are, for a request the proxy read inside an intercepted TLS
	// connection, its request and response headers, one a line: "> Name:
	// value" for the request's, "< Name: value" for the response's, with
	// the values of secrets (Authorization, Cookie, tokens) replaced by
	// REDACTED. Empty for every other flow.
	Headers string

	// Proxy is the name of the pilotwire (proxy, gateway or capture) that
	// recorded the flow, when it was given one (--name): several of them
	// may share one store, and devices behind different ones may share an
	// address. Empty for imports and an unnamed pilotwire.
	Proxy string

	// Bodies are, for a request the proxy read inside an intercepted TLS
	// connection when it was asked to keep bodies (proxy --bodies), the
	// first bytes of the request's and the response's bodies, compressed:
	// see EncodeBodies and DecodeBodies. Nil for every other flow.
	Bodies []byte
}

// Open reports whether the flow has not ended yet.
func (f *Flow) Open() bool { return f.End.IsZero() }

// Duration is End-Start, or zero for an open flow.
func (f *Flow) Duration() time.Duration {
	if f.End.IsZero() {
		return 0
	}
	return f.End.Sub(f.Start)
}

// Bytes is the flow's traffic in both directions.
func (f *Flow) Bytes() int64 { return f.BytesUp + f.BytesDown }

// Filter selects flows. Zero fields select everything.
type Filter struct {
	Client string // exact client address, or device label
	// Proxy selects the flows of the pilotwire of this name (Flow.Proxy);
	// empty selects every one's.
	Proxy   string
	Hosts   []pattern.Pattern // flows to a host that one of these matches
	Source  Source            // only flows from this source
	Since   time.Time         // flows that started at or after Since
	Until   time.Time         // flows that started before Until
	AfterID int64             // flows with an ID greater than AfterID
	// Before selects the flows before a position in the order of reads:
	// with Newest, the next page after the last flow of the previous one.
	Before Position
	Text   string // flows whose host or URL holds this text (ASCII letters in either case)
	// Problems selects the flows that were refused or failed (Judge).
	Problems bool
	Limit    int // at most this many flows; 0 means no limit
	// Newest returns the newest flows first instead of the oldest.
	Newest bool
	// Brief asks only for the fields that splitting flows into sessions
	// needs: ID, Start, End, Proxy, Client, Device, Session, BytesUp, BytesDown,
	// Kind (the splitter leaves KindPAC flows out), Lost (of KindLost
	// flows) and SourceFile (a session holding flows of an unfinished
	// import says so); the others may be left zero, which lets a store read
	// less. A store may ignore Brief and fill every field.
	Brief bool
	// Fields, when not zero, are the fields the caller needs (ID and
	// Start always come): the others may be left zero, which lets a store
	// read less (a report needs 18 of the 27). Zero is FieldsDefault:
	// every field but Bodies, which a read gets only by naming
	// FieldBodies. A store may ignore Fields and fill every field. Brief,
	// when set, wins.
	Fields Fields
}

// Fields is a set of Flow fields, for Filter.Fields.
type Fields uint32

// The fields of a Flow that Filter.Fields can leave out.
const (
	FieldKey Fields = 1 << iota
	FieldEnd
	FieldClient
	FieldClientPort
	FieldDevice
	FieldSession
	FieldSource
	FieldSourceFile
	FieldKind
	FieldMethod
	FieldScheme
	FieldHost
	FieldPort
	FieldURL
	FieldStatus
	FieldBytesUp
	FieldBytesDown
	FieldSNI
	FieldALPN
	FieldTLSVersion
	FieldError
	FieldDecision
	FieldReason
	FieldNote
	FieldLost
	FieldTunnel
	FieldHeaders
	FieldProxy
	FieldBodies

	// FieldsAll is every field.
	FieldsAll = FieldBodies<<1 - 1
	// FieldsDefault are the fields of a read that names none: all but
	// the kept bodies, which can be large and which only a read that
	// shows them (flows --bodies) or copies them (Copy) needs.
	FieldsDefault = FieldsAll &^ FieldBodies
	// FieldsBrief are the fields of a Brief read (see Filter.Brief).
	FieldsBrief = FieldEnd | FieldClient | FieldDevice | FieldSession | FieldBytesUp | FieldBytesDown |
		FieldKind | FieldLost | FieldSourceFile | FieldProxy
)

// CheckPut says what is wrong with flows given to Store.PutFlows, which
// every store refuses whole: a flow without a Key.
func CheckPut(flows []Flow) error {
	for i := range flows {
		if flows[i].Key == "" {
			return fmt.Errorf("put flows: flow %d has no key", i)
		}
	}
	return nil
}

// CheckFilePart says what is wrong with the file and part given to
// Store.PutFileFlows: no file identity, or a negative part.
func CheckFilePart(file string, part int) error {
	if file == "" {
		return errors.New("put file flows: no file identity")
	}
	if part < 0 {
		return fmt.Errorf("put file flows %s: part %d", file, part)
	}
	return nil
}

// Read is the fields a store reads for f: f.Fields (FieldsDefault when
// none are named, FieldsBrief for a Brief read), and, when the store's
// query does not select exactly what f selects (exact false), also what
// Match looks at, since the store then filters the rows itself.
func (f Filter) Read(exact bool) Fields {
	fields := f.Fields
	switch {
	case f.Brief:
		fields = FieldsBrief
	case fields == 0:
		fields = FieldsDefault
	}
	if !exact {
		fields |= FieldsDefault
	}
	return fields
}

// Trim zeroes the fields of f that are not in fs (ID and Start stay): f as
// a read that asked for fs may give it. Zero fs keeps every field.
func (fs Fields) Trim(f *Flow) {
	if fs == 0 {
		return
	}
	keep := Flow{ID: f.ID, Start: f.Start}
	if fs&FieldKey != 0 {
		keep.Key = f.Key
	}
	if fs&FieldEnd != 0 {
		keep.End = f.End
	}
	if fs&FieldClient != 0 {
		keep.Client = f.Client
	}
	if fs&FieldClientPort != 0 {
		keep.ClientPort = f.ClientPort
	}
	if fs&FieldDevice != 0 {
		keep.Device = f.Device
	}
	if fs&FieldSession != 0 {
		keep.Session = f.Session
	}
	if fs&FieldSource != 0 {
		keep.Source = f.Source
	}
	if fs&FieldSourceFile != 0 {
		keep.SourceFile = f.SourceFile
	}
	if fs&FieldKind != 0 {
		keep.Kind = f.Kind
	}
	if fs&FieldMethod != 0 {
		keep.Method = f.Method
	}
	if fs&FieldScheme != 0 {
		keep.Scheme = f.Scheme
	}
	if fs&FieldHost != 0 {
		keep.Host = f.Host
	}
	if fs&FieldPort != 0 {
		keep.Port = f.Port
	}
	if fs&FieldURL != 0 {
		keep.URL = f.URL
	}
	if fs&FieldStatus != 0 {
		keep.Status = f.Status
	}
	if fs&FieldBytesUp != 0 {
		keep.BytesUp = f.BytesUp
	}
	if fs&FieldBytesDown != 0 {
		keep.BytesDown = f.BytesDown
	}
	if fs&FieldSNI != 0 {
		keep.SNI = f.SNI
	}
	if fs&FieldALPN != 0 {
		keep.ALPN = f.ALPN
	}
	if fs&FieldTLSVersion != 0 {
		keep.TLSVersion = f.TLSVersion
	}
	if fs&FieldError != 0 {
		keep.Error = f.Error
	}
	if fs&FieldDecision != 0 {
		keep.Decision = f.Decision
	}
	if fs&FieldReason != 0 {
		keep.Reason = f.Reason
	}
	if fs&FieldNote != 0 {
		keep.Note = f.Note
	}
	if fs&FieldLost != 0 {
		keep.Lost = f.Lost
	}
	if fs&FieldTunnel != 0 {
		keep.Tunnel = f.Tunnel
	}
	if fs&FieldHeaders != 0 {
		keep.Headers = f.Headers
	}
	if fs&FieldProxy != 0 {
		keep.Proxy = f.Proxy
	}
	if fs&FieldBodies != 0 {
		keep.Bodies = f.Bodies
	}
	*f = keep
}

// FileChange is what one write of a file's flows did to a store's count
// of flows (see Store.PutFileFlows).
type FileChange struct {
	Added   int64 // flows the store holds now and did not hold before
	Dropped int64 // flows of an earlier import of the file it no longer holds
}

// UnfinishedImport is an import of a file that began and did not end: it
// was killed or cancelled half way, or it is still running.
type UnfinishedImport struct {
	File       string    // the file's identity, as given to PutFileFlows
	SourceFile string    // the Flow.SourceFile of its flows
	Flows      int64     // flows it wrote before it stopped
	Started    time.Time // when it wrote its first part
}

// Store keeps flows. Implementations are safe for concurrent use.
type Store interface {
	// PutFlows writes flows in one transaction. A flow whose Key is already
	// stored replaces the stored one, keeping its ID. It sets each flow's
	// ID to the one stored (what the Recorder publishes to the live page).
	PutFlows(ctx context.Context, flows []Flow) error
	// PutFileFlows writes one part of the flows imported from a file, in
	// one transaction. file identifies the file (the importer's identity,
	// the same for the same content under any name); parts are numbered
	// from 0 in the order the file was read, and the flows of a part may
	// come in any order. Part k replaces part k of an earlier import of the
	// same file, so importing a file again does not duplicate it; when the
	// part holds as many flows as before, they keep their IDs, otherwise
	// they get new ones, greater than every ID given before. A file's
	// flows are matched by file and part, not by Key: their Keys are kept
	// and read back, but PutFlows never replaces them.
	//
	// Part 0 marks an import of file as begun, and EndFileFlows as ended;
	// an import that never ends (killed, cancelled) is listed by
	// UnfinishedImports until the same file is imported again.
	//
	// The FileChange says how many flows the part added to the store and
	// how many of an earlier import's it dropped, as the store saw them in
	// the transaction: two imports of one file at once add its flows once
	// between them.
	//
	// This is how imports are stored: a store may keep a part as one
	// record instead of one per flow, which makes bulk imports several
	// times faster.
	PutFileFlows(ctx context.Context, file string, part int, flows []Flow) (FileChange, error)
	// EndFileFlows ends an import of file that wrote parts 0 to parts-1:
	// flows that an earlier import of the same file left in later parts
	// are deleted (counted as Dropped), and the import is no longer
	// unfinished. parts < 0 ends it and deletes nothing (an import that
	// stopped early at damage, keeping what earlier imports stored).
	EndFileFlows(ctx context.Context, file string, parts int) (FileChange, error)
	// UnfinishedImports lists the imports that began (PutFileFlows) and
	// did not end (EndFileFlows), oldest first.
	UnfinishedImports(ctx context.Context) ([]UnfinishedImport, error)
	// Flows calls fn for each flow that f selects, ordered by start time
	// (then ID), oldest first unless f.Newest. It stops at the first error
	// fn returns and returns it.
	Flows(ctx context.Context, f Filter, fn func(Flow) error) error
	// CountFlows returns how many flows f selects, ignoring f.Limit.
	CountFlows(ctx context.Context, f Filter) (int64, error)
	// Activity calls fn with the activity of each client (and explicit
	// session name) in each ActivityWindow that f selects (see
	// Filter.MatchActivity; other fields are ignored), in order of First
	// then Client then Session: what splitting flows into sessions needs,
	// without reading them. Stores keep it as flows are written; it
	// equals ActivityOf over every flow, by start, then selected.
	Activity(ctx context.Context, f Filter, fn func(Activity) error) error
	// Close releases the store.
	Close() error
}

// ErrNotFound is returned when something asked for by name does not exist.
var ErrNotFound = errors.New("not found")

// Header is one line of Flow.Headers.
type Header struct {
	Sent        bool // a request header ("> "); false: the response's ("< ")
	Name, Value string
}

// Headers reads a Flow.Headers text, line by line in order; a line of
// another shape (the note that the text was cut) is left out.
func Headers(text string) iter.Seq[Header] {
	return func(yield func(Header) bool) {
		for line := range strings.Lines(text) {
			line = strings.TrimSuffix(line, "\n")
			if len(line) < 2 || line[0] != '>' && line[0] != '<' || line[1] != ' ' {
				continue
			}
			name, value, ok := strings.Cut(line[2:], ": ")
			if !ok {
				continue
			}
			if !yield(Header{Sent: line[0] == '>', Name: name, Value: value}) {
				return
			}
		}
	}
}

// Same reports whether a and b hold the same value in every field, as ==
// would if Flow were comparable (Bodies, a slice, makes it not): times
// must be the same instants in the same locations.
func Same(a, b Flow) bool {
	if !bytes.Equal(a.Bodies, b.Bodies) {
		return false
	}
	a.Bodies, b.Bodies = nil, nil
	return reflect.DeepEqual(a, b)
}
