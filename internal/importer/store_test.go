package importer

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/pilotwire/pilotwire/internal/flow"
)

// memStore is a flow.Store in a map, enough for Import, which writes
// through PutFileFlows and EndFileFlows only. (cmd/pilotwire's tests import
// into real SQLite files.)
type memStore struct {
	mu      sync.Mutex
	parts   map[string][]flow.Flow // by file and part
	puts    int
	failAt  int // fail the n-th PutFileFlows (1-based); 0 never
	maxSize int
}

func (m *memStore) PutFlows(context.Context, []flow.Flow) error {
	return errors.New("Import wrote with PutFlows")
}

func (m *memStore) PutFileFlows(_ context.Context, file string, part int, fs []flow.Flow) (flow.FileChange, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.puts++
	if m.puts == m.failAt {
		return flow.FileChange{}, errors.New("database is locked")
	}
	m.maxSize = max(m.maxSize, len(fs))
	if m.parts == nil {
		m.parts = map[string][]flow.Flow{}
	}
	k := fmt.Sprint(file, "/", part)
	d := int64(len(fs) - len(m.parts[k]))
	m.parts[k] = fs
	if d >= 0 {
		return flow.FileChange{Added: d}, nil
	}
	return flow.FileChange{Dropped: -d}, nil
}

func (m *memStore) dropPart(file string, part int) (int, bool) {
	fs, ok := m.parts[fmt.Sprint(file, "/", part)]
	delete(m.parts, fmt.Sprint(file, "/", part))
	return len(fs), ok
}

func (m *memStore) EndFileFlows(_ context.Context, file string, parts int) (flow.FileChange, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var ch flow.FileChange
	for p := parts; p >= 0; p++ {
		n, ok := m.dropPart(file, p)
		if !ok {
			break
		}
		ch.Dropped += int64(n)
	}
	return ch, nil
}

func (m *memStore) UnfinishedImports(context.Context) ([]flow.UnfinishedImport, error) {
	return nil, nil
}

// count is how many flows the store holds.
func (m *memStore) count() int {
	n, _ := m.CountFlows(context.Background(), flow.Filter{})
	return int(n)
}

func (m *memStore) Flows(context.Context, flow.Filter, func(flow.Flow) error) error { return nil }

func (m *memStore) CountFlows(_ context.Context, f flow.Filter) (int64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := int64(0)
	for _, part := range m.parts {
		for _, fl := range part {
			if f.Source == "" || fl.Source == f.Source {
				n++
			}
		}
	}
	return n, nil
}

func (m *memStore) Close() error { return nil }
func (m *memStore) Activity(context.Context, flow.Filter, func(flow.Activity) error) error {
	return nil
}

func TestImportTwice(t *testing.T) {
	st := &memStore{}
	ctx := context.Background()
	path := "netlog/testdata/chrome-netlog-google-homepage.json"
	res, err := Import(ctx, st, path, Options{}, 10)
	if err != nil {
		t.Fatal(err)
	}
	if res.Flows != 34 || res.New != 34 || st.count() != 34 || st.puts != 4 || st.maxSize != 10 {
		t.Errorf("first import: %d flows, %d new, store %d in %d puts of ≤ %d", res.Flows, res.New, st.count(), st.puts, st.maxSize)
	}
	res, err = Import(ctx, st, path, Options{Format: FormatNetlog}, 0)
	if err != nil {
		t.Fatal(err)
	}
	if res.Flows != 34 || res.New != 0 || st.count() != 34 {
		t.Errorf("second import: %d flows, %d new, store %d", res.Flows, res.New, st.count())
	}
}

func TestImportStoreFails(t *testing.T) {
	st := &memStore{failAt: 2}
	_, err := Import(context.Background(), st, "har/testdata/edge.har", Options{}, 5)
	if err == nil || !strings.Contains(err.Error(), "database is locked") {
		t.Errorf("error %v", err)
	}
	if _, err := Import(context.Background(), &memStore{}, "importer.go", Options{}, 5); !errors.Is(err, ErrUnknownFormat) {
		t.Errorf("error %v, want ErrUnknownFormat", err)
	}
}
