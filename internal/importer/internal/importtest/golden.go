package importtest

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/pilotwire/pilotwire/internal/flow"
)

var update = flag.Bool("update", false, "rewrite the importers' golden files (testdata/*.golden.json)")

// Golden compares flows with the golden file at path (JSON, one flow a
// line, its non-zero fields in the order of flow.Flow), or rewrites it when
// the test runs with -update. A difference names the first flow that
// differs.
func Golden(t testing.TB, path string, flows []flow.Flow) {
	t.Helper()
	got := MarshalFlows(flows)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run the test with -update to write it)", err)
	}
	if bytes.Equal(got, want) {
		return
	}
	g, w := strings.Split(string(got), "\n"), strings.Split(string(want), "\n")
	for i := range max(len(g), len(w)) {
		var gl, wl string
		if i < len(g) {
			gl = g[i]
		}
		if i < len(w) {
			wl = w[i]
		}
		if gl != wl {
			t.Errorf("%s: line %d differs (run with -update if the change is meant):\n got: %s\nwant: %s", path, i+1, gl, wl)
			return
		}
	}
}

// MarshalFlows writes flows as a JSON array, one flow a line, each with its
// non-zero fields only, so that a golden file stays readable and a change
// shows as the lines of the flows it touched.
func MarshalFlows(flows []flow.Flow) []byte {
	var b bytes.Buffer
	b.WriteString("[\n")
	for i := range flows {
		v := reflect.ValueOf(flows[i])
		b.WriteByte('{')
		n := 0
		for j := range v.NumField() {
			fv := v.Field(j)
			if fv.IsZero() {
				continue
			}
			if n > 0 {
				b.WriteByte(',')
			}
			n++
			name, _ := json.Marshal(v.Type().Field(j).Name)
			val, err := json.Marshal(fv.Interface())
			if err != nil {
				// Every field of a Flow marshals; say so loudly if one stops.
				val, _ = json.Marshal("unmarshalable: " + err.Error())
			}
			b.Write(name)
			b.WriteByte(':')
			b.Write(val)
		}
		b.WriteByte('}')
		if i < len(flows)-1 {
			b.WriteByte(',')
		}
		b.WriteByte('\n')
	}
	b.WriteString("]\n")
	return b.Bytes()
}

// GoldenSamples reads each sample file matching glob (golden files
// excepted) with read, and checks that it reads whole, keeps the
// invariants of Check, and gives the flows of its golden file,
// <sample without extension>.golden.json (-update rewrites them): the one
// golden test every format runs.
func GoldenSamples(t *testing.T, glob string, read func(data []byte, c *Collector) error) {
	t.Helper()
	samples, err := filepath.Glob(glob)
	samples = slices.DeleteFunc(samples, func(p string) bool { return strings.HasSuffix(p, ".golden.json") })
	if err != nil || len(samples) == 0 {
		t.Fatalf("no sample files match %s (%v)", glob, err)
	}
	for _, path := range samples {
		t.Run(filepath.Base(path), func(t *testing.T) {
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			var c Collector
			if err := read(data, &c); err != nil {
				t.Errorf("Read: %v", err)
			}
			if len(c.Skips) > 0 {
				t.Errorf("%d parts skipped, first %+v", len(c.Skips), c.Skips[0])
			}
			Check(t, c.Flows)
			Golden(t, strings.TrimSuffix(path, filepath.Ext(path))+".golden.json", c.Flows)
		})
	}
}
