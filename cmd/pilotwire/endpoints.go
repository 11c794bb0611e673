package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/pilotwire/pilotwire/internal/catalog"
	"github.com/pilotwire/pilotwire/internal/flow"
	"github.com/pilotwire/pilotwire/internal/session"
	"github.com/pilotwire/pilotwire/internal/timeline"
)

const endpointsUsage = `Usage: pilotwire endpoints [SUBCOMMAND] [flags]

The endpoint catalog: which service each host belongs to, what a device uses
it for during Autopilot, in which phase, and whether Microsoft lists it.

Subcommands:
  (none)      list catalog entries as a table (--phase, --service, --required filter)
  lookup      say what hosts are: service, phase, purpose, Intune region, or "unknown"
  export      write an allowlist: squid, pac, hosts, csv, json, markdown
  services    list the services with their display names and colours
  merge-ms    turn a saved answer of Microsoft's endpoint web service into a user catalog
              file with what the built-in catalog lacks
  observed    hosts captured flows went to, with their catalog entry; which ones no
              Microsoft list names
  learned     hosts proxy --intercept tunnels untouched because a client refused its
              certificate there

Run "pilotwire endpoints SUBCOMMAND --help" for its flags and examples.
`

const endpointsExamples = `  pilotwire endpoints                                   # every entry
  pilotwire endpoints --phase mdm-enrollment --required # what enrollment needs
  pilotwire endpoints --service intune-checkin,intune-ime
  pilotwire endpoints --required=unknown                # hosts no Microsoft list names
  pilotwire --catalog mine.yaml endpoints               # with your own entries
`

func runEndpoints(ctx context.Context, g *globals, args []string) error {
	// Global flags may come between "endpoints" and its subcommand
	// ("endpoints --catalog mine.yaml lookup HOST"), as after any command.
	args, err := takeGlobals(g, args)
	if err != nil {
		return err
	}
	if len(args) > 0 {
		switch args[0] {
		case "lookup":
			return runEndpointsLookup(g, args[1:])
		case "export":
			return runEndpointsExport(g, args[1:])
		case "services":
			return runEndpointsServices(g, args[1:])
		case "merge-ms":
			return runEndpointsMergeMS(g, args[1:])
		case "observed":
			return runEndpointsObserved(ctx, g, args[1:])
		case "learned":
			return runEndpointsLearned(ctx, g, args[1:])
		case "help":
			fmt.Fprint(g.stdout, endpointsUsage)
			return nil
		}
		if !strings.HasPrefix(args[0], "-") {
			return usagef("endpoints: unknown subcommand %q (want lookup, export, services, merge-ms, observed or learned; see pilotwire endpoints --help)", args[0])
		}
	}
	fs := newFlagSet(g, "endpoints", "endpoints [flags]   (the list; subcommands above)", endpointsExamples)
	sel := addSelectionFlags(fs)
	inner := fs.Usage
	fs.Usage = func() { fmt.Fprint(fs.Output(), endpointsUsage+"\n"); inner() }
	if err := parseFlags(g, fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("endpoints: unexpected argument %q (subcommands come first: pilotwire endpoints lookup HOST)", fs.Arg(0))
	}
	cat, entries, err := selectEntries(g, sel)
	if err != nil {
		return err
	}
	if len(entries) == 0 {
		return emptyf("none of the %d catalog entries match", len(cat.Entries()))
	}
	tw := tabwriter.NewWriter(g.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "PATTERN\tSERVICE\tPHASE\tREQUIRED\tPURPOSE")
	for _, e := range entries {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", e.Pattern, e.Service, e.Phase, e.Required, e.Purpose)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(g.stderr, "%d of %d entries\n", len(entries), len(cat.Entries()))
	return nil
}

// selection holds the filter flags shared by the list and export.
type selection struct {
	phases, services listFlag
	required         requiredFlag
	noInspect        bool
}

func addSelectionFlags(fs *flag.FlagSet) *selection {
	s := &selection{}
	fs.Var(&s.phases, "phase", "only entries of this `PHASE` (repeat or comma-separate; e.g. mdm-enrollment)")
	fs.Var(&s.services, "service", "only entries of this service `ID` (repeat or comma-separate; see endpoints services)")
	fs.Var(&s.required, "required", "only entries Microsoft lists as required (--required=unknown, =no or =yes,unknown pick others)")
	fs.BoolVar(&s.noInspect, "no-inspect", false, "only entries whose TLS must never be inspected (a TLS-inspecting firewall's bypass list)")
	return s
}

func selectEntries(g *globals, s *selection) (*catalog.Catalog, []catalog.Entry, error) {
	cat, err := loadCatalog(g)
	if err != nil {
		return nil, nil, err
	}
	entries, err := cat.Select(catalog.Selection{Phases: s.phases, Services: s.services, Required: s.required, NoInspect: s.noInspect})
	if err != nil {
		return nil, nil, usagef("endpoints: %v", err)
	}
	return cat, entries, nil
}

// listFlag collects a flag that may be repeated and comma-separated.
type listFlag []string

func (l *listFlag) String() string { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error {
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			*l = append(*l, s)
		}
	}
	return nil
}

// requiredFlag is --required (meaning yes) or --required=VALUES.
type requiredFlag []catalog.Required

func (r *requiredFlag) IsBoolFlag() bool { return true }
func (r *requiredFlag) String() string {
	var s []string
	for _, v := range *r {
		s = append(s, string(v))
	}
	return strings.Join(s, ",")
}
func (r *requiredFlag) Set(v string) error {
	if v == "false" {
		*r = nil
		return nil
	}
	for _, s := range strings.Split(v, ",") {
		switch s = strings.ToLower(strings.TrimSpace(s)); s {
		case "true", "yes":
			*r = append(*r, catalog.RequiredYes)
		case "no", "unknown":
			*r = append(*r, catalog.Required(s))
		default:
			return fmt.Errorf("%q: want yes, no or unknown", s)
		}
	}
	return nil
}

const lookupExamples = `  pilotwire endpoints lookup fef.msua01.manage.microsoft.com ocsp.digicert.com evil.example
  pilotwire endpoints lookup https://ztd.dds.microsoft.com/ztd/v1/devices  # URLs work too
  pilotwire endpoints lookup --json login.microsoftonline.com:443
`

func runEndpointsLookup(g *globals, args []string) error {
	fs := newFlagSet(g, "endpoints lookup", "endpoints lookup [flags] HOST...", lookupExamples)
	var asJSON bool
	fs.BoolVar(&asJSON, "json", false, "print one JSON object a line instead of a table")
	hosts, err := parseInterleaved(g, fs, args)
	if err != nil {
		return err
	}
	if len(hosts) == 0 {
		return usagef("endpoints lookup: give one or more host names")
	}
	cat, err := loadCatalog(g)
	if err != nil {
		return err
	}
	var rows []catalog.HostJSON
	for _, h := range hosts {
		rows = append(rows, cat.LookupJSON(h, hostOf(h)))
	}
	if asJSON {
		enc := json.NewEncoder(g.stdout)
		for _, r := range rows {
			if err := enc.Encode(r); err != nil {
				return err
			}
		}
		return nil
	}
	tw := tabwriter.NewWriter(g.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "HOST\tSERVICE\tPHASE\tREQUIRED\tREGION\tPATTERN\tPURPOSE")
	for _, r := range rows {
		if !r.Known {
			fmt.Fprintf(tw, "%s\tunknown\t-\t-\t-\t-\tnot in the catalog\n", r.Host)
			continue
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.Host, r.Service, r.Phase, r.Required, dash(r.Region), r.Pattern, r.Purpose)
	}
	return tw.Flush()
}

// hostOf takes the host out of a URL; anything else is returned as given
// (Lookup copes with ports and trailing dots).
func hostOf(s string) string {
	if strings.Contains(s, "://") {
		if u, err := url.Parse(s); err == nil && u.Host != "" {
			return u.Host
		}
	}
	return s
}

const exportExamples = `  pilotwire endpoints export --format squid -o autopilot.acl
      # then in squid.conf:  acl autopilot dstdomain "/etc/squid/autopilot.acl"
  pilotwire endpoints export --format squid --required --phase mdm-enrollment,esp-device
  pilotwire endpoints export --format squid --no-inspect   # hosts a TLS-inspecting firewall must exempt
  pilotwire endpoints export --format pac --proxy 10.0.0.5:8080 -o autopilot.pac
      # Autopilot hosts go through pilotwire on 10.0.0.5:8080, everything else DIRECT
  pilotwire endpoints export --format pac --others "PROXY corp-proxy:3128"
      # Autopilot hosts go DIRECT (bypass), everything else to the corporate proxy
  pilotwire endpoints export --format csv > endpoints.csv
`

func runEndpointsExport(g *globals, args []string) error {
	fs := newFlagSet(g, "endpoints export", "endpoints export --format FORMAT [flags]", exportExamples)
	sel := addSelectionFlags(fs)
	var format, proxy, others, out string
	fs.StringVar(&format, "format", "hosts", "`FORMAT`: "+strings.Join(catalog.Formats(), ", "))
	fs.StringVar(&proxy, "proxy", "", "PAC only: send hosts the exported entries cover to this proxy `HOST:PORT`\n"+
		"(or a PAC result such as \"PROXY a:3128; DIRECT\"); default DIRECT")
	fs.StringVar(&others, "others", "DIRECT", "PAC only: where every other host goes: `ROUTE` = DIRECT, HOST:PORT, or a PAC result")
	fs.StringVar(&out, "o", "", "write to `FILE` instead of standard output")
	if err := parseFlags(g, fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("endpoints export: unexpected argument %q", fs.Arg(0))
	}
	if format == "md" {
		format = "markdown"
	}
	if !slices.Contains(catalog.Formats(), format) {
		return usagef("endpoints export: --format %q: want %s", format, strings.Join(catalog.Formats(), ", "))
	}
	opt, err := pacOptions(format, proxy, others)
	if err != nil {
		return err
	}
	cat, entries, err := selectEntries(g, sel)
	if err != nil {
		return err
	}
	opt.Title = "pilotwire endpoints export " + strings.Join(args, " ")
	if err := writeOutput(g, out, func(w io.Writer) error { return cat.Export(w, format, entries, opt) }); err != nil {
		return err
	}
	if len(entries) == 0 {
		// The allowlist is still written (a valid, empty one).
		return emptyf("none of the %d catalog entries match: the %s allowlist is empty", len(cat.Entries()), format)
	}
	return nil
}

// pacOptions turns --proxy and --others into PAC routes.
func pacOptions(format, proxy, others string) (catalog.ExportOptions, error) {
	var opt catalog.ExportOptions
	if format != "pac" {
		if proxy != "" || others != "DIRECT" {
			return opt, usagef("endpoints: --proxy and --others only apply to --format pac")
		}
		return opt, nil
	}
	route := func(flagName, v string) (string, error) {
		v = strings.TrimSpace(v)
		switch {
		case v == "":
			return "DIRECT", nil
		case catalog.ValidPACRoute(v):
			return v, nil
		case catalog.ValidPACRoute("PROXY " + v):
			return "PROXY " + v, nil
		}
		return "", usagef("endpoints: --%s %q: want HOST:PORT, DIRECT, or a PAC result like \"PROXY host:3128; DIRECT\"", flagName, v)
	}
	var err error
	if opt.Catalog, err = route("proxy", proxy); err != nil {
		return opt, err
	}
	if opt.Others, err = route("others", others); err != nil {
		return opt, err
	}
	if opt.Catalog == opt.Others {
		return opt, usagef("endpoints: catalog hosts and other hosts would both go %s; give --proxy HOST:PORT (catalog hosts to a proxy) or --others ROUTE (everything else elsewhere)", opt.Catalog)
	}
	return opt, nil
}

// writeOutput writes to stdout, or atomically to file.
func writeOutput(g *globals, file string, write func(io.Writer) error) error {
	if file == "" || file == "-" {
		return write(g.stdout)
	}
	return writeFileAtomic(file, write)
}

const servicesExamples = `  pilotwire endpoints services
  pilotwire endpoints services --json
`

func runEndpointsServices(g *globals, args []string) error {
	fs := newFlagSet(g, "endpoints services", "endpoints services [flags]", servicesExamples)
	var asJSON bool
	fs.BoolVar(&asJSON, "json", false, "print JSON instead of a table")
	if err := parseFlags(g, fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("endpoints services: unexpected argument %q", fs.Arg(0))
	}
	cat, err := loadCatalog(g)
	if err != nil {
		return err
	}
	services := cat.ServicesJSON()
	if asJSON {
		enc := json.NewEncoder(g.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(services)
	}
	tw := tabwriter.NewWriter(g.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "SERVICE\tNAME\tCOLOR\tENTRIES")
	for _, s := range services {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\n", s.ID, s.Name, s.Color, s.Entries)
	}
	return tw.Flush()
}

const learnedExamples = `  pilotwire endpoints learned
  pilotwire endpoints learned --json
`

func runEndpointsLearned(ctx context.Context, g *globals, args []string) error {
	fs := newFlagSet(g, "endpoints learned", "endpoints learned [flags]", learnedExamples)
	asJSON := fs.Bool("json", false, "print JSON")
	if err := parseFlags(g, fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("endpoints learned: unexpected argument %q", fs.Arg(0))
	}
	st, err := openStoreReadOnly(ctx, g)
	if err != nil {
		return err
	}
	defer st.Close()
	pts, ok := st.(flow.PassThroughStore)
	if !ok {
		return fmt.Errorf("endpoints learned: the store at %s keeps no pass-through list", g.storeName())
	}
	list, err := pts.PassThroughs(ctx)
	if err != nil {
		return fmt.Errorf("endpoints learned: %w", err)
	}
	if *asJSON {
		out := make([]flow.PassThrough, 0, len(list)) // learned in UTC
		for _, p := range list {
			p.Learned = p.Learned.UTC()
			out = append(out, p)
		}
		enc := json.NewEncoder(g.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(out)
	}
	if len(list) == 0 {
		return emptyf("endpoints learned: no host learned yet (proxy --intercept learns one when a client refuses its certificate)")
	}
	tw := tabwriter.NewWriter(g.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "HOST\tLEARNED\tCLIENT\tREASON")
	for _, p := range list {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", p.Host, p.Learned.UTC().Format("2006-01-02 15:04:05"), p.Client, p.Reason)
	}
	return tw.Flush()
}

const mergeMSExamples = `  curl -o endpoints.json 'https://endpoints.office.com/endpoints/WorldWide?ServiceAreas=MEM&clientrequestid=b10c5ed1-bad1-445f-b386-b919946339a7'
  pilotwire endpoints merge-ms endpoints.json -o ms-extra.yaml
  pilotwire --catalog ms-extra.yaml endpoints lookup some.new.host.microsoft.com
  pilotwire endpoints merge-ms --area MEM,Common,Exchange endpoints.json
`

func runEndpointsMergeMS(g *globals, args []string) error {
	fs := newFlagSet(g, "endpoints merge-ms", "endpoints merge-ms [flags] ENDPOINTS.json", mergeMSExamples)
	var areas listFlag
	var out string
	fs.Var(&areas, "area", "Microsoft service `AREA`s to take (repeat or comma-separate; default MEM,Common)")
	fs.StringVar(&out, "o", "", "write the user catalog to `FILE` instead of standard output")
	files, err := parseInterleaved(g, fs, args)
	if err != nil {
		return err
	}
	if len(files) != 1 {
		return usagef("endpoints merge-ms: give one saved endpoint web service answer (JSON), got %d files", len(files))
	}
	f, err := os.Open(files[0])
	if err != nil {
		return err
	}
	defer f.Close()
	sets, err := catalog.ReadMSEndpoints(f, files[0])
	if err != nil {
		return err
	}
	cat, err := loadCatalog(g)
	if err != nil {
		return err
	}
	var rep catalog.MergeReport
	err = writeOutput(g, out, func(w io.Writer) error {
		var err error
		rep, err = cat.MergeMS(w, sets, areas, "made by: pilotwire endpoints merge-ms "+strings.Join(args, " "))
		return err
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(g.stderr, "merge-ms: %d endpoint sets, %d URLs: %d already in the catalog, %d added, %d skipped, %d required flags differ\n",
		rep.Sets, rep.URLs, rep.Known, rep.Added, len(rep.Skipped), len(rep.Disagrees))
	return nil
}

const observedExamples = `  pilotwire endpoints observed                          # every host in the store
  pilotwire endpoints observed --session 3              # one device session (see pilotwire sessions)
  pilotwire endpoints observed --client 10.0.0.23 --since 2h --unlisted
  pilotwire endpoints observed --session 3 --format squid -o seen.acl   # allowlist of what the device used
  pilotwire endpoints observed customer.har             # straight from a capture file
`

func runEndpointsObserved(ctx context.Context, g *globals, args []string) error {
	fs := newFlagSet(g, "endpoints observed", "endpoints observed [flags] [CAPTURE-FILE]", observedExamples)
	var (
		number                            int
		client, since, until, format, out string
		proxy, others                     string
		unlisted, strict                  bool
		gap                               time.Duration
	)
	fs.IntVar(&number, "session", 0, "only the flows of session `N` (see pilotwire sessions)")
	fs.DurationVar(&gap, "gap", timeline.DefaultGap, "idle `TIME` that ends a session (with --session)")
	fs.StringVar(&client, "client", "", "only flows of this client `ADDR` or device label")
	fs.StringVar(&since, "since", "", "only flows that started at or after `TIME` (RFC 3339, or a duration ago like 2h)")
	fs.StringVar(&until, "until", "", "only flows that started before `TIME`")
	fs.BoolVar(&unlisted, "unlisted", false, "only hosts no Microsoft list names (not in the catalog, or required=unknown)")
	fs.StringVar(&format, "format", "table", "`FORMAT`: table, or an export format: "+strings.Join(catalog.Formats(), ", "))
	fs.StringVar(&proxy, "proxy", "", "PAC only: send the observed hosts to this proxy `HOST:PORT`")
	fs.StringVar(&others, "others", "DIRECT", "PAC only: where every other host goes (`ROUTE`)")
	fs.StringVar(&out, "o", "", "write to `FILE` instead of standard output")
	addStrictFlag(fs, &strict)
	pos, err := parseInterleaved(g, fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 1 {
		return usagef("endpoints observed: one capture file at most, got %q", pos)
	}
	if format == "md" {
		format = "markdown"
	}
	if format != "table" && !slices.Contains(catalog.Formats(), format) {
		return usagef("endpoints observed: --format %q: want table, %s", format, strings.Join(catalog.Formats(), ", "))
	}
	opt, err := pacOptions(format, proxy, others)
	if err != nil {
		return err
	}
	if number != 0 && (since != "" || until != "") {
		return usagef("endpoints observed: --session picks its own time range; leave out --since and --until")
	}
	filter := flow.Filter{Client: client}
	now := time.Now()
	if filter.Since, err = parseTimeFlag("since", since, now); err != nil {
		return err
	}
	if filter.Until, err = parseTimeFlag("until", until, now); err != nil {
		return err
	}
	cat, err := loadCatalog(g)
	if err != nil {
		return err
	}
	src, err := openSource(ctx, g, first(pos), strict)
	if err != nil {
		return err
	}
	defer src.Close()
	obs := catalog.NewObserver(cat)
	if number != 0 {
		s, err := session.Find(ctx, src, gap, number, session.Who{Client: client})
		if err != nil {
			return sessionError(err)
		}
		if err := session.Flows(ctx, src, s, 0, func(f *flow.Flow) { obs.Add(*f) }); err != nil {
			return err
		}
	} else {
		err := src.Each(ctx, filter, func(f *flow.Flow) error { obs.Add(*f); return nil })
		if err != nil {
			return fmt.Errorf("read flows from %s: %w", src.Name(), err)
		}
	}
	hosts := obs.Hosts()
	if unlisted {
		hosts = slices.DeleteFunc(hosts, func(o catalog.Observation) bool { return !o.Unlisted() })
	}
	if len(hosts) == 0 && format == "table" {
		return emptyf("no hosts in %s match", src.Name())
	}
	if format == "table" {
		err = writeOutput(g, out, func(w io.Writer) error { return observedTable(w, hosts) })
	} else {
		var entries []catalog.Entry
		for _, o := range hosts {
			entries = append(entries, o.Entry())
		}
		opt.Title = "pilotwire endpoints observed " + strings.Join(args, " ")
		err = writeOutput(g, out, func(w io.Writer) error { return cat.Export(w, format, entries, opt) })
	}
	if err != nil {
		return err
	}
	if len(hosts) == 0 {
		// The allowlist is still written (a valid, empty one).
		return emptyf("no hosts in %s match: the %s allowlist is empty", src.Name(), format)
	}
	unknown, unlistedN := 0, 0
	for _, o := range hosts {
		if !o.Known {
			unknown++
		}
		if o.Unlisted() {
			unlistedN++
		}
	}
	fmt.Fprintf(g.stderr, "%d hosts from %s: %d in no Microsoft list (%d not in the catalog at all)\n", len(hosts), src.Name(), unlistedN, unknown)
	return nil
}

// observedTable prints observed hosts, first seen first.
func observedTable(w io.Writer, hosts []catalog.Observation) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "FIRST SEEN\tHOST\tFLOWS\tBYTES\tSERVICE\tPHASE\tREQUIRED\tREGION\tNOTE")
	for _, o := range hosts {
		svc, phase, req, note := "unknown", "-", "-", "not in the catalog"
		if o.Known {
			e := o.Match.Entry
			svc, phase, req, note = e.Service, e.Phase, string(e.Required), ""
			if o.Unlisted() {
				note = "in no Microsoft list"
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%s\t%s\t%s\t%s\n", o.First.Format("2006-01-02 15:04:05"), o.Host, o.Flows,
			humanBytes(o.Bytes), svc, phase, req, dash(o.Match.Region), note)
	}
	return tw.Flush()
}
