package main

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"time"
)

func median(v []float64) float64 {
	if len(v) == 0 {
		return math.NaN()
	}
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// med is the median of a metric for a route, NaN when not measured.
func (b *bench) med(metric, route string) float64 { return median(b.m[metric][route]) }

// perTunnel returns RSS KiB and descriptors per idle tunnel.
func (ir idleResult) perTunnel() (rss, fds float64) {
	if ir.opened == 0 {
		return math.NaN(), math.NaN()
	}
	n := float64(ir.opened)
	return float64(ir.after.rssKiB-ir.before.rssKiB) / n, float64(ir.after.fds-ir.before.fds) / n
}

func fmtNum(v float64, prec int) string {
	if math.IsNaN(v) {
		return "-"
	}
	s := fmt.Sprintf("%.*f", prec, v)
	if prec == 0 && math.Abs(v) >= 1000 {
		// thousands separators for readability: 47,000 not 47000
		neg := strings.HasPrefix(s, "-")
		s = strings.TrimPrefix(s, "-")
		var out []byte
		for i := range len(s) {
			if i > 0 && (len(s)-i)%3 == 0 {
				out = append(out, ',')
			}
			out = append(out, s[i])
		}
		if neg {
			return "-" + string(out)
		}
		return string(out)
	}
	return s
}

var columnLabel = map[string]string{"pilotwire-norec": "pw-norec", "pilotwire-transport": "pw-transp"}

func (b *bench) report(started time.Time) string {
	var w strings.Builder
	now := time.Now().UTC()
	fmt.Fprintf(&w, "pilotwire proxy benchmark — %s (took %s)\n", now.Format("2006-01-02 15:04 MST"), time.Since(started).Round(time.Second))
	fmt.Fprintf(&w, "host: %s; load average %s at start, %s at end (above ~0.5 means other work competed for the CPUs)\n", hostLine(), b.load[0], b.load[1])
	if b.cfg.version != "" {
		fmt.Fprintf(&w, "measured: %s\n", b.cfg.version)
	}
	fmt.Fprintf(&w, "loopback only; each figure is the median of %d runs (downloads: %d) interleaved across proxies; MB = 10^6 bytes, µs = microseconds\n", b.cfg.reps, b.cfg.dlReps)
	fmt.Fprintf(&w, "pilotwire = recording on; pw-norec = same binary, --record=false")
	if _, gone := b.missing["pilotwire-transport"]; !gone {
		fmt.Fprintf(&w, "; pw-transp = recording on, plain HTTP through net/http's Transport only (no direct path)")
	}
	w.WriteString("\n\n")

	var cols []string
	for _, name := range routeOrder {
		if _, gone := b.missing[name]; !gone {
			cols = append(cols, name)
		}
	}
	const labelW = 34
	fmt.Fprintf(&w, "%-*s", labelW, "")
	for _, c := range cols {
		l := c
		if cl, ok := columnLabel[c]; ok {
			l = cl
		}
		fmt.Fprintf(&w, "%11s", l)
	}
	w.WriteString("\n")
	row := func(label string, val func(route string) string) {
		fmt.Fprintf(&w, "%-*s", labelW, label)
		for _, c := range cols {
			fmt.Fprintf(&w, "%11s", val(c))
		}
		w.WriteString("\n")
	}
	metricRow := func(label, metric string, prec int) {
		if b.m[metric] == nil {
			return
		}
		row(label, func(r string) string { return fmtNum(b.med(metric, r), prec) })
	}
	sizeLabel := fmt.Sprintf("%g GiB", float64(b.cfg.size)/(1<<30))
	best := func(label, metric string) {
		if b.m[metric] == nil || b.cfg.dlReps < 2 {
			return
		}
		row(label, func(r string) string {
			v := b.m[metric][r]
			if len(v) == 0 {
				return "-"
			}
			return fmtNum(slices.Max(v), 0)
		})
	}
	metricRow("CONNECT "+sizeLabel+" (TLS), MB/s", "connect", 0)
	best(fmt.Sprintf("  best of %d, MB/s", b.cfg.dlReps), "connect")
	metricRow("  proxy CPU, s per GiB", "connect-cpu", 2)
	metricRow("plain HTTP "+sizeLabel+", MB/s", "plain", 0)
	best(fmt.Sprintf("  best of %d, MB/s", b.cfg.dlReps), "plain")
	metricRow("  proxy CPU, s per GiB", "plain-cpu", 2)
	metricRow(fmt.Sprintf("%d clients small GET, req/s", b.cfg.clients), "load-rps", 0)
	metricRow(fmt.Sprintf("  %d clients, p50 µs", b.cfg.clients), "load-p50", 0)
	metricRow(fmt.Sprintf("  %d clients, p99 µs", b.cfg.clients), "load-p99", 0)
	metricRow("  proxy CPU, µs per request", "load-cpu", 1)
	metricRow("1 client small GET, req/s", "lat-rps", 0)
	metricRow("  1 client, p50 µs", "lat-p50", 0)
	metricRow("  1 client, p99 µs", "lat-p99", 0)
	if len(b.idle) > 0 {
		idle := func(f func(idleResult) string) func(string) string {
			return func(r string) string {
				ir, ok := b.idle[r]
				if !ok {
					return "-"
				}
				return f(ir)
			}
		}
		row("idle CONNECT tunnels held", idle(func(ir idleResult) string { return fmt.Sprint(ir.opened) }))
		row("  RSS per tunnel, KiB", idle(func(ir idleResult) string { r, _ := ir.perTunnel(); return fmtNum(r, 1) }))
		row("  fds per tunnel", idle(func(ir idleResult) string { _, f := ir.perTunnel(); return fmtNum(f, 2) }))
		row("  RSS before, MiB", idle(func(ir idleResult) string { return fmtNum(float64(ir.before.rssKiB)/1024, 1) }))
		row("  RSS with tunnels, MiB", idle(func(ir idleResult) string { return fmtNum(float64(ir.after.rssKiB)/1024, 1) }))
		row("  fds with tunnels", idle(func(ir idleResult) string { return fmt.Sprint(ir.after.fds) }))
	}

	w.WriteString("\ntargets (the proxy's speed requirements)\n")
	type target struct {
		what, ratio string
		v           float64
		op          string
		limit       float64
		extra       string
	}
	ratio := func(metric, a, c string) float64 { return b.med(metric, a) / b.med(metric, c) }
	pwRSS, pwFDs := math.NaN(), math.NaN()
	idleExtra := ""
	if ir, ok := b.idle["pilotwire"]; ok {
		pwRSS, pwFDs = ir.perTunnel()
		if ir.opened < b.cfg.tunnels {
			idleExtra = fmt.Sprintf(" (only %d of %d tunnels opened)", ir.opened, b.cfg.tunnels)
			pwRSS, pwFDs = math.Inf(1), math.Inf(1)
		}
	}
	targets := []target{
		{what: "CONNECT download", ratio: "pilotwire / direct", v: ratio("connect", "pilotwire", "direct"), op: "≥", limit: 0.9},
		{what: "CONNECT download", ratio: "pilotwire / squid", v: ratio("connect", "pilotwire", "squid"), op: "≥", limit: 1.5},
		{what: "plain HTTP download", ratio: "pilotwire / squid", v: ratio("plain", "pilotwire", "squid"), op: "≥", limit: 3},
		{what: "small GETs, req/s", ratio: "pilotwire / squid", v: ratio("load-rps", "pilotwire", "squid"), op: "≥", limit: 1.5},
		{what: "small GETs, p99", ratio: "pilotwire / squid", v: ratio("load-p99", "pilotwire", "squid"), op: "≤", limit: 1},
		{what: "1 client, p50", ratio: "pilotwire − direct, µs", v: b.med("lat-p50", "pilotwire") - b.med("lat-p50", "direct"), op: "≤", limit: 150},
		{what: "idle tunnel", ratio: "pilotwire RSS KiB/tunnel", v: pwRSS, op: "≤", limit: 16, extra: idleExtra},
		{what: "idle tunnel", ratio: "pilotwire fds/tunnel", v: pwFDs, op: "≤", limit: 2, extra: idleExtra},
		{what: "capture cost, CONNECT", ratio: "record on / off", v: ratio("connect", "pilotwire", "pilotwire-norec"), op: "≥", limit: 0.95},
		{what: "capture cost, plain HTTP", ratio: "record on / off", v: ratio("plain", "pilotwire", "pilotwire-norec"), op: "≥", limit: 0.95},
		{what: "capture cost, small GETs", ratio: "record on / off req/s", v: ratio("load-rps", "pilotwire", "pilotwire-norec"), op: "≥", limit: 0.95},
	}
	for _, t := range targets {
		verdict := "n/a (not measured)"
		switch {
		case math.IsNaN(t.v):
		case math.IsInf(t.v, 1):
			verdict = "NOT MET"
		case (t.op == "≥" && t.v >= t.limit) || (t.op == "≤" && t.v <= t.limit):
			verdict = "met"
		default:
			verdict = "NOT MET"
		}
		v := fmtNum(t.v, 2)
		if math.IsInf(t.v, 1) {
			v = "-"
		}
		fmt.Fprintf(&w, "  %-26s %-26s %8s  %s %-6g %s%s\n", t.what, t.ratio, v, t.op, t.limit, verdict, t.extra)
	}

	w.WriteString("\nother ratios (medians)\n")
	for _, pair := range [][2]string{{"pilotwire", "direct"}, {"pilotwire", "squid"}, {"pilotwire", "tinyproxy"}, {"squid", "direct"}, {"pilotwire", "pilotwire-norec"}, {"pilotwire", "pilotwire-transport"}} {
		var parts []string
		for _, m := range []struct{ metric, label string }{{"connect", "CONNECT"}, {"plain", "plain"}, {"load-rps", "req/s"}, {"load-p99", "p99"}, {"lat-p50", "1-client p50"}} {
			if v := ratio(m.metric, pair[0], pair[1]); !math.IsNaN(v) {
				parts = append(parts, fmt.Sprintf("%s %.2f", m.label, v))
			}
		}
		if len(parts) > 0 {
			fmt.Fprintf(&w, "  %-32s %s\n", pair[0]+" / "+pair[1]+":", strings.Join(parts, ", "))
		}
	}

	w.WriteString("\nproxy CPU ratios (medians; less noisy than throughput on a busy machine; below 1 = cheaper)\n")
	for _, pair := range [][2]string{{"pilotwire", "squid"}, {"pilotwire", "tinyproxy"}, {"pilotwire", "pilotwire-norec"}, {"pilotwire", "pilotwire-transport"}} {
		var parts []string
		for _, m := range []struct{ metric, label string }{{"connect-cpu", "CONNECT s/GiB"}, {"plain-cpu", "plain s/GiB"}, {"load-cpu", "µs/request (64 clients)"}} {
			if v := ratio(m.metric, pair[0], pair[1]); !math.IsNaN(v) && !math.IsInf(v, 0) {
				parts = append(parts, fmt.Sprintf("%s %.2f", m.label, v))
			}
		}
		if len(parts) > 0 {
			fmt.Fprintf(&w, "  %-32s %s\n", pair[0]+" / "+pair[1]+":", strings.Join(parts, ", "))
		}
	}

	w.WriteString("\nall runs (in order)\n")
	for _, metric := range []string{"connect", "plain", "load-rps", "load-p99", "lat-p50"} {
		for _, c := range cols {
			if v := b.m[metric][c]; len(v) > 0 {
				var s []string
				for _, x := range v {
					s = append(s, fmtNum(x, 0))
				}
				fmt.Fprintf(&w, "  %-9s %-19s %s\n", metric, c, strings.Join(s, "  "))
			}
		}
	}
	if len(b.missing) > 0 || len(b.notes) > 0 {
		w.WriteString("\nnotes\n")
		for _, name := range routeOrder {
			if why, ok := b.missing[name]; ok {
				fmt.Fprintf(&w, "  %s not measured: %s\n", name, why)
			}
		}
		for _, n := range b.notes {
			fmt.Fprintf(&w, "  %s\n", n)
		}
	}
	if b.profile != "" {
		w.WriteString("\npilotwire CPU profile (recording on; separate pprof-enabled build of the same source)\n")
		w.WriteString(b.profile)
	}
	return w.String()
}
