package timeline

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/pilotwire/pilotwire/internal/catalog"
	"github.com/pilotwire/pilotwire/internal/flow"
)

// UnknownService is the band of hosts the catalog does not know.
var UnknownService = catalog.Service{ID: "unknown", Name: "Not in the catalog", Color: "#8a8a8a"}

// Options tune Build. The zero value is ready to use.
type Options struct {
	// T0 is the zero of the clock that offsets count from. Zero means the
	// session's first flow; users filming a device set it to the moment
	// the video starts.
	T0 time.Time
	// Rules are the milestone and phase rules; nil means DefaultRules.
	Rules *Rules
	// MaxFlowIDs caps the flow IDs kept per milestone and attention item.
	// Zero means 20.
	MaxFlowIDs int
}

// Timeline is the understanding of one session.
type Timeline struct {
	Session Session
	T0      time.Time // the zero of every offset
	// Services are the bands, one per service seen, in order of first
	// appearance.
	Services   []Band
	Milestones []Milestone // in time order
	Phases     []Phase     // in time order; phases that did not happen are left out
	Attention  []Attention // in order of first occurrence within each kind
	// BestThroughput is the fastest content transfer of the session, in
	// bytes per second (0 when there was none).
	BestThroughput float64
	// Provisioning says the session looks like provisioning: a milestone
	// that only provisioning shows fired (Rule.Provisioning). When false
	// the session has no phases.
	Provisioning bool
}

// HostRef is a host as a milestone or attention item shows it.
type HostRef struct {
	Host        string
	Service     string // catalog service ID, or UnknownService.ID
	ServiceName string
	Purpose     string // the catalog's one-line purpose; "" when unknown
	Known       bool   // the catalog knows the host
	PlainHTTP   bool   // seen as plain HTTP, so its URLs are visible
	URL         string // first plain URL seen, when any
	Region      string // Intune scale unit in the host name, when any
}

// Milestone is one annotated moment: "02:10 first Intune check-in".
type Milestone struct {
	ID     string // the rule's ID
	Title  string
	Text   string // the sentence, with placeholders filled in
	Time   time.Time
	Offset time.Duration // Time - T0
	// Likely marks a milestone inferred from circumstantial evidence (a
	// reboot seen as silence); Why says what the evidence was.
	Likely bool
	Why    string
	Region string // Intune scale unit, for check-ins
	Hosts  []HostRef
	// FlowIDs are the first flows behind the milestone: store IDs, or
	// 1-based positions in the input when the flows have none.
	FlowIDs []int64
	Flows   int // how many flows are behind it (len(FlowIDs) is capped)
}

// Span is a stretch of activity, as offsets from T0.
type Span struct{ Start, End time.Duration }

// HostStat is one host's share of a band.
type HostStat struct {
	Host  string
	Flows int64
	Bytes int64
}

// Band is one service over the session.
type Band struct {
	Service catalog.Service
	First   time.Time // start of its first flow
	Last    time.Time // end (or start) of its last activity
	Flows   int64
	BytesUp int64
	// BytesDown is what the service sent the device.
	BytesDown int64
	// Hosts are the service's hosts, most bytes first, at most 10;
	// HostCount is how many there were.
	Hosts     []HostStat
	HostCount int
	// Transfers are its content transfers (see ContentRule), their bytes
	// down and their summed durations; Throughput is TransferBytes per
	// second of TransferTime.
	Transfers     int
	TransferBytes int64
	TransferTime  time.Duration
	Throughput    float64
	// Activity are the stretches in which the service had a flow open,
	// merged across short pauses, for drawing.
	Activity []Span
}

// Bytes is the band's traffic in both directions.
func (b *Band) Bytes() int64 { return b.BytesUp + b.BytesDown }

// Phase is one stretch of provisioning.
type Phase struct {
	ID, Name, About string
	Start, End      time.Time
	StartOffset     time.Duration
	EndOffset       time.Duration
	// Milestone is the milestone that opened the phase (SessionStart for
	// the first).
	Milestone string
	Flows     int64 // flows that started in the phase
	Bytes     int64
	// Services are the services with flows starting in the phase, most
	// bytes first.
	Services []Share
}

// Duration is End-Start.
func (p *Phase) Duration() time.Duration { return p.End.Sub(p.Start) }

// Share is one service's part of a phase.
type Share struct {
	Service catalog.Service
	Flows   int64
	Bytes   int64
	// Active is how long the service had a flow open during the phase
	// (the union of its flows' lifetimes).
	Active time.Duration
}

// Attention kinds.
const (
	AttentionRefused     = "refused"      // the proxy denied the flow
	AttentionFailed      = "failed"       // an error, or an HTTP status of 400 or more
	AttentionUnknownHost = "unknown-host" // the catalog does not know the host
	AttentionSNIMismatch = "sni-mismatch" // TLS server_name differs from the CONNECT host
	AttentionSlow        = "slow-content" // content far slower than the session's best
)

// Attention is something in the session that deserves a look, grouped by
// kind and host.
type Attention struct {
	Kind   string
	Host   HostRef
	Detail string // e.g. "connection refused", "HTTP 503", "SNI evil.example"
	Flows  int
	Bytes  int64
	First  time.Time
	Offset time.Duration
	// Last and LastOffset are the start of its last flow.
	Last       time.Time
	LastOffset time.Duration
	// Blocks is the milestone rule that a refused or failed flow matched:
	// the milestone its failure kept from firing; "" when it matched
	// none. BlocksTitle is the rule's title. BlocksFired says that the
	// milestone fired anyway, on other flows of the session (a retry
	// that worked, or before the failure).
	Blocks      string
	BlocksTitle string
	BlocksFired bool
	// Hurts is the phase a failure of this host would hurt (from the
	// catalog's phase for the host and Rules.Hurts), "" when none known.
	Hurts     string
	HurtsName string
	FlowIDs   []int64
}

// FormatOffset prints an offset as the seed does: "mm:ss", or "h:mm:ss"
// from an hour on, with a leading '-' before T0. Fractions of a second are
// dropped (a clock shows 00:09 until 00:10 has come).
func FormatOffset(d time.Duration) string {
	sign := ""
	if d < 0 {
		sign = "-"
		d = -d + time.Second - 1
	}
	s := int64(d / time.Second)
	if s >= 3600 {
		return fmt.Sprintf("%s%d:%02d:%02d", sign, s/3600, s/60%60, s%60)
	}
	return fmt.Sprintf("%s%02d:%02d", sign, s/60, s%60)
}

// hostOK tests the host-level fields of a matcher.
func (m *Matcher) hostOK(host, service string) bool {
	if len(m.Services) > 0 && !slices.Contains(m.Services, service) {
		return false
	}
	if len(m.hosts) > 0 {
		ok := false
		for _, p := range m.hosts {
			if p.Match(host) {
				ok = true
				break
			}
		}
		if !ok {
			return false
		}
	}
	return true
}

// flowOK tests the flow-level fields of a matcher against a flow that is
// plain HTTP or not, of kind kind, with URL url.
func (m *Matcher) flowOK(plain bool, kind, url string) bool {
	if len(m.Schemes) > 0 {
		want := "https"
		if plain {
			want = "http"
		}
		if !slices.Contains(m.Schemes, want) {
			return false
		}
	}
	if len(m.Kinds) > 0 && !slices.Contains(m.Kinds, kind) {
		return false
	}
	if len(m.paths) > 0 {
		p := strings.ToLower(urlPath(url))
		if p == "" {
			return false
		}
		ok := false
		for _, g := range m.paths {
			if globMatch(g, p) {
				ok = true
				break
			}
		}
		if !ok {
			return false
		}
	}
	return true
}

// plainHTTP reports whether the flow was cleartext HTTP.
func plainHTTP(f *flow.Flow) bool {
	if f.Scheme != "" {
		return strings.EqualFold(f.Scheme, "http")
	}
	if len(f.URL) >= 7 && strings.EqualFold(f.URL[:7], "http://") {
		return true
	}
	return f.Kind == flow.KindHTTP && f.Port != 443
}

// urlPath returns the path of a URL or path, without query or fragment.
func urlPath(u string) string {
	if i := strings.Index(u, "://"); i >= 0 {
		u = u[i+3:]
		j := strings.IndexByte(u, '/')
		if j < 0 {
			return "/"
		}
		u = u[j:]
	}
	if i := strings.IndexAny(u, "?#"); i >= 0 {
		u = u[:i]
	}
	return u
}

// fileName is the file a URL names: the last element of its path (never
// the query) when it reads name.ext, with a non-empty name and an
// extension of 1 to 10 ASCII letters and digits that are not all digits
// (setup.exe, authrootstl.cab, app.intunewin, not "current", "v1" or a
// version number like 16.0.11929.20254). Otherwise "".
func fileName(u string) string {
	p := urlPath(u)
	if i := strings.LastIndexByte(p, '/'); i >= 0 {
		p = p[i+1:]
	}
	dot := strings.LastIndexByte(p, '.')
	if dot <= 0 {
		return ""
	}
	ext := p[dot+1:]
	if len(ext) < 1 || len(ext) > 10 {
		return ""
	}
	letter := false
	for i := 0; i < len(ext); i++ {
		switch c := ext[i] | 0x20; {
		case c >= 'a' && c <= 'z':
			letter = true
		case ext[i] >= '0' && ext[i] <= '9':
		default:
			return ""
		}
	}
	if !letter {
		return ""
	}
	return p
}

// matches reports whether rule r selects flow f.
func (b *Builder) matches(r int, hi *hostInfo, f *rec) bool {
	for _, mi := range b.mIndex[r] {
		if hi.hit[mi] && b.flowOK(b.mAll[mi], f) {
			return true
		}
	}
	return false
}

// flowOK tests the flow-level fields of matcher m against f.
func (b *Builder) flowOK(m *Matcher, f *rec) bool {
	return m.flowOK(f.flags&flagPlain != 0, b.kinds[f.kind], b.strs[f.url])
}

// evidence reports whether flow f, which rule r matches, shows the rule's
// milestone happened (see judge).
func (b *Builder) evidence(r int, f *rec) bool {
	return f.out == flow.Succeeded && (f.flags&flagDNS == 0 || b.dnsRule[r])
}

func cmpMilestones(order map[string]int) func(a, b Milestone) int {
	return func(a, b Milestone) int {
		if c := a.Time.Compare(b.Time); c != 0 {
			return c
		}
		return cmp.Compare(order[a.ID], order[b.ID])
	}
}
