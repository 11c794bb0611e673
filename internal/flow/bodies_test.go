package flow

import (
	"bytes"
	"compress/flate"
	"fmt"
	"strings"
	"testing"
)

func TestBodiesRoundTrip(t *testing.T) {
	big := bytes.Repeat([]byte("<Envelope>ünïcode</Envelope>\n"), 40000)
	for _, b := range []Bodies{
		{Request: []byte("grant_type=device_code")},
		{Response: []byte{0, 1, 2, 0xff, 0}},
		{Request: []byte("a"), Response: big},
		{Request: big, Response: big[:7]},
	} {
		enc := EncodeBodies(b)
		if enc[0] != bodiesVersion {
			t.Fatalf("version byte %d", enc[0])
		}
		got, err := DecodeBodies(enc)
		if err != nil {
			t.Fatalf("DecodeBodies: %v", err)
		}
		if !bytes.Equal(got.Request, b.Request) || !bytes.Equal(got.Response, b.Response) {
			t.Errorf("round trip of %d+%d bytes gave %d+%d", len(b.Request), len(b.Response), len(got.Request), len(got.Response))
		}
		if len(b.Request) == 0 && got.Request != nil {
			t.Errorf("an empty request body came back as %v, want nil", got.Request)
		}
	}
	if len(EncodeBodies(Bodies{Response: big})) > len(big)/20 {
		t.Errorf("a repetitive body of %d bytes was not compressed (%d)", len(big), len(EncodeBodies(Bodies{Response: big})))
	}
	if EncodeBodies(Bodies{}) != nil {
		t.Errorf("two empty bodies encoded to something")
	}
	if b, err := DecodeBodies(nil); err != nil || b.Request != nil || b.Response != nil {
		t.Errorf("DecodeBodies(nil) = %v, %v", b, err)
	}
}

func TestBodiesDamaged(t *testing.T) {
	good := EncodeBodies(Bodies{Request: []byte("hello"), Response: []byte("world")})
	for _, tc := range []struct {
		name string
		data []byte
		want string
	}{
		{"newer format", append([]byte{2}, good[1:]...), "format 2"},
		{"cut", good[:len(good)-3], "kept bodies"},
		{"not deflate", []byte{1, 0xff, 0xff, 0xff}, "kept bodies"},
		{"claims too much", deflated(t, []byte{0x80, 0x80, 0x80, 0x80, 0x40}), "more than the most kept"},
		{"shorter than it claims", deflated(t, []byte{10, 'a', 'b'}), "request body (10 bytes)"},
		{"trailing bytes", deflated(t, []byte{0, 0, 'x'}), "bytes after the response body"},
	} {
		_, err := DecodeBodies(tc.data)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want it to say %q", tc.name, err, tc.want)
		}
	}
}

// deflated is a Flow.Bodies value holding raw as its compressed content.
func deflated(t *testing.T, raw []byte) []byte {
	t.Helper()
	var out bytes.Buffer
	out.WriteByte(bodiesVersion)
	w, err := flate.NewWriter(&out, flate.BestSpeed)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(raw); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

func FuzzDecodeBodies(f *testing.F) {
	f.Add(EncodeBodies(Bodies{Request: []byte("grant_type=x"), Response: []byte("{}")}))
	f.Add([]byte{1})
	f.Add([]byte{1, 0xff})
	f.Fuzz(func(t *testing.T, data []byte) {
		b, err := DecodeBodies(data)
		if err != nil {
			return
		}
		again, err := DecodeBodies(EncodeBodies(b))
		if err != nil || !bytes.Equal(again.Request, b.Request) || !bytes.Equal(again.Response, b.Response) {
			t.Fatalf("decoded bodies do not round-trip: %v", err)
		}
	})
}

func TestHeaders(t *testing.T) {
	text := "> Authorization: REDACTED\n> X-Empty: \n< Content-Type: text/plain; a=b: c\nnot a header\n< broken\n… (cut at 8192 bytes)"
	var got []string
	for h := range Headers(text) {
		got = append(got, fmt.Sprintf("%v|%s|%s", h.Sent, h.Name, h.Value))
	}
	want := []string{"true|Authorization|REDACTED", "true|X-Empty|", "false|Content-Type|text/plain; a=b: c"}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("Headers:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
