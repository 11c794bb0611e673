package postgres

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/pilotwire/pilotwire/internal/flow"
)

// Later is a store on a database that could not be reached when the
// proxy started: every call tries to open it (at most once per retry
// interval) and, once open, goes to it. Until then writes fail, so the
// Recorder keeps flows in memory and its spool, and delivers them when
// the database comes. Errors of the database itself (a newer schema, a
// refused login) are reported the same way, each time.
type Later struct {
	url   string
	name  string
	retry time.Duration

	mu      sync.Mutex
	db      *DB
	lastTry time.Time
	lastErr error
	closed  bool
}

var (
	_ flow.Store            = (*Later)(nil)
	_ flow.PassThroughStore = (*Later)(nil)
)

// OpenLater returns a store that opens the database at rawURL when it can
// (Open), trying again at most every retry; firstErr is the error of the
// first try, which the caller already met.
func OpenLater(rawURL string, retry time.Duration, firstErr error) *Later {
	return &Later{url: rawURL, name: Redact(rawURL), retry: retry, lastTry: time.Now(), lastErr: firstErr}
}

// errNotYet wraps the last error of opening a database not reached yet.
var errNotYet = errors.New("not reached yet")

func (l *Later) get(ctx context.Context) (*DB, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil, fmt.Errorf("store %s: closed", l.name)
	}
	if l.db != nil {
		return l.db, nil
	}
	if time.Since(l.lastTry) >= l.retry {
		l.lastTry = time.Now()
		octx, cancel := context.WithTimeout(ctx, 10*time.Second)
		db, err := Open(octx, l.url)
		cancel()
		if err == nil {
			l.db = db
			return db, nil
		}
		l.lastErr = err
	}
	return nil, fmt.Errorf("store %s %w: %v", l.name, errNotYet, l.lastErr)
}

// Ready reports whether the database has been opened.
func (l *Later) Ready() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.db != nil
}

func (l *Later) PutFlows(ctx context.Context, flows []flow.Flow) error {
	db, err := l.get(ctx)
	if err != nil {
		return err
	}
	return db.PutFlows(ctx, flows)
}

func (l *Later) PutFileFlows(ctx context.Context, file string, part int, flows []flow.Flow) (flow.FileChange, error) {
	db, err := l.get(ctx)
	if err != nil {
		return flow.FileChange{}, err
	}
	return db.PutFileFlows(ctx, file, part, flows)
}

func (l *Later) EndFileFlows(ctx context.Context, file string, parts int) (flow.FileChange, error) {
	db, err := l.get(ctx)
	if err != nil {
		return flow.FileChange{}, err
	}
	return db.EndFileFlows(ctx, file, parts)
}

func (l *Later) UnfinishedImports(ctx context.Context) ([]flow.UnfinishedImport, error) {
	db, err := l.get(ctx)
	if err != nil {
		return nil, err
	}
	return db.UnfinishedImports(ctx)
}

func (l *Later) Flows(ctx context.Context, f flow.Filter, fn func(flow.Flow) error) error {
	db, err := l.get(ctx)
	if err != nil {
		return err
	}
	return db.Flows(ctx, f, fn)
}

func (l *Later) CountFlows(ctx context.Context, f flow.Filter) (int64, error) {
	db, err := l.get(ctx)
	if err != nil {
		return 0, err
	}
	return db.CountFlows(ctx, f)
}

func (l *Later) Activity(ctx context.Context, f flow.Filter, fn func(flow.Activity) error) error {
	db, err := l.get(ctx)
	if err != nil {
		return err
	}
	return db.Activity(ctx, f, fn)
}

func (l *Later) LearnPassThrough(ctx context.Context, p flow.PassThrough) error {
	db, err := l.get(ctx)
	if err != nil {
		return err
	}
	return db.LearnPassThrough(ctx, p)
}

func (l *Later) PassThroughs(ctx context.Context) ([]flow.PassThrough, error) {
	db, err := l.get(ctx)
	if err != nil {
		return nil, err
	}
	return db.PassThroughs(ctx)
}

// Close closes the database if it was opened.
func (l *Later) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.closed = true
	if l.db != nil {
		return l.db.Close()
	}
	return nil
}
