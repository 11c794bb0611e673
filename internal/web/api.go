package web

import (
	"bytes"
	"cmp"
	"context"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/pilotwire/pilotwire/internal/diff"
	"github.com/pilotwire/pilotwire/internal/export"
	"github.com/pilotwire/pilotwire/internal/flow"
	"github.com/pilotwire/pilotwire/internal/pattern"
	"github.com/pilotwire/pilotwire/internal/report"
	"github.com/pilotwire/pilotwire/internal/session"
	"github.com/pilotwire/pilotwire/internal/timeline"
)

func (s *Server) status(w http.ResponseWriter, r *http.Request) {
	out := struct {
		Version   string           `json:"version"`
		Mode      string           `json:"mode"`
		Source    string           `json:"source"`
		Now       time.Time        `json:"now"`
		Proxy     *ProxyStatus     `json:"proxy"`
		Recording *RecordingStatus `json:"recording"`
		Viewers   int              `json:"viewers"`
		Live      bool             `json:"live"`
	}{Version: s.o.Version, Mode: s.o.Mode, Source: s.o.Source, Now: s.o.Now(), Live: s.o.Hub != nil}
	if s.o.Status != nil {
		st := s.o.Status()
		out.Proxy, out.Recording = st.Proxy, st.Recording
	}
	if s.o.Hub != nil {
		out.Viewers = s.o.Hub.Viewers()
	}
	writeJSON(w, out)
}

// Device states: a device is active while its last flow is this recent.
const activeWithin = time.Minute

// device is one client's newest session, as /api/devices gives it; a
// client of each proxy (proxies that share a store may see the same
// address) is a device of its own.
type device struct {
	Proxy          string    `json:"proxy,omitempty"`
	Client         string    `json:"client"`
	Device         string    `json:"device,omitempty"`
	Label          string    `json:"label"`
	Session        int       `json:"session"`
	State          string    `json:"state"`
	Phase          string    `json:"phase,omitempty"`
	PhaseName      string    `json:"phase_name,omitempty"`
	Provisioning   bool      `json:"provisioning"`
	Start          time.Time `json:"start"`
	Last           time.Time `json:"last"`
	ElapsedSeconds float64   `json:"elapsed_seconds"`
	Flows          int64     `json:"flows"`
	Bytes          int64     `json:"bytes"`
	Lost           int64     `json:"lost,omitempty"`
	LastHost       string    `json:"last_host,omitempty"`
}

func (s *Server) devices(w http.ResponseWriter, r *http.Request) {
	var seen int64
	if s.o.Hub != nil {
		seen = s.o.Hub.LastID()
	}
	list, err := s.deviceList(r, seen)
	if err != nil {
		apiError(w, http.StatusInternalServerError, "%v", err)
		return
	}
	writeJSON(w, map[string]any{"devices": list})
}

// deviceList is the devices list as of the flows up to ID seen at least,
// shared by every viewer and request: computed again only when it is a
// second old or older than the flows the caller has seen.
func (s *Server) deviceList(r *http.Request, seen int64) ([]device, error) {
	s.devMu.Lock()
	defer s.devMu.Unlock()
	if s.devList != nil && time.Since(s.devAt) < devicesEvery && s.devUpTo >= seen {
		return s.devList, nil
	}
	var upTo int64
	if s.o.Hub != nil {
		upTo = s.o.Hub.LastID() // before reading: the list holds at least these
	}
	list, err := s.computeDevices(r)
	if err != nil {
		return nil, err
	}
	s.devList, s.devAt, s.devUpTo = list, time.Now(), upTo
	return list, nil
}

func (s *Server) computeDevices(r *http.Request) ([]device, error) {
	all, err := session.List(r.Context(), s.src, s.o.Gap)
	if err != nil {
		return nil, err
	}
	type whose struct{ proxy, client string }
	newest := map[whose]timeline.Session{}
	for _, ses := range all {
		k := whose{ses.Proxy, ses.Client}
		if cur, ok := newest[k]; !ok || ses.Start.After(cur.Start) {
			newest[k] = ses
		}
	}
	now := s.o.Now()
	out := []device{}
	for _, ses := range newest {
		d := device{Proxy: ses.Proxy, Client: ses.Client, Device: ses.Device, Label: cmp.Or(ses.Device, ses.Client, "unknown"), Session: ses.Number,
			Start: ses.Start, Last: ses.End, ElapsedSeconds: ses.Duration().Seconds(), Flows: ses.Flows, Bytes: ses.Bytes, Lost: ses.Lost}
		switch idle := now.Sub(ses.End); {
		case idle < activeWithin:
			d.State = "active"
		case idle < s.o.Gap:
			d.State = "idle"
		default:
			d.State = "finished"
		}
		if tl, err := s.phaseTimeline(r, ses); err == nil {
			d.Provisioning = tl.Provisioning
			if n := len(tl.Phases); n > 0 {
				d.Phase, d.PhaseName = tl.Phases[n-1].ID, tl.Phases[n-1].Name
			}
		} else if r.Context().Err() != nil {
			return nil, r.Context().Err()
		}
		s.o.Store.Flows(r.Context(), flow.Filter{Client: ses.Client, Proxy: ses.Proxy, Newest: true, Limit: 1, Fields: flow.FieldHost}, func(f flow.Flow) error {
			d.LastHost = f.Host
			return nil
		})
		out = append(out, d)
	}
	slices.SortFunc(out, func(a, b device) int { return b.Last.Compare(a.Last) })
	return out, nil
}

func (s *Server) sessions(w http.ResponseWriter, r *http.Request) {
	all, err := session.List(r.Context(), s.src, s.o.Gap)
	if err != nil {
		apiError(w, http.StatusInternalServerError, "%v", err)
		return
	}
	out := make([]report.SessionJSON, 0, len(all))
	for i := len(all) - 1; i >= 0; i-- {
		out = append(out, report.NewSessionJSON(all[i]))
	}
	writeJSON(w, map[string]any{"sessions": out})
}

// findSession reads the {n} of the path.
func (s *Server) findSession(w http.ResponseWriter, r *http.Request) (timeline.Session, bool) {
	n, err := strconv.Atoi(r.PathValue("n"))
	if err != nil || n < 1 {
		apiError(w, http.StatusBadRequest, "session %q: want a session number (1, 2, …)", r.PathValue("n"))
		return timeline.Session{}, false
	}
	ses, err := session.Find(r.Context(), s.src, s.o.Gap, n, session.Who{})
	var choice *session.ChoiceError
	var none *session.NoFlowsError
	switch {
	case errors.As(err, &choice), errors.As(err, &none):
		apiError(w, http.StatusNotFound, "no session %d", n)
		return ses, false
	case err != nil:
		apiError(w, http.StatusInternalServerError, "%v", err)
		return ses, false
	}
	return ses, true
}

// reportTypes are the content types of the report's formats.
var reportTypes = map[string]string{
	"json": "application/json; charset=utf-8", "html": "text/html; charset=utf-8",
	"markdown": "text/markdown; charset=utf-8", "text": "text/plain; charset=utf-8",
}

var reportExt = map[string]string{"json": "json", "html": "html", "markdown": "md", "text": "txt"}

// reportCSP lets the report's own inline style in, and nothing else: the
// report has no script.
const reportCSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; frame-ancestors 'self'; base-uri 'none'; form-action 'none'"

func (s *Server) report(w http.ResponseWriter, r *http.Request) {
	format := cmp.Or(r.URL.Query().Get("format"), "json")
	if _, ok := reportTypes[format]; !ok {
		apiError(w, http.StatusBadRequest, "format %q: want json, html, markdown or text", format)
		return
	}
	ses, ok := s.findSession(w, r)
	if !ok {
		return
	}
	tl, err := s.timeline(r, ses)
	if err != nil {
		apiError(w, http.StatusInternalServerError, "%v", err)
		return
	}
	var buf bytes.Buffer
	if err := report.Render(&buf, format, tl, report.Options{Generator: "pilotwire " + s.o.Version, Source: s.o.Source}); err != nil {
		apiError(w, http.StatusInternalServerError, "%v", err)
		return
	}
	w.Header().Set("Content-Type", reportTypes[format])
	if format == "html" {
		w.Header().Set("Content-Security-Policy", reportCSP)
	}
	if r.URL.Query().Get("download") == "1" {
		w.Header().Set("Content-Disposition", fmt.Sprintf(`attachment; filename="pilotwire-session-%d.%s"`, ses.Number, reportExt[format]))
	}
	w.Write(buf.Bytes())
}

// flowQuery is a parsed /api/flows request.
type flowQuery struct {
	filter  flow.Filter
	service string // the service rows must be of ("unknown": hosts the catalog does not know)
	noNoise bool
	limit   int
}

// Limits of /api/flows.
const (
	defaultPage = 100
	maxPage     = 500
	// maxScan bounds the flows one page reads when filters the store
	// cannot apply (unknown service, hidden noise) reject many: the page
	// gets what it found and a cursor to go on from.
	maxScan = 20000
)

func (s *Server) parseFlowQuery(r *http.Request) (flowQuery, error) {
	q := r.URL.Query()
	fq := flowQuery{limit: defaultPage}
	for k := range q {
		switch k {
		case "client", "service", "phase", "problems", "q", "noise", "before", "after_id", "limit", "session":
		default:
			return fq, fmt.Errorf("unknown parameter %q (client, service, phase, problems, q, noise, before, after_id, limit, session)", k)
		}
	}
	f := &fq.filter
	f.Client = q.Get("client")
	if len(f.Client) > 256 {
		return fq, errors.New("client: too long")
	}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxPage {
			return fq, fmt.Errorf("limit %q: want 1 to %d", v, maxPage)
		}
		fq.limit = n
	}
	switch v := q.Get("problems"); v {
	case "", "0":
	case "1":
		f.Problems = true
	default:
		return fq, fmt.Errorf("problems %q: want 1 or 0", v)
	}
	switch v := q.Get("noise"); v {
	case "", "1":
	case "0":
		fq.noNoise = true
	default:
		return fq, fmt.Errorf("noise %q: want 1 (show) or 0 (hide)", v)
	}
	if v := q.Get("q"); v != "" {
		if len(v) > 256 {
			return fq, errors.New("q: longer than 256 characters")
		}
		f.Text = v
	}
	if v := q.Get("service"); v != "" {
		if _, ok := s.o.Catalog.Service(v); !ok && v != "unknown" {
			return fq, fmt.Errorf("service %q: no such service in the catalog", v)
		}
		// The store narrows to the service's patterns; a host that
		// another entry matches better is the other service's, which the
		// row says (post-filter).
		fq.service = v
		if v != "unknown" {
			f.Hosts = s.patterns(func(svc, _ string) bool { return svc == v })
		}
	}
	if v := q.Get("phase"); v != "" {
		hosts := s.patterns(func(_, phase string) bool { return phase == v })
		if len(hosts) == 0 {
			return fq, fmt.Errorf("phase %q: no catalog entry has this phase", v)
		}
		f.Hosts = intersect(f.Hosts, hosts, q.Get("service") != "")
	}
	if v := q.Get("session"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			return fq, fmt.Errorf("session %q: want a session number", v)
		}
		ses, err := session.Find(r.Context(), s.src, s.o.Gap, n, session.Who{})
		if err != nil {
			return fq, fmt.Errorf("session %d: no such session", n)
		}
		f.Client, f.Since, f.Until = ses.Client, ses.Start, ses.End.Add(time.Nanosecond)
	}
	before, after := q.Get("before"), q.Get("after_id")
	switch {
	case before != "" && after != "":
		return fq, errors.New("before and after_id: give one")
	case before != "":
		pos, err := decodeCursor(before)
		if err != nil {
			return fq, fmt.Errorf("before %q: not a cursor this server gave", before)
		}
		f.Before = pos
		f.Newest = true
	case after != "":
		n, err := strconv.ParseInt(after, 10, 64)
		if err != nil || n < 0 {
			return fq, fmt.Errorf("after_id %q: want a flow ID", after)
		}
		f.AfterID = n
	default:
		f.Newest = true
	}
	return fq, nil
}

// patterns are the host patterns of the catalog entries keep accepts.
func (s *Server) patterns(keep func(service, phase string) bool) []pattern.Pattern {
	var out []pattern.Pattern
	for _, e := range s.o.Catalog.Entries() {
		if keep(e.Service, e.Phase) {
			out = append(out, e.HostPattern())
		}
	}
	return out
}

// intersect keeps the patterns in both lists when both filters were given
// (a service within a phase): by pattern text, as entries carry one
// service and one phase each.
func intersect(a, b []pattern.Pattern, both bool) []pattern.Pattern {
	if !both {
		return b
	}
	in := map[string]bool{}
	for _, p := range b {
		in[p.String()] = true
	}
	var out []pattern.Pattern
	for _, p := range a {
		if in[p.String()] {
			out = append(out, p)
		}
	}
	if out == nil {
		// No entry of the service is in the phase: nothing matches.
		out = []pattern.Pattern{pattern.MustParse("none.invalid")}
	}
	return out
}

// A cursor is a position (start, ID), opaque to the page.
func encodeCursor(p flow.Position) string {
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], uint64(p.Start.UnixNano()))
	binary.BigEndian.PutUint64(b[8:], uint64(p.ID))
	return base64.RawURLEncoding.EncodeToString(b[:])
}

func decodeCursor(s string) (flow.Position, error) {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || len(b) != 16 {
		return flow.Position{}, errors.New("bad cursor")
	}
	return flow.Position{Start: time.Unix(0, int64(binary.BigEndian.Uint64(b[:8]))), ID: int64(binary.BigEndian.Uint64(b[8:]))}, nil
}

func (s *Server) flows(w http.ResponseWriter, r *http.Request) {
	fq, err := s.parseFlowQuery(r)
	if err != nil {
		apiError(w, http.StatusBadRequest, "%v", err)
		return
	}
	rows, next, err := s.page(r, fq)
	if err != nil {
		apiError(w, http.StatusInternalServerError, "%v", err)
		return
	}
	out := map[string]any{"flows": rows, "next": nil}
	if next != "" {
		out["next"] = next
	}
	writeJSON(w, out)
}

// page reads one page of fq: up to fq.limit rows that pass the filters the
// store cannot apply, reading at most maxScan flows.
func (s *Server) page(r *http.Request, fq flowQuery) ([]Row, string, error) {
	rows := []Row{}
	f := fq.filter
	f.Limit = fq.limit
	post := fq.service != "" || fq.noNoise
	if post {
		f.Limit = min(maxScan, fq.limit*8)
	}
	scanned := 0
	var last flow.Position
	for scanned < maxScan {
		n := 0
		err := s.o.Store.Flows(r.Context(), f, func(fl flow.Flow) error {
			n++
			last = flow.PositionOf(&fl)
			if len(rows) >= fq.limit {
				return errPageFull
			}
			row := s.row(&fl)
			if (fq.service != "" && row.Service != fq.service) || (fq.noNoise && row.Noise) {
				return nil
			}
			rows = append(rows, row)
			return nil
		})
		if err != nil && !errors.Is(err, errPageFull) {
			return nil, "", err
		}
		scanned += n
		if errors.Is(err, errPageFull) || n < f.Limit || len(rows) >= fq.limit || !f.Newest {
			break
		}
		f.Before = last
	}
	if !fq.filter.Newest || len(rows) == 0 && scanned < maxScan {
		return rows, "", nil
	}
	if len(rows) < fq.limit && scanned < maxScan {
		return rows, "", nil
	}
	if len(rows) > 0 && len(rows) >= fq.limit {
		last = rows[len(rows)-1].pos
	}
	return rows, encodeCursor(last), nil
}

var errPageFull = errors.New("page full")

func (s *Server) flowDetail(w http.ResponseWriter, r *http.Request) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil || id < 1 {
		apiError(w, http.StatusBadRequest, "flow %q: want a flow ID", r.PathValue("id"))
		return
	}
	var found *flow.Flow
	err = s.o.Store.Flows(r.Context(), flow.Filter{AfterID: id - 1}, func(f flow.Flow) error {
		if f.ID == id {
			found = &f
			return errPageFull
		}
		return nil
	})
	if err != nil && !errors.Is(err, errPageFull) {
		apiError(w, http.StatusInternalServerError, "%v", err)
		return
	}
	if found == nil {
		apiError(w, http.StatusNotFound, "no flow %d", id)
		return
	}
	out := struct {
		Flow       Row       `json:"flow"`
		Catalog    any       `json:"catalog"`
		Session    *int      `json:"session"`
		Milestones []mention `json:"milestones"`
	}{Flow: s.row(found), Milestones: []mention{}}
	if hj := s.o.Catalog.LookupJSON(found.Host, found.Host); hj.Known {
		out.Catalog = hj
	}
	all, err := session.List(r.Context(), s.src, s.o.Gap)
	if err == nil {
		for _, ses := range all {
			if ses.Contains(found) {
				out.Session = &ses.Number
				if tl, err := s.timeline(r, ses); err == nil {
					for _, m := range tl.Milestones {
						if slices.Contains(m.FlowIDs, id) {
							out.Milestones = append(out.Milestones, mention{m.ID, m.Title, timeline.FormatOffset(m.Offset)})
						}
					}
				}
				break
			}
		}
	}
	writeJSON(w, out)
}

type mention struct {
	ID     string `json:"id"`
	Title  string `json:"title"`
	Offset string `json:"offset"`
}

// unknownHost is a host seen that no catalog entry names.
type unknownHost struct {
	Host  string    `json:"host"`
	Flows int64     `json:"flows"`
	Bytes int64     `json:"bytes"`
	First time.Time `json:"first"`
	Last  time.Time `json:"last"`
}

// hostScan bounds the flows /api/hosts reads for unknown hosts: the
// newest ones.
const hostScan = 200000

func (s *Server) hosts(w http.ResponseWriter, r *http.Request) {
	q := strings.ToLower(r.URL.Query().Get("q"))
	if len(q) > 256 {
		apiError(w, http.StatusBadRequest, "q: longer than 256 characters")
		return
	}
	known := []any{}
	for _, e := range s.o.Catalog.Entries() {
		svc, _ := s.o.Catalog.Service(e.Service)
		if q != "" && !strings.Contains(strings.ToLower(e.Pattern+" "+e.Purpose+" "+svc.Name+" "+e.Phase), q) {
			continue
		}
		host := cmp.Or(e.Example, e.Pattern)
		hj := s.o.Catalog.LookupJSON(e.Pattern, host)
		hj.Pattern, hj.Service, hj.ServiceName, hj.Phase, hj.Purpose, hj.Source, hj.Required = e.Pattern, e.Service, svc.Name, e.Phase, e.Purpose, e.Source, string(e.Required)
		known = append(known, hj)
		if len(known) == 500 {
			break
		}
	}
	seen := map[string]*unknownHost{}
	err := s.o.Store.Flows(r.Context(), flow.Filter{Newest: true, Limit: hostScan, Fields: flow.FieldHost | flow.FieldBytesUp | flow.FieldBytesDown | flow.FieldKind},
		func(f flow.Flow) error {
			if f.Host == "" || f.Kind == flow.KindPAC || f.Kind == flow.KindLost {
				return nil
			}
			if q != "" && !strings.Contains(f.Host, q) {
				return nil
			}
			u := seen[f.Host]
			if u == nil {
				if _, ok := s.o.Catalog.Lookup(f.Host); ok {
					seen[f.Host] = &unknownHost{} // known: counted nowhere
					return nil
				}
				u = &unknownHost{Host: f.Host, Last: f.Start}
				seen[f.Host] = u
			}
			if u.Host == "" {
				return nil
			}
			u.Flows++
			u.Bytes += f.Bytes()
			u.First = f.Start
			return nil
		})
	if err != nil {
		apiError(w, http.StatusInternalServerError, "%v", err)
		return
	}
	unknown := []*unknownHost{}
	for _, u := range seen {
		if u.Host != "" {
			unknown = append(unknown, u)
		}
	}
	slices.SortFunc(unknown, func(a, b *unknownHost) int {
		return cmp.Or(cmp.Compare(b.Flows, a.Flows), strings.Compare(a.Host, b.Host))
	})
	if len(unknown) > 500 {
		unknown = unknown[:500]
	}
	writeJSON(w, map[string]any{"catalog": known, "unknown": unknown})
}

// catalogInfo lists the catalog's services and phases, for the filters.
func (s *Server) catalogInfo(w http.ResponseWriter, r *http.Request) {
	seen := map[string]bool{}
	phases := []string{}
	for _, e := range s.o.Catalog.Entries() {
		if e.Phase != "" && !seen[e.Phase] {
			seen[e.Phase] = true
			phases = append(phases, e.Phase)
		}
	}
	writeJSON(w, map[string]any{"services": s.o.Catalog.ServicesJSON(), "phases": phases})
}

// passThrough sends the hosts TLS interception learned to tunnel
// untouched (a client refused the minted certificate), as `pilotwire
// endpoints learned --json` prints them: [] for a store without the list.
func (s *Server) passThrough(w http.ResponseWriter, r *http.Request) {
	list := []flow.PassThrough{}
	if pts, ok := s.o.Store.(flow.PassThroughStore); ok {
		got, err := pts.PassThroughs(r.Context())
		if err != nil {
			apiError(w, http.StatusInternalServerError, "%v", err)
			return
		}
		list = append(list, got...)
	}
	writeJSON(w, list)
}

// har sends the session's flows as HAR 1.2 (export.WriteHAR), streamed
// from the store: the same file as `pilotwire export --session n`.
func (s *Server) har(w http.ResponseWriter, r *http.Request) {
	ses, ok := s.findSession(w, r)
	if !ok {
		return
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Content-Disposition", fmt.Sprintf(`attachment; filename="pilotwire-session-%d.har"`, ses.Number))
	info := export.HARInfo{Version: s.o.Version, Comment: fmt.Sprintf("session %d of %s", ses.Number, s.o.Source)}
	err := export.WriteHAR(r.Context(), w, info, func(fn func(*flow.Flow) error) error {
		var ferr error
		err := session.Flows(r.Context(), s.src, ses, 0, func(f *flow.Flow) {
			if ferr == nil {
				ferr = fn(f)
			}
		})
		return cmp.Or(ferr, err)
	})
	if err != nil {
		// Half a file went out: the download fails rather than ends
		// short (the connection is cut without the closing bracket).
		s.o.Logger.Warn("HAR export", "session", ses.Number, "err", err)
		panic(http.ErrAbortHandler)
	}
}

// diff compares sessions a and b as `pilotwire diff a b` does.
func (s *Server) diff(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	format := cmp.Or(q.Get("format"), "json")
	if _, ok := reportTypes[format]; !ok {
		apiError(w, http.StatusBadRequest, "format %q: want json, html, markdown or text", format)
		return
	}
	var sides [2]diff.Side
	for i, k := range []string{"a", "b"} {
		n, err := strconv.Atoi(q.Get(k))
		if err != nil || n < 1 {
			apiError(w, http.StatusBadRequest, "%s %q: want a session number", k, q.Get(k))
			return
		}
		ses, err := session.Find(r.Context(), s.src, s.o.Gap, n, session.Who{})
		if err != nil {
			apiError(w, http.StatusNotFound, "no session %d", n)
			return
		}
		if sides[i], err = session.DiffSide(r.Context(), s.src, ses, s.o.Catalog, timeline.Options{Rules: s.o.Rules}); err != nil {
			apiError(w, http.StatusInternalServerError, "%v", err)
			return
		}
	}
	var buf bytes.Buffer
	if err := report.RenderDiff(&buf, format, diff.Compare(sides[0], sides[1]), report.Options{Generator: "pilotwire " + s.o.Version}); err != nil {
		apiError(w, http.StatusInternalServerError, "%v", err)
		return
	}
	w.Header().Set("Content-Type", reportTypes[format])
	if format == "html" {
		w.Header().Set("Content-Security-Policy", reportCSP)
	}
	w.Write(buf.Bytes())
}

// checkTimeout bounds a check the page asks for.
const checkTimeout = 2 * time.Minute

// CheckHeader must come with POST /api/sessions/{n}/check: a header a
// page of another origin cannot send without the browser asking first
// (CORS), so no other site can make pilotwire probe the network.
const CheckHeader = "X-Pilotwire-Page"

// check checks the network for the hosts of session n, from this machine
// (Options.Check), one check at a time.
func (s *Server) check(w http.ResponseWriter, r *http.Request) {
	if s.o.Check == nil {
		apiError(w, http.StatusNotFound, "network checks are off on this page (pilotwire check runs them from a terminal)")
		return
	}
	if r.Header.Get(CheckHeader) == "" {
		apiError(w, http.StatusForbidden, "a check needs the %s header (the page sends it)", CheckHeader)
		return
	}
	ses, ok := s.findSession(w, r)
	if !ok {
		return
	}
	if !s.checking.TryLock() {
		apiError(w, http.StatusConflict, "a check is running already; try again when it ends")
		return
	}
	defer s.checking.Unlock()
	timeout := cmp.Or(s.o.CheckTimeout, checkTimeout)
	ctx, cancel := context.WithTimeout(r.Context(), timeout)
	defer cancel()
	out, err := s.o.Check(ctx, s.src, ses)
	switch {
	case r.Context().Err() != nil:
		return // the page went away: nobody to answer
	case errors.Is(err, context.DeadlineExceeded):
		apiError(w, http.StatusGatewayTimeout, "the check of session %d did not finish within %s (hosts that do not answer wait out each step's timeout); "+
			"pilotwire check --from-session %d shows it host by host", ses.Number, timeout, ses.Number)
		return
	case err != nil:
		apiError(w, http.StatusInternalServerError, "check: %v", err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Write(out)
}
