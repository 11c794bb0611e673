package timeline_test

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/pilotwire/pilotwire/internal/flow"
	"github.com/pilotwire/pilotwire/internal/timeline"
)

// TestSplitActivityEqualsFlows: splitting a store's activity windows
// (AddActivity) gives exactly the sessions of splitting its flows (Add),
// for every gap of at least a window; shorter gaps are refused.
func TestSplitActivityEqualsFlows(t *testing.T) {
	base := time.Date(2026, 11, 25, 9, 0, 0, 0, time.UTC)
	zones := []*time.Location{time.UTC, time.FixedZone("", -7*3600), time.FixedZone("", 5*3600+45*60)}
	for seed := range uint64(20) {
		r := rand.New(rand.NewPCG(seed, 99))
		var flows []flow.Flow
		at := base
		for i := range 3000 {
			// Mostly busy, now and then a pause of up to two hours.
			step := time.Duration(r.Int64N(int64(20 * time.Second)))
			if r.IntN(200) == 0 {
				step = time.Duration(r.Int64N(int64(2 * time.Hour)))
			}
			at = at.Add(step)
			f := flow.Flow{
				ID: int64(i + 1), Start: at.In(zones[r.IntN(len(zones))]),
				Client: fmt.Sprintf("10.0.0.%d", r.IntN(4)), Kind: flow.KindConnect,
				BytesUp: r.Int64N(5000), BytesDown: r.Int64N(1 << 30),
			}
			if r.IntN(4) != 0 {
				f.End = f.Start.Add(time.Duration(r.Int64N(int64(40 * time.Minute))))
			}
			switch r.IntN(40) {
			case 0:
				f.Kind = flow.KindPAC
			case 1:
				f.Kind, f.Lost, f.BytesUp, f.BytesDown = flow.KindLost, r.Int64N(1000), 0, 0
			case 2:
				f.Session = "run" + fmt.Sprint(r.IntN(2))
			}
			if r.IntN(5) == 0 {
				f.Device = fmt.Sprintf("VM%d-%d", r.IntN(3), i/500)
			}
			flows = append(flows, f)
		}
		acts := flow.ActivityOf(flows)
		for _, gap := range []time.Duration{time.Minute, 90 * time.Second, 5 * time.Minute, 30 * time.Minute, 3 * time.Hour} {
			byFlows := timeline.NewSplitter(gap)
			for i := range flows {
				byFlows.Add(&flows[i])
			}
			byActivity := timeline.NewSplitter(gap)
			for i := range acts {
				if !byActivity.AddActivity(&acts[i]) {
					t.Fatalf("gap %s: AddActivity refused", gap)
				}
			}
			want, got := byFlows.Sessions(), byActivity.Sessions()
			if len(want) < 2 {
				t.Fatalf("seed %d gap %s: test data makes %d sessions", seed, gap, len(want))
			}
			if !slices.EqualFunc(got, want, func(a, b timeline.Session) bool {
				return a.Number == b.Number && a.Client == b.Client && a.Name == b.Name && a.Device == b.Device &&
					a.Start.Equal(b.Start) && a.Start.Location().String() == b.Start.Location().String() &&
					a.End.Equal(b.End) && a.Flows == b.Flows && a.Bytes == b.Bytes && a.Lost == b.Lost
			}) {
				t.Fatalf("seed %d gap %s: sessions from activity differ:\n got %+v\nwant %+v", seed, gap, got, want)
			}
		}
	}
	if timeline.NewSplitter(30 * time.Second).AddActivity(&flow.Activity{}) {
		t.Error("AddActivity accepted a gap shorter than a window")
	}
}
