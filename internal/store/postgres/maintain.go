package postgres

import "context"

// Analyze refreshes the planner's statistics of the flows table. A table
// filled in one go (store copy, a big import) has none until autovacuum
// comes by, and without them the planner may read a session's flows by
// client and sort them for every page instead of walking the start
// index: a million-flow report took 87 s instead of 5.
func (s *DB) Analyze(ctx context.Context) error {
	if s.readOnly {
		return nil
	}
	if _, err := s.pool.Exec(ctx, `ANALYZE flows`); err != nil {
		return s.wrap("analyze", err)
	}
	return nil
}
