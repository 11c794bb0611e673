// Package storetest is the behavioural contract of flow.Store as a suite
// that every implementation runs from its own tests.
package storetest

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"math"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pilotwire/pilotwire/internal/flow"
	"github.com/pilotwire/pilotwire/internal/pattern"
)

// Run runs the conformance suite. open returns a new, empty store; the suite
// closes it.
func Run(t *testing.T, open func(t *testing.T) flow.Store) {
	t.Helper()
	base := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	sample := func(i int) flow.Flow {
		return flow.Flow{
			Key:    fmt.Sprintf("k%d", i),
			Start:  base.Add(time.Duration(i) * time.Second),
			End:    base.Add(time.Duration(i)*time.Second + 250*time.Millisecond),
			Client: fmt.Sprintf("10.0.0.%d", 1+i%2), ClientPort: 50000 + i,
			Source: flow.SourceProxy, Kind: flow.KindConnect, Method: "CONNECT",
			Host: fmt.Sprintf("h%d.manage.microsoft.com", i), Port: 443, Status: 200,
			BytesUp: int64(100 + i), BytesDown: int64(1000 * i),
			SNI: "sni.example", ALPN: "h2,http/1.1", TLSVersion: "1.3",
			Decision: flow.DecisionAllowed, Reason: "client closed",
		}
	}
	collect := func(t *testing.T, s flow.Store, f flow.Filter) []flow.Flow {
		t.Helper()
		var out []flow.Flow
		if err := s.Flows(context.Background(), f, func(fl flow.Flow) error { out = append(out, fl); return nil }); err != nil {
			t.Fatalf("Flows(%+v): %v", f, err)
		}
		return out
	}

	t.Run("RoundTrip", func(t *testing.T) {
		s := open(t)
		defer s.Close()
		want := sample(3)
		want.Device, want.Session, want.URL, want.Error, want.Note, want.SourceFile = "LAB-VM-07", "run1", "https://x/y?z", "boom", "n", "cap.har"
		want.Tunnel = "px-0a1b2c3d-7"
		want.Headers = "> User-Agent: Windows-Update-Agent\n< Content-Type: application/soap+xml; charset=utf-8\n< MS-CV: 1f2e.3"
		want.Proxy = "site-a"
		want.Bodies = flow.EncodeBodies(flow.Bodies{Request: []byte("grant_type=x"), Response: []byte{0, 1, 2, 0xff}})
		if err := s.PutFlows(context.Background(), []flow.Flow{want}); err != nil {
			t.Fatal(err)
		}
		got := collect(t, s, flow.Filter{Fields: flow.FieldsAll})
		if len(got) != 1 {
			t.Fatalf("got %d flows, want 1", len(got))
		}
		if got[0].ID == 0 {
			t.Errorf("stored flow has no ID")
		}
		want.ID = got[0].ID
		if !got[0].Start.Equal(want.Start) || !got[0].End.Equal(want.End) {
			t.Errorf("times = %v..%v, want %v..%v", got[0].Start, got[0].End, want.Start, want.End)
		}
		got[0].Start, got[0].End = want.Start, want.End
		if !flow.Same(got[0], want) {
			t.Errorf("round trip:\n got %+v\nwant %+v", got[0], want)
		}
	})

	t.Run("PassThrough", func(t *testing.T) {
		s := open(t)
		defer s.Close()
		ps, ok := s.(flow.PassThroughStore)
		if !ok {
			t.Skip("the store keeps no pass-through list")
		}
		ctx := context.Background()
		if got, err := ps.PassThroughs(ctx); err != nil || len(got) != 0 {
			t.Fatalf("empty store: %v, %v", got, err)
		}
		zone := time.FixedZone("", 5*3600+30*60)
		first := flow.PassThrough{Host: "z.example", Reason: "client refused the certificate: remote error: tls: unknown certificate authority",
			Learned: base.In(zone), Client: "10.0.0.23", Flow: "px-1-3"}
		other := flow.PassThrough{Host: "a.example", Reason: "client closed right after the handshake, with no request", Learned: base.Add(time.Hour)}
		again := first
		again.Reason, again.Learned = "later", base.Add(2*time.Hour)
		for _, p := range []flow.PassThrough{first, other, again} {
			if err := ps.LearnPassThrough(ctx, p); err != nil {
				t.Fatal(err)
			}
		}
		if err := ps.LearnPassThrough(ctx, flow.PassThrough{Reason: "no host"}); err == nil {
			t.Error("a pass-through without a host was stored")
		}
		got, err := ps.PassThroughs(ctx)
		if err != nil {
			t.Fatal(err)
		}
		want := []flow.PassThrough{other, first} // by host; the first entry of a host kept
		if len(got) != len(want) {
			t.Fatalf("got %+v, want %+v", got, want)
		}
		for i := range want {
			_, gz := got[i].Learned.Zone()
			_, wz := want[i].Learned.Zone()
			if !got[i].Learned.Equal(want[i].Learned) || gz != wz {
				t.Errorf("%s learned %s, want %s", want[i].Host, got[i].Learned, want[i].Learned)
			}
			got[i].Learned = want[i].Learned
			if got[i] != want[i] {
				t.Errorf("entry %d:\n got %+v\nwant %+v", i, got[i], want[i])
			}
		}
	})

	t.Run("ZoneKept", func(t *testing.T) {
		s := open(t)
		defer s.Close()
		f := sample(1)
		f.Start = time.Date(2023, 3, 29, 16, 58, 59, 303000000, time.FixedZone("", -7*3600))
		f.End = time.Time{}
		if err := s.PutFlows(context.Background(), []flow.Flow{f}); err != nil {
			t.Fatal(err)
		}
		got := collect(t, s, flow.Filter{})
		if _, off := got[0].Start.Zone(); off != -7*3600 {
			t.Errorf("zone offset = %d, want %d", off, -7*3600)
		}
		if !got[0].Open() {
			t.Errorf("flow without end came back closed: %v", got[0].End)
		}
	})

	t.Run("UpsertByKey", func(t *testing.T) {
		s := open(t)
		defer s.Close()
		open := sample(1)
		open.End, open.BytesDown = time.Time{}, 0
		if err := s.PutFlows(context.Background(), []flow.Flow{open}); err != nil {
			t.Fatal(err)
		}
		first := collect(t, s, flow.Filter{})
		done := sample(1)
		batch := []flow.Flow{done, done, sample(2)}
		if err := s.PutFlows(context.Background(), batch); err != nil {
			t.Fatal(err)
		}
		// PutFlows says which ID each flow has: an update its old one, a
		// new flow a new one (the live page updates a row by it).
		if batch[0].ID != first[0].ID || batch[1].ID != first[0].ID || batch[2].ID == 0 || batch[2].ID == first[0].ID {
			t.Errorf("PutFlows set IDs %d %d %d; want %d %d and a new one", batch[0].ID, batch[1].ID, batch[2].ID, first[0].ID, first[0].ID)
		}
		got := collect(t, s, flow.Filter{Hosts: hosts(done.Host)})
		if len(got) != 1 {
			t.Fatalf("got %d flows after upsert, want 1", len(got))
		}
		if got[0].ID != first[0].ID {
			t.Errorf("upsert changed ID %d -> %d", first[0].ID, got[0].ID)
		}
		if got[0].Open() || got[0].BytesDown != done.BytesDown {
			t.Errorf("upsert did not complete the flow: %+v", got[0])
		}
	})

	t.Run("Filters", func(t *testing.T) {
		s := open(t)
		defer s.Close()
		var all []flow.Flow
		for i := range 10 {
			all = append(all, sample(i))
		}
		all[4].Host = "login.live.com"
		all[5].Device = "VM7"
		all[6].Proxy, all[7].Proxy = "site-b", "site-b"
		if err := s.PutFlows(context.Background(), all); err != nil {
			t.Fatal(err)
		}
		cases := []struct {
			name string
			f    flow.Filter
			keys string
		}{
			{"all", flow.Filter{}, "k0 k1 k2 k3 k4 k5 k6 k7 k8 k9"},
			{"client", flow.Filter{Client: "10.0.0.2"}, "k1 k3 k5 k7 k9"},
			{"device", flow.Filter{Client: "VM7"}, "k5"},
			{"host exact", flow.Filter{Hosts: hosts("LOGIN.live.com")}, "k4"},
			{"host glob", flow.Filter{Hosts: hosts("h?.manage.*")}, "k0 k1 k2 k3 k5 k6 k7 k8 k9"},
			{"hosts any of", flow.Filter{Hosts: hosts("h1.manage.microsoft.com", "*.live.com")}, "k1 k4"},
			{"text", flow.Filter{Text: "H3.Manage"}, "k3"},
			{"before", flow.Filter{Before: flow.Position{Start: base.Add(2 * time.Second), ID: 1 << 62}, Newest: true}, "k2 k1 k0"},
			{"since until", flow.Filter{Since: base.Add(2 * time.Second), Until: base.Add(5 * time.Second)}, "k2 k3 k4"},
			{"limit", flow.Filter{Limit: 3}, "k0 k1 k2"},
			{"newest", flow.Filter{Limit: 2, Newest: true}, "k9 k8"},
			{"source", flow.Filter{Source: flow.SourceHAR}, ""},
			{"proxy", flow.Filter{Proxy: "site-b"}, "k6 k7"},
			{"proxy and client", flow.Filter{Proxy: "site-b", Client: "10.0.0.2"}, "k7"},
			{"unknown proxy", flow.Filter{Proxy: "site-z"}, ""},
		}
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				var keys string
				for i, f := range collect(t, s, c.f) {
					if i > 0 {
						keys += " "
					}
					keys += f.Key
				}
				if keys != c.keys {
					t.Errorf("keys = %q, want %q", keys, c.keys)
				}
				n, err := s.CountFlows(context.Background(), c.f)
				if err != nil {
					t.Fatal(err)
				}
				if c.f.Limit == 0 && int(n) != len(collect(t, s, c.f)) {
					t.Errorf("CountFlows = %d, Flows gave %d", n, len(collect(t, s, c.f)))
				}
			})
		}
		after := collect(t, s, flow.Filter{})[6].ID
		if got := collect(t, s, flow.Filter{AfterID: after}); len(got) != 3 {
			t.Errorf("AfterID: got %d flows, want 3", len(got))
		}
	})

	t.Run("Brief", func(t *testing.T) {
		s := open(t)
		defer s.Close()
		var all []flow.Flow
		for i := range 4 {
			all = append(all, sample(i))
		}
		all[1].Device, all[2].Session = "VM7", "run1"
		// A Brief read carries Kind: the session splitter leaves the
		// proxy's own PAC answers out of sessions by it.
		all[3].Kind = flow.KindPAC
		all[2].Start = all[2].Start.In(time.FixedZone("", -7*3600))
		all[3].End = time.Time{}
		if err := s.PutFlows(context.Background(), all); err != nil {
			t.Fatal(err)
		}
		full := collect(t, s, flow.Filter{})
		brief := collect(t, s, flow.Filter{Brief: true})
		if len(brief) != len(full) {
			t.Fatalf("Brief read %d flows, full read %d", len(brief), len(full))
		}
		for i, b := range brief {
			f := full[i]
			_, boff := b.Start.Zone()
			_, foff := f.Start.Zone()
			if b.ID != f.ID || !b.Start.Equal(f.Start) || boff != foff || !b.End.Equal(f.End) || b.Open() != f.Open() ||
				b.Client != f.Client || b.Device != f.Device || b.Session != f.Session || b.BytesUp != f.BytesUp ||
				b.BytesDown != f.BytesDown || b.Kind != f.Kind {
				t.Errorf("flow %d: brief read differs from full read:\nbrief %+v\n full %+v", i, b, f)
			}
		}
		if got := collect(t, s, flow.Filter{Brief: true, Client: "VM7"}); len(got) != 1 || got[0].ID != full[1].ID {
			t.Errorf("Brief with Client filter: got %+v", got)
		}
	})

	t.Run("Refused", func(t *testing.T) {
		s := open(t)
		defer s.Close()
		f := sample(1)
		f.Key = ""
		if err := s.PutFlows(context.Background(), []flow.Flow{f}); err == nil {
			t.Errorf("PutFlows accepted a flow without a key")
		}
		for _, c := range []struct {
			file string
			part int
		}{{"", 0}, {"capture.har@1", -1}} {
			if _, err := s.PutFileFlows(context.Background(), c.file, c.part, []flow.Flow{sample(1)}); err == nil {
				t.Errorf("PutFileFlows accepted file %q part %d", c.file, c.part)
			}
		}
		if n, err := s.CountFlows(context.Background(), flow.Filter{}); err != nil || n != 0 {
			t.Errorf("after the refused writes the store holds %d flows (%v), want 0", n, err)
		}
	})

	// The rest is the contract of PutFileFlows and EndFileFlows: flows
	// imported from files, which a store may keep in its own form, must
	// read back exactly like rows written by PutFlows and mix with them.
	for _, c := range []struct {
		name string
		test func(t *testing.T, s flow.Store)
	}{
		{"FileRoundTrip", testFileRoundTrip},
		{"FileOrder", testFileOrder},
		{"FileFilters", testFileFilters},
		{"FilterProperty", testFilterProperty},
		{"Activity", testActivity},
		{"FileReimport", testFileReimport},
		{"FileKeysIndependent", testFileKeysIndependent},
		{"FileIDsGrow", testFileIDsGrow},
		{"FileEmpty", testFileEmpty},
		{"FileCancel", testFileCancel},
		{"FileLarge", testFileLarge},
		{"FileConcurrent", testFileConcurrent},
		{"FileStop", testFileStop},
		{"FileChange", testFileChange},
		{"UnfinishedImports", testUnfinishedImports},
	} {
		t.Run(c.name, func(t *testing.T) {
			s := open(t)
			defer s.Close()
			c.test(t, s)
		})
	}
}

// genBase is the start of the generated captures.
var genBase = time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)

// The zones generated flows start in: a store must give each flow its own
// zone back, including odd offsets.
var genZones = []*time.Location{
	time.UTC,
	time.FixedZone("", -7*3600),
	time.FixedZone("", 5*3600+45*60),
	time.FixedZone("", -(3*3600 + 30*60)),
}

// genDevice is the device label of client at start: a client's label
// changes half way through the capture, so "the newest label" has one
// right answer.
func genDevice(client string, start time.Time) string {
	if start.Before(genBase.Add(30 * time.Second)) {
		return "OLD-" + client[strings.LastIndexByte(client, '.')+1:]
	}
	return map[string]string{"192.168.1.1": "VM7", "192.168.1.2": "VM8", "192.168.1.3": "VM9"}[client]
}

// generated returns n flows keyed prefix/0 … prefix/n-1 from source src,
// every field filled from a generator seeded with seed: starts spread over
// one minute at nanosecond precision in several zones, one in five open,
// three clients, hosts for the glob filters, now and then a negative byte
// count or status (HAR writes -1 for "unknown").
func generated(prefix string, src flow.Source, n int, seed uint64) []flow.Flow {
	r := rand.New(rand.NewPCG(seed, 0x5eed))
	hosts := []string{
		"login.microsoftonline.com", "a.manage.microsoft.com", "b.c.manage.microsoft.com", "manage.microsoft.com",
		"enterpriseregistration.windows.net", "10.20.30.40", "ctldl.windowsupdate.com", "xn--bcher-kva.example",
	}
	kinds := []flow.Kind{flow.KindHTTP, flow.KindConnect, flow.KindTLS, flow.KindDNS, flow.KindTCP, flow.KindQUIC}
	decisions := []flow.Decision{flow.DecisionNone, flow.DecisionAllowed, flow.DecisionDenied}
	out := make([]flow.Flow, n)
	for i := range out {
		zone := genZones[r.IntN(len(genZones))]
		start := genBase.Add(time.Duration(r.Int64N(int64(time.Minute)))).In(zone)
		host := hosts[r.IntN(len(hosts))]
		f := flow.Flow{
			Key:        fmt.Sprintf("%s/%d", prefix, i),
			Start:      start,
			Client:     fmt.Sprintf("192.168.1.%d", 1+r.IntN(3)),
			ClientPort: r.IntN(65536),
			Source:     src,
			SourceFile: prefix + ".log",
			Kind:       kinds[r.IntN(len(kinds))],
			Method:     []string{"", "GET", "POST", "CONNECT"}[r.IntN(4)],
			Scheme:     []string{"", "http", "https", "wss"}[r.IntN(4)],
			Host:       host,
			Port:       []int{0, 80, 443, 8443, 53}[r.IntN(5)],
			Status:     []int{0, 200, 204, 301, 403, 407, 502, -1}[r.IntN(8)],
			BytesUp:    r.Int64N(1 << 20),
			BytesDown:  r.Int64N(1 << 40),
			ALPN:       []string{"", "h2", "h2,http/1.1"}[r.IntN(3)],
			TLSVersion: []string{"", "1.2", "1.3"}[r.IntN(3)],
			Decision:   decisions[r.IntN(len(decisions))],
		}
		if r.IntN(5) != 0 {
			f.End = start.Add(time.Duration(r.Int64N(int64(10 * time.Minute))))
		}
		if r.IntN(2) == 0 {
			f.Device = genDevice(f.Client, start)
		}
		if r.IntN(4) == 0 {
			f.Session = fmt.Sprintf("run%d", r.IntN(3))
		}
		if r.IntN(2) == 0 {
			f.URL = fmt.Sprintf("https://%s/p/%d?q=%x", host, i, r.Uint64())
		}
		if r.IntN(2) == 0 {
			f.SNI = host
		}
		if r.IntN(8) == 0 {
			f.Error = "connection reset by peer"
		}
		if r.IntN(3) == 0 {
			f.Reason = []string{"client closed", "idle timeout", "denied by rule 3"}[r.IntN(3)]
		}
		if r.IntN(6) == 0 {
			f.Note = fmt.Sprintf("note %d: ünïcode, comma\nand newline", i)
		}
		if r.IntN(5) == 0 {
			f.Tunnel = fmt.Sprintf("px-%d", r.IntN(40))
			f.Headers = fmt.Sprintf("> Host: h%d\n< Content-Length: %d", r.IntN(9), r.IntN(1000))
		}
		if r.IntN(50) == 0 {
			f.BytesUp, f.BytesDown = -1, -1
		}
		// Two named proxies whose devices share the addresses of the
		// unnamed one's.
		if r.IntN(3) == 0 {
			f.Proxy = []string{"site-a", "site-b"}[r.IntN(2)]
		}
		out[i] = f
	}
	return out
}

// tie gives to the start time to, keeping the zone (so the tie is on the
// instant only) and the device label right for the new time.
func tie(f *flow.Flow, to time.Time) {
	d := f.End.Sub(f.Start)
	f.Start = to.In(f.Start.Location())
	if !f.End.IsZero() {
		f.End = f.Start.Add(d)
	}
	if f.Device != "" {
		f.Device = genDevice(f.Client, f.Start)
	}
}

// shuffled returns fs in a fixed order that is not the order of start.
func shuffled(fs []flow.Flow, seed uint64) []flow.Flow {
	out := slices.Clone(fs)
	r := rand.New(rand.NewPCG(seed, 7))
	r.Shuffle(len(out), func(i, j int) { out[i], out[j] = out[j], out[i] })
	return out
}

// offset is t's zone offset in seconds.
func offset(t time.Time) int {
	_, off := t.Zone()
	return off
}

// diff describes how got differs from want in any field but ID, or
// returns "" when they are the same flow. Times compare as instants and
// zone offsets (a store keeps the offset, not the zone's name).
func diff(got, want flow.Flow) string {
	var d []string
	if !got.Start.Equal(want.Start) || offset(got.Start) != offset(want.Start) {
		d = append(d, fmt.Sprintf("Start = %v, want %v", got.Start, want.Start))
	}
	if !got.End.Equal(want.End) || got.Open() != want.Open() || !want.Open() && offset(got.End) != offset(want.End) {
		d = append(d, fmt.Sprintf("End = %v, want %v", got.End, want.End))
	}
	got.ID, got.Start, got.End = want.ID, want.Start, want.End
	if !flow.Same(got, want) {
		d = append(d, fmt.Sprintf("\n got %+v\nwant %+v", got, want))
	}
	return strings.Join(d, "; ")
}

// briefDiff is diff for a Brief read: only the fields Brief lists count.
func briefDiff(got, want flow.Flow) string {
	if got.ID != want.ID || !got.Start.Equal(want.Start) || offset(got.Start) != offset(want.Start) ||
		!got.End.Equal(want.End) || got.Open() != want.Open() || got.Client != want.Client ||
		got.Device != want.Device || got.Session != want.Session || got.BytesUp != want.BytesUp ||
		got.BytesDown != want.BytesDown || got.Kind != want.Kind || got.SourceFile != want.SourceFile || got.Proxy != want.Proxy {
		return fmt.Sprintf("brief read differs:\n got %+v\nwant %+v", got, want)
	}
	return ""
}

// readAll reads what f selects.
func readAll(t *testing.T, s flow.Store, f flow.Filter) []flow.Flow {
	t.Helper()
	var out []flow.Flow
	if err := s.Flows(context.Background(), f, func(fl flow.Flow) error { out = append(out, fl); return nil }); err != nil {
		t.Fatalf("Flows: %v", err)
	}
	return out
}

// count is CountFlows(f).
func count(t *testing.T, s flow.Store, f flow.Filter) int {
	t.Helper()
	n, err := s.CountFlows(context.Background(), f)
	if err != nil {
		t.Fatalf("CountFlows: %v", err)
	}
	return int(n)
}

// putFile writes one part of file.
func putFile(t *testing.T, s flow.Store, file string, part int, fs []flow.Flow) flow.FileChange {
	t.Helper()
	ch, err := s.PutFileFlows(context.Background(), file, part, fs)
	if err != nil {
		t.Fatalf("PutFileFlows(%q, %d, %d flows): %v", file, part, len(fs), err)
	}
	return ch
}

// endFile ends an import of file that wrote parts parts.
func endFile(t *testing.T, s flow.Store, file string, parts int) flow.FileChange {
	t.Helper()
	ch, err := s.EndFileFlows(context.Background(), file, parts)
	if err != nil {
		t.Fatalf("EndFileFlows(%q, %d): %v", file, parts, err)
	}
	return ch
}

// putRows writes flows with PutFlows.
func putRows(t *testing.T, s flow.Store, fs []flow.Flow) {
	t.Helper()
	if err := s.PutFlows(context.Background(), fs); err != nil {
		t.Fatalf("PutFlows(%d flows): %v", len(fs), err)
	}
}

// matches is the reference of what Filter f selects, minus Limit.
func matches(f flow.Filter, fl flow.Flow) bool { return f.Match(&fl) }

// byStart orders flows by start time then ID, oldest first.
func byStart(a, b flow.Flow) int {
	if c := a.Start.Compare(b.Start); c != 0 {
		return c
	}
	return cmp.Compare(a.ID, b.ID)
}

// selectFlows is the reference of Flows: what f selects of all (which
// carry their IDs), in the order and number f asks for.
// hosts parses host patterns written in a test.
func hosts(ps ...string) []pattern.Pattern {
	out := make([]pattern.Pattern, len(ps))
	for i, p := range ps {
		out[i] = pattern.MustParse(p)
	}
	return out
}

func selectFlows(all []flow.Flow, f flow.Filter) []flow.Flow {
	var out []flow.Flow
	for _, fl := range all {
		if matches(f, fl) {
			out = append(out, fl)
		}
	}
	slices.SortFunc(out, byStart)
	if f.Newest {
		slices.Reverse(out)
	}
	if f.Limit > 0 && len(out) > f.Limit {
		out = out[:f.Limit]
	}
	return out
}

// ids lists the IDs of fs, shortened, for messages.
func ids(fs []flow.Flow) string {
	var b strings.Builder
	for i, f := range fs {
		if i == 12 {
			fmt.Fprintf(&b, " … (%d)", len(fs))
			break
		}
		fmt.Fprintf(&b, " %d", f.ID)
	}
	return "[" + strings.TrimSpace(b.String()) + "]"
}

// sameFlows checks that got is want, flow by flow, IDs and order included.
func sameFlows(t *testing.T, what string, got, want []flow.Flow, brief bool) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("%s: got %d flows %s, want %d %s", what, len(got), ids(got), len(want), ids(want))
		return
	}
	for i := range got {
		if got[i].ID != want[i].ID {
			t.Errorf("%s: flow %d is ID %d (%s), want ID %d (%s)\n got %s\nwant %s",
				what, i, got[i].ID, got[i].Key, want[i].ID, want[i].Key, ids(got[i:]), ids(want[i:]))
			return
		}
		d := diff(got[i], want[i])
		if brief {
			d = briefDiff(got[i], want[i])
		}
		if d != "" {
			t.Errorf("%s: flow %d (ID %d): %s", what, i, want[i].ID, d)
			return
		}
	}
}

// checkFilter checks Flows(f) and CountFlows(f) against the reference
// over all.
func checkFilter(t *testing.T, s flow.Store, name string, all []flow.Flow, f flow.Filter) {
	t.Helper()
	sameFlows(t, name, readAll(t, s, f), selectFlows(all, f), f.Brief)
	unlimited := f
	unlimited.Limit = 0
	if n, want := count(t, s, f), len(selectFlows(all, unlimited)); n != want {
		t.Errorf("%s: CountFlows = %d, want %d", name, n, want)
	}
}

// stored checks that s holds exactly want (matched by Key, which callers
// keep unique), every flow with an ID of its own, read back in (Start, ID)
// order, and returns want with the IDs the store gave.
func stored(t *testing.T, s flow.Store, want []flow.Flow) []flow.Flow {
	t.Helper()
	got := readAll(t, s, flow.Filter{})
	byKey := make(map[string]flow.Flow, len(got))
	owner := make(map[int64]string, len(got))
	for _, g := range got {
		if g.ID == 0 {
			t.Fatalf("flow %s read back without an ID", g.Key)
		}
		if k, dup := owner[g.ID]; dup {
			t.Fatalf("ID %d read back for both %s and %s", g.ID, k, g.Key)
		}
		owner[g.ID] = g.Key
		if _, dup := byKey[g.Key]; dup {
			t.Fatalf("flow %s read back twice", g.Key)
		}
		byKey[g.Key] = g
	}
	out := make([]flow.Flow, len(want))
	wanted := make(map[string]bool, len(want))
	bad := 0
	for i, w := range want {
		wanted[w.Key] = true
		g, ok := byKey[w.Key]
		if !ok {
			t.Errorf("flow %s not read back", w.Key)
			bad++
		} else if d := diff(g, w); d != "" {
			t.Errorf("flow %s: %s", w.Key, d)
			bad++
		}
		if bad > 5 {
			t.FailNow()
		}
		w.ID = g.ID
		out[i] = w
	}
	for _, g := range got {
		if !wanted[g.Key] {
			t.Errorf("flow %s (ID %d) read back but not expected", g.Key, g.ID)
		}
	}
	if t.Failed() {
		t.FailNow()
	}
	sameFlows(t, "Flows in start order", got, selectFlows(out, flow.Filter{}), false)
	return out
}

// idsByKey maps each flow's Key to its ID.
func idsByKey(fs []flow.Flow) map[string]int64 {
	m := make(map[string]int64, len(fs))
	for _, f := range fs {
		m[f.Key] = f.ID
	}
	return m
}

// maxID is the greatest ID in fs.
func maxID(fs []flow.Flow) int64 {
	var m int64
	for _, f := range fs {
		m = max(m, f.ID)
	}
	return m
}

// mixedStore fills s with flows from PutFlows and from two imported files
// (three parts, each given out of start order), written interleaved, all
// over the same minute with ties on start across and within them, and
// returns every flow with its ID.
func mixedStore(t *testing.T, s flow.Store) []flow.Flow {
	t.Helper()
	rows := generated("live", flow.SourceProxy, 30, 1)
	a0 := generated("a0", flow.SourceHAR, 40, 2)
	a1 := generated("a1", flow.SourceHAR, 30, 3)
	b0 := generated("b0", flow.SourceSquid, 25, 4)
	tie(&a0[3], rows[5].Start)
	tie(&b0[0], rows[5].Start)
	tie(&a1[2], rows[5].Start)
	tie(&a0[7], a0[8].Start)
	tie(&rows[9], a1[4].Start)
	tie(&rows[10], a1[4].Start)
	putRows(t, s, rows[:15])
	putFile(t, s, "sha256:aaaa", 0, shuffled(a0, 1))
	putRows(t, s, rows[15:])
	putFile(t, s, "sha256:aaaa", 1, shuffled(a1, 2))
	putFile(t, s, "sha256:bbbb", 0, shuffled(b0, 3))
	endFile(t, s, "sha256:aaaa", 2)
	endFile(t, s, "sha256:bbbb", 1)
	return stored(t, s, slices.Concat(rows, a0, a1, b0))
}

func testFileRoundTrip(t *testing.T, s flow.Store) {
	minus7 := time.FixedZone("PDT", -7*3600)
	nepal := time.FixedZone("", 5*3600+45*60)
	lmt := time.FixedZone("LMT", 561) // an offset in seconds, as old zones have
	t0 := time.Date(2023, 3, 29, 16, 58, 59, 303000007, minus7)
	full := flow.Flow{
		Key: "f0", Start: t0, End: t0.Add(1500*time.Millisecond + 3),
		Client: "10.105.21.199", ClientPort: 50123, Device: "LAB-VM-07", Session: "enrol",
		Source: flow.SourceHAR, SourceFile: `C:\caps\enrol.har`,
		Kind: flow.KindHTTP, Method: "POST", Scheme: "https", Host: "login.microsoftonline.com", Port: 443,
		URL:    "https://login.microsoftonline.com/common/oauth2/token?a=1&b=%20",
		Status: 200, BytesUp: 4096, BytesDown: 123456789012,
		SNI: "login.microsoftonline.com", ALPN: "h2,http/1.1", TLSVersion: "1.3",
		Error: `tls: "bad" record, mac`, Decision: flow.DecisionAllowed, Reason: "client closed", Note: "host named from DNS",
		Tunnel: "px-0a1b2c3d-12", Headers: "> Authorization: REDACTED\n< Set-Cookie: REDACTED\n< X-Ünïcode: ü",
	}
	open := full
	open.Key, open.Start, open.End = "f1", time.Date(2023, 3, 30, 8, 0, 0, 1, nepal), time.Time{}
	open.ClientPort, open.Port, open.Status, open.BytesUp, open.BytesDown = -1, -1, -1, -1, math.MaxInt64
	open.Decision, open.Note = flow.DecisionDenied, "ünïcode\nline two\ttab"
	old := flow.Flow{ // before 1970, and ending before it starts (a skewed clock)
		Key: "f2", Start: time.Date(1969, 7, 20, 20, 17, 40, 999999999, time.UTC),
		End: time.Date(1969, 7, 20, 20, 17, 39, 0, time.UTC), Source: flow.SourcePcap, Kind: flow.KindTCP,
		BytesUp: math.MinInt64 + 1,
	}
	bare := flow.Flow{Key: "f3", Start: t0.Add(time.Hour)} // every other field zero
	long := full
	long.Key, long.Start, long.End = "f4", t0.In(lmt), t0.Add(time.Minute).In(lmt)
	long.URL = "https://xn--bcher-kva.example/" + strings.Repeat("päth/", 2000)
	long.Host, long.Device = "xn--bcher-kva.example", ""
	same := full // the same instant as f0 in another zone: a tie on start
	same.Key, same.Start, same.End, same.Session = "f5", t0.UTC(), t0.Add(time.Second).UTC(), ""
	future := full
	future.Key, future.Start, future.End = "f6", time.Date(2200, 1, 1, 0, 0, 0, 5, nepal), time.Date(2200, 1, 1, 0, 0, 1, 0, nepal)

	part0 := []flow.Flow{bare, open, full, future}
	part1 := []flow.Flow{same, old, long}
	putFile(t, s, "sha256:0123", 0, part0)
	putFile(t, s, "sha256:0123", 1, part1)
	endFile(t, s, "sha256:0123", 2)
	got := stored(t, s, slices.Concat(part0, part1))
	if n := count(t, s, flow.Filter{}); n != 7 {
		t.Errorf("CountFlows = %d, want 7", n)
	}
	// A Brief read of file flows gets the listed fields right too.
	sameFlows(t, "Brief read", readAll(t, s, flow.Filter{Brief: true}), selectFlows(got, flow.Filter{}), true)
}

func testFileOrder(t *testing.T, s flow.Store) {
	all := mixedStore(t, s) // checks ascending order, IDs unique
	sameFlows(t, "Newest", readAll(t, s, flow.Filter{Newest: true}), selectFlows(all, flow.Filter{Newest: true}), false)
	// The ties mixedStore made are there, so order by ID was tested.
	starts := make(map[int64]int)
	for _, f := range all {
		starts[f.Start.UnixNano()]++
	}
	if n := starts[all[slices.IndexFunc(all, func(f flow.Flow) bool { return f.Key == "live/5" })].Start.UnixNano()]; n != 4 {
		t.Fatalf("test data: %d flows start with live/5, want 4", n)
	}
}

func testFileFilters(t *testing.T, s flow.Store) {
	all := mixedStore(t, s)
	sorted := selectFlows(all, flow.Filter{})
	mid := sorted[len(sorted)/2].Start
	byID := slices.Clone(all)
	slices.SortFunc(byID, func(a, b flow.Flow) int { return cmp.Compare(a.ID, b.ID) })
	afterID := byID[len(byID)/3].ID
	cases := []struct {
		name string
		f    flow.Filter
	}{
		{"all", flow.Filter{}},
		{"client address", flow.Filter{Client: "192.168.1.2"}},
		{"client device", flow.Filter{Client: "VM7"}},
		{"client old device", flow.Filter{Client: "OLD-3"}},
		{"client unknown", flow.Filter{Client: "192.168.1.9"}},
		{"host exact", flow.Filter{Hosts: hosts("manage.microsoft.com")}},
		{"host exact upper", flow.Filter{Hosts: hosts("LOGIN.MicrosoftOnline.com")}},
		{"host address", flow.Filter{Hosts: hosts("10.20.30.40")}},
		{"host address glob", flow.Filter{Hosts: hosts("10.20.*")}},
		{"host glob", flow.Filter{Hosts: hosts("*.manage.microsoft.com")}},
		{"host glob upper", flow.Filter{Hosts: hosts("*.MANAGE.microsoft.com")}},
		{"host glob prefix", flow.Filter{Hosts: hosts("login.*")}},
		{"host glob in a label", flow.Filter{Hosts: hosts("*.*windows*.*")}},
		{"host glob last star is zero or more labels", flow.Filter{Hosts: hosts("manage.microsoft.*")}},
		{"host glob stars", flow.Filter{Hosts: hosts("*.*.manage.*")}},
		{"host glob one char", flow.Filter{Hosts: hosts("?.manage.microsoft.*")}},
		{"host glob backtrack", flow.Filter{Hosts: hosts("*.*o*o*t*.c*m")}},
		{"hosts any of", flow.Filter{Hosts: hosts("manage.microsoft.com", "*.windows.net", "login.*")}},
		{"text", flow.Filter{Text: "MANAGE.micro"}},
		{"text in url", flow.Filter{Text: "/p/1"}},
		{"problems", flow.Filter{Problems: true}},
		{"problems newest limit", flow.Filter{Problems: true, Newest: true, Limit: 6}},
		{"before", flow.Filter{Before: flow.PositionOf(&sorted[len(sorted)/2])}},
		{"before newest limit", flow.Filter{Before: flow.PositionOf(&sorted[len(sorted)/2]), Newest: true, Limit: 10}},
		{"before text problems", flow.Filter{Before: flow.PositionOf(&sorted[2*len(sorted)/3]), Text: "manage", Problems: true, Newest: true, Limit: 10}},
		{"host ? is one character", flow.Filter{Hosts: hosts("?.manage.microsoft.com")}},
		{"source har", flow.Filter{Source: flow.SourceHAR}},
		{"source squid", flow.Filter{Source: flow.SourceSquid}},
		{"source proxy", flow.Filter{Source: flow.SourceProxy}},
		{"source none", flow.Filter{Source: flow.SourceNetlog}},
		{"since", flow.Filter{Since: mid}},
		{"since in a zone", flow.Filter{Since: mid.In(genZones[1])}},
		{"until", flow.Filter{Until: mid}},
		{"since until", flow.Filter{Since: genBase.Add(20 * time.Second), Until: genBase.Add(40 * time.Second)}},
		{"after id", flow.Filter{AfterID: afterID}},
		{"after id newest", flow.Filter{AfterID: afterID, Newest: true}},
		{"limit", flow.Filter{Limit: 7}},
		{"limit newest", flow.Filter{Limit: 7, Newest: true}},
		{"limit over", flow.Filter{Limit: 1000}},
		{"newest", flow.Filter{Newest: true}},
		{"combined", flow.Filter{Client: "VM8", Hosts: hosts("*.microsoft*.*"), Since: genBase.Add(10 * time.Second), Limit: 5}},
		{"combined newest", flow.Filter{Client: "192.168.1.1", Source: flow.SourceHAR, Until: mid, AfterID: afterID, Limit: 4, Newest: true}},
		{"brief", flow.Filter{Brief: true}},
		{"brief client", flow.Filter{Brief: true, Client: "VM9"}},
		{"brief newest limit", flow.Filter{Brief: true, Newest: true, Limit: 9, Source: flow.SourceSquid}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			unlimited := c.f
			unlimited.Limit = 0
			selecting := unlimited
			selecting.Newest, selecting.Brief = false, false
			if n := len(selectFlows(all, unlimited)); !strings.Contains(c.name, "unknown") && !strings.Contains(c.name, "none") && !strings.Contains(c.name, "exact") &&
				(n == 0 || n == len(all) && !reflect.DeepEqual(selecting, flow.Filter{})) {
				t.Fatalf("test data: filter selects %d of %d flows, so it tests nothing", n, len(all))
			}
			checkFilter(t, s, c.name, all, c.f)
		})
	}
}

// testFilterProperty: random filters over a store of rows and file parts
// select exactly what flow.Filter.Match selects, in order and number. The
// host patterns are cut from the stored hosts (pieces replaced by '*' or
// '?', case changed) so that most of them match something.
func testFilterProperty(t *testing.T, s flow.Store) {
	all := mixedStore(t, s)
	r := rand.New(rand.NewPCG(7, 7))
	sorted := selectFlows(all, flow.Filter{})
	pick := func() flow.Flow { return sorted[r.IntN(len(sorted))] }
	// hostPatterns are cut from the stored hosts label by label: a label
	// replaced by '*' or '?*', a '*' or '?' put inside one, letters
	// changed in case.
	hostPatterns := func() []pattern.Pattern {
		var out []pattern.Pattern
		for range r.IntN(3) {
			labels := strings.Split(pick().Host, ".")
			for range r.IntN(3) {
				i := r.IntN(len(labels))
				l := labels[i]
				switch r.IntN(5) {
				case 0:
					labels[i] = "*"
				case 1:
					labels[i] = "?*"
				case 2:
					k := r.IntN(len(l) + 1)
					labels[i] = l[:k] + "*" + l[k+r.IntN(len(l)-k+1):]
				case 3:
					labels[i] = l[:len(l)-1] + "?"
				default:
					labels[i] = strings.ToUpper(l)
				}
			}
			if p, err := pattern.Parse(strings.Join(labels, ".")); err == nil {
				out = append(out, p)
			}
		}
		return out
	}
	text := func() string {
		fl := pick()
		s := fl.Host
		if fl.URL != "" && r.IntN(2) == 0 {
			s = fl.URL
		}
		i := r.IntN(len(s))
		return strings.ToUpper(s[i : i+1+r.IntN(min(6, len(s)-i))])
	}
	selected := 0
	for i := range 300 {
		var f flow.Filter
		if r.IntN(3) == 0 {
			f.Client = []string{pick().Client, pick().Device, "VM7", "192.168.1.9"}[r.IntN(4)]
		}
		f.Hosts = hostPatterns()
		if r.IntN(5) == 0 {
			f.Text = text()
		}
		if r.IntN(5) == 0 {
			f.Problems = true
		}
		if r.IntN(4) == 0 {
			f.Before = flow.PositionOf(new(pick()))
		}
		if r.IntN(4) == 0 {
			f.Source = []flow.Source{flow.SourceHAR, flow.SourceSquid, flow.SourceProxy}[r.IntN(3)]
		}
		if r.IntN(4) == 0 {
			f.Proxy = []string{"site-a", "site-b", "site-z"}[r.IntN(3)]
		}
		if r.IntN(3) == 0 {
			f.Since = pick().Start
		}
		if r.IntN(3) == 0 {
			f.Until = pick().Start.Add(time.Duration(r.IntN(3)-1) * time.Nanosecond)
		}
		if r.IntN(4) == 0 {
			f.AfterID = pick().ID
		}
		if r.IntN(3) == 0 {
			f.Limit = 1 + r.IntN(20)
		}
		f.Newest = r.IntN(2) == 0
		f.Brief = r.IntN(4) == 0
		checkFilter(t, s, fmt.Sprintf("random filter %d %+v", i, f), all, f)
		unlimited := f
		unlimited.Limit = 0
		if len(selectFlows(all, unlimited)) > 0 {
			selected++
		}
		if t.Failed() {
			return
		}
	}
	if selected < 100 {
		t.Errorf("test data: only %d of 300 random filters select anything", selected)
	}
}

// spread moves generated flows over ten minutes (generated ones start within
// one), so that they fall in several activity windows.
func spread(fs []flow.Flow, seed uint64) []flow.Flow {
	r := rand.New(rand.NewPCG(seed, 0xac7))
	for i := range fs {
		d := time.Duration(r.Int64N(int64(10 * time.Minute)))
		fs[i].Start = fs[i].Start.Add(d)
		if !fs[i].End.IsZero() {
			fs[i].End = fs[i].End.Add(d)
		}
		fs[i].Device = genDevice(fs[i].Client, fs[i].Start)
		if r.IntN(3) == 0 {
			fs[i].Device = ""
		}
	}
	return fs
}

// checkActivity compares s.Activity(f) with flow.ActivityOf over every
// flow of all, then selected by f.
func checkActivity(t *testing.T, s flow.Store, what string, all []flow.Flow, f flow.Filter) {
	t.Helper()
	var want []flow.Activity
	for _, a := range flow.ActivityOf(selectFlows(all, flow.Filter{})) {
		if f.MatchActivity(&a) {
			want = append(want, a)
		}
	}
	var got []flow.Activity
	if err := s.Activity(context.Background(), f, func(a flow.Activity) error { got = append(got, a); return nil }); err != nil {
		t.Fatalf("%s: Activity: %v", what, err)
	}
	if len(got) != len(want) {
		t.Fatalf("%s: %d windows of activity, want %d:\n got %+v\nwant %+v", what, len(got), len(want), got, want)
	}
	same := func(a, b time.Time) bool {
		_, ao := a.Zone()
		_, bo := b.Zone()
		return a.Equal(b) && ao == bo
	}
	for i := range got {
		g, w := got[i], want[i]
		if g.Proxy != w.Proxy || g.Client != w.Client || g.Session != w.Session || g.Window != w.Window || !same(g.First, w.First) || !same(g.Last, w.Last) ||
			g.Flows != w.Flows || g.Bytes != w.Bytes || g.Lost != w.Lost || g.Device != w.Device || !g.DeviceAt.Equal(w.DeviceAt) {
			t.Fatalf("%s: window %d:\n got %+v\nwant %+v", what, i, g, w)
		}
	}
}

// testActivity: what a store keeps of each client's activity per window
// follows every way flows are written, replaced and dropped, PAC flows
// never count and KindLost records count as lost.
func testActivity(t *testing.T, s flow.Store) {
	rows := spread(generated("live", flow.SourceProxy, 60, 31), 1)
	a0 := spread(generated("a0", flow.SourceHAR, 50, 32), 2)
	a1 := spread(generated("a1", flow.SourceHAR, 40, 33), 3)
	b0 := spread(generated("b0", flow.SourceSquid, 30, 34), 4)
	for i := range 5 { // the proxy's own answers
		rows[i].Kind = flow.KindPAC
	}
	rows[5] = flow.Flow{Key: "lost/192.168.1.2/1", Kind: flow.KindLost, Client: "192.168.1.2", Start: rows[5].Start,
		End: rows[5].Start.Add(40 * time.Second), Lost: 1457, Source: flow.SourceProxy}
	putRows(t, s, rows[:30])
	putFile(t, s, "A", 0, shuffled(a0, 1))
	putRows(t, s, rows[30:])
	putFile(t, s, "A", 1, shuffled(a1, 2))
	putFile(t, s, "B", 0, shuffled(b0, 3))
	endFile(t, s, "A", 2)
	endFile(t, s, "B", 1)
	all := stored(t, s, slices.Concat(rows, a0, a1, b0))
	checkActivity(t, s, "after writing", all, flow.Filter{})
	mid := selectFlows(all, flow.Filter{})[len(all)/2].Start
	for _, f := range []flow.Filter{
		{Client: "192.168.1.2"}, {Client: "192.168.1.9"}, {Proxy: "site-b"}, {Proxy: "site-a", Client: "192.168.1.2"}, {Since: mid}, {Until: mid}, {Since: genBase.Add(3 * time.Minute), Until: genBase.Add(6 * time.Minute)},
	} {
		checkActivity(t, s, fmt.Sprintf("filter %+v", f), all, f)
	}

	// Tunnels completed and their bytes so far (the end only moves later).
	var done []flow.Flow
	for i := 10; i < 40; i++ {
		f := rows[i]
		f.End = f.Start.Add(time.Duration(i) * time.Minute / 7)
		f.BytesDown += int64(i) * 1000
		done = append(done, f)
	}
	putRows(t, s, done)
	all = stored(t, s, slices.Concat(rows[:10], done, rows[40:], a0, a1, b0))
	checkActivity(t, s, "after completing rows", all, flow.Filter{})

	// Rows replaced by ones that end earlier, start elsewhere, lose or
	// change their label, or become the proxy's own: each window they
	// left is read again.
	changed := slices.Clone(done[:12])
	for i := range changed {
		f := &changed[i]
		switch i % 6 {
		case 0:
			f.End = f.Start
		case 1:
			f.Start, f.End = f.Start.Add(3*time.Minute), f.End.Add(3*time.Minute)
		case 2:
			f.Device = ""
			if i == 8 {
				f.Proxy = "site-moved" // the same address behind another proxy
			}
		case 3:
			f.Device = "RENAMED"
		case 4:
			f.Kind = flow.KindPAC
		case 5:
			f.Start = f.Start.Add(-2 * time.Minute)
		}
	}
	putRows(t, s, changed)
	all = stored(t, s, slices.Concat(rows[:10], changed, done[12:], rows[40:], a0, a1, b0))
	checkActivity(t, s, "after changing rows", all, flow.Filter{})

	// A new key written twice in one batch: only its second form counts.
	twice := []flow.Flow{rows[45], rows[46]}
	twice[0].Key, twice[1].Key = "twice", "twice"
	for i, d := range []time.Duration{20 * time.Minute, 25 * time.Minute} { // windows of their own
		twice[i].Client, twice[i].Kind = "10.9.9.9", flow.KindConnect
		twice[i].Start, twice[i].End = genBase.Add(d), genBase.Add(d+time.Second)
	}
	putRows(t, s, twice)
	all = stored(t, s, slices.Concat(rows[:10], changed, done[12:], rows[40:], a0, a1, b0, twice[1:]))
	checkActivity(t, s, "after a key written twice in a batch", all, flow.Filter{})

	// A part replaced by fewer flows, a file ended early, another dropped.
	a1b := spread(generated("a1b", flow.SourceHAR, 7, 35), 5)
	putFile(t, s, "A", 1, a1b)
	endFile(t, s, "B", 0)
	all = stored(t, s, slices.Concat(rows[:10], changed, done[12:], rows[40:], a0, a1b, twice[1:]))
	checkActivity(t, s, "after replacing and dropping parts", all, flow.Filter{})
	endFile(t, s, "A", 0)
	all = stored(t, s, slices.Concat(rows[:10], changed, done[12:], rows[40:], twice[1:]))
	checkActivity(t, s, "after dropping a file", all, flow.Filter{})
}

func testFileReimport(t *testing.T, s flow.Store) {
	f0 := generated("f0", flow.SourceHAR, 5, 10)
	f1 := generated("f1", flow.SourceHAR, 4, 11)
	f2 := generated("f2", flow.SourceHAR, 3, 12)
	g0 := generated("g0", flow.SourceSquid, 2, 13)
	rows := generated("live", flow.SourceProxy, 3, 14)
	putFile(t, s, "F", 0, f0)
	putFile(t, s, "F", 1, f1)
	putFile(t, s, "F", 2, f2)
	endFile(t, s, "F", 3)
	putFile(t, s, "G", 0, g0)
	endFile(t, s, "G", 1)
	putRows(t, s, rows)
	before := stored(t, s, slices.Concat(f0, f1, f2, g0, rows))

	// The same part again: nothing duplicated, every ID kept.
	putFile(t, s, "F", 0, f0)
	again := stored(t, s, slices.Concat(f0, f1, f2, g0, rows))
	sameFlows(t, "after importing part 0 again", again, before, false)

	// As many flows as before, changed: the IDs stay, the contents change.
	f1b := slices.Clone(f1)
	for i := range f1b {
		f1b[i].End = f1b[i].Start.Add(time.Duration(i+1) * time.Second)
		f1b[i].BytesDown += 7
		f1b[i].Note = "re-read"
	}
	putFile(t, s, "F", 1, f1b)
	changed := stored(t, s, slices.Concat(f0, f1b, f2, g0, rows))
	if got, want := idsByKey(changed), idsByKey(before); !maps.Equal(got, want) {
		t.Errorf("a part re-imported with as many flows changed IDs:\n got %v\nwant %v", got, want)
	}

	// Fewer flows in a part: the part's old flows are gone, no other flow
	// changes.
	f2b := generated("f2b", flow.SourceHAR, 2, 15)
	putFile(t, s, "F", 2, f2b)
	fewer := stored(t, s, slices.Concat(f0, f1b, f2b, g0, rows))
	kept := idsByKey(changed)
	for _, f := range fewer {
		if strings.HasPrefix(f.Key, "f2b/") {
			continue
		}
		if f.ID != kept[f.Key] {
			t.Errorf("replacing part 2 changed the ID of %s: %d -> %d", f.Key, kept[f.Key], f.ID)
		}
	}

	// An import that ends after two parts drops the earlier third part,
	// and only that.
	putFile(t, s, "F", 0, f0)
	putFile(t, s, "F", 1, f1b)
	endFile(t, s, "F", 2)
	two := stored(t, s, slices.Concat(f0, f1b, g0, rows))
	sameFlows(t, "after an import of two parts", selectFlows(two, flow.Filter{}), selectFlows(slices.DeleteFunc(slices.Clone(fewer), func(f flow.Flow) bool {
		return strings.HasPrefix(f.Key, "f2b/")
	}), flow.Filter{}), false)

	// Another file's parts and ends never touch F.
	g0b := generated("g0b", flow.SourceSquid, 6, 16)
	putFile(t, s, "G", 0, g0b)
	putFile(t, s, "G", 3, g0)
	endFile(t, s, "G", 4)
	endFile(t, s, "H", 0) // a file never imported
	withG := stored(t, s, slices.Concat(f0, f1b, g0b, g0, rows))
	fIDs := idsByKey(two)
	for _, f := range withG {
		if !strings.HasPrefix(f.Key, "g0") && f.ID != fIDs[f.Key] {
			t.Errorf("writing file G changed the ID of %s: %d -> %d", f.Key, fIDs[f.Key], f.ID)
		}
	}

	// Ending F at zero parts removes all of F and nothing else.
	endFile(t, s, "F", 0)
	rest := stored(t, s, slices.Concat(g0b, g0, rows))
	sameFlows(t, "after ending F at 0 parts", selectFlows(rest, flow.Filter{}), selectFlows(slices.DeleteFunc(slices.Clone(withG), func(f flow.Flow) bool {
		return strings.HasPrefix(f.Key, "f")
	}), flow.Filter{}), false)
	if n := count(t, s, flow.Filter{}); n != len(g0b)+len(g0)+len(rows) {
		t.Errorf("CountFlows = %d, want %d", n, len(g0b)+len(g0)+len(rows))
	}
}

func testFileKeysIndependent(t *testing.T, s flow.Store) {
	// File flows are matched by file and part: the same Key twice in a
	// part, in another file, or in a row written by PutFlows is another
	// flow each time.
	mk := func(note string, sec int) flow.Flow {
		f := generated("k", flow.SourceHAR, 1, uint64(sec))[0]
		f.Key, f.Note, f.Start = "same-key", note, genBase.Add(time.Duration(sec)*time.Second)
		f.End = f.Start.Add(time.Second)
		return f
	}
	notes := func(t *testing.T) (string, map[string]int64) {
		t.Helper()
		var got []string
		idOf := map[string]int64{}
		for _, f := range readAll(t, s, flow.Filter{}) {
			if f.Key != "same-key" {
				t.Errorf("flow %d has Key %q, want %q", f.ID, f.Key, "same-key")
			}
			got = append(got, f.Note)
			idOf[f.Note] = f.ID
		}
		return strings.Join(got, " "), idOf
	}
	putFile(t, s, "F", 0, []flow.Flow{mk("F0b", 2), mk("F0a", 1)})
	putFile(t, s, "G", 0, []flow.Flow{mk("G0", 3)})
	putRows(t, s, []flow.Flow{mk("row", 4)})
	got, first := notes(t)
	if want := "F0a F0b G0 row"; got != want {
		t.Fatalf("flows = %q, want %q", got, want)
	}
	putRows(t, s, []flow.Flow{mk("row2", 5)}) // replaces the row only
	putFile(t, s, "F", 0, []flow.Flow{mk("F0b", 2), mk("F0a", 1)})
	got, second := notes(t)
	if want := "F0a F0b G0 row2"; got != want {
		t.Fatalf("after PutFlows and re-import: flows = %q, want %q", got, want)
	}
	for _, n := range []string{"F0a", "F0b", "G0"} {
		if first[n] != second[n] {
			t.Errorf("%s: ID %d -> %d", n, first[n], second[n])
		}
	}
	if first["row"] != second["row2"] {
		t.Errorf("PutFlows of the same Key changed the row's ID %d -> %d", first["row"], second["row2"])
	}
	endFile(t, s, "F", 0)
	if got, _ := notes(t); got != "G0 row2" {
		t.Errorf("after ending F: flows = %q, want %q", got, "G0 row2")
	}
}

func testFileIDsGrow(t *testing.T, s flow.Store) {
	// A reader that has seen IDs up to M asks for AfterID: M and must get
	// exactly the flows written since, however they were written.
	var all []flow.Flow
	var seen int64
	step := func(name string, added []flow.Flow, removed string) {
		t.Helper()
		var want []flow.Flow
		for _, f := range all {
			if removed == "" || !strings.HasPrefix(f.Key, removed) {
				want = append(want, f)
			}
		}
		want = stored(t, s, append(want, added...))
		all = want
		var fresh []flow.Flow
		isNew := make(map[string]bool)
		for _, f := range added {
			isNew[f.Key] = true
		}
		for _, f := range want {
			if isNew[f.Key] {
				fresh = append(fresh, f)
			}
		}
		sameFlows(t, name+": AfterID of the last ID seen", readAll(t, s, flow.Filter{AfterID: seen}), selectFlows(fresh, flow.Filter{}), false)
		seen = max(seen, maxID(want))
	}
	a0 := generated("a0", flow.SourceHAR, 5, 20)
	putFile(t, s, "A", 0, a0)
	step("first part", a0, "")
	r1 := generated("r1", flow.SourceProxy, 3, 21)
	putRows(t, s, r1)
	step("rows after a part", r1, "")
	b0 := generated("b0", flow.SourceSquid, 4, 22)
	putFile(t, s, "B", 0, b0)
	step("part after rows", b0, "")
	a1 := generated("a1", flow.SourceHAR, 3, 23)
	putFile(t, s, "A", 1, a1)
	step("second part", a1, "")
	r2 := generated("r2", flow.SourceProxy, 2, 24)
	putRows(t, s, r2)
	step("more rows", r2, "")
	endFile(t, s, "A", 2)
	step("end", nil, "")
	putFile(t, s, "A", 0, a0)
	step("same part again", nil, "")
	a1b := generated("a1b", flow.SourceHAR, 2, 25)
	putFile(t, s, "A", 1, a1b)
	step("part replaced by fewer flows", a1b, "a1/")
	r3 := generated("r3", flow.SourceProxy, 1, 26)
	putRows(t, s, r3)
	step("rows after a replaced part", r3, "")
	endFile(t, s, "A", 1)
	step("end dropping a part", nil, "a1b/")
	a1c := generated("a1c", flow.SourceHAR, 4, 27)
	putFile(t, s, "A", 1, a1c)
	step("part written again after it was dropped", a1c, "")
}

func testFileEmpty(t *testing.T, s flow.Store) {
	putFile(t, s, "E", 0, nil)
	putFile(t, s, "E", 1, []flow.Flow{})
	endFile(t, s, "E", 2)
	if n := count(t, s, flow.Filter{}); n != 0 {
		t.Fatalf("CountFlows after empty parts = %d, want 0", n)
	}
	// An empty part replaces the part of an earlier import like any other.
	f0 := generated("f0", flow.SourceHAR, 3, 30)
	f1 := generated("f1", flow.SourceHAR, 2, 31)
	putFile(t, s, "F", 0, f0)
	putFile(t, s, "F", 1, f1)
	endFile(t, s, "F", 2)
	stored(t, s, slices.Concat(f0, f1))
	putFile(t, s, "F", 0, nil)
	putFile(t, s, "F", 1, f1)
	endFile(t, s, "F", 2)
	stored(t, s, f1)
}

func testFileCancel(t *testing.T, s flow.Store) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	big := generated("c0", flow.SourceHAR, 3000, 40)
	if _, err := s.PutFileFlows(ctx, "C", 0, big); !errors.Is(err, context.Canceled) {
		t.Errorf("PutFileFlows with a cancelled context = %v, want an error wrapping context.Canceled", err)
	}
	if n := count(t, s, flow.Filter{}); n != 0 {
		t.Fatalf("a cancelled PutFileFlows stored %d flows", n)
	}
	// A cancelled re-import leaves the earlier import as it was.
	small := generated("c1", flow.SourceHAR, 4, 41)
	putFile(t, s, "C", 0, small)
	before := stored(t, s, small)
	if _, err := s.PutFileFlows(ctx, "C", 0, big); !errors.Is(err, context.Canceled) {
		t.Errorf("PutFileFlows with a cancelled context over a stored part = %v, want an error wrapping context.Canceled", err)
	}
	sameFlows(t, "after a cancelled re-import", stored(t, s, small), before, false)
}

func testFileLarge(t *testing.T, s flow.Store) {
	p0 := generated("p0", flow.SourceSquid, 20000, 50)
	p1 := generated("p1", flow.SourceSquid, 3000, 51)
	p2 := generated("p2", flow.SourceSquid, 1, 52)
	putFile(t, s, "L", 0, shuffled(p0, 5))
	putFile(t, s, "L", 1, p1)
	putFile(t, s, "L", 2, p2)
	endFile(t, s, "L", 3)
	all := stored(t, s, slices.Concat(p0, p1, p2))
	checkFilter(t, s, "newest host glob", all, flow.Filter{Hosts: hosts("*.manage.microsoft.com"), Newest: true, Limit: 5000})
	checkFilter(t, s, "brief client", all, flow.Filter{Client: "VM9", Brief: true})
}

func testFileConcurrent(t *testing.T, s flow.Store) {
	// Imports and live writes at once, with a reader polling by AfterID
	// as a live view does: every flow gets an ID of its own, and the
	// poller, taking up from the greatest ID it has seen, misses none.
	ctx := context.Background()
	var want []flow.Flow
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for w := range 3 {
		file := fmt.Sprintf("file%d", w)
		var parts [][]flow.Flow
		for p := range 3 {
			parts = append(parts, generated(fmt.Sprintf("%s.%d", file, p), flow.SourceHAR, 150, uint64(60+10*w+p)))
			want = append(want, parts[p]...)
		}
		wg.Go(func() {
			for p, fs := range parts {
				if _, err := s.PutFileFlows(ctx, file, p, fs); err != nil {
					errs <- fmt.Errorf("PutFileFlows(%s, %d): %w", file, p, err)
					return
				}
			}
			if _, err := s.EndFileFlows(ctx, file, len(parts)); err != nil {
				errs <- fmt.Errorf("EndFileFlows(%s): %w", file, err)
			}
		})
	}
	for w := range 2 {
		var batches [][]flow.Flow
		for b := range 10 {
			batches = append(batches, generated(fmt.Sprintf("live%d.%d", w, b), flow.SourceProxy, 20, uint64(100+10*w+b)))
			want = append(want, batches[b]...)
		}
		wg.Go(func() {
			for _, fs := range batches {
				if err := s.PutFlows(ctx, fs); err != nil {
					errs <- fmt.Errorf("PutFlows: %w", err)
					return
				}
			}
		})
	}
	done := make(chan struct{})
	polled := make(map[string]int64)
	var last int64
	poll := func() {
		for _, f := range readAll(t, s, flow.Filter{AfterID: last}) {
			if id, dup := polled[f.Key]; dup {
				t.Errorf("poll after ID %d read %s (ID %d) again, first read as ID %d", last, f.Key, f.ID, id)
			}
			polled[f.Key] = f.ID
			last = max(last, f.ID)
		}
	}
	go func() { wg.Wait(); close(done) }()
	for polling := true; polling; {
		select {
		case <-done:
			polling = false
		default:
		}
		poll() // once more after the writers are done
	}
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	all := stored(t, s, want)
	for _, f := range all {
		if id, ok := polled[f.Key]; !ok {
			t.Errorf("polling by AfterID missed %s (ID %d)", f.Key, f.ID)
		} else if id != f.ID {
			t.Errorf("polling read %s as ID %d, it is ID %d", f.Key, id, f.ID)
		}
	}
}

func testFileStop(t *testing.T, s flow.Store) {
	// Flows stops at fn's first error, in the middle of a part too, and
	// returns that error.
	all := mixedStore(t, s)
	stop := errors.New("enough")
	for _, f := range []flow.Filter{{}, {Newest: true}, {Brief: true}, {Source: flow.SourceHAR}} {
		want := selectFlows(all, f)
		for _, n := range []int{1, 3, 50, len(want)} {
			var got []flow.Flow
			err := s.Flows(context.Background(), f, func(fl flow.Flow) error {
				got = append(got, fl)
				if len(got) == n {
					return stop
				}
				return nil
			})
			if err != stop {
				t.Errorf("Flows(%+v) stopped at flow %d returned %v, want fn's error %v", f, n, err, stop)
			}
			sameFlows(t, fmt.Sprintf("Flows stopped at flow %d", n), got, want[:n], f.Brief)
		}
	}
}

func testFileChange(t *testing.T, s flow.Store) {
	// PutFileFlows and EndFileFlows count what they add and drop: a
	// first import adds every flow, the same parts again add nothing, a
	// part of another size adds or drops the difference, and the end
	// drops the parts beyond.
	p0, p1, p2 := generated("x0", flow.SourceSquid, 30, 90), generated("x1", flow.SourceSquid, 20, 91), generated("x2", flow.SourceSquid, 10, 92)
	steps := []struct {
		name string
		do   func() flow.FileChange
		want flow.FileChange
	}{
		{"part 0", func() flow.FileChange { return putFile(t, s, "X", 0, p0) }, flow.FileChange{Added: 30}},
		{"part 1", func() flow.FileChange { return putFile(t, s, "X", 1, p1) }, flow.FileChange{Added: 20}},
		{"part 2", func() flow.FileChange { return putFile(t, s, "X", 2, p2) }, flow.FileChange{Added: 10}},
		{"end", func() flow.FileChange { return endFile(t, s, "X", 3) }, flow.FileChange{}},
		{"part 0 again", func() flow.FileChange { return putFile(t, s, "X", 0, p0) }, flow.FileChange{}},
		{"part 1, larger", func() flow.FileChange { return putFile(t, s, "X", 1, slices.Concat(p1, p2)) }, flow.FileChange{Added: 10}},
		{"end before part 2", func() flow.FileChange { return endFile(t, s, "X", 2) }, flow.FileChange{Dropped: 10}},
		{"part 0, smaller", func() flow.FileChange { return putFile(t, s, "X", 0, p0[:5]) }, flow.FileChange{Dropped: 25}},
		{"end keeping every part", func() flow.FileChange { return endFile(t, s, "X", -1) }, flow.FileChange{}},
	}
	for _, st := range steps {
		if got := st.do(); got != st.want {
			t.Errorf("%s: %+v, want %+v", st.name, got, st.want)
		}
	}
	if n := count(t, s, flow.Filter{}); n != 35 {
		t.Errorf("the store holds %d flows, want 35 (5 of part 0, 30 of part 1)", n)
	}
}

func testUnfinishedImports(t *testing.T, s flow.Store) {
	// An import is unfinished from its first part to its end, with the
	// flows it wrote so far; importing the file again starts the count
	// anew, and the end takes it off the list, with or without dropping.
	ctx := context.Background()
	list := func() []flow.UnfinishedImport {
		t.Helper()
		u, err := s.UnfinishedImports(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return u
	}
	if u := list(); len(u) != 0 {
		t.Fatalf("a new store lists %+v", u)
	}
	withFile := func(fs []flow.Flow, name string) []flow.Flow {
		for i := range fs {
			fs[i].SourceFile = name
		}
		return fs
	}
	a0, a1 := withFile(generated("a0", flow.SourceHAR, 7, 70), "/cases/a.har"), withFile(generated("a1", flow.SourceHAR, 5, 71), "/cases/a.har")
	b0 := withFile(generated("b0", flow.SourceSquid, 3, 72), "/cases/b.log")
	before := time.Now().Add(-time.Second)
	putFile(t, s, "A", 0, a0)
	putFile(t, s, "A", 1, a1)
	putFile(t, s, "B", 0, b0)
	u := list()
	if len(u) != 2 || u[0].File != "A" || u[0].SourceFile != "/cases/a.har" || u[0].Flows != 12 ||
		u[1].File != "B" || u[1].SourceFile != "/cases/b.log" || u[1].Flows != 3 {
		t.Fatalf("two imports under way: %+v", u)
	}
	if u[0].Started.Before(before) || u[0].Started.After(time.Now()) {
		t.Errorf("A started at %s", u[0].Started)
	}
	// A again (the first was killed): part 0 starts the count anew.
	putFile(t, s, "A", 0, a0)
	if u := list(); len(u) != 2 || u[0].File != "A" && u[1].File != "A" {
		t.Fatalf("A begun again: %+v", u)
	} else if a := u[slices.IndexFunc(u, func(x flow.UnfinishedImport) bool { return x.File == "A" })]; a.Flows != 7 {
		t.Errorf("A begun again: %d flows so far, want 7", a.Flows)
	}
	endFile(t, s, "A", 2)
	if u := list(); len(u) != 1 || u[0].File != "B" {
		t.Errorf("A ended: %+v", u)
	}
	endFile(t, s, "B", -1)
	if u := list(); len(u) != 0 {
		t.Errorf("both ended: %+v", u)
	}
	if n := count(t, s, flow.Filter{}); n != 15 {
		t.Errorf("the store holds %d flows, want 15", n)
	}
}
