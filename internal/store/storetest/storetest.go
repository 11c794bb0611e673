// Package storetest is the behavioural contract of flow.Store as a suite
// that every implementation runs from its own tests.
package storetest

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/pilotwire/pilotwire/internal/flow"
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
		if err := s.PutFlows(context.Background(), []flow.Flow{want}); err != nil {
			t.Fatal(err)
		}
		got := collect(t, s, flow.Filter{})
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
		if got[0] != want {
			t.Errorf("round trip:\n got %+v\nwant %+v", got[0], want)
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
		if err := s.PutFlows(context.Background(), []flow.Flow{done, done}); err != nil {
			t.Fatal(err)
		}
		got := collect(t, s, flow.Filter{})
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
			{"host exact", flow.Filter{Host: "LOGIN.live.com"}, "k4"},
			{"host glob", flow.Filter{Host: "h?.manage.*"}, "k0 k1 k2 k3 k5 k6 k7 k8 k9"},
			{"since until", flow.Filter{Since: base.Add(2 * time.Second), Until: base.Add(5 * time.Second)}, "k2 k3 k4"},
			{"limit", flow.Filter{Limit: 3}, "k0 k1 k2"},
			{"newest", flow.Filter{Limit: 2, Newest: true}, "k9 k8"},
			{"source", flow.Filter{Source: flow.SourceHAR}, ""},
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
				b.BytesDown != f.BytesDown {
				t.Errorf("flow %d: brief read differs from full read:\nbrief %+v\n full %+v", i, b, f)
			}
		}
		if got := collect(t, s, flow.Filter{Brief: true, Client: "VM7"}); len(got) != 1 || got[0].ID != full[1].ID {
			t.Errorf("Brief with Client filter: got %+v", got)
		}
	})

	t.Run("Clients", func(t *testing.T) {
		s := open(t)
		defer s.Close()
		var all []flow.Flow
		for i := range 4 {
			all = append(all, sample(i))
		}
		all[3].Device = "VM7"
		if err := s.PutFlows(context.Background(), all); err != nil {
			t.Fatal(err)
		}
		got, err := s.Clients(context.Background(), flow.Filter{})
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 2 {
			t.Fatalf("got %d clients, want 2: %+v", len(got), got)
		}
		// 10.0.0.2 has k1 and k3, the newest flow.
		c := got[0]
		if c.Client != "10.0.0.2" || c.Device != "VM7" || c.Flows != 2 || c.Bytes != 101+103+1000+3000 {
			t.Errorf("first client = %+v", c)
		}
		if !c.First.Equal(base.Add(time.Second)) || !c.Last.Equal(base.Add(3*time.Second+250*time.Millisecond)) {
			t.Errorf("first client span = %v..%v", c.First, c.Last)
		}
	})

	t.Run("NoKey", func(t *testing.T) {
		s := open(t)
		defer s.Close()
		f := sample(1)
		f.Key = ""
		if err := s.PutFlows(context.Background(), []flow.Flow{f}); err == nil {
			t.Errorf("PutFlows accepted a flow without a key")
		}
	})
}
