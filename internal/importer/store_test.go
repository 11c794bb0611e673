package importer

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/pilotwire/pilotwire/internal/flow"
)

// memStore is a flow.Store in a map, enough for Import.
type memStore struct {
	mu      sync.Mutex
	flows   map[string]flow.Flow
	puts    int
	failAt  int // fail the n-th PutFlows (1-based); 0 never
	maxSize int
}

func (m *memStore) PutFlows(_ context.Context, fs []flow.Flow) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.puts++
	if m.puts == m.failAt {
		return errors.New("database is locked")
	}
	m.maxSize = max(m.maxSize, len(fs))
	if m.flows == nil {
		m.flows = map[string]flow.Flow{}
	}
	for _, f := range fs {
		m.flows[f.Key] = f
	}
	return nil
}

func (m *memStore) Flows(context.Context, flow.Filter, func(flow.Flow) error) error { return nil }

func (m *memStore) CountFlows(_ context.Context, f flow.Filter) (int64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := int64(0)
	for _, fl := range m.flows {
		if f.Source == "" || fl.Source == f.Source {
			n++
		}
	}
	return n, nil
}

func (m *memStore) Clients(context.Context, flow.Filter) ([]flow.ClientSummary, error) {
	return nil, nil
}
func (m *memStore) Close() error { return nil }

func TestImportTwice(t *testing.T) {
	st := &memStore{}
	ctx := context.Background()
	path := "netlog/testdata/chrome-netlog-google-homepage.json"
	res, err := Import(ctx, st, path, Options{}, 10)
	if err != nil {
		t.Fatal(err)
	}
	if res.Flows != 34 || res.New != 34 || len(st.flows) != 34 || st.puts != 4 || st.maxSize != 10 {
		t.Errorf("first import: %d flows, %d new, store %d in %d puts of ≤ %d", res.Flows, res.New, len(st.flows), st.puts, st.maxSize)
	}
	res, err = Import(ctx, st, path, Options{Format: FormatNetlog}, 0)
	if err != nil {
		t.Fatal(err)
	}
	if res.Flows != 34 || res.New != 0 || len(st.flows) != 34 {
		t.Errorf("second import: %d flows, %d new, store %d", res.Flows, res.New, len(st.flows))
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
