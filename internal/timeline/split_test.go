package timeline_test

import (
	"time"

	"github.com/pilotwire/pilotwire/internal/flow"
	"github.com/pilotwire/pilotwire/internal/timeline"
)

// split returns the sessions of flows (in start order), numbered, oldest
// first, as listing sessions from flows does.
func split(flows []flow.Flow, gap time.Duration) []timeline.Session {
	sp := timeline.NewSplitter(gap)
	for i := range flows {
		sp.Add(&flows[i])
	}
	return sp.Sessions()
}
