package segment

import (
	"encoding/hex"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/pilotwire/pilotwire/internal/flow"
)

// segmentFlows is a part of a file as an importer gives it: out of start
// order, with ties, zones, open flows and empty strings.
func segmentFlows() []flow.Flow {
	base := time.Date(2026, 11, 25, 17, 28, 0, 0, time.FixedZone("", 3600))
	var out []flow.Flow
	for i := range 50 {
		f := flow.Flow{
			Key:    fmt.Sprintf("3f9c0d2a51e8b7a4/line:%d", i+1),
			Start:  base.Add(time.Duration((i*7919)%50) * 13 * time.Millisecond),
			Client: fmt.Sprintf("10.0.0.%d", i%3), ClientPort: 50000 + i, Device: "LAB-VM-07",
			Source: flow.SourceSquid, SourceFile: "/tmp/access.log", Kind: flow.KindConnect, Method: "CONNECT",
			Host: fmt.Sprintf("h%d.manage.microsoft.com", i%5), Port: 443, Status: 200,
			BytesUp: int64(i) * 1000, BytesDown: -int64(i), URL: fmt.Sprintf("h%d:443", i%5),
		}
		if i%4 != 0 {
			f.End = f.Start.Add(time.Duration(i-10) * time.Millisecond) // some end before they start
		}
		if i%10 == 3 {
			f.Start = f.Start.UTC()
			f.End = f.End.UTC()
			f.Start = out[0].Start.UTC() // a tie with the first flow, in another zone
			f.Error, f.Reason, f.Note, f.Decision = "refused", "ACL", "ü ✓", flow.DecisionDenied
		}
		if i%10 == 5 {
			f.Tunnel = fmt.Sprintf("px-1-%d", i) // a request inside an intercepted tunnel
		}
		out = append(out, f)
	}
	return out
}

func TestSegmentRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		name  string
		flows []flow.Flow
	}{
		{"empty", nil},
		{"one", segmentFlows()[:1]},
		{"mixed", segmentFlows()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			blob, lo, hi := Encode(tc.flows)
			got, err := Decode(blob, 100, nil, &Opts{})
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tc.flows) {
				t.Fatalf("decoded %d flows, want %d", len(got), len(tc.flows))
			}
			for i, g := range got {
				if i > 0 {
					p := got[i-1]
					if g.Start.Before(p.Start) || g.Start.Equal(p.Start) && g.ID <= p.ID {
						t.Errorf("flow %d (ID %d, %v) after ID %d, %v: not in (start, ID) order", i, g.ID, g.Start, p.ID, p.Start)
					}
				}
				want := tc.flows[g.ID-100]
				if !g.Start.Equal(want.Start) || !g.End.Equal(want.End) {
					t.Errorf("ID %d: %v..%v, want %v..%v", g.ID, g.Start, g.End, want.Start, want.End)
				}
				if g.Start.Format(time.RFC3339Nano) != want.Start.Format(time.RFC3339Nano) {
					t.Errorf("ID %d: start %s, want %s (zone kept)", g.ID, g.Start.Format(time.RFC3339Nano), want.Start.Format(time.RFC3339Nano))
				}
				g.ID, g.Start, g.End = 0, want.Start, want.End
				if !reflect.DeepEqual(g, want) {
					t.Errorf("flow %d:\n got %+v\nwant %+v", i, g, want)
				}
			}
			if len(got) > 0 && (lo != got[0].Start.UnixNano() || hi != got[len(got)-1].Start.UnixNano()) {
				t.Errorf("range %d..%d, want %d..%d", lo, hi, got[0].Start.UnixNano(), got[len(got)-1].Start.UnixNano())
			}
		})
	}
}

// TestSegmentDamage cuts and corrupts a real segment: every result is an
// error that says it is a damaged segment, never a panic.
func TestSegmentDamage(t *testing.T) {
	blob, _, _ := Encode(segmentFlows())
	for n := range len(blob) {
		if _, err := Decode(blob[:n], 1, nil, &Opts{}); !errors.Is(err, ErrDamaged) {
			t.Fatalf("blob cut at %d of %d: error %v, want a damaged segment", n, len(blob), err)
		}
	}
	if _, err := Decode(append(blob[:len(blob):len(blob)], 0), 1, nil, &Opts{}); !errors.Is(err, ErrDamaged) {
		t.Errorf("trailing byte: error %v", err)
	}
}

func FuzzDecodeSegment(f *testing.F) {
	blob, _, _ := Encode(segmentFlows())
	f.Add(blob)
	one, _, _ := Encode(segmentFlows()[:1])
	f.Add(one)
	f.Add([]byte{Version, 1, 1, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		flows, err := Decode(b, 1, nil, &Opts{})
		if err != nil {
			if !errors.Is(err, ErrDamaged) {
				t.Fatalf("error %v is not a damaged segment", err)
			}
			return
		}
		// What decodes must encode to a blob that decodes the same.
		again, _, _ := Encode(flows)
		back, err := Decode(again, 1, nil, &Opts{})
		if err != nil || len(back) != len(flows) {
			t.Fatalf("re-encoded %d flows: %d back, %v", len(flows), len(back), err)
		}
	})
}

// segmentV1 is a segment of two flows written by the encoder before
// version 2 added Flow.Tunnel: stores hold such blobs, and still read them.
const segmentV1 = "01020a000931302e302e302e323303686172046874747003474554056874747073157a74642e6464732e6d6963726f736f66742e636f6d016e07636f6e6e65637409612e6578616d706c650000036b2f3180c8b1c9c3bce586310081a8d6b90700f6069003000a010000020003040506000000000000071f68747470733a2f2f7a74642e6464732e6d6963726f736f66742e636f6d2f780102013280d0acf30e000000f6060000000100000200080000090000000000000000"

func TestSegmentVersion1(t *testing.T) {
	blob, err := hex.DecodeString(segmentV1)
	if err != nil {
		t.Fatal(err)
	}
	got, err := Decode(blob, 7, nil, &Opts{})
	if err != nil {
		t.Fatal(err)
	}
	base := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	want := []flow.Flow{
		{ID: 7, Key: "k/1", Start: base, End: base.Add(time.Second), Client: "10.0.0.23", Source: flow.SourceHAR, Kind: flow.KindHTTP, Method: "GET", Scheme: "https", Host: "ztd.dds.microsoft.com", Port: 443, URL: "https://ztd.dds.microsoft.com/x", Status: 200, BytesDown: 5, Note: "n"},
		{ID: 8, Key: "k/2", Start: base.Add(2 * time.Second), Client: "10.0.0.23", Source: flow.SourceHAR, Kind: flow.KindConnect, Host: "a.example", Port: 443},
	}
	if len(got) != len(want) {
		t.Fatalf("decoded %d flows, want %d", len(got), len(want))
	}
	for i := range want {
		if !got[i].Start.Equal(want[i].Start) || !got[i].End.Equal(want[i].End) {
			t.Errorf("flow %d: times %s–%s, want %s–%s", i, got[i].Start, got[i].End, want[i].Start, want[i].End)
		}
		got[i].Start, got[i].End, want[i].Start, want[i].End = time.Time{}, time.Time{}, time.Time{}, time.Time{}
		if !reflect.DeepEqual(got[i], want[i]) {
			t.Errorf("flow %d:\n got %+v\nwant %+v", i, got[i], want[i])
		}
	}
	// The encoder writes version 4 now, and a version it does not know
	// is refused.
	if b, _, _ := Encode(want); b[0] != 4 {
		t.Errorf("encoder writes version %d", b[0])
	}
	blob[0] = 5
	if _, err := Decode(blob, 7, nil, &Opts{}); err == nil || !strings.Contains(err.Error(), "unknown version") {
		t.Errorf("version 5: %v", err)
	}
}

// segmentV2 is a segment written by the encoder before version 3 added
// Flow.Headers: an intercepted request and its tunnel.
const segmentV2 = "020209000931302e302e302e32330570726f7879046874747003474554056874747073157a74642e6464732e6d6963726f736f66742e636f6d0470782d3107636f6e6e6563740000036b2f3180c8b1c9c3bce586310081a8d6b90700f6069003000a01000002000304050600000000000000071f68747470733a2f2f7a74642e6464732e6d6963726f736f66742e636f6d2f7801000470782d3180d0acf30e000000f606000000010000020008000006000000000000000000"

func TestSegmentVersion2(t *testing.T) {
	blob, err := hex.DecodeString(segmentV2)
	if err != nil {
		t.Fatal(err)
	}
	got, err := Decode(blob, 1, nil, &Opts{})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].Tunnel != "px-1" || got[0].URL != "https://ztd.dds.microsoft.com/x" || got[0].Headers != "" ||
		got[1].Key != "px-1" || got[1].Kind != flow.KindConnect {
		t.Errorf("decoded %+v", got)
	}
}

// segmentV3 is a segment written by the encoder before version 4 added
// Flow.Proxy: an intercepted request with its headers, and its tunnel.
const segmentV3 = "03020a000931302e302e302e32330570726f7879046874747003474554056874747073157a74642e6464732e6d6963726f736f66742e636f6d0470782d311d3e20486f73743a207a74642e6464732e6d6963726f736f66742e636f6d07636f6e6e6563740000036b2f3180c8b1c9c3bce586310081a8d6b90700f606900300000100000200030405060000000000000007081f68747470733a2f2f7a74642e6464732e6d6963726f736f66742e636f6d2f7801000470782d3180d0acf30e000000f60600000001000002000900000600000000000000000000"

func TestSegmentVersion3(t *testing.T) {
	blob, err := hex.DecodeString(segmentV3)
	if err != nil {
		t.Fatal(err)
	}
	got, err := Decode(blob, 1, nil, &Opts{})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].Tunnel != "px-1" || got[0].Headers != "> Host: ztd.dds.microsoft.com" || got[0].Proxy != "" ||
		got[1].Key != "px-1" || got[1].Kind != flow.KindConnect {
		t.Errorf("decoded %+v", got)
	}
	// Version 4 keeps the proxy.
	got[0].Proxy = "site-a"
	b, _, _ := Encode(got)
	again, err := Decode(b, 1, nil, &Opts{})
	if err != nil || again[0].Proxy != "site-a" || again[1].Proxy != "" {
		t.Errorf("version 4: %+v, %v", again, err)
	}
}
