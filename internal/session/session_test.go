package session_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pilotwire/pilotwire/internal/catalog"
	"github.com/pilotwire/pilotwire/internal/flow"
	"github.com/pilotwire/pilotwire/internal/session"
	"github.com/pilotwire/pilotwire/internal/store/mem"
	"github.com/pilotwire/pilotwire/internal/timeline"
)

// TestFindAndFlows: sessions of a store are found from its activity, the
// newest of a client chosen, and only its flows handed out; what cannot be
// chosen says why in a typed error.
func TestFindAndFlows(t *testing.T) {
	ctx := context.Background()
	st := mem.New()
	t0 := time.Date(2026, 11, 25, 9, 0, 0, 0, time.UTC)
	var fs []flow.Flow
	for i, at := range []time.Duration{0, time.Minute, 2 * time.Hour, 2*time.Hour + time.Minute} {
		fs = append(fs, flow.Flow{Key: string(rune('a' + i)), Start: t0.Add(at), End: t0.Add(at + time.Second),
			Client: "10.0.0.23", Kind: flow.KindConnect, Host: "ztd.dds.microsoft.com"})
	}
	fs = append(fs, flow.Flow{Key: "other", Start: t0, Client: "10.0.0.99", Kind: flow.KindConnect, Host: "x.example"})
	if err := st.PutFlows(ctx, fs); err != nil {
		t.Fatal(err)
	}
	src := session.FromStore(st, "test store")
	defer src.Close()
	all, err := session.List(ctx, src, 30*time.Minute)
	if err != nil || len(all) != 3 {
		t.Fatalf("List = %d sessions, %v; want 3", len(all), err)
	}
	s, err := session.Find(ctx, src, 30*time.Minute, 0, session.Who{Client: "10.0.0.23"})
	if err != nil || s.Number != 3 || s.Flows != 2 {
		t.Fatalf("Find newest of 10.0.0.23 = %+v, %v", s, err)
	}
	var keys []string
	if err := session.Flows(ctx, src, s, 0, func(f *flow.Flow) { keys = append(keys, f.Key) }); err != nil {
		t.Fatal(err)
	}
	if strings.Join(keys, " ") != "c d" {
		t.Errorf("session flows %q, want c d", keys)
	}
	tl, err := session.Timeline(ctx, src, s, catalog.Default(), timeline.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if tl.Session.Number != 3 || tl.Session.Flows != 2 || tl.Session.Client != "10.0.0.23" || !tl.T0.Equal(t0.Add(2*time.Hour)) {
		t.Errorf("Timeline of session 3 = number %d, %d flows of %s from %s; want number 3, 2 flows of 10.0.0.23 from %s",
			tl.Session.Number, tl.Session.Flows, tl.Session.Client, tl.T0, t0.Add(2*time.Hour))
	}
	var choice *session.ChoiceError
	if _, err := session.Pick(all, 9, session.Who{}, "test store"); !errors.As(err, &choice) || !strings.Contains(err.Error(), "sessions 1 to 3") {
		t.Errorf("Pick(9) = %v, want a ChoiceError naming sessions 1 to 3", err)
	}
	if _, err := session.Pick(all, 0, session.Who{Client: "10.9.9.9"}, "test store"); !errors.Is(err, flow.ErrNotFound) {
		t.Errorf("Pick(unknown client) = %v, want flow.ErrNotFound", err)
	}
	var none *session.NoFlowsError
	if _, err := session.Pick(nil, 0, session.Who{}, "empty"); !errors.As(err, &none) {
		t.Errorf("Pick of no sessions = %v, want a NoFlowsError", err)
	}
}

// TestReadFile: a capture file is read into the store given, its flows
// numbered in file order and handed out in start order, as a store's are;
// closing the Source closes the store.
func TestReadFile(t *testing.T) {
	ctx := context.Background()
	// Squid logs a request when it ends: the second line started first.
	path := filepath.Join(t.TempDir(), "access.log")
	log := "1700000100.000    100 10.20.0.15 TCP_TUNNEL/200 6120 CONNECT ztd.dds.microsoft.com:443 - HIER_DIRECT/20.190.151.7 -\n" +
		"1700000100.500   2000 10.20.0.15 TCP_TUNNEL/200 512 CONNECT login.microsoftonline.com:443 - HIER_DIRECT/20.190.151.68 -\n"
	if err := os.WriteFile(path, []byte(log), 0o644); err != nil {
		t.Fatal(err)
	}
	st := mem.New()
	src, res, err := session.ReadFile(ctx, path, true, st)
	if err != nil {
		t.Fatalf("ReadFile: %v (%+v)", err, res)
	}
	if src.Name() != path {
		t.Errorf("Name() = %q, want %q", src.Name(), path)
	}
	s, err := session.Find(ctx, src, 30*time.Minute, 0, session.Who{})
	if err != nil || s.Flows != 2 {
		t.Fatalf("Find = %+v, %v; want one session of 2 flows", s, err)
	}
	var got []string
	if err := session.Flows(ctx, src, s, 0, func(f *flow.Flow) { got = append(got, fmt.Sprint(f.ID, " ", f.Host)) }); err != nil {
		t.Fatal(err)
	}
	if want := "2 login.microsoftonline.com, 1 ztd.dds.microsoft.com"; strings.Join(got, ", ") != want {
		t.Errorf("flows %q, want %q", strings.Join(got, ", "), want)
	}
	if err := src.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := st.CountFlows(ctx, flow.Filter{}); err == nil {
		t.Error("the store still answers after the Source was closed")
	}
}
