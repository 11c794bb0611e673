package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/pilotwire/pilotwire/internal/flow"
	"github.com/pilotwire/pilotwire/internal/live"
	"github.com/pilotwire/pilotwire/internal/metrics"
	"github.com/pilotwire/pilotwire/internal/session"
	"github.com/pilotwire/pilotwire/internal/store/mem"
	"github.com/pilotwire/pilotwire/internal/timeline"
	"github.com/pilotwire/pilotwire/internal/web"
)

const serveExamples = `  pilotwire serve                             # the page over ./pilotwire.db on http://127.0.0.1:8081/, live as it grows
  pilotwire serve customer.har lab.pcapng     # the page over capture files; nothing is written to disk
  pilotwire serve --ui :8081 --ui-token-file token.txt   # reachable from the LAN, with a token
`

func runServe(ctx context.Context, g *globals, args []string) error {
	fs := newFlagSet(g, "serve", "serve [flags] [CAPTURE-FILE...]", serveExamples)
	var (
		ui     uiFlags
		gap    time.Duration
		rules  string
		strict bool
		every  time.Duration
	)
	ui.register(fs, "the page's `ADDR`")
	fs.DurationVar(&gap, "gap", timeline.DefaultGap, "idle `TIME` that ends a session")
	fs.StringVar(&rules, "rules", "", "milestone and phase rules from `FILE` instead of the built-in ones")
	fs.DurationVar(&every, "poll", time.Second, "look for flows another pilotwire stored every `TIME` (a store only)")
	addStrictFlag(fs, &strict)
	pos, err := parseInterleaved(g, fs, args)
	if err != nil {
		return err
	}
	if ui.addr == "" {
		return usagef("serve: --ui: give the page an address, e.g. 127.0.0.1:8081")
	}
	if gap <= 0 || every <= 0 {
		return usagef("serve: --gap and --poll want positive durations")
	}
	token, err := ui.token("serve")
	if err != nil {
		return err
	}
	cat, err := loadCatalog(g)
	if err != nil {
		return err
	}
	rs, err := loadRules(g, rules)
	if err != nil {
		return err
	}

	var st flow.Store
	var hub *live.Hub
	source := g.storeName()
	if len(pos) == 0 {
		if st, err = openStoreReadOnly(ctx, g); err != nil {
			return err
		}
		hub = live.NewHub(maxViewers, 0)
		fctx, stop := context.WithCancel(ctx)
		defer stop()
		go live.Follow(fctx, st, hub, every, func(err error) { fmt.Fprintf(g.stderr, "pilotwire serve: reading new flows: %v\n", err) })
	} else {
		// Capture files are read into memory, all into one store, so
		// their sessions are listed together.
		m := mem.New()
		for _, p := range pos {
			_, res, err := session.ReadFile(ctx, p, strict, m)
			if err != nil {
				return err
			}
			warnPartial(g.stderr, res)
			fmt.Fprintf(g.stderr, "pilotwire serve: %s: %d flows\n", p, res.Flows)
		}
		st, source = m, strings.Join(pos, ", ")
	}
	defer st.Close()
	page, err := web.New(web.Options{Store: st, Hub: hub, Catalog: cat, Rules: rs, Gap: gap, Token: token, Source: source,
		Version: version, Mode: "serve", Check: pageCheck(cat, checkNetwork)})
	if err != nil {
		return err
	}
	mctx, stopMetrics := context.WithCancel(ctx)
	defer stopMetrics()
	serveMetrics(mctx, g, page, metrics.New(metrics.Sources{}), st, cat, gap)
	ln, err := ui.listen("serve")
	if err != nil {
		return err
	}
	srv := pageServer(page)
	fmt.Fprintf(g.stdout, "pilotwire serve: %s on %s\n", source, pageURL(ln.Addr(), token))
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	select {
	case <-ctx.Done():
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		srv.Shutdown(sctx)
		return nil
	case err := <-served:
		if errors.Is(err, http.ErrServerClosed) {
			return nil
		}
		return fmt.Errorf("serve: %w", err)
	}
}
