package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/pilotwire/pilotwire/internal/flow"
	"github.com/pilotwire/pilotwire/internal/report"
	"github.com/pilotwire/pilotwire/internal/session"
	"github.com/pilotwire/pilotwire/internal/timeline"
)

const flowsExamples = `  pilotwire flows                              # every flow, oldest first
  pilotwire flows --proxy site-a --newest --limit 20   # the newest flows of one site of a shared store
  pilotwire flows --client 10.0.0.23 --since 1h # one device, the last hour
  pilotwire flows --host '*.manage.microsoft.com' --json | jq .
  pilotwire flows --host 'login.*' --host '*.msftauth.net'   # either pattern
  pilotwire flows --problems --text autopilot    # refused or failed flows whose host or URL says autopilot
  pilotwire flows --limit 20 --newest
  pilotwire flows customer.har --host '*.microsoft.com' --strict   # straight from a capture file
  pilotwire flows --host ztd.dds.microsoft.com --bodies            # with the bodies proxy --intercept --bodies kept
`

func runFlows(ctx context.Context, g *globals, args []string) error {
	fs := newFlagSet(g, "flows", "flows [flags] [CAPTURE-FILE]", flowsExamples)
	var (
		client, text, source, since, until     string
		proxyName                              string
		hosts                                  hostPatterns
		limit                                  int
		asJSON, newest, wide, strict, problems bool
		bodies                                 bool
	)
	fs.StringVar(&client, "client", "", "only flows of this client `ADDR` or device label")
	fs.StringVar(&proxyName, "proxy", "", "only flows recorded by the pilotwire proxy of this `NAME` (proxy --name)")
	fs.Var(&hosts, "host", "only flows to hosts matching this `PATTERN` (repeatable: any of them), e.g. '*.microsoft.com':\n"+
		"labels match one by one; a '*' label is one or more labels (zero or more when last), see README")
	fs.StringVar(&text, "text", "", "only flows whose host or URL holds `TEXT` (letters in either case)")
	fs.BoolVar(&problems, "problems", false, "only flows that were refused or failed")
	fs.StringVar(&source, "source", "", "only flows from this source: proxy, har, squid, pcap, saz, netlog")
	fs.StringVar(&since, "since", "", "only flows that started at or after `TIME` (RFC 3339, or a duration ago like 2h)")
	fs.StringVar(&until, "until", "", "only flows that started before `TIME` (RFC 3339, or a duration ago)")
	fs.IntVar(&limit, "limit", 0, "show at most `N` flows (0: all)")
	fs.BoolVar(&newest, "newest", false, "newest first")
	fs.BoolVar(&asJSON, "json", false, "print JSON lines instead of a table")
	fs.BoolVar(&wide, "wide", false, "print whole URLs in the table (they are cut to 72 characters otherwise)")
	fs.BoolVar(&bodies, "bodies", false, "also print the request and response bodies kept (proxy --intercept --bodies): text as it is,\n"+
		"binary as a hex dump, gzip decoded; with --json, request_body and response_body")
	addStrictFlag(fs, &strict)
	pos, err := parseInterleaved(g, fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 1 {
		return usagef("flows: one capture file at most, got %q", pos)
	}
	f := flow.Filter{Client: client, Proxy: proxyName, Hosts: hosts, Text: text, Problems: problems, Source: flow.Source(source), Limit: limit, Newest: newest}
	if f.Since, err = parseTimeFlag("since", since, time.Now()); err != nil {
		return usagef("flows: %v", err)
	}
	if f.Until, err = parseTimeFlag("until", until, time.Now()); err != nil {
		return usagef("flows: %v", err)
	}
	if bodies {
		f.Fields = flow.FieldsAll
	}
	// A store may fill Bodies unasked; they are shown only with --bodies.
	shown := func(fl *flow.Flow) *flow.Flow {
		if !bodies {
			fl.Bodies = nil
		}
		return fl
	}
	src, err := openSource(ctx, g, first(pos), strict)
	if err != nil {
		return err
	}
	defer src.Close()

	n := 0
	if asJSON {
		enc := json.NewEncoder(g.stdout)
		err = src.Each(ctx, f, func(fl *flow.Flow) error { n++; return enc.Encode(report.FlowJSON(shown(fl))) })
		if err != nil {
			return err
		}
		return noFlows(src, n)
	}
	tw := tabwriter.NewWriter(g.stdout, 0, 0, 2, ' ', 0)
	err = src.Each(ctx, f, func(fl *flow.Flow) error {
		if n == 0 {
			// No header over an empty result: stdout stays empty.
			fmt.Fprintln(tw, "ID\tSTART\tCLIENT\tKIND\tMETHOD\tTARGET\tSTATUS\tUP\tDOWN\tDURATION\tNOTE")
		}
		n++
		dur := "open"
		if !fl.Open() {
			dur = fl.Duration().Round(time.Millisecond).String()
		}
		client := fl.Client
		if fl.Device != "" {
			client = fl.Device
		}
		status := "-"
		if fl.Status != 0 {
			status = fmt.Sprint(fl.Status)
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", fl.ID, fl.Start.Format("2006-01-02 15:04:05.000"),
			client, fl.Kind, dash(fl.Method), shorten(target(*fl), wide), status, humanBytes(fl.BytesUp), humanBytes(fl.BytesDown), dur, flowNote(*fl))
		if shown(fl).Bodies != nil {
			// The bodies go under their flow's row: the rows above
			// are aligned and written first.
			if err := tw.Flush(); err != nil {
				return err
			}
			return report.WriteBodies(g.stdout, fl, "    ")
		}
		return nil
	})
	if err != nil {
		return err
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	return noFlows(src, n)
}

// noFlows is the empty result of flows: success, said on stderr.
func noFlows(src session.Source, n int) error {
	if n > 0 {
		return nil
	}
	return emptyf("no flows in %s match", src.Name())
}

func target(f flow.Flow) string {
	if f.URL != "" && f.Kind == flow.KindHTTP {
		return f.URL
	}
	if f.Port != 0 {
		return fmt.Sprintf("%s:%d", f.Host, f.Port)
	}
	return f.Host
}

// shorten cuts a long URL in the middle so the table stays readable; the
// host and the file name at the end are what a reader looks for.
func shorten(s string, wide bool) string {
	const max = 72
	if wide || len(s) <= max {
		return s
	}
	return s[:max-25] + "..." + s[len(s)-22:]
}

func flowNote(f flow.Flow) string {
	var parts []string
	if f.Decision == flow.DecisionDenied {
		parts = append(parts, "DENIED: "+f.Reason)
	} else if f.Reason != "" {
		parts = append(parts, f.Reason)
	}
	if f.SNI != "" && !strings.EqualFold(f.SNI, f.Host) {
		parts = append(parts, "SNI "+f.SNI)
	}
	if f.Error != "" {
		parts = append(parts, "error: "+f.Error)
	}
	if f.Note != "" {
		parts = append(parts, f.Note)
	}
	return strings.Join(parts, "; ")
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// humanBytes is the one byte formatter's text without its space, for
// narrow table columns: 512B, 1.5KiB, 3.2MiB.
func humanBytes(n int64) string { return strings.Replace(timeline.FormatBytes(n), " ", "", 1) }

// parseTimeFlag reads an absolute time (RFC 3339, or "2006-01-02 15:04:05"
// in local time) or a duration meaning that long before now.
func parseTimeFlag(name, v string, now time.Time) (time.Time, error) {
	if v == "" {
		return time.Time{}, nil
	}
	if d, err := time.ParseDuration(v); err == nil {
		return now.Add(-d), nil
	}
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02 15:04:05", "2006-01-02T15:04:05", "2006-01-02"} {
		if t, err := time.ParseInLocation(layout, v, time.Local); err == nil {
			return t, nil
		}
	}
	return time.Time{}, usagef("--%s %q: want a time like 2026-11-25T10:00:00Z or a duration like 90m", name, v)
}
