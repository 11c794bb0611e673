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
	start   int64 // Unix nanoseconds
	hostSet map[string]bool
	file    string
}

// ruleRun is the state of one match rule during the pass.
type ruleRun struct {
	cur     *occurrence
	fired   bool
	matched bool
	last    int64 // Unix nanoseconds
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
func (b *Builder) pass() {
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
	for i := range b.recs {
		f := &b.recs[i]
		hi := b.hostList[f.host]
		b.account(hi, f)
		t := f.start
		out := f.out
		blocks := -1
		for _, r := range hi.rules {
			rule := &rules[r]
			if !b.matches(r, hi, f) {
				continue
			}
			if out == flow.Refused || out == flow.Failed {
				if blocks < 0 {
					blocks = r
				}
				continue
			}
			if !b.evidence(r, f) {
				continue
			}
			run := &runs[r]
			if run.cur != nil && sub(t, run.cur.start) <= time.Duration(rule.Window) {
				b.gather(run.cur, hi, f)
				run.last = t
				continue
			}
			if run.cur != nil {
				done = append(done, run.cur)
				run.cur = nil
			}
			ok := !run.fired || (rule.RepeatAfter > 0 && sub(t, run.last) >= time.Duration(rule.RepeatAfter))
			if rule.After != "" {
				at, fired := b.firedAt[rule.After]
				ok = ok && fired && nanos(at) <= t
			}
			if rule.QuietBefore > 0 && run.matched && sub(t, run.last) < time.Duration(rule.QuietBefore) {
				ok = false
			}
			ok = ok && b.inContext(r, t)
			if ok {
				run.cur = b.open(rule, b.at(t, f.loc))
				b.gather(run.cur, hi, f)
				run.fired = true
				if _, seen := b.firedAt[rule.ID]; !seen {
					b.firedAt[rule.ID] = run.cur.m.Time
				}
			}
			run.matched, run.last = true, t
		}
		if out == flow.Refused || out == flow.Failed || !hi.ref.Known || f.sni != 0 {
			b.problems(hi, f, blocks, att, &attOrder)
		}
		if d := f.duration(); f.down >= b.rules.Content.MinBytes && d > 0 {
			transfers = append(transfers, transfer{flow: i, hi: hi, rate: float64(f.down) / d.Seconds()})
			bd := &b.bands[hi.band].Band
			bd.Transfers++
			bd.TransferBytes += f.down
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
func (b *Builder) fired(o *occurrence) {
	if o == nil {
		return
	}
	if at, ok := b.firedAt[o.m.ID]; !ok || o.m.Time.Before(at) {
		b.firedAt[o.m.ID] = o.m.Time
	}
}

func (b *Builder) open(r *Rule, t time.Time) *occurrence {
	return &occurrence{rule: r, start: nanos(t), hostSet: map[string]bool{},
		m: Milestone{ID: r.ID, Title: r.Title, Time: t, Offset: t.Sub(b.tl.T0), Likely: r.Likely}}
}

// gather adds a flow to a milestone.
func (b *Builder) gather(o *occurrence, hi *hostInfo, f *rec) {
	o.m.Flows++
	if len(o.m.FlowIDs) < b.maxIDs {
		o.m.FlowIDs = append(o.m.FlowIDs, f.id)
	}
	plain := f.flags&flagPlain != 0
	url := b.strs[f.url]
	if !o.hostSet[hi.ref.Host] && len(o.m.Hosts) < 8 {
		o.hostSet[hi.ref.Host] = true
		ref := hi.ref
		ref.PlainHTTP = plain
		if plain && url != "" {
			ref.URL = url
		}
		o.m.Hosts = append(o.m.Hosts, ref)
	}
	if o.m.Region == "" && hi.ref.Region != "" {
		o.m.Region = hi.ref.Region
	}
	// A URL is visible on plain HTTP, and on HTTPS that was intercepted
	// (proxy --intercept) or captured by a browser (HAR): its file names
	// what was downloaded.
	if o.file == "" && url != "" && strings.Contains(url, "://") {
		o.file = fileName(url)
	}
}

// finish fills the placeholders of a milestone's sentence.
func (b *Builder) finish(o *occurrence) Milestone {
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
func (b *Builder) firstFlow(r *Rule) *occurrence {
	f0 := &b.recs[0]
	o := b.open(r, b.at(f0.start, f0.loc))
	for i := range b.recs {
		f := &b.recs[i]
		if sub(f.start, o.start) > time.Duration(r.Window) {
			break
		}
		b.gather(o, b.hostList[f.host], f)
	}
	return o
}

// lastFlow is the session's last flow.
func (b *Builder) lastFlow(r *Rule) *occurrence {
	f := &b.recs[len(b.recs)-1]
	o := b.open(r, b.at(f.start, f.loc))
	b.gather(o, b.hostList[f.host], f)
	return o
}

// proxyConfig is the device fetching the proxy's PAC file: one line at the
// first fetch, naming the file served, with no host (the proxy is not a
// service the device talks to).
func (b *Builder) proxyConfig(r *Rule) *occurrence {
	if len(b.pac) == 0 {
		return nil
	}
	o := b.open(r, b.pac[0].start)
	for _, f := range b.pac {
		o.m.Flows++
		if len(o.m.FlowIDs) < b.maxIDs {
			o.m.FlowIDs = append(o.m.FlowIDs, f.id)
		}
		if o.file == "" {
			o.file = f.file
		}
	}
	return o
}

// reboots finds likely reboots: a silence of at least r.Silence with no new
// flow, then, within r.ProbeWithin, a flow the probe matchers select (the
// connectivity check Windows makes as the network comes up), and a new
// burst of at least r.BurstFlows flows within r.BurstWithin.
func (b *Builder) reboots(r *Rule) []*occurrence {
	idx := slices.IndexFunc(b.rules.Milestones, func(x Rule) bool { return x.ID == r.ID })
	var out []*occurrence
	for i := 1; i < len(b.recs); i++ {
		silence := sub(b.recs[i].start, b.recs[i-1].start)
		if silence < time.Duration(r.Silence) {
			continue
		}
		t := b.recs[i].start
		probe, burst := -1, 0
		for j := i; j < len(b.recs); j++ {
			d := sub(b.recs[j].start, t)
			if d > time.Duration(r.BurstWithin) && (probe >= 0 || d > time.Duration(r.ProbeWithin)) {
				break
			}
			if d <= time.Duration(r.BurstWithin) {
				burst++
			}
			if fj := &b.recs[j]; probe < 0 && d <= time.Duration(r.ProbeWithin) && b.matches(idx, b.hostList[fj.host], fj) && b.evidence(idx, fj) {
				probe = j
			}
		}
		if probe < 0 || burst < r.BurstFlows || !b.inContext(idx, t) {
			continue
		}
		o := b.open(r, b.at(t, b.recs[i].loc))
		o.m.Likely = true
		pf := &b.recs[probe]
		phi := b.hostList[pf.host]
		o.m.Why = fmt.Sprintf("no new connection for %s, then the connectivity check (%s) %s and a burst of %s within %s",
			humanDuration(silence), phi.ref.Host, afterText(sub(pf.start, t)), count(int64(burst), "flow"), humanDuration(time.Duration(r.BurstWithin)))
		b.gather(o, phi, pf)
		o.m.Flows = burst
		out = append(out, o)
		rep := strings.NewReplacer("{silence}", humanDuration(silence), "{probe}", phi.ref.Host, "{burst}", strconv.Itoa(burst))
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
func (b *Builder) account(hi *hostInfo, f *rec) {
	bd := b.bands[hi.band]
	if bd.Flows == 0 {
		bd.firstNs, bd.firstLoc = f.start, f.loc
	}
	bd.Flows++
	bd.BytesUp += f.up
	bd.BytesDown += f.down
	hi.flows++
	hi.bytes += f.up + f.down
	end := lastMoment(f)
	if bd.Flows == 1 || end > bd.lastNs {
		bd.lastNs, bd.lastLoc = end, f.loc
	}
	switch {
	case !bd.open:
		bd.curStart, bd.curEnd, bd.open = f.start, end, true
	case sub(f.start, bd.curEnd) > bd.spanGap:
		bd.Activity = append(bd.Activity, Span{b.off(bd.curStart), b.off(bd.curEnd)})
		bd.curStart, bd.curEnd = f.start, end
	case end > bd.curEnd:
		bd.curEnd = end
	}
}

// finishBands closes the bands' spans and ranks their hosts.
func (b *Builder) finishBands() {
	for _, bd := range b.bands {
		if bd.open {
			bd.Activity = append(bd.Activity, Span{b.off(bd.curStart), b.off(bd.curEnd)})
		}
		if bd.Flows > 0 {
			bd.First, bd.Last = b.at(bd.firstNs, bd.firstLoc), b.at(bd.lastNs, bd.lastLoc)
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
func (b *Builder) problems(hi *hostInfo, f *rec, blocks int, att map[attKey]*Attention, order *[]*Attention) {
	host := hi.ref.Host
	start := b.at(f.start, f.loc)
	note := func(k attKey) *Attention {
		a := att[k]
		if a == nil {
			a = &Attention{Kind: k.kind, Host: hi.ref, Detail: k.detail, First: start, Offset: start.Sub(b.tl.T0)}
			att[k] = a
			*order = append(*order, a)
		}
		a.Flows++
		a.Bytes += f.up + f.down
		a.Last, a.LastOffset = start, start.Sub(b.tl.T0)
		if len(a.FlowIDs) < b.maxIDs {
			a.FlowIDs = append(a.FlowIDs, f.id)
		}
		return a
	}
	if out, why := f.out, b.strs[f.why]; out == flow.Refused || out == flow.Failed {
		kind := AttentionFailed
		if out == flow.Refused {
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
	if f.sni != 0 {
		note(attKey{AttentionSNIMismatch, host, b.strs[f.sni]})
	}
}

// slow flags content transfers far below the session's best throughput.
func (b *Builder) slow(ts []transfer, att map[attKey]*Attention, order *[]*Attention) {
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
		f := &b.recs[t.flow]
		start := b.at(f.start, f.loc)
		k := attKey{AttentionSlow, t.hi.ref.Host, ""}
		a := att[k]
		if a == nil {
			a = &Attention{Kind: AttentionSlow, Host: t.hi.ref, First: start, Offset: start.Sub(b.tl.T0)}
			att[k] = a
			*order = append(*order, a)
			slowest[a] = t.rate
		}
		a.Flows++
		a.Bytes += f.up + f.down
		a.Last, a.LastOffset = start, start.Sub(b.tl.T0)
		slowest[a] = min(slowest[a], t.rate)
		if len(a.FlowIDs) < b.maxIDs {
			a.FlowIDs = append(a.FlowIDs, f.id)
		}
	}
	for a, r := range slowest {
		a.Detail = fmt.Sprintf("%d transfer(s) below a %gth of the session's best; slowest %s, best %s",
			a.Flows, b.rules.Content.SlowFactor, FormatRate(r), FormatRate(best))
	}
}

// finishAttention sorts attention by kind and names the phases failures
// would hurt.
func (b *Builder) finishAttention() {
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
