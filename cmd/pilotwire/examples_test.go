package main

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"sort"
	"testing"

	"github.com/pilotwire/pilotwire/internal/flow"
)

var updateExamples = flag.Bool("update-examples", false, "rewrite examples/ from the seed fixture")

// seedExample is the seed's provisioning run as a Squid access.log, shipped
// so that a new user can try report, sessions and import on a realistic run.
const seedExample = "../../examples/autopilot-seed-access.log"

// seedSquidLog writes the seed fixture's flows in Squid's native format.
func seedSquidLog(t *testing.T) []byte {
	t.Helper()
	// Squid writes a line when a transaction ends, so a real log is in end order.
	flows := seedFlows(t)
	sort.SliceStable(flows, func(i, j int) bool { return flows[i].End.Before(flows[j].End) })
	var log bytes.Buffer
	for _, f := range flows {
		target := f.URL
		if f.Kind == flow.KindConnect {
			target = fmt.Sprintf("%s:%d", f.Host, f.Port)
		}
		code := "TCP_MISS"
		if f.Kind == flow.KindConnect && f.Decision != flow.DecisionDenied {
			code = "TCP_TUNNEL"
		}
		if f.Decision == flow.DecisionDenied {
			code = "TCP_DENIED"
		}
		fmt.Fprintf(&log, "%d.%03d %6d %s %s/%d %d %s %s - HIER_DIRECT/203.0.113.7 -\n", f.End.Unix(), f.End.Nanosecond()/1e6,
			f.End.Sub(f.Start).Milliseconds(), f.Client, code, f.Status, f.BytesDown, f.Method, target)
	}
	return log.Bytes()
}

// TestSeedExampleUpToDate keeps examples/ in step with the seed fixture.
func TestSeedExampleUpToDate(t *testing.T) {
	want := seedSquidLog(t)
	if *updateExamples {
		if err := os.WriteFile(seedExample, want, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile(seedExample)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s is out of date with the seed fixture; run go test ./cmd/pilotwire -run SeedExample -update-examples", seedExample)
	}
}
