package catalog

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestMergeMS(t *testing.T) {
	f, err := os.Open("testdata/ms-endpoints.json")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sets, err := ReadMSEndpoints(f, "ms-endpoints.json")
	if err != nil {
		t.Fatal(err)
	}
	if len(sets) != 5 {
		t.Fatalf("%d sets", len(sets))
	}
	c := Default()
	var buf bytes.Buffer
	rep, err := c.MergeMS(&buf, sets, nil, "pilotwire endpoints merge-ms testdata/ms-endpoints.json")
	if err != nil {
		t.Fatal(err)
	}
	// MEM and Common: 4 sets, 14 URLs; 8 known, 1 not a host, 1 repeated, 4 added.
	if rep.Sets != 4 || rep.URLs != 14 || rep.Known != 8 || rep.Added != 4 || len(rep.Skipped) != 1 || len(rep.Disagrees) != 1 {
		t.Errorf("report %+v", rep)
	}
	if !strings.Contains(rep.Disagrees[0], "dns.msftncsi.com") {
		t.Errorf("disagreement %q", rep.Disagrees[0])
	}
	golden := filepath.Join("testdata", "golden", "merge-ms.yaml")
	if *update {
		if err := os.WriteFile(golden, buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(buf.Bytes(), want) {
		t.Errorf("merge-ms output differs from %s (go test -update):\n%s", golden, buf.String())
	}
	// The file loads, and adds exactly what the built-in catalog lacked.
	user, err := Default().With("merge-ms.yaml", buf.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	if got := len(user.Entries()) - len(c.Entries()); got != 4 {
		t.Errorf("user catalog adds %d entries", got)
	}
	tests := []struct{ host, pattern, service, phase string }{
		{"newgateway.manage.microsoft.com", "newgateway.manage.microsoft.com", "intune", "mdm-enrollment"},
		{"intune-new-cdn.example-ms.net", "intune-new-cdn.example-ms.net", "ms-mem", "other"},
		{"a.intunecdn.example-ms.net", "*.intunecdn.example-ms.net", "ms-mem", "other"},
		{"newauth.example-ms.com", "newauth.example-ms.com", "ms-common", "other"},
		{"enterpriseenrollment.manage.microsoft.com", "enterpriseenrollment.manage.microsoft.com", "intune-enrollment", "mdm-enrollment"},
	}
	for _, tt := range tests {
		m, ok := user.Lookup(tt.host)
		if !ok || m.Entry.Pattern != tt.pattern || m.Service.ID != tt.service || m.Entry.Phase != tt.phase {
			t.Errorf("Lookup(%s) = %+v %v", tt.host, m.Entry, ok)
		}
	}
	m, _ := user.Lookup("newgateway.manage.microsoft.com")
	if m.Entry.Required != RequiredYes || m.Entry.Source != "MS-WS ID 163 (MEM), ID 199" {
		t.Errorf("merged entry %+v", m.Entry)
	}
	// Asking for Exchange too adds its hosts under a service of its own.
	buf.Reset()
	rep, err = c.MergeMS(&buf, sets, []string{"mem", "common", "exchange"}, "")
	if err != nil {
		t.Fatal(err)
	}
	if rep.Sets != 5 || rep.Added != 6 {
		t.Errorf("with Exchange: %+v", rep)
	}
}

func TestReadMSEndpointsErrors(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", "not an endpoint web service answer"},
		{"{\"id\": 1}", "line 1"},
		{"[\n  {\"id\": 1, \"serviceArea\": \"MEM\", \"urls\": [\"a\"]},\n  {\"id\": \"two\"}\n]", "line 3"},
		{"[{\"serviceArea\": \"MEM\"}]", "no id"},
		{"[{\"id\": 3, \"serviceArea\": \"MEM\", \"urls\": \"x\"}", "line 1"},
	}
	for _, tt := range tests {
		_, err := ReadMSEndpoints(strings.NewReader(tt.in), "ms.json")
		if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), "ms.json") {
			t.Errorf("ReadMSEndpoints(%q) = %v, want %q", tt.in, err, tt.want)
		}
	}
}

func FuzzMergeMS(f *testing.F) {
	seed, err := os.ReadFile("testdata/ms-endpoints.json")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(seed)
	f.Add([]byte(`[{"id":1,"serviceArea":"MEM","urls":["*.x.example","kv*.y.example","wpad.*"],"required":true,"notes":"é"}]`))
	f.Add([]byte(`[{"id":1,"serviceArea":"Weird Area!","urls":["a.example"]}]`))
	c := Default()
	f.Fuzz(func(t *testing.T, data []byte) {
		sets, err := ReadMSEndpoints(bytes.NewReader(data), "fuzz.json")
		if err != nil {
			return
		}
		var buf bytes.Buffer
		areas := []string{"MEM", "Common"}
		for _, s := range sets {
			areas = append(areas, s.ServiceArea)
		}
		if _, err := c.MergeMS(&buf, sets, areas, ""); err != nil {
			t.Fatalf("MergeMS: %v", err)
		}
	})
}
