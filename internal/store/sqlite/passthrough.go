package sqlite

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/pilotwire/pilotwire/internal/flow"
	"github.com/pilotwire/pilotwire/internal/store/segment"
)

// The learned pass-through list of TLS interception (flow.PassThroughStore),
// in the pass_through table (migration 0006).

var _ flow.PassThroughStore = (*DB)(nil)

// LearnPassThrough adds p to the list; a host already listed keeps its
// first entry.
func (s *DB) LearnPassThrough(ctx context.Context, p flow.PassThrough) error {
	if s.readOnly {
		return fmt.Errorf("learn pass-through %s: %w", p.Host, errReadOnly)
	}
	if p.Host == "" {
		return fmt.Errorf("learn pass-through: no host")
	}
	_, tz := p.Learned.Zone()
	err := s.withRaw(ctx, func(c *rawConn) error {
		return c.run(`INSERT INTO pass_through (host, reason, learned_ns, learned_tz, client, flow_key) VALUES (?, ?, ?, ?, ?, ?)
			ON CONFLICT(host) DO NOTHING`, []any{p.Host, p.Reason, p.Learned.UnixNano(), int64(tz), p.Client, p.Flow}, nil)
	}, nil)
	if err != nil {
		return fmt.Errorf("learn pass-through %s: %w", p.Host, err)
	}
	return nil
}

// PassThroughs returns the list, ordered by host.
func (s *DB) PassThroughs(ctx context.Context) ([]flow.PassThrough, error) {
	var out []flow.PassThrough
	zones := segment.Zones{}
	err := s.withRaw(ctx, func(c *rawConn) error {
		out = out[:0]
		return c.run(`SELECT host, reason, learned_ns, learned_tz, client, flow_key FROM pass_through ORDER BY host`, nil, func(st uintptr) error {
			out = append(out, flow.PassThrough{Host: strings.Clone(c.columnView(st, 0)), Reason: strings.Clone(c.columnView(st, 1)),
				Learned: time.Unix(0, c.columnInt(st, 2)).In(zones.Get(c.columnInt(st, 3))),
				Client:  strings.Clone(c.columnView(st, 4)), Flow: strings.Clone(c.columnView(st, 5))})
			return nil
		})
	}, nil)
	if err != nil {
		return nil, fmt.Errorf("list pass-through hosts: %w", err)
	}
	return out, nil
}
