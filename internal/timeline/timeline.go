package timeline

import (
	"cmp"
	"fmt"
	"net/netip"
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

// hostInfo is what Build knows of one host name, looked up once.
type hostInfo struct {
	ref   HostRef
	phase string // the catalog's phase for the host
	band  int
	// hit[i] says whether matcher i (flattened over all rules) accepts
	// the host on services and host patterns alone; rules lists the match
	// rules with such a matcher, in rule order, so a flow is tested only
	// against rules that can select it; ctx lists the rules whose context
	// matchers can.
	hit   []bool
	rules []int
	ctx   []int
	// bytes and flows per host for the band's host list.
	flows, bytes int64
}

// builder holds the state of one Build.
type builder struct {
	cat     *catalog.Catalog
	rules   *Rules
	opt     Options
	tl      *Timeline
	flows   []flow.Flow
	pac     []flow.Flow          // the proxy's own PAC answers inside the session
	hosts   map[string]*hostInfo // by normalised name
	byRaw   map[string]*hostInfo // by Flow.Host as given, see host
	bandOf  []int32              // band of each flow, filled by pass
	bands   []*bandAcc
	mIndex  [][]int // rule index → indices of its matchers in the flattened list
	mAll    []*Matcher
	cIndex  [][]int  // rule index → indices of its context matchers in mAll
	ctxRuns [][]Span // rule index → stretches where its context allows it, as offsets from the session start
	dnsRule []bool   // rule i has a matcher that names the dns kind
	// hostOf is the host of each flow, when the context pass looked them
	// up, so that the main pass need not look them up again.
	hostOf  []*hostInfo
	firedAt map[string]time.Time
	maxIDs  int
}

type bandAcc struct {
	Band
	hosts    []*hostInfo
	spanGap  time.Duration
	curStart time.Time
	curEnd   time.Time
	open     bool
}

// Build makes the timeline of one session's flows. The flows should be in
// start order (a Store returns them so); they are sorted (in a copy) when
// not. The catalog names services; rules (opt.Rules, or the embedded
// ones) find milestones and phases.
func Build(flows []flow.Flow, cat *catalog.Catalog, opt Options) (*Timeline, error) {
	if cat == nil {
		return nil, fmt.Errorf("timeline: no catalog")
	}
	rules := opt.Rules
	if rules == nil {
		var err error
		if rules, err = DefaultRules(); err != nil {
			return nil, fmt.Errorf("timeline: %w", err)
		}
	}
	if !sortedByStart(flows) {
		flows = slices.Clone(flows)
		slices.SortStableFunc(flows, func(a, b flow.Flow) int { return a.Start.Compare(b.Start) })
	}
	flows, pac := splitPAC(flows)
	b := &builder{cat: cat, rules: rules, opt: opt, tl: &Timeline{}, flows: flows, pac: pac,
		hosts: make(map[string]*hostInfo), byRaw: make(map[string]*hostInfo), firedAt: make(map[string]time.Time), maxIDs: opt.MaxFlowIDs}
	if b.maxIDs <= 0 {
		b.maxIDs = 20
	}
	if len(flows) == 0 {
		return b.tl, nil
	}
	b.summarise()
	b.pac = slices.DeleteFunc(b.pac, func(f flow.Flow) bool {
		return f.Start.Before(b.tl.Session.Start) || f.Start.After(b.tl.Session.End)
	})
	b.flatten()
	b.context()
	b.pass()
	b.phases()
	b.finishAttention()
	return b.tl, nil
}

// splitPAC separates pilotwire's own PAC answers (flow.KindPAC) from the
// device's flows. They are the proxy's traffic: the device's session,
// bands, milestones and attention are made of the others, and a PAC fetch
// inside the session is one line of its own. Flows without a store ID get
// their 1-based position in the input first, so IDs still point at the
// input after the split.
func splitPAC(flows []flow.Flow) (dev, pac []flow.Flow) {
	// An index loop: a func(flow.Flow) would copy every flow.
	has := false
	for i := range flows {
		if flows[i].Kind == flow.KindPAC {
			has = true
			break
		}
	}
	if !has {
		return flows, nil
	}
	dev = make([]flow.Flow, 0, len(flows))
	for i, f := range flows {
		if f.ID == 0 {
			f.ID = int64(i) + 1
		}
		if f.Kind == flow.KindPAC {
			pac = append(pac, f)
		} else {
			dev = append(dev, f)
		}
	}
	return dev, pac
}

func sortedByStart(flows []flow.Flow) bool {
	for i := 1; i < len(flows); i++ {
		if flows[i].Start.Before(flows[i-1].Start) {
			return false
		}
	}
	return true
}

// summarise fills in the session and the clock.
func (b *builder) summarise() {
	s := &b.tl.Session
	s.Client, s.Name = b.flows[0].Client, b.flows[0].Session
	s.Start, s.End = b.flows[0].Start, b.flows[0].Start
	for i := range b.flows {
		f := &b.flows[i]
		if e := lastMoment(f); e.After(s.End) {
			s.End = e
		}
		if f.Device != "" {
			s.Device = f.Device
		}
		s.Flows++
		s.Bytes += f.Bytes()
	}
	b.tl.T0 = s.Start
	if !b.opt.T0.IsZero() {
		b.tl.T0 = b.opt.T0
	}
}

// lastMoment is when a flow was last active: its end, or its start while
// open.
func lastMoment(f *flow.Flow) time.Time {
	if f.End.After(f.Start) {
		return f.End
	}
	return f.Start
}

// flatten lists every matcher of every rule once, so a host can be tested
// against all of them when first seen.
func (b *builder) flatten() {
	b.mIndex = make([][]int, len(b.rules.Milestones))
	b.dnsRule = make([]bool, len(b.rules.Milestones))
	for i := range b.rules.Milestones {
		r := &b.rules.Milestones[i]
		ms := r.Match
		if r.Kind == KindReboot {
			ms = r.Probe
		}
		for j := range ms {
			b.dnsRule[i] = b.dnsRule[i] || slices.Contains(ms[j].Kinds, string(flow.KindDNS))
			b.mIndex[i] = append(b.mIndex[i], len(b.mAll))
			b.mAll = append(b.mAll, &ms[j])
		}
	}
	b.cIndex = make([][]int, len(b.rules.Milestones))
	for i := range b.rules.Milestones {
		if c := b.rules.Milestones[i].Context; c != nil {
			for j := range c.Match {
				b.cIndex[i] = append(b.cIndex[i], len(b.mAll))
				b.mAll = append(b.mAll, &c.Match[j])
			}
		}
	}
}

// context finds, for each rule with a Context, the stretches of time in
// which its milestone may fire: Within either side of every succeeded
// flow that its context matchers select. It is a pass of its own, before
// the main one, because the context may come after the milestone (a
// registration lookup comes just before the profile download).
func (b *builder) context() {
	b.ctxRuns = make([][]Span, len(b.rules.Milestones))
	if !slices.ContainsFunc(b.cIndex, func(c []int) bool { return len(c) > 0 }) {
		return
	}
	t0 := b.tl.Session.Start
	b.hostOf = make([]*hostInfo, len(b.flows))
	for i := range b.flows {
		f := &b.flows[i]
		hi := b.host(f)
		b.hostOf[i] = hi
		if len(hi.ctx) == 0 {
			continue
		}
		if out, _ := judge(f); out != succeeded {
			continue
		}
		for _, r := range hi.ctx {
			ok := false
			for _, mi := range b.cIndex[r] {
				m := b.mAll[mi]
				if hi.hit[mi] && m.flowOK(f) && (f.Kind != flow.KindDNS || slices.Contains(m.Kinds, string(flow.KindDNS))) {
					ok = true
					break
				}
			}
			if !ok {
				continue
			}
			w := time.Duration(b.rules.Milestones[r].Context.Within)
			at := f.Start.Sub(t0)
			runs := b.ctxRuns[r]
			if n := len(runs); n > 0 && at-w <= runs[n-1].End {
				runs[n-1].End = at + w
			} else {
				runs = append(runs, Span{at - w, at + w})
			}
			b.ctxRuns[r] = runs
		}
	}
}

// inContext reports whether rule r's milestone may fire at t: the rule
// has no Context, or its context traffic came within Within of t.
func (b *builder) inContext(r int, t time.Time) bool {
	if b.rules.Milestones[r].Context == nil {
		return true
	}
	at := t.Sub(b.tl.Session.Start)
	runs := b.ctxRuns[r]
	// The runs are in time order and do not overlap: the first that ends
	// at or after t is the only one that can hold it.
	i, _ := slices.BinarySearchFunc(runs, at, func(s Span, at time.Duration) int {
		if s.End < at {
			return -1
		}
		return 1
	})
	return i < len(runs) && runs[i].Start <= at
}

// hostName is the name a flow is known by: its host, or its SNI when the
// host is missing or an address.
func hostName(f *flow.Flow) string {
	h := f.Host
	if h == "" || isAddr(h) {
		if f.SNI != "" {
			h = f.SNI
		}
	}
	if h == "" {
		return "(no host)"
	}
	return strings.ToLower(h)
}

func isAddr(h string) bool {
	if h == "" {
		return false
	}
	// A DNS name never ends in a digit (no top-level domain is numeric);
	// an IPv4 address does, and an IPv6 one has a colon. This keeps the
	// parser off the hot path.
	if c := h[len(h)-1]; (c < '0' || c > '9') && c != ']' && strings.IndexByte(h, ':') < 0 {
		return false
	}
	_, err := netip.ParseAddr(strings.Trim(h, "[]"))
	return err == nil
}

// host returns what is known of a flow's host, looking it up on first use.
// A second map keyed by the raw Host spares the hot path the name's
// normalisation; it holds only hosts whose name the SNI cannot change.
func (b *builder) host(f *flow.Flow) *hostInfo {
	if hi, ok := b.byRaw[f.Host]; ok {
		return hi
	}
	name := hostName(f)
	hi := b.hosts[name]
	if hi == nil {
		hi = b.newHost(name)
		b.hosts[name] = hi
	}
	if f.Host != "" && !isAddr(f.Host) {
		b.byRaw[f.Host] = hi
	}
	return hi
}

// newHost looks a host up in the catalog and against every rule.
func (b *builder) newHost(name string) *hostInfo {
	hi := &hostInfo{ref: HostRef{Host: name, Service: UnknownService.ID, ServiceName: UnknownService.Name}}
	svc := UnknownService
	if m, ok := b.cat.Lookup(name); ok {
		svc = m.Service
		hi.ref = HostRef{Host: name, Service: m.Service.ID, ServiceName: m.Service.Name, Purpose: m.Entry.Purpose,
			Known: true, Region: m.Region}
		hi.phase = m.Entry.Phase
	}
	hi.band = b.band(svc)
	hi.hit = make([]bool, len(b.mAll))
	for i, m := range b.mAll {
		hi.hit[i] = m.hostOK(name, hi.ref.Service)
	}
	for r, ms := range b.mIndex {
		if b.rules.Milestones[r].Kind != KindMatch {
			continue
		}
		for _, mi := range ms {
			if hi.hit[mi] {
				hi.rules = append(hi.rules, r)
				break
			}
		}
	}
	for r, ms := range b.cIndex {
		for _, mi := range ms {
			if hi.hit[mi] {
				hi.ctx = append(hi.ctx, r)
				break
			}
		}
	}
	b.bands[hi.band].hosts = append(b.bands[hi.band].hosts, hi)
	return hi
}

// band returns the index of the service's band, adding it when new.
func (b *builder) band(svc catalog.Service) int {
	for i, bd := range b.bands {
		if bd.Service.ID == svc.ID {
			return i
		}
	}
	gap := b.tl.Session.Duration() / 500
	if gap < time.Second {
		gap = time.Second
	}
	b.bands = append(b.bands, &bandAcc{Band: Band{Service: svc}, spanGap: gap})
	return len(b.bands) - 1
}

// hostOK tests the host-level fields of a matcher.
func (m *Matcher) hostOK(host, service string) bool {
	if len(m.Services) > 0 && !slices.Contains(m.Services, service) {
		return false
	}
	if len(m.hosts) > 0 {
		ok := false
		for _, p := range m.hosts {
			if p.match(host) {
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

// flowOK tests the flow-level fields of a matcher.
func (m *Matcher) flowOK(f *flow.Flow) bool {
	if len(m.Schemes) > 0 {
		want := "https"
		if plainHTTP(f) {
			want = "http"
		}
		if !slices.Contains(m.Schemes, want) {
			return false
		}
	}
	if len(m.Kinds) > 0 && !slices.Contains(m.Kinds, string(f.Kind)) {
		return false
	}
	if len(m.paths) > 0 {
		p := strings.ToLower(urlPath(f.URL))
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
func (b *builder) matches(r int, hi *hostInfo, f *flow.Flow) bool {
	for _, mi := range b.mIndex[r] {
		if hi.hit[mi] && b.mAll[mi].flowOK(f) {
			return true
		}
	}
	return false
}

// evidence reports whether flow f, which rule r matches, shows the rule's
// milestone happened (see judge).
func (b *builder) evidence(r int, f *flow.Flow) bool {
	out, _ := judge(f)
	return out == succeeded && (f.Kind != flow.KindDNS || b.dnsRule[r])
}

// id is the reference of a flow: its store ID, or its position.
func (b *builder) id(i int) int64 {
	if b.flows[i].ID != 0 {
		return b.flows[i].ID
	}
	return int64(i) + 1
}

func cmpMilestones(order map[string]int) func(a, b Milestone) int {
	return func(a, b Milestone) int {
		if c := a.Time.Compare(b.Time); c != 0 {
			return c
		}
		return cmp.Compare(order[a.ID], order[b.ID])
	}
}
