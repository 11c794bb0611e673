package timeline

import (
	"cmp"
	"fmt"
	"math"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/pilotwire/pilotwire/internal/catalog"
	"github.com/pilotwire/pilotwire/internal/flow"
)

// Build makes the timeline of one session's flows. The flows should be in
// start order (a Store returns them so); they are sorted (in a copy) when
// not. The catalog names services; rules (opt.Rules, or the embedded
// ones) find milestones and phases. It is NewBuilder, Add for each flow
// and Timeline.
func Build(flows []flow.Flow, cat *catalog.Catalog, opt Options) (*Timeline, error) {
	b, err := NewBuilder(cat, opt)
	if err != nil {
		return nil, err
	}
	if !sortedByStart(flows) {
		flows = slices.Clone(flows)
		slices.SortStableFunc(flows, func(a, b flow.Flow) int { return a.Start.Compare(b.Start) })
	}
	b.Grow(len(flows))
	for i := range flows {
		b.Add(&flows[i])
	}
	return b.Timeline(), nil
}

func sortedByStart(flows []flow.Flow) bool {
	for i := 1; i < len(flows); i++ {
		if flows[i].Start.Before(flows[i-1].Start) {
			return false
		}
	}
	return true
}

// Builder makes the timeline of a session from a stream of flows, so that
// a session read from a store need not be held as []flow.Flow (a million
// flows are some 400 MB that way). It keeps a 64-byte record of each flow
// instead, with no pointers for the garbage collector to follow: times as
// Unix nanoseconds and a zone, the host as an index into its host table,
// what judge made of the flow, and the strings that rules and attention
// items need (URL, failure reason, a mismatched SNI) as indices into a
// table of shared strings.
//
// Add the flows in start order, as a Store returns them; Timeline sorts
// the records (stably) when they were not. A Builder makes one timeline:
// call Timeline once, after the last Add.
type Builder struct {
	cat   *catalog.Catalog
	rules *Rules
	opt   Options
	tl    *Timeline

	recs     []rec
	pac      []pacFetch           // the proxy's own PAC answers, see Add
	n        int64                // flows added, PAC answers included: the position of the last
	unsorted bool                 // a flow came before the one added before it
	hosts    map[string]*hostInfo // by normalised name
	byRaw    map[string]*hostInfo // by Flow.Host as given, see host
	hostList []*hostInfo          // by hostInfo.idx
	bands    []*bandAcc
	// strs are the strings records point at (strs[0] is ""); strIdx finds
	// them again, for strings that repeat (URLs of one file, reasons).
	strs   []string
	strIdx map[string]uint32
	kinds  []string // flow kinds, by rec.kind
	kindIx map[string]uint32
	// locs are the time zones of the flows' start times, by rec.loc; see
	// locOf.
	locs       []*time.Location
	locByPtr   map[*time.Location]uint16
	locByZone  map[zoneKey]uint16
	lastLoc    *time.Location
	lastLocIdx uint16

	// The session, summed up as flows come (see summarise).
	first              sessionHead
	endNs              int64
	endLoc             uint16
	device             string
	deviceNs           int64
	sessFlows, sessByt int64
	lost               int64 // flows lost, from KindLost records

	mIndex  [][]int // rule index → indices of its matchers in the flattened list
	mAll    []*Matcher
	cIndex  [][]int  // rule index → indices of its context matchers in mAll
	ctxRuns [][]Span // rule index → stretches where its context allows it, as offsets from the session start
	dnsRule []bool   // rule i has a matcher that names the dns kind
	firedAt map[string]time.Time
	maxIDs  int
}

// sessionHead is the session's first flow: when, and whose.
type sessionHead struct {
	ns           int64
	loc          uint16
	client, name string
}

type zoneKey struct {
	name   string
	offset int
}

// rec is what a Builder keeps of one device flow (see Builder).
type rec struct {
	start int64 // Unix nanoseconds
	end   int64 // Unix nanoseconds; unused when flagOpen
	id    int64 // the store ID, or the 1-based position among the flows added
	up    int64 // bytes up
	down  int64 // bytes down
	host  uint32
	url   uint32 // in strs
	why   uint32 // judge's reason for a refusal or failure, in strs
	sni   uint32 // "SNI name" when the SNI differs from the host, in strs; 0 when not
	kind  uint32 // in kinds
	// loc is the zone of the start, in locs. The end is shown in the same
	// zone: a store keeps one zone a flow.
	loc   uint16
	out   flow.Outcome
	flags recFlags
}

type recFlags uint8

const (
	flagOpen  recFlags = 1 << iota // the flow has not ended (Flow.Open)
	flagPlain                      // plainHTTP
	flagDNS                        // kind dns
)

// pacFetch is one of pilotwire's own PAC answers (see Add).
type pacFetch struct {
	start time.Time
	id    int64
	file  string // fileName of its URL
}

// hostInfo is what the Builder knows of one host name, looked up once.
type hostInfo struct {
	idx   uint32 // in Builder.hostList
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

type bandAcc struct {
	Band
	hosts    []*hostInfo
	spanGap  time.Duration
	firstNs  int64
	firstLoc uint16
	lastNs   int64
	lastLoc  uint16
	curStart int64
	curEnd   int64
	open     bool
}

// NewBuilder returns a Builder of one session's timeline. The catalog
// names services; rules (opt.Rules, or the embedded ones) find milestones
// and phases.
func NewBuilder(cat *catalog.Catalog, opt Options) (*Builder, error) {
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
	b := &Builder{cat: cat, rules: rules, opt: opt, tl: &Timeline{},
		hosts: make(map[string]*hostInfo), byRaw: make(map[string]*hostInfo), firedAt: make(map[string]time.Time),
		maxIDs: opt.MaxFlowIDs, strs: []string{""}, strIdx: map[string]uint32{},
		kindIx: map[string]uint32{}, locs: []*time.Location{time.UTC}, locByPtr: map[*time.Location]uint16{time.UTC: 0},
		locByZone: map[zoneKey]uint16{}, lastLoc: time.UTC}
	if b.maxIDs <= 0 {
		b.maxIDs = 20
	}
	b.flatten()
	return b, nil
}

// FlowFields are the fields of a flow that Add reads (with ID and Start): a
// store asked for only these (flow.Filter.Fields) gives the same timeline.
// Session.Contains needs no others either.
const FlowFields = flow.FieldEnd | flow.FieldClient | flow.FieldDevice | flow.FieldSession | flow.FieldKind |
	flow.FieldScheme | flow.FieldHost | flow.FieldPort | flow.FieldURL | flow.FieldStatus | flow.FieldBytesUp |
	flow.FieldBytesDown | flow.FieldSNI | flow.FieldError | flow.FieldDecision | flow.FieldReason | flow.FieldLost |
	flow.FieldProxy

// Grow makes room for n more flows, so that a caller that knows how many
// are coming spares the Builder growing its records step by step (which
// allocates several times their final size).
func (b *Builder) Grow(n int) {
	b.recs = slices.Grow(b.recs, n)
}

// Add takes one flow of the session; it keeps nothing f points to, so the
// caller may reuse f. Flows without a store ID are known by their 1-based
// position among the flows added.
//
// Flows of kind flow.KindPAC are pilotwire's own PAC answers: the proxy's
// traffic, not the device's. The session, bands, milestones and attention
// are made of the others, and a PAC fetch inside the session is one line
// of its own. A flow.KindLost record stands for flows that were never
// stored: they are counted (Session.Lost), and are no traffic.
func (b *Builder) Add(f *flow.Flow) {
	b.n++
	id := f.ID
	if id == 0 {
		id = b.n
	}
	switch f.Kind {
	case flow.KindPAC:
		b.pac = append(b.pac, pacFetch{start: f.Start, id: id, file: fileName(f.URL)})
		return
	case flow.KindLost:
		b.lost += f.Lost
		return
	}
	hi := b.host(f)
	r := rec{start: nanos(f.Start), id: id, up: f.BytesUp, down: f.BytesDown, host: hi.idx,
		url: b.str(f.URL), kind: b.kind(f.Kind), loc: b.locOf(f.Start)}
	if f.Open() {
		r.flags |= flagOpen
	} else {
		r.end = nanos(f.End)
	}
	if plainHTTP(f) {
		r.flags |= flagPlain
	}
	if f.Kind == flow.KindDNS {
		r.flags |= flagDNS
	}
	var why string
	r.out, why = flow.Judge(f)
	r.why = b.str(why)
	if f.SNI != "" && f.Host != "" && f.SNI != f.Host && !isAddr(f.Host) && !strings.EqualFold(f.SNI, f.Host) {
		r.sni = b.str("SNI " + strings.ToLower(f.SNI))
	}

	// The session: its first flow (the earliest; the first added of
	// those that start together), its last moment, its newest device
	// label, as a stable sort of the flows would give them.
	if len(b.recs) == 0 || r.start < b.first.ns {
		b.first = sessionHead{ns: r.start, loc: r.loc, client: f.Client, name: f.Session}
	}
	if n := len(b.recs); n > 0 && r.start < b.recs[n-1].start {
		b.unsorted = true
	}
	if e := lastMoment(&r); len(b.recs) == 0 || e > b.endNs {
		b.endNs, b.endLoc = e, r.loc
	}
	if f.Device != "" && (b.device == "" || r.start >= b.deviceNs) {
		b.device, b.deviceNs = f.Device, r.start
	}
	b.sessFlows++
	b.sessByt += f.Bytes()
	b.recs = append(b.recs, r)
}

// Timeline finishes the build and returns the timeline.
func (b *Builder) Timeline() *Timeline {
	if len(b.recs) == 0 {
		b.tl.Session.Lost = b.lost
		return b.tl
	}
	if b.unsorted {
		b.sort()
	}
	b.summarise()
	b.pac = slices.DeleteFunc(b.pac, func(p pacFetch) bool {
		return p.start.Before(b.tl.Session.Start) || p.start.After(b.tl.Session.End)
	})
	gap := max(b.tl.Session.Duration()/500, time.Second)
	for _, bd := range b.bands {
		bd.spanGap = gap
	}
	b.context()
	b.pass()
	b.phases()
	b.finishAttention()
	return b.tl
}

// sort puts flows added out of order in start order (stably, as Build
// sorts), and the bands in the order of their first flow, as flows added
// in order make them: the order breaks ties between bands.
func (b *Builder) sort() {
	slices.SortStableFunc(b.recs, func(x, y rec) int { return cmp.Compare(x.start, y.start) })
	slices.SortStableFunc(b.pac, func(x, y pacFetch) int { return x.start.Compare(y.start) })
	order := make([]int, len(b.bands)) // old index → new index + 1
	bands := make([]*bandAcc, 0, len(b.bands))
	for i := range b.recs {
		if old := b.hostList[b.recs[i].host].band; order[old] == 0 {
			bands = append(bands, b.bands[old])
			order[old] = len(bands)
		}
	}
	for _, hi := range b.hostList {
		hi.band = order[hi.band] - 1
	}
	b.bands = bands
}

// summarise fills in the session and the clock.
func (b *Builder) summarise() {
	s := &b.tl.Session
	s.Client, s.Name = b.first.client, b.first.name
	s.Start, s.End = b.at(b.first.ns, b.first.loc), b.at(b.endNs, b.endLoc)
	s.Device = b.device
	s.Flows, s.Bytes, s.Lost = b.sessFlows, b.sessByt, b.lost
	b.tl.T0 = s.Start
	if !b.opt.T0.IsZero() {
		b.tl.T0 = b.opt.T0
	}
}

// lastMoment is when a flow was last active: its end, or its start while
// open.
func lastMoment(f *rec) int64 {
	if f.flags&flagOpen == 0 && f.end > f.start {
		return f.end
	}
	return f.start
}

// duration is a flow's end minus its start, or zero while it is open.
func (f *rec) duration() time.Duration {
	if f.flags&flagOpen != 0 {
		return 0
	}
	return sub(f.end, f.start)
}

// Times outside what int64 nanoseconds hold (1678 to 2262) are clamped to
// its ends, as a store would have to.
var minTime, maxTime = time.Unix(0, math.MinInt64), time.Unix(0, math.MaxInt64)

func nanos(t time.Time) int64 {
	switch {
	case t.Before(minTime):
		return math.MinInt64
	case t.After(maxTime):
		return math.MaxInt64
	}
	return t.UnixNano()
}

// sub is a-b, saturated as time.Time.Sub is.
func sub(a, b int64) time.Duration {
	d := a - b
	if (a >= b) != (d >= 0) {
		if a >= b {
			return math.MaxInt64
		}
		return math.MinInt64
	}
	return time.Duration(d)
}

// at is the time of Unix nanoseconds ns in zone loc.
func (b *Builder) at(ns int64, loc uint16) time.Time {
	return time.Unix(0, ns).In(b.locs[loc])
}

// off is the offset of ns from the clock's zero.
func (b *Builder) off(ns int64) time.Duration {
	return time.Unix(0, ns).Sub(b.tl.T0)
}

// str is the index of s in strs, adding it when new. Only the first 64Ki
// distinct strings are looked up again, so a capture of a million
// different URLs does not grow a map as large as the records.
func (b *Builder) str(s string) uint32 {
	if s == "" {
		return 0
	}
	if i, ok := b.strIdx[s]; ok {
		return i
	}
	i := uint32(len(b.strs))
	b.strs = append(b.strs, s)
	if len(b.strIdx) < 1<<16 {
		b.strIdx[s] = i
	}
	return i
}

func (b *Builder) kind(k flow.Kind) uint32 {
	if i, ok := b.kindIx[string(k)]; ok {
		return i
	}
	i := uint32(len(b.kinds))
	b.kinds = append(b.kinds, string(k))
	if len(b.kindIx) < 1<<16 {
		b.kindIx[string(k)] = i
	}
	return i
}

// maxLocs is how many zones a Builder keeps by their *time.Location: a
// store shares one for each zone offset, but a parser may make a new one
// for every time it parses.
const maxLocs = 64

// locOf is the index in locs of t's zone. Past maxLocs locations, a zone
// is kept as the fixed zone (name and offset) it has at t, which prints t
// just the same.
func (b *Builder) locOf(t time.Time) uint16 {
	l := t.Location()
	if l == b.lastLoc {
		return b.lastLocIdx
	}
	if i, ok := b.locByPtr[l]; ok {
		b.lastLoc, b.lastLocIdx = l, i
		return i
	}
	if len(b.locs) < maxLocs {
		i := uint16(len(b.locs))
		b.locs = append(b.locs, l)
		b.locByPtr[l] = i
		b.lastLoc, b.lastLocIdx = l, i
		return i
	}
	name, offset := t.Zone()
	k := zoneKey{name, offset}
	if i, ok := b.locByZone[k]; ok {
		return i
	}
	if len(b.locs) > math.MaxUint16 {
		return 0 // 64Ki zones in one session: hostile input, shown in UTC
	}
	i := uint16(len(b.locs))
	b.locs = append(b.locs, time.FixedZone(name, offset))
	b.locByZone[k] = i
	return i
}

// flatten lists every matcher of every rule once, so a host can be tested
// against all of them when first seen.
func (b *Builder) flatten() {
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
func (b *Builder) context() {
	b.ctxRuns = make([][]Span, len(b.rules.Milestones))
	if !slices.ContainsFunc(b.cIndex, func(c []int) bool { return len(c) > 0 }) {
		return
	}
	t0 := b.first.ns
	for i := range b.recs {
		f := &b.recs[i]
		hi := b.hostList[f.host]
		if len(hi.ctx) == 0 || f.out != flow.Succeeded {
			continue
		}
		for _, r := range hi.ctx {
			ok := false
			for _, mi := range b.cIndex[r] {
				m := b.mAll[mi]
				if hi.hit[mi] && b.flowOK(m, f) && (f.flags&flagDNS == 0 || slices.Contains(m.Kinds, string(flow.KindDNS))) {
					ok = true
					break
				}
			}
			if !ok {
				continue
			}
			w := time.Duration(b.rules.Milestones[r].Context.Within)
			at := sub(f.start, t0)
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

// inContext reports whether rule r's milestone may fire at t (Unix
// nanoseconds): the rule has no Context, or its context traffic came
// within Within of t.
func (b *Builder) inContext(r int, t int64) bool {
	if b.rules.Milestones[r].Context == nil {
		return true
	}
	at := sub(t, b.first.ns)
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

// host returns what is known of a flow's host, looking it up on first use.
// A second map keyed by the raw Host spares the hot path the name's
// normalisation; it holds only hosts whose name the SNI cannot change.
func (b *Builder) host(f *flow.Flow) *hostInfo {
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
func (b *Builder) newHost(name string) *hostInfo {
	hi := &hostInfo{idx: uint32(len(b.hostList)), ref: HostRef{Host: name, Service: UnknownService.ID, ServiceName: UnknownService.Name}}
	b.hostList = append(b.hostList, hi)
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

// band returns the index of the service's band, adding it when new. Its
// spanGap is set when the session's length is known (Timeline).
func (b *Builder) band(svc catalog.Service) int {
	for i, bd := range b.bands {
		if bd.Service.ID == svc.ID {
			return i
		}
	}
	b.bands = append(b.bands, &bandAcc{Band: Band{Service: svc}})
	return len(b.bands) - 1
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
