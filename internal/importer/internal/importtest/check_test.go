package importtest

import (
	"slices"
	"testing"
	"time"

	"github.com/pilotwire/pilotwire/internal/flow"
)

func TestViolations(t *testing.T) {
	t0 := time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)
	good := flow.Flow{Key: "line:1", Source: flow.SourceSquid, Start: t0, End: t0.Add(time.Second), Host: "fef.msua06.manage.microsoft.com", Port: 443}
	with := func(key string, change func(*flow.Flow)) flow.Flow {
		f := good
		f.Key = key
		change(&f)
		return f
	}
	flows := []flow.Flow{
		good,
		with("a", func(f *flow.Flow) { f.Host = "2001:db8::1"; f.End = time.Time{} }),
		with("line:1", func(*flow.Flow) {}),
		with("", func(f *flow.Flow) { f.Source = "" }),
		with("b", func(f *flow.Flow) { f.Start = time.Time{}; f.End = time.Time{} }),
		with("c", func(f *flow.Flow) { f.End = t0.Add(-time.Millisecond) }),
		with("d", func(f *flow.Flow) { f.BytesDown = -1 }),
		with("e", func(f *flow.Flow) { f.Port = 65536; f.Status = 1000 }),
		with("f", func(f *flow.Flow) { f.Host = "Login.example" }),
		with("g", func(f *flow.Flow) { f.Host = "a.example:443" }),
		with("h", func(f *flow.Flow) { f.Host = "bücher.example" }),
		with("i", func(f *flow.Flow) { f.Host = "a..example" }),
		with("j", func(f *flow.Flow) { f.Host = "a example" }),
		with("k", func(f *flow.Flow) { f.Host = "fe80::1%eth0" }),
	}
	want := []string{
		`flow 3 (key "line:1"): Key already used by flow 1`,
		`flow 4 (key ""): no Key`,
		`flow 4 (key ""): no Source`,
		`flow 5 (key "b"): no Start`,
		`flow 6 (key "c"): End 2024-01-02T03:04:04.999Z is before Start 2024-01-02T03:04:05Z`,
		`flow 7 (key "d"): negative bytes: up 0, down -1`,
		`flow 8 (key "e"): port out of range: Port 65536, ClientPort 0`,
		`flow 8 (key "e"): Status 1000 out of range`,
		`flow 9 (key "f"): Host "Login.example" is not lower-case`,
		`flow 10 (key "g"): Host "a.example:443" has ':' at byte 9 (not a letter, digit, '-' or '_' of ASCII)`,
		`flow 11 (key "h"): Host "bücher.example" has '\u00c3' at byte 1 (not a letter, digit, '-' or '_' of ASCII)`,
		`flow 12 (key "i"): Host "a..example" has an empty label`,
		`flow 13 (key "j"): Host "a example" has ' ' at byte 1 (not a letter, digit, '-' or '_' of ASCII)`,
		`flow 14 (key "k"): Host "fe80::1%eth0" is an IP address with a zone`,
	}
	if got := Violations(flows); !slices.Equal(got, want) {
		t.Errorf("Violations:\n%q\nwant\n%q", got, want)
	}
	if got := Violations(flows[:2]); got != nil {
		t.Errorf("good flows: %q", got)
	}
}

func TestMarshalFlows(t *testing.T) {
	t0 := time.Date(2024, 1, 2, 3, 4, 5, 0, time.FixedZone("", 3600))
	got := string(MarshalFlows([]flow.Flow{{Key: "entry:1", Start: t0, Host: "a.example", Port: 443}, {Key: "entry:2"}}))
	want := "[\n" +
		`{"Key":"entry:1","Start":"2024-01-02T03:04:05+01:00","Host":"a.example","Port":443},` + "\n" +
		`{"Key":"entry:2"}` + "\n]\n"
	if got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
}
