package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/pilotwire/pilotwire/internal/catalog"
	"github.com/pilotwire/pilotwire/internal/flow"
	"github.com/pilotwire/pilotwire/internal/metrics"
	"github.com/pilotwire/pilotwire/internal/session"
	"github.com/pilotwire/pilotwire/internal/web"
)

// tokenEnv holds the page's token when no --ui-token-file is given: never
// a flag value, which every user of the machine sees in ps.
const tokenEnv = "PILOTWIRE_UI_TOKEN"

// minTokenLen is the shortest token accepted: 128 bits as hex.
const minTokenLen = 32

// uiFlags are the flags of the live page, the same for proxy and serve.
type uiFlags struct {
	addr, tokenFile string
}

func (u *uiFlags) register(fs *flag.FlagSet, usage string) {
	u.addr = "127.0.0.1:8081"
	fs.Func("ui", usage+" (default \"127.0.0.1:8081\"; off: none)", func(v string) error {
		switch strings.ToLower(v) {
		case "", "off", "none", "false":
			u.addr = ""
			return nil
		}
		if _, _, err := net.SplitHostPort(v); err != nil {
			return fmt.Errorf("want HOST:PORT, or off for no page")
		}
		u.addr = v
		return nil
	})
	fs.StringVar(&u.tokenFile, "ui-token-file", "", "the page's access token is in `FILE` (or $"+tokenEnv+"); needed to listen beyond loopback")
}

// token returns the page's token ("" for none) after checking that the
// address is loopback or a token is set: a page that shows every device's
// traffic is not put on the network for anyone to read.
func (u *uiFlags) token(cmd string) (string, error) {
	var tok, from string
	switch {
	case u.tokenFile != "":
		b, err := os.ReadFile(u.tokenFile)
		if err != nil {
			return "", usagef("%s: --ui-token-file: %v", cmd, err)
		}
		tok, from = strings.TrimSpace(string(b)), u.tokenFile
	case os.Getenv(tokenEnv) != "":
		tok, from = strings.TrimSpace(os.Getenv(tokenEnv)), "$"+tokenEnv
	}
	if tok != "" && (len(tok) < minTokenLen || strings.ContainsAny(tok, " \t\r\n")) {
		return "", usagef("%s: the token in %s is %d characters; use at least %d without spaces, e.g. openssl rand -hex 16 > token.txt", cmd, from, len(tok), minTokenLen)
	}
	if tok == "" && !loopbackAddr(u.addr) {
		return "", usagef("%s: --ui %s listens beyond loopback and would show every device's traffic to anyone who can reach it:\n"+
			"  give a token with --ui-token-file FILE or $%s (openssl rand -hex 16 > token.txt), or listen on 127.0.0.1", cmd, u.addr, tokenEnv)
	}
	return tok, nil
}

// loopbackAddr reports whether the listen address addr (host:port) binds
// loopback only: an empty host, 0.0.0.0 and [::] bind every interface.
func loopbackAddr(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	a, err := netip.ParseAddr(host)
	return err == nil && a.Unmap().IsLoopback()
}

// listen opens the page's listener.
func (u *uiFlags) listen(cmd string) (net.Listener, error) {
	ln, err := net.Listen("tcp", u.addr)
	if err != nil {
		var ae *net.AddrError
		if errors.As(err, &ae) {
			return nil, usagef("%s: --ui %s: %v", cmd, u.addr, err)
		}
		return nil, fmt.Errorf("%s: page on %s: %w", cmd, u.addr, err)
	}
	return ln, nil
}

// maxViewers bounds the live pages open at once on one pilotwire.
const maxViewers = 16

// pageServer serves the live page. No write timeout: the page's event
// stream stays open; the handler bounds each write itself.
func pageServer(h http.Handler) *http.Server {
	return &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute, MaxHeaderBytes: 64 << 10}
}

// pageURL is the address to open, with the token when there is one (the
// page moves it into a cookie at once).
func pageURL(addr net.Addr, token string) string {
	u := "http://" + addr.String() + "/"
	if token != "" {
		u += "?token=" + url.QueryEscape(token)
	}
	return u
}

// metricsPhaseEvery is how often /metrics looks for sessions that have
// finished, to observe their phases.
const metricsPhaseEvery = time.Minute

// serveMetrics puts /metrics on the page (behind its token, like every
// route but /healthz) and, with a store, observes the phases of sessions
// as they finish, until ctx ends.
func serveMetrics(ctx context.Context, g *globals, page *web.Server, m *metrics.Metrics, st flow.Store, cat *catalog.Catalog, gap time.Duration) {
	page.Handle("GET /metrics", m.Handler())
	if st == nil {
		return
	}
	go m.WatchPhases(ctx, session.FromStore(st, g.storeName()), cat, gap, metricsPhaseEvery, func(err error) {
		fmt.Fprintf(g.stderr, "pilotwire: /metrics: finished sessions' phases: %v\n", err)
	})
}
