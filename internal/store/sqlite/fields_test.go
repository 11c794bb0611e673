package sqlite_test

import (
	"context"
	"fmt"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/pilotwire/pilotwire/internal/flow"
	"github.com/pilotwire/pilotwire/internal/pattern"
	"github.com/pilotwire/pilotwire/internal/store/sqlite"
)

// allFields is every field Filter.Fields names.
var allFields = func() []flow.Fields {
	var out []flow.Fields
	for f := flow.FieldKey; f <= flow.FieldTunnel; f <<= 1 {
		out = append(out, f)
	}
	return out
}()

// fullFlow is a flow with every field set, each to a value of its own, so a
// column read into the wrong field shows.
func fullFlow(prefix string, i int) flow.Flow {
	start := time.Date(2026, 11, 25, 9, 0, i, 0, time.FixedZone("", 3600))
	s := func(field string) string { return fmt.Sprintf("%s-%s-%d", prefix, field, i) }
	return flow.Flow{Key: s("key"), Start: start, End: start.Add(time.Duration(i+1) * time.Millisecond),
		Client: s("client"), ClientPort: 40000 + i, Device: s("device"), Session: s("session"), Source: flow.Source(s("source")),
		SourceFile: s("file"), Kind: flow.Kind(s("kind")), Method: s("method"), Scheme: s("scheme"), Host: s("host"),
		Port: 1000 + i, URL: s("url"), Status: 200 + i, BytesUp: int64(10 + i), BytesDown: int64(20 + i), SNI: s("sni"),
		ALPN: s("alpn"), TLSVersion: s("tls"), Error: s("error"), Decision: flow.Decision(s("decision")), Reason: s("reason"),
		Note: s("note"), Lost: int64(30 + i), Tunnel: s("tunnel")}
}

// TestReadFields: a read that asks for some fields (Filter.Fields) gets
// those as a full read has them; from rows it gets exactly those (ID and
// Start besides), so SQLite reads fewer columns; from imported segments,
// which decode every field anyway, it may get more. Every field alone, the
// fields a report reads, and all of them.
func TestReadFields(t *testing.T) {
	ctx := context.Background()
	db, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "pw.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var rows, file []flow.Flow
	for i := range 5 {
		rows = append(rows, fullFlow("row", 2*i))
		file = append(file, fullFlow("seg", 2*i+1))
	}
	if err := db.PutFlows(ctx, rows); err != nil {
		t.Fatal(err)
	}
	if _, err := db.PutFileFlows(ctx, "fieldsfile000000", 0, file); err != nil {
		t.Fatal(err)
	}
	read := func(f flow.Filter) []flow.Flow {
		var out []flow.Flow
		if err := db.Flows(ctx, f, func(fl flow.Flow) error { out = append(out, fl); return nil }); err != nil {
			t.Fatalf("read %+v: %v", f, err)
		}
		return out
	}
	full := read(flow.Filter{})
	if len(full) != 10 || full[0].Key != "row-key-0" || full[1].Key != "seg-key-1" {
		t.Fatalf("full read: %d flows, want 10 with rows and segment flows alternating", len(full))
	}
	report := flow.FieldEnd | flow.FieldClient | flow.FieldDevice | flow.FieldSession | flow.FieldKind | flow.FieldScheme |
		flow.FieldHost | flow.FieldPort | flow.FieldURL | flow.FieldStatus | flow.FieldBytesUp | flow.FieldBytesDown |
		flow.FieldSNI | flow.FieldError | flow.FieldDecision | flow.FieldReason
	sets := append(append([]flow.Fields{}, allFields...), report, flow.FieldKey|flow.FieldNote, ^flow.Fields(0))
	for _, fs := range sets {
		got := read(flow.Filter{Fields: fs})
		if len(got) != len(full) {
			t.Fatalf("fields %#x: %d flows, want %d", fs, len(got), len(full))
		}
		for i := range got {
			want := full[i]
			fs.Trim(&want)
			g := got[i]
			fromRow := i%2 == 0 // rows start at even seconds, segment flows at odd ones
			if !fromRow {
				fs.Trim(&g) // a segment may fill more
			}
			if !reflect.DeepEqual(g, want) || !g.Start.Equal(want.Start) {
				t.Errorf("fields %#x, flow %d (row %v):\n got %+v\nwant %+v", fs, i, fromRow, got[i], want)
			}
		}
	}
	// A filter still applies to fields not asked for.
	got := read(flow.Filter{Fields: flow.FieldBytesUp, Hosts: []pattern.Pattern{pattern.MustParse("row-host-4")}})
	if len(got) != 1 || got[0].BytesUp != 14 || got[0].Host != "" {
		t.Errorf("host filter with fields BytesUp: %+v, want the one flow of row-host-4 with only BytesUp", got)
	}
}
