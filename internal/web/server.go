// Package web owns the live page: the HTTP server of `pilotwire proxy
// --ui` and `pilotwire serve`, its JSON API (docs/api.md), the
// Server-Sent Events that push new flows, the token gate, and the page
// itself (static/, embedded). It reads flows through flow.Store and the
// session package, renders reports with package report, and computes no
// meaning of its own: services, phases and milestones come from the
// catalog and the timeline.
//
// It must not import a concrete store, the importer or the proxy: cmd
// wires those in through Options.
package web

import (
	"context"
	"crypto/subtle"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/pilotwire/pilotwire/internal/catalog"
	"github.com/pilotwire/pilotwire/internal/flow"
	"github.com/pilotwire/pilotwire/internal/live"
	"github.com/pilotwire/pilotwire/internal/session"
	"github.com/pilotwire/pilotwire/internal/timeline"
)

//go:embed static
var static embed.FS

// Options configure a Server.
type Options struct {
	Store   flow.Store       // required: where flows are read
	Hub     *live.Hub        // new flows as they are stored; nil: nothing live
	Catalog *catalog.Catalog // required
	Rules   *timeline.Rules  // nil: the built-in rules
	Gap     time.Duration    // idle time that ends a session; 0: timeline.DefaultGap
	// Token, when not empty, must come with every request but /healthz
	// (cookie, bearer header, or ?token= once).
	Token string
	// Status, when set, says how the proxy and its recording are doing.
	Status  func() Status
	Source  string // the store path or capture files, shown on the page
	Version string
	Mode    string // "proxy" or "serve"
	Logger  *slog.Logger
	// Now is the clock (tests set it); nil: time.Now.
	Now func() time.Time
	// Check, when set, checks from this machine the hosts a session used
	// and returns the report as `pilotwire check --format json` writes
	// it: POST /api/sessions/{n}/check. Nil: the route says checks are
	// off.
	Check func(ctx context.Context, src session.Source, s timeline.Session) ([]byte, error)
	// CheckTimeout bounds one check; 0: 2 minutes.
	CheckTimeout time.Duration
}

// Status is the proxy's and the recording's state, for /api/status.
type Status struct {
	Proxy     *ProxyStatus     `json:"proxy"`
	Recording *RecordingStatus `json:"recording"`
}

// ProxyStatus is the proxy's counters.
type ProxyStatus struct {
	OpenConns     int64   `json:"open_conns"`
	OpenTunnels   int64   `json:"open_tunnels"`
	Requests      int64   `json:"requests"`
	UptimeSeconds float64 `json:"uptime_seconds"`
	Intercepting  bool    `json:"intercepting,omitempty"`
}

// RecordingStatus is the recorder's state.
type RecordingStatus struct {
	OK      bool   `json:"ok"`
	Text    string `json:"text"` // "recording" or "NOT RECORDING since …"
	Writes  int64  `json:"writes"`
	Dropped int64  `json:"dropped"`
}

// Server is the page and its API. It is an http.Handler.
type Server struct {
	o   Options
	mux *http.ServeMux
	src session.Source

	tlMu  sync.Mutex
	cache map[cacheKey]*timeline.Timeline // timelines of sessions, by their state
	// phases are the timelines the devices list reads the current phase
	// from, by client and session start: rebuilt at most every
	// phaseEvery, however fast the session grows.
	phases map[string]phaseEntry

	rowMu    sync.Mutex
	rowCache map[rowKey][]byte // rows of the event stream, encoded once for every viewer

	devMu    sync.Mutex
	devList  []device // the devices list, at most a second old
	devAt    time.Time
	devUpTo  int64      // the hub's last flow ID when devList was read
	checking sync.Mutex // one network check at a time
}

type phaseEntry struct {
	tl *timeline.Timeline
	at time.Time
}

// phaseEvery is how stale the phase of a growing session of up to
// 100,000 flows may be; a bigger one's, that much more per 100,000 flows
// (a million-flow timeline takes a second and 100 MiB to build).
const phaseEvery = 10 * time.Second

type cacheKey struct {
	number, flows int64
	end           int64
}

// cacheSize bounds the timelines kept: the devices list needs one per
// client's newest session.
const cacheSize = 64

// New makes a Server.
func New(o Options) (*Server, error) {
	if o.Store == nil || o.Catalog == nil {
		return nil, errors.New("web: a store and a catalog are required")
	}
	if o.Gap <= 0 {
		o.Gap = timeline.DefaultGap
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Mode == "" {
		o.Mode = "serve"
	}
	s := &Server{o: o, mux: http.NewServeMux(), src: session.FromStore(o.Store, o.Source), cache: map[cacheKey]*timeline.Timeline{},
		phases: map[string]phaseEntry{}, rowCache: map[rowKey][]byte{}}
	sub, err := fs.Sub(static, "static")
	if err != nil {
		return nil, err
	}
	files := http.FileServerFS(sub)
	s.mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Write([]byte("ok\n"))
	})
	s.mux.Handle("GET /static/", http.StripPrefix("/static/", files))
	s.mux.HandleFunc("GET /favicon.ico", func(w http.ResponseWriter, r *http.Request) {
		// Browsers ask for it whatever the page says.
		w.Header().Set("Content-Type", "image/svg+xml")
		b, _ := static.ReadFile("static/favicon.svg")
		w.Write(b)
	})
	s.mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		r2 := *r
		r2.URL = &url.URL{Path: "/"}
		files.ServeHTTP(w, &r2)
	})
	s.mux.HandleFunc("GET /api/status", s.status)
	s.mux.HandleFunc("GET /api/devices", s.devices)
	s.mux.HandleFunc("GET /api/sessions", s.sessions)
	s.mux.HandleFunc("GET /api/sessions/{n}/report", s.report)
	s.mux.HandleFunc("GET /api/sessions/{n}/har", s.har)
	s.mux.HandleFunc("POST /api/sessions/{n}/check", s.check)
	s.mux.HandleFunc("GET /api/diff", s.diff)
	s.mux.HandleFunc("GET /api/flows", s.flows)
	s.mux.HandleFunc("GET /api/flows/{id}", s.flowDetail)
	s.mux.HandleFunc("GET /api/hosts", s.hosts)
	s.mux.HandleFunc("GET /api/catalog", s.catalogInfo)
	s.mux.HandleFunc("GET /api/passthrough", s.passThrough)
	s.mux.HandleFunc("GET /api/events", s.events)
	s.mux.HandleFunc("/api/", func(w http.ResponseWriter, r *http.Request) {
		apiError(w, http.StatusNotFound, "no such API endpoint: %s %s (see docs/api.md)", r.Method, r.URL.Path)
	})
	return s, nil
}

// Handle adds a route beside the page's (the HAR download, metrics).
func (s *Server) Handle(pattern string, h http.Handler) { s.mux.Handle(pattern, h) }

// csp allows the page's own script and style and nothing else: no inline
// script, no eval, no other origin.
const csp = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; " +
	"frame-ancestors 'none'; base-uri 'none'; form-action 'self'"

// TokenCookie carries the page's token after the first visit.
const TokenCookie = "pilotwire_token"

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Security-Policy", csp)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Frame-Options", "DENY")
	if strings.HasPrefix(r.URL.Path, "/api/") {
		h.Set("Cache-Control", "no-store")
	}
	if s.o.Token != "" && r.URL.Path != "/healthz" && !s.admit(w, r) {
		return
	}
	s.mux.ServeHTTP(w, r)
}

// admit checks the token: a cookie, an Authorization: Bearer header, or
// ?token= (which sets the cookie and redirects to the URL without it, so
// the token leaves the address bar and the history).
func (s *Server) admit(w http.ResponseWriter, r *http.Request) bool {
	if c, err := r.Cookie(TokenCookie); err == nil && s.tokenOK(c.Value) {
		return true
	}
	if b, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok && s.tokenOK(b) {
		return true
	}
	q := r.URL.Query()
	if t := q.Get("token"); t != "" && s.tokenOK(t) {
		http.SetCookie(w, &http.Cookie{Name: TokenCookie, Value: s.o.Token, Path: "/", HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil})
		q.Del("token")
		u := *r.URL
		u.RawQuery = q.Encode()
		http.Redirect(w, r, u.RequestURI(), http.StatusSeeOther)
		return false
	}
	const how = "this pilotwire page needs its token: open the address pilotwire printed (it ends in ?token=…), or send Authorization: Bearer TOKEN"
	if strings.HasPrefix(r.URL.Path, "/api/") {
		apiError(w, http.StatusUnauthorized, "%s", how)
		return false
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(http.StatusUnauthorized)
	fmt.Fprintln(w, how)
	return false
}

func (s *Server) tokenOK(t string) bool {
	return subtle.ConstantTimeCompare([]byte(t), []byte(s.o.Token)) == 1
}

// apiError answers {"error": "..."} with status.
func apiError(w http.ResponseWriter, status int, format string, a ...any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]string{"error": fmt.Sprintf(format, a...)})
}

// writeJSON answers v as JSON.
func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	enc := json.NewEncoder(w)
	if err := enc.Encode(v); err != nil {
		// The header is gone; nothing more can be said to the client.
		return
	}
}

// timeline returns the timeline of session ses, cached while the session
// does not change.
func (s *Server) timeline(r *http.Request, ses timeline.Session) (*timeline.Timeline, error) {
	k := cacheKey{int64(ses.Number), ses.Flows, ses.End.UnixNano()}
	s.tlMu.Lock()
	tl, ok := s.cache[k]
	s.tlMu.Unlock()
	if ok {
		return tl, nil
	}
	tl, err := session.Timeline(r.Context(), s.src, ses, s.o.Catalog, timeline.Options{Rules: s.o.Rules})
	if err != nil {
		return nil, err
	}
	s.tlMu.Lock()
	if len(s.cache) >= cacheSize {
		clear(s.cache)
	}
	s.cache[k] = tl
	s.tlMu.Unlock()
	return tl, nil
}

// phaseTimeline is the timeline of ses for the devices list: the cached one
// while it is less than phaseEvery old, even if the session grew since.
func (s *Server) phaseTimeline(r *http.Request, ses timeline.Session) (*timeline.Timeline, error) {
	key := ses.Client + "\x00" + ses.Start.String()
	s.tlMu.Lock()
	e, ok := s.phases[key]
	s.tlMu.Unlock()
	// A big session is rebuilt less often: 10 s per 100,000 flows.
	if ok && time.Since(e.at) < phaseEvery*time.Duration(max(1, ses.Flows/100_000)) {
		return e.tl, nil
	}
	tl, err := s.timeline(r, ses)
	if err != nil {
		return nil, err
	}
	s.tlMu.Lock()
	if len(s.phases) >= cacheSize {
		clear(s.phases)
	}
	s.phases[key] = phaseEntry{tl, time.Now()}
	s.tlMu.Unlock()
	return tl, nil
}
