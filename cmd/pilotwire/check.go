package main

import (
	"bytes"
	"context"
	"fmt"
	"net/url"
	"os"
	"slices"
	"strings"
	"time"

	"golang.org/x/term"

	"github.com/pilotwire/pilotwire/internal/catalog"
	"github.com/pilotwire/pilotwire/internal/check"
	"github.com/pilotwire/pilotwire/internal/flow"
	"github.com/pilotwire/pilotwire/internal/session"
	"github.com/pilotwire/pilotwire/internal/timeline"
)

const checkExamples = `  pilotwire check                                   # from this machine, direct
  pilotwire check --proxy http://proxy.corp:8080    # through the corporate proxy, as a device would
  pilotwire check --proxy http://proxy.corp:8080 --proxy-auth-file cred.txt --format json
  pilotwire check --from-session 4                  # also the hosts a captured device used
  pilotwire check --from-file customer.har          # the hosts of a capture file
  pilotwire check --phase mdm-enrollment --format markdown   # for the network team's ticket
  pilotwire check --cloud usgov                     # a GCC High or DoD tenant's hosts

Exit status: 0 ready, 1 not ready (some host fails), 2 a mistake in the command line or set-up.
`

// checkNetwork, when set (by tests), adjusts the check's options: it
// gives the stand-in internet's resolver, dialer and CA.
var checkNetwork func(*check.Options)

// notReady ends a check that found the network not ready: exit status 1,
// the report already on stdout.
type notReady struct{ headline string }

func (e notReady) Error() string { return e.headline }

func runCheck(ctx context.Context, g *globals, args []string) error {
	fs := newFlagSet(g, "check", "check [flags]", checkExamples)
	var (
		proxyURL, authFile, format, fromFile, client, cloud string
		phases, services                                    multiFlag
		fromSession, concurrency                            int
		timeout, gap                                        time.Duration
	)
	fs.StringVar(&proxyURL, "proxy", "", "check through the HTTP proxy at `URL` (http://host:port), as a device would")
	fs.StringVar(&authFile, "proxy-auth-file", "", "proxy credentials from `FILE` (one line USER:PASS), used only for hosts a signed-in user reaches")
	fs.StringVar(&format, "format", "table", "output `FORMAT`: "+strings.Join(check.Formats, ", "))
	fs.Var(&phases, "phase", "only hosts of this catalog `PHASE` (repeatable)")
	fs.StringVar(&cloud, "cloud", "worldwide", "the Microsoft `CLOUD` whose hosts to check: "+strings.Join(check.Clouds, ", "))
	fs.Var(&services, "service", "only hosts of this catalog `SERVICE` (repeatable)")
	fs.IntVar(&fromSession, "from-session", 0, "also check the hosts of stored session `N`, with its Intune region in the catalog's examples")
	fs.StringVar(&fromFile, "from-file", "", "also check the hosts of the newest session in the capture `FILE`")
	fs.StringVar(&client, "client", "", "with --from-session/--from-file: the newest session of this client `ADDR` or device label")
	fs.DurationVar(&timeout, "timeout", check.DefaultStepTimeout, "limit of each step (DNS, TCP, CONNECT, TLS, HTTP)")
	fs.IntVar(&concurrency, "concurrency", check.DefaultConcurrency, "hosts checked at once")
	fs.DurationVar(&gap, "gap", timeline.DefaultGap, "idle `TIME` that ends a session")
	if err := parseFlags(g, fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("check: unexpected argument %q", fs.Arg(0))
	}
	if !slices.Contains(check.Formats, format) && format != "md" {
		return usagef("check: --format %q: want %s", format, strings.Join(check.Formats, ", "))
	}
	if timeout <= 0 || concurrency < 1 {
		return usagef("check: --timeout and --concurrency must be positive")
	}
	if fromSession != 0 && fromFile != "" {
		return usagef("check: give --from-session or --from-file, not both")
	}
	o := check.Options{StepTimeout: timeout, Concurrency: concurrency}
	if proxyURL != "" {
		u, err := url.Parse(proxyURL)
		if err != nil || u.Scheme != "http" || u.Host == "" || u.User != nil || (u.Path != "" && u.Path != "/") {
			return usagef("check: --proxy %q: want http://host:port (credentials go in --proxy-auth-file, never on the command line)", proxyURL)
		}
		o.Proxy = u
	}
	if authFile != "" {
		if o.Proxy == nil {
			return usagef("check: --proxy-auth-file needs --proxy")
		}
		data, err := os.ReadFile(authFile)
		if err != nil {
			return usagef("check: --proxy-auth-file: %v", err)
		}
		line, _, _ := strings.Cut(strings.TrimPrefix(string(data), "\ufeff"), "\n")
		user, pass, ok := strings.Cut(strings.TrimRight(line, "\r"), ":")
		if !ok || user == "" {
			return usagef("check: --proxy-auth-file %s: want one line USER:PASS", authFile)
		}
		o.ProxyUser, o.ProxyPass = user, pass
	}
	cat, err := loadCatalog(g)
	if err != nil {
		return usagef("check: %v", err)
	}
	sel := check.Selection{Phases: phases, Services: services, Cloud: cloud}
	if fromSession != 0 || fromFile != "" {
		src, err := openSource(ctx, g, fromFile, false)
		if err != nil {
			return usagef("check: %v", err)
		}
		s, err := session.Find(ctx, src, gap, fromSession, session.Who{Client: client})
		if err != nil {
			src.Close()
			return usagef("check: %v", sessionError(err))
		}
		sel.Session, sel.Region, err = sessionTargets(ctx, src, s, cat)
		src.Close()
		if err != nil {
			return err
		}
		fmt.Fprintf(g.stderr, "pilotwire check: session %d: %d hosts", s.Number, len(sel.Session))
		if sel.Region != "" {
			fmt.Fprintf(g.stderr, ", Intune region %s", sel.Region)
		}
		fmt.Fprintln(g.stderr)
	}
	targets, err := check.Targets(cat, sel)
	if err != nil {
		return usagef("check: %v", err)
	}
	if len(targets) == 0 {
		return emptyf("check: no hosts to check (see pilotwire endpoints list for phases and services)")
	}
	if checkNetwork != nil {
		checkNetwork(&o)
	}
	if f, ok := g.stderr.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		o.Progress = func(done, total int) {
			fmt.Fprintf(f, "\rpilotwire check: %d of %d hosts", done, total)
			if done == total {
				fmt.Fprint(f, "\r\033[K")
			}
		}
	}
	rep := check.Summarise(check.Run(ctx, targets, o), o)
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if err := check.Render(g.stdout, format, rep); err != nil {
		return err
	}
	if !rep.Ready {
		return notReady{rep.Headline()}
	}
	return nil
}

// sessionTargets are the hosts session s used, as check targets, and the
// Intune scale unit they name.
func sessionTargets(ctx context.Context, src session.Source, s timeline.Session, cat *catalog.Catalog) ([]check.Target, string, error) {
	hosts := check.NewSessionHosts(cat)
	if err := session.Flows(ctx, src, s, 0, func(f *flow.Flow) { hosts.Add(f) }); err != nil {
		return nil, "", err
	}
	targets, region := hosts.Targets()
	return targets, region, nil
}

// pageCheck is the page's "Check this network": the hosts a session used,
// checked from this machine directly, as check --from-session N
// --format json would (without the catalog's other required hosts).
// network, if set, adjusts the check's options (the demo's stand-in
// internet; tests).
func pageCheck(cat *catalog.Catalog, network func(*check.Options)) func(ctx context.Context, src session.Source, s timeline.Session) ([]byte, error) {
	return func(ctx context.Context, src session.Source, s timeline.Session) ([]byte, error) {
		sel := check.Selection{CatalogOff: true}
		var err error
		if sel.Session, sel.Region, err = sessionTargets(ctx, src, s, cat); err != nil {
			return nil, err
		}
		targets, err := check.Targets(cat, sel)
		if err != nil {
			return nil, err
		}
		o := check.Options{}
		if network != nil {
			network(&o)
		}
		rep := check.Summarise(check.Run(ctx, targets, o), o)
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		var buf bytes.Buffer
		if err := check.Render(&buf, "json", rep); err != nil {
			return nil, err
		}
		return buf.Bytes(), nil
	}
}
