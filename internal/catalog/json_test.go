package catalog

import (
	"encoding/json"
	"testing"
)

// TestJSONShapes: the JSON of a looked-up host and of the services, as
// `endpoints lookup --json` and `endpoints services --json` print them.
func TestJSONShapes(t *testing.T) {
	c := Default()
	got, err := json.Marshal([]HostJSON{c.LookupJSON("https://ztd.dds.microsoft.com/x", "ztd.dds.microsoft.com"), c.LookupJSON("evil.example", "evil.example")})
	if err != nil {
		t.Fatal(err)
	}
	m, _ := c.Lookup("ztd.dds.microsoft.com")
	want := `[{"host":"https://ztd.dds.microsoft.com/x","known":true,"pattern":"` + m.Entry.Pattern + `","service":"` + m.Service.ID +
		`","service_name":"` + m.Service.Name + `","phase":"` + m.Entry.Phase + `","required":"` + string(m.Entry.Required) +
		`","purpose":"` + m.Entry.Purpose + `","source":"` + m.Entry.Source + `"},{"host":"evil.example","known":false}]`
	if string(got) != want {
		t.Errorf("LookupJSON:\n%s\nwant\n%s", got, want)
	}
	total := 0
	for _, s := range c.ServicesJSON() {
		if s.ID == "" || s.Name == "" {
			t.Errorf("service without id or name: %+v", s)
		}
		total += s.Entries
	}
	if total != len(c.Entries()) {
		t.Errorf("ServicesJSON counts %d entries, the catalog has %d", total, len(c.Entries()))
	}
}
