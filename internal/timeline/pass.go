package timeline

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/pilotwire/pilotwire/internal/flow"
)

// occurrence is a milestone being gathered.
type occurrence struct {
	m       Milestone
	rule    *Rule
	start   time.Time
	hostSet map[string]bool
	file    string
}

// ruleRun is the state of one match rule during the pass.
type ruleRun struct {
	cur     *occurrence
	fired   bool
	matched bool
	last    time.Time
}

// attKey groups attention items.
type attKey struct{ kind, host, detail string }

// transfer is one content transfer, for the slow-content check.
type transfer struct {
	flow int
	hi   *hostInfo
	rate float64
}

// pass walks the flows once: bands, match milestones, and attention.
func (b *builder) pass() {
	rules := b.rules.Milestones
	var done []*occurrence
	// Milestones that do not come from matching are found first, so that
	// match rules can wait for them with "after".
	for i := range rules {
		switch rules[i].Kind {
		case KindFirstFlow:
			done = append(done, b.firstFlow(&rules[i]))
		case KindReboot:
			done = append(done, b.reboots(&rules[i])...)
		}
	}
	for _, o := range done {
		b.fired(o)
	}
	runs := make([]ruleRun, len(rules))
	att := map[attKey]*Attention{}
	var attOrder []*Attention
	var transfers []transfer
	b.bandOf = make([]int32, len(b.flows))
	for i := range b.flows {
		f := &b.flows[i]
		var hi *hostInfo
		if b.hostOf != nil {
			hi = b.hostOf[i]
		} else {
			hi = b.host(f)
		}
		b.bandOf[i] = int32(hi.band)
		b.account(hi, f)
		t := f.Start
		out, why := judge(f)
		blocks := -1
		for _, r := range hi.rules {
			rule := &rules[r]
			if !b.matches(r, hi, f) {
				continue
			}
			if out == refused || out == failed {
				if blocks < 0 {
					blocks = r
				}
				continue
			}
			if out != succeeded || f.Kind == flow.KindDNS && !b.dnsRule[r] {
				continue
			}
			run := &runs[r]
			if run.cur != nil && t.Sub(run.cur.start) <= time.Duration(rule.Window) {
				b.gather(run.cur, hi, f, i)
				run.last = t
				continue
			}
			if run.cur != nil {
				done = append(done, run.cur)
				run.cur = nil
			}
			ok := !run.fired || (rule.RepeatAfter > 0 && t.Sub(run.last) >= time.Duration(rule.RepeatAfter))
			if rule.After != "" {
				at, fired := b.firedAt[rule.After]
				ok = ok && fired && !at.After(t)
			}
			if rule.QuietBefore > 0 && run.matched && t.Sub(run.last) < time.Duration(rule.QuietBefore) {
				ok = false
			}
			ok = ok && b.inContext(r, t)
			if ok {
				run.cur = b.open(rule, t)
				b.gather(run.cur, hi, f, i)
				run.fired = true
				if _, seen := b.firedAt[rule.ID]; !seen {
					b.firedAt[rule.ID] = t
				}
			}
			run.matched, run.last = true, t
		}
		if out == refused || out == failed || !hi.ref.Known || f.SNI != "" {
			b.problems(hi, f, i, out, why, blocks, att, &attOrder)
		}
		if d := f.Duration(); f.BytesDown >= b.rules.Content.MinBytes && d > 0 {
			transfers = append(transfers, transfer{flow: i, hi: hi, rate: float64(f.BytesDown) / d.Seconds()})
			bd := &b.bands[hi.band].Band
			bd.Transfers++
			bd.TransferBytes += f.BytesDown
			bd.TransferTime += d
		}
	}
	for r := range runs {
		if runs[r].cur != nil {
			done = append(done, runs[r].cur)
		}
	}
	for i := range rules {
		switch rules[i].Kind {
		case KindLastFlow:
			done = append(done, b.lastFlow(&rules[i]))
		case KindProxyConfig:
			done = append(done, b.proxyConfig(&rules[i]))
		}
	}
	order := map[string]int{}
	for i := range rules {
		order[rules[i].ID] = i
	}
	for _, o := range done {
		if o != nil {
			b.tl.Milestones = append(b.tl.Milestones, b.finish(o))
		}
	}
	b.hostOf = nil // 8 bytes a flow, not needed any more
	slices.SortStableFunc(b.tl.Milestones, cmpMilestones(order))
	b.tl.Provisioning = !b.rules.canTell
	for _, m := range b.tl.Milestones {
		b.tl.Provisioning = b.tl.Provisioning || rules[order[m.ID]].Provisioning
	}
	b.finishBands()
	b.slow(transfers, att, &attOrder)
	for _, a := range attOrder {
		b.tl.Attention = append(b.tl.Attention, *a)
	}
}

// fired records when a rule first fired.
func (b *builder) fired(o *occurrence) {
	if o == nil {
		return
	}
	if at, ok := b.firedAt[o.m.ID]; !ok || o.start.Before(at) {
		b.firedAt[o.m.ID] = o.start
	}
}

func (b *builder) open(r *Rule, t time.Time) *occurrence {
	return &occurrence{rule: r, start: t, hostSet: map[string]bool{},
		m: Milestone{ID: r.ID, Title: r.Title, Time: t, Offset: t.Sub(b.tl.T0), Likely: r.Likely}}
}

// gather adds a flow to a milestone.
func (b *builder) gather(o *occurrence, hi *hostInfo, f *flow.Flow, i int) {
	o.m.Flows++
	if len(o.m.FlowIDs) < b.maxIDs {
		o.m.FlowIDs = append(o.m.FlowIDs, b.id(i))
	}
	plain := plainHTTP(f)
	if !o.hostSet[hi.ref.Host] && len(o.m.Hosts) < 8 {
		o.hostSet[hi.ref.Host] = true
		ref := hi.ref
		ref.PlainHTTP = plain
		if plain && f.URL != "" {
			ref.URL = f.URL
		}
		o.m.Hosts = append(o.m.Hosts, ref)
	}
	if o.m.Region == "" && hi.ref.Region != "" {
		o.m.Region = hi.ref.Region
	}
	if o.file == "" && plain && f.URL != "" {
		o.file = fileName(f.URL)
	}
}

// finish fills the placeholders of a milestone's sentence.
func (b *builder) finish(o *occurrence) Milestone {
	m := o.m
	text := o.rule.Text
	if m.Region != "" {
		text += o.rule.RegionText
	}
	if o.file != "" {
		text += o.rule.FileText
	}
	rep := strings.NewReplacer(
		"{region}", m.Region,
		"{file}", o.file,
		"{flows}", count(int64(m.Flows), "flow"),
		"{duration}", FormatOffset(b.tl.Session.Duration()),
		"{session_flows}", count(b.tl.Session.Flows, "flow"),
	)
	m.Text = strings.TrimSpace(rep.Replace(text))
	m.Why = rep.Replace(m.Why)
	return m
}

// firstFlow is the session's first flow and what came with it.
func (b *builder) firstFlow(r *Rule) *occurrence {
	o := b.open(r, b.flows[0].Start)
	for i := range b.flows {
		f := &b.flows[i]
		if f.Start.Sub(o.start) > time.Duration(r.Window) {
			break
		}
		b.gather(o, b.host(f), f, i)
	}
	return o
}

// lastFlow is the session's last flow.
func (b *builder) lastFlow(r *Rule) *occurrence {
	i := len(b.flows) - 1
	f := &b.flows[i]
	o := b.open(r, f.Start)
	b.gather(o, b.host(f), f, i)
	return o
}

// proxyConfig is the device fetching the proxy's PAC file: one line at the
// first fetch, naming the file served, with no host (the proxy is not a
// service the device talks to).
func (b *builder) proxyConfig(r *Rule) *occurrence {
	if len(b.pac) == 0 {
		return nil
	}
	o := b.open(r, b.pac[0].Start)
	for _, f := range b.pac {
		o.m.Flows++
		if len(o.m.FlowIDs) < b.maxIDs {
			o.m.FlowIDs = append(o.m.FlowIDs, f.ID)
		}
		if o.file == "" {
			o.file = fileName(f.URL)
		}
	}
	return o
}

// reboots finds likely reboots: a silence of at least r.Silence with no new
// flow, then, within r.ProbeWithin, a flow the probe matchers select (the
// connectivity check Windows makes as the network comes up), and a new
// burst of at least r.BurstFlows flows within r.BurstWithin.
func (b *builder) reboots(r *Rule) []*occurrence {
	idx := slices.IndexFunc(b.rules.Milestones, func(x Rule) bool { return x.ID == r.ID })
	var out []*occurrence
	for i := 1; i < len(b.flows); i++ {
		silence := b.flows[i].Start.Sub(b.flows[i-1].Start)
		if silence < time.Duration(r.Silence) {
			continue
		}
		t := b.flows[i].Start
		probe, burst := -1, 0
		for j := i; j < len(b.flows); j++ {
			d := b.flows[j].Start.Sub(t)
			if d > time.Duration(r.BurstWithin) && (probe >= 0 || d > time.Duration(r.ProbeWithin)) {
				break
			}
			if d <= time.Duration(r.BurstWithin) {
				burst++
			}
			if probe < 0 && d <= time.Duration(r.ProbeWithin) && b.matches(idx, b.host(&b.flows[j]), &b.flows[j]) && b.evidence(idx, &b.flows[j]) {
				probe = j
			}
		}
		if probe < 0 || burst < r.BurstFlows || !b.inContext(idx, t) {
			continue
		}
		o := b.open(r, t)
		o.m.Likely = true
		pf := &b.flows[probe]
		o.m.Why = fmt.Sprintf("no new connection for %s, then the connectivity check (%s) %s and a burst of %s within %s",
			humanDuration(silence), hostName(pf), afterText(pf.Start.Sub(t)), count(int64(burst), "flow"), humanDuration(time.Duration(r.BurstWithin)))
		b.gather(o, b.host(pf), pf, probe)
		o.m.Flows = burst
		out = append(out, o)
		rep := strings.NewReplacer("{silence}", humanDuration(silence), "{probe}", hostName(pf), "{burst}", strconv.Itoa(burst))
		o.rule = &Rule{Text: rep.Replace(r.Text)}
	}
	return out
}

// count is "1 flow" or "3 flows".
func count(n int64, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return strconv.FormatInt(n, 10) + " " + noun + "s"
}

func afterText(d time.Duration) string {
	if d < time.Second {
		return "at once"
	}
	return humanDuration(d) + " later"
}

// humanDuration prints a duration for a sentence: "27 s", "3 min 5 s",
// "1 h 4 min".
func humanDuration(d time.Duration) string {
	s := int64(d.Round(time.Second) / time.Second)
	switch {
	case s < 60:
		return fmt.Sprintf("%d s", s)
	case s < 3600:
		if s%60 == 0 {
			return fmt.Sprintf("%d min", s/60)
		}
		return fmt.Sprintf("%d min %d s", s/60, s%60)
	default:
		return fmt.Sprintf("%d h %d min", s/3600, s/60%60)
	}
}

// account adds a flow to its band.
func (b *builder) account(hi *hostInfo, f *flow.Flow) {
	bd := b.bands[hi.band]
	if bd.Flows == 0 {
		bd.First = f.Start
	}
	bd.Flows++
	bd.BytesUp += f.BytesUp
	bd.BytesDown += f.BytesDown
	hi.flows++
	hi.bytes += f.Bytes()
	end := lastMoment(f)
	if end.After(bd.Last) {
		bd.Last = end
	}
	switch {
	case !bd.open:
		bd.curStart, bd.curEnd, bd.open = f.Start, end, true
	case f.Start.Sub(bd.curEnd) > bd.spanGap:
		bd.Activity = append(bd.Activity, Span{bd.curStart.Sub(b.tl.T0), bd.curEnd.Sub(b.tl.T0)})
		bd.curStart, bd.curEnd = f.Start, end
	case end.After(bd.curEnd):
		bd.curEnd = end
	}
}

// finishBands closes the bands' spans and ranks their hosts.
func (b *builder) finishBands() {
	for _, bd := range b.bands {
		if bd.open {
			bd.Activity = append(bd.Activity, Span{bd.curStart.Sub(b.tl.T0), bd.curEnd.Sub(b.tl.T0)})
		}
		slices.SortStableFunc(bd.hosts, func(x, y *hostInfo) int {
			if x.bytes != y.bytes {
				if x.bytes > y.bytes {
					return -1
				}
				return 1
			}
			return strings.Compare(x.ref.Host, y.ref.Host)
		})
		bd.HostCount = len(bd.hosts)
		for _, hi := range bd.hosts[:min(10, len(bd.hosts))] {
			bd.Hosts = append(bd.Hosts, HostStat{Host: hi.ref.Host, Flows: hi.flows, Bytes: hi.bytes})
		}
		if bd.TransferTime > 0 {
			bd.Throughput = float64(bd.TransferBytes) / bd.TransferTime.Seconds()
		}
		b.tl.Services = append(b.tl.Services, bd.Band)
	}
	slices.SortStableFunc(b.tl.Services, func(x, y Band) int { return x.First.Compare(y.First) })
}

// problems records what is wrong with a flow as attention items: its
// refusal or failure (out, why; see judge), naming the milestone rule it
// matched (blocks, -1 for none), an unknown host, a mismatched SNI.
func (b *builder) problems(hi *hostInfo, f *flow.Flow, i int, out outcome, why string, blocks int, att map[attKey]*Attention, order *[]*Attention) {
	host := hi.ref.Host
	note := func(k attKey) *Attention {
		a := att[k]
		if a == nil {
			a = &Attention{Kind: k.kind, Host: hi.ref, Detail: k.detail, First: f.Start, Offset: f.Start.Sub(b.tl.T0)}
			att[k] = a
			*order = append(*order, a)
		}
		a.Flows++
		a.Bytes += f.Bytes()
		a.Last, a.LastOffset = f.Start, f.Start.Sub(b.tl.T0)
		if len(a.FlowIDs) < b.maxIDs {
			a.FlowIDs = append(a.FlowIDs, b.id(i))
		}
		return a
	}
	if out == refused || out == failed {
		kind := AttentionFailed
		if out == refused {
			kind = AttentionRefused
		}
		a := note(attKey{kind, host, why})
		if a.Blocks == "" && blocks >= 0 {
			a.Blocks, a.BlocksTitle = b.rules.Milestones[blocks].ID, b.rules.Milestones[blocks].Title
		}
	}
	if !hi.ref.Known {
		note(attKey{AttentionUnknownHost, host, ""})
	}
	if f.SNI != "" && f.Host != "" && f.SNI != f.Host && !isAddr(f.Host) && !strings.EqualFold(f.SNI, f.Host) {
		note(attKey{AttentionSNIMismatch, host, "SNI " + strings.ToLower(f.SNI)})
	}
}

// slow flags content transfers far below the session's best throughput.
func (b *builder) slow(ts []transfer, att map[attKey]*Attention, order *[]*Attention) {
	best := 0.0
	for _, t := range ts {
		best = max(best, t.rate)
	}
	b.tl.BestThroughput = best
	limit := best / b.rules.Content.SlowFactor
	slowest := map[*Attention]float64{}
	for _, t := range ts {
		if t.rate >= limit {
			continue
		}
		f := &b.flows[t.flow]
		k := attKey{AttentionSlow, t.hi.ref.Host, ""}
		a := att[k]
		if a == nil {
			a = &Attention{Kind: AttentionSlow, Host: t.hi.ref, First: f.Start, Offset: f.Start.Sub(b.tl.T0)}
			att[k] = a
			*order = append(*order, a)
			slowest[a] = t.rate
		}
		a.Flows++
		a.Bytes += f.Bytes()
		a.Last, a.LastOffset = f.Start, f.Start.Sub(b.tl.T0)
		slowest[a] = min(slowest[a], t.rate)
		if len(a.FlowIDs) < b.maxIDs {
			a.FlowIDs = append(a.FlowIDs, b.id(t.flow))
		}
	}
	for a, r := range slowest {
		a.Detail = fmt.Sprintf("%d transfer(s) below a %gth of the session's best; slowest %s, best %s",
			a.Flows, b.rules.Content.SlowFactor, FormatRate(r), FormatRate(best))
	}
}

// finishAttention sorts attention by kind and names the phases failures
// would hurt.
func (b *builder) finishAttention() {
	kinds := []string{AttentionRefused, AttentionFailed, AttentionSNIMismatch, AttentionSlow, AttentionUnknownHost}
	slices.SortStableFunc(b.tl.Attention, func(x, y Attention) int {
		return slices.Index(kinds, x.Kind) - slices.Index(kinds, y.Kind)
	})
	names := map[string]string{}
	for _, p := range b.rules.Phases {
		names[p.ID] = p.Name
	}
	for i := range b.tl.Attention {
		a := &b.tl.Attention[i]
		if a.Blocks != "" {
			_, a.BlocksFired = b.firedAt[a.Blocks]
		}
		if hi := b.hosts[a.Host.Host]; hi != nil {
			a.Hurts = b.rules.Hurts[hi.phase]
			a.HurtsName = names[a.Hurts]
		}
	}
}
