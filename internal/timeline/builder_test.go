package timeline_test

import (
	"fmt"
	"path/filepath"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/pilotwire/pilotwire/internal/catalog"
	"github.com/pilotwire/pilotwire/internal/flow"
	"github.com/pilotwire/pilotwire/internal/timeline"
	"github.com/pilotwire/pilotwire/internal/timeline/synth"
)

// stream feeds flows to a Builder one at a time through one variable that
// is scribbled over after each Add, as a store's read loop reuses its
// flow: a Builder that kept anything f points to would show it.
func stream(t *testing.T, flows []flow.Flow, opt timeline.Options) *timeline.Timeline {
	t.Helper()
	b, err := timeline.NewBuilder(catalog.Default(), opt)
	if err != nil {
		t.Fatal(err)
	}
	var f flow.Flow
	for i := range flows {
		f = flows[i]
		b.Add(&f)
		f = flow.Flow{Host: "scribbled.example", URL: "http://scribbled.example/x.exe", Error: "scribbled", Start: time.Unix(1, 0)}
	}
	return b.Timeline()
}

// TestBuilderStreamsLikeBuild: a timeline built by streaming flows into a
// Builder is the one Build makes, over the seed, the negative corpus, the
// proxy's PAC answers and a synthetic session; flows added out of start
// order come out as if sorted.
func TestBuilderStreamsLikeBuild(t *testing.T) {
	inputs := map[string][]flow.Flow{"seed": loadSeed(t)}
	files, err := filepath.Glob("testdata/negative/*.jsonl")
	if err != nil || len(files) == 0 {
		t.Fatalf("negative corpus: %v %v", files, err)
	}
	for _, file := range files {
		if inputs[filepath.Base(file)], err = readJSONL(file); err != nil {
			t.Fatal(err)
		}
	}
	inputs["synth"] = synth.Flows(20000, base, 4*time.Hour)
	var pac []flow.Flow
	for i, f := range inputs["seed"] {
		f.ID = 0 // known by position, PAC answers counted
		if i%40 == 3 {
			p := f
			p.Kind, p.URL, p.Host = flow.KindPAC, "http://127.0.0.1:8080/proxy.pac", "127.0.0.1"
			pac = append(pac, p)
		}
		pac = append(pac, f)
	}
	inputs["seed with PAC answers"] = pac
	for name, flows := range inputs {
		t.Run(name, func(t *testing.T) {
			for _, opt := range []timeline.Options{{}, {T0: flows[0].Start.Add(-10 * time.Second), MaxFlowIDs: 3}} {
				want := build(t, flows, opt)
				got := stream(t, flows, opt)
				if !reflect.DeepEqual(got, want) {
					t.Errorf("T0 %v: streamed timeline differs from Build's:\n got %s\nwant %s", opt.T0, brief(got), brief(want))
				}
			}
		})
	}
	// Out of order: synthetic flows have IDs and distinct start times, so
	// sorting them gives one order only.
	flows := inputs["synth"]
	rev := slices.Clone(flows)
	slices.Reverse(rev)
	if got, want := stream(t, rev, timeline.Options{}), build(t, flows, timeline.Options{}); !reflect.DeepEqual(got, want) {
		t.Errorf("reversed: streamed timeline differs from Build's:\n got %s\nwant %s", brief(got), brief(want))
	}
}

func brief(tl *timeline.Timeline) string {
	return fmt.Sprintf("session %+v, %d services, milestones %v, %d phases, %d attention", tl.Session, len(tl.Services), ids(tl),
		len(tl.Phases), len(tl.Attention))
}

// TestBuilderKeepsZones: the Builder keeps times as Unix nanoseconds and a
// table of zones; a report still shows each time in the zone its flow had,
// also when a parser made a new *time.Location for every time it read
// (more than the Builder keeps by pointer).
func TestBuilderKeepsZones(t *testing.T) {
	var flows []flow.Flow
	for i := range 100 {
		zone := time.FixedZone(fmt.Sprintf("Z%d", i%3), (i%3+1)*3600)
		f := tf(i*10, "unknown-"+fmt.Sprint(i)+".example")
		f.Start, f.End = f.Start.In(zone), f.End.In(zone)
		flows = append(flows, f)
	}
	tl := build(t, flows, timeline.Options{})
	last := flows[len(flows)-1]
	if got, want := tl.Session.Start.String(), flows[0].Start.String(); got != want {
		t.Errorf("session start %s, want %s", got, want)
	}
	if got, want := tl.Session.End.String(), last.End.String(); got != want {
		t.Errorf("session end %s, want %s", got, want)
	}
	var unknown []timeline.Attention
	for _, a := range tl.Attention {
		if a.Kind == timeline.AttentionUnknownHost {
			unknown = append(unknown, a)
		}
	}
	if len(unknown) != len(flows) {
		t.Fatalf("%d unknown-host items, want %d", len(unknown), len(flows))
	}
	for i, a := range unknown {
		if got, want := a.First.String(), flows[i].Start.String(); got != want {
			t.Errorf("attention %d (%s) first %s, want %s", i, a.Host.Host, got, want)
		}
	}
}

// TestFlowFieldsSuffice: flows with only timeline.FlowFields (and ID and
// Start), as a store asked for those gives them, make the same timeline as
// whole flows, over the seed, the negative corpus and the evidence cases.
func TestFlowFieldsSuffice(t *testing.T) {
	// Flows whose meaning hangs on a field the corpus leaves alone: a
	// host known by its SNI, a mismatched SNI, a scheme that overrides the
	// URL, a port that makes HTTP not plain, a named session, lost flows.
	byField := []flow.Flow{tf(0, "198.51.100.7"), tf(1, "ztd.dds.microsoft.com"), tf(2, "officecdn.microsoft.com"),
		tf(3, "officecdn.microsoft.com"), tf(4, "dl.google.com"), {Kind: flow.KindLost, Start: base.Add(5 * time.Second), Lost: 3}}
	byField[0].SNI = "ztd.dds.microsoft.com"
	byField[1].SNI = "evil.example"
	byField[2].Kind, byField[2].Scheme, byField[2].URL = flow.KindHTTP, "https", "http://officecdn.microsoft.com/o/setup.exe"
	byField[3].Kind, byField[3].Port, byField[3].URL = flow.KindHTTP, 443, "/o/other.exe"
	byField[4].Kind, byField[4].URL = flow.KindHTTP, "/chrome/setup.msi"
	for i := range byField {
		byField[i].Session = "lab-run"
	}
	inputs := map[string][]flow.Flow{"seed": loadSeed(t), "evidence": evidenceFlows(), "by field": byField}
	files, err := filepath.Glob("testdata/negative/*.jsonl")
	if err != nil || len(files) == 0 {
		t.Fatalf("negative corpus: %v %v", files, err)
	}
	for _, file := range files {
		if inputs[filepath.Base(file)], err = readJSONL(file); err != nil {
			t.Fatal(err)
		}
	}
	for name, flows := range inputs {
		trimmed := slices.Clone(flows)
		for i := range trimmed {
			timeline.FlowFields.Trim(&trimmed[i])
		}
		if got, want := build(t, trimmed, timeline.Options{}), build(t, flows, timeline.Options{}); !reflect.DeepEqual(got, want) {
			t.Errorf("%s: the timeline of flows with only FlowFields differs:\n got %s\nwant %s", name, brief(got), brief(want))
		}
	}
}

// TestLostFlowsAreNotTraffic: a KindLost record (flows the proxy saw but
// could not store) is no conversation of the device: no "(no host)" band,
// attention item or milestone host, no flow of the session; the session
// says how many flows were lost.
func TestLostFlowsAreNotTraffic(t *testing.T) {
	lost := flow.Flow{ID: 7, Kind: flow.KindLost, Client: "10.0.0.5", Start: base.Add(5 * time.Second),
		End: base.Add(8 * time.Second), Lost: 40}
	flows := []flow.Flow{tf(0, "ztd.dds.microsoft.com"), lost, tf(10, "login.microsoftonline.com"), lost}
	flows[3].Start, flows[3].End, flows[3].Lost = base.Add(20*time.Second), base.Add(20*time.Second), 2
	tl := build(t, flows, timeline.Options{})
	if tl.Session.Flows != 2 || tl.Session.Lost != 42 {
		t.Errorf("session: %d flows, %d lost; want 2 flows, 42 lost", tl.Session.Flows, tl.Session.Lost)
	}
	if want := base.Add(11 * time.Second); !tl.Session.End.Equal(want) {
		t.Errorf("session ends %v, want %v (the last flow's end, not the lost record's)", tl.Session.End, want)
	}
	for _, b := range tl.Services {
		for _, h := range b.Hosts {
			if h.Host == "(no host)" {
				t.Errorf("band %s has host (no host): %+v", b.Service.ID, b)
			}
		}
	}
	for _, a := range tl.Attention {
		t.Errorf("attention %s %s %s: want none", a.Kind, a.Host.Host, a.Detail)
	}
	for _, m := range tl.Milestones {
		for _, h := range m.Hosts {
			if h.Host == "(no host)" {
				t.Errorf("milestone %s names host (no host)", m.ID)
			}
		}
	}
}
