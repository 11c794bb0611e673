package intercept

import (
	"strings"
	"testing"

	"github.com/pilotwire/pilotwire/internal/flow"
)

// With Options.Bodies, a request's flow keeps the first bytes of both
// bodies, on either way of serving; without it, or for a host the catalog
// marks no-bodies, none, and the latter says why.
func TestKeptBodies(t *testing.T) {
	const post = "POST /echo HTTP/1.1\r\nHost: example.com\r\nContent-Type: text/plain\r\nContent-Length: 11\r\n\r\nhello world"
	const chunked = "POST /echo HTTP/1.1\r\nHost: example.com\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"
	const get = "GET /bytes?n=100000&chunked=1 HTTP/1.1\r\nHost: example.com\r\n\r\n"
	marked := func(host string) (string, bool) { return "sign-in tokens", host == "example.com" }
	for _, tc := range []struct {
		name string
		o    Options
		// the kept bodies of the three requests, and whether the Note
		// says they were not kept
		want  [3]flow.Bodies
		noted bool
	}{
		{name: "kept", o: Options{Bodies: 8}, want: [3]flow.Bodies{
			{Request: []byte("hello wo"), Response: []byte("POST HTT")},
			{Request: []byte("abcde"), Response: []byte("POST HTT")},
			{Response: counting(0, 8)},
		}},
		{name: "whole", o: Options{Bodies: 1 << 20}, want: [3]flow.Bodies{
			{Request: []byte("hello world"), Response: []byte(`POST HTTP/1.1 te=[] cl=11 body="hello world" hop="" expect=""`)},
			{Request: []byte("abcde"), Response: []byte(`POST HTTP/1.1 te=[chunked] cl=-1 body="abcde" hop="" expect=""`)},
			{Response: counting(0, 100000)},
		}},
		{name: "off", o: Options{NoBodies: marked}},
		{name: "marked", o: Options{Bodies: 8, NoBodies: marked}, noted: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bothPaths(t, func(t *testing.T) {
				hs := newHarness(t, upstream(), true, []string{"http/1.1"}, []string{"http/1.1"}, tc.o, nil)
				for _, req := range []string{post, chunked, get} {
					hs.send(req)
					body(t, hs.read("GET"))
				}
				hs.end()
				flows := hs.recorded()
				if len(flows) != 3 {
					t.Fatalf("%d flows, want 3", len(flows))
				}
				for i, f := range flows {
					got, err := flow.DecodeBodies(f.Bodies)
					if err != nil {
						t.Fatalf("flow %d: %v", i, err)
					}
					if string(got.Request) != string(tc.want[i].Request) || string(got.Response) != string(tc.want[i].Response) {
						t.Errorf("flow %d (%s): kept %q / %.80q, want %q / %.80q", i, f.URL, got.Request, got.Response, tc.want[i].Request, tc.want[i].Response)
					}
					if noted := strings.Contains(f.Note, "bodies not kept: sign-in tokens"); noted != tc.noted {
						t.Errorf("flow %d: note %q", i, f.Note)
					}
				}
				if f := flows[0]; f.BytesUp != 11 || !strings.HasPrefix(f.Note, "response text/plain; request text/plain") {
					t.Errorf("first flow: up %d, note %q", f.BytesUp, f.Note)
				}
			})
		})
	}
}
