package pcap

import (
	"encoding/binary"
	"reflect"
	"testing"
)

// TestClientHelloCollector feeds ClientHellos to the collector in pieces
// and in several records, and damaged ones.
func TestClientHelloCollector(t *testing.T) {
	record := clientHelloBytes(t, "Split.Example.", "h2", "http/1.1")
	msg := record[5:]
	// The same handshake message in two records.
	rec := func(b []byte) []byte {
		return append([]byte{22, 3, 1, byte(len(b) >> 8), byte(len(b))}, b...)
	}
	twoRecords := append(rec(msg[:50]), rec(msg[50:])...)
	// A TLS 1.0 hello with no extensions at all.
	old := []byte{1, 0, 0, 0, 3, 1}
	old = append(old, make([]byte, 32)...)    // random
	old = append(old, 0, 0, 2, 0, 0x2f, 1, 0) // no session, one suite, null compression
	binary.BigEndian.PutUint16(old[2:], uint16(len(old)-4))
	old[1] = 0

	want := &clientHello{sni: "split.example", alpn: []string{"h2", "http/1.1"}, version: 0x0304}
	for _, tc := range []struct {
		name   string
		stream []byte
		pieces int
		want   *clientHello
		err    bool
	}{
		{"one record, whole", record, 1, want, false},
		{"one record, 7 pieces", record, 7, want, false},
		{"two records, 3 pieces", twoRecords, 3, want, false},
		{"TLS 1.0 without extensions", rec(old), 1, &clientHello{version: 0x0301}, false},
		{"not a handshake record", append([]byte{23}, record[1:]...), 1, nil, true},
		{"a ServerHello", rec(append([]byte{2}, msg[1:]...)), 1, nil, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var col tlsCollector
			var got *clientHello
			var done bool
			var err error
			step := (len(tc.stream) + tc.pieces - 1) / tc.pieces
			for i := 0; i < len(tc.stream) && !done; i += step {
				got, done, err = col.add(tc.stream[i:min(i+step, len(tc.stream))])
			}
			if (err != nil) != tc.err || !done {
				t.Fatalf("done %v, err %v; want an error: %v", done, err, tc.err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestVersionRank(t *testing.T) {
	for _, tc := range []struct {
		offered []uint16
		want    string
	}{
		{[]uint16{0xdada, 0x0304, 0x0303}, "1.3"},
		{[]uint16{0x0a0a, 0x7f17, 0x0303, 0x0302, 0x0301}, "1.3-draft23"},
		{[]uint16{0x0303, 0x0302}, "1.2"},
		{[]uint16{0x0300}, "SSL 3.0"},
	} {
		best := uint16(0)
		for _, v := range tc.offered {
			if versionRank(v) > versionRank(best) {
				best = v
			}
		}
		if got := tlsVersionName(best); got != tc.want {
			t.Errorf("%04x: %s, want %s", tc.offered, got, tc.want)
		}
	}
}
