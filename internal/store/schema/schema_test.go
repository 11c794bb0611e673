package schema

import (
	"strings"
	"testing"
	"testing/fstest"
)

func TestMustLoad(t *testing.T) {
	good := fstest.MapFS{
		"m/0002_b.sql": {Data: []byte("B")},
		"m/0001_a.sql": {Data: []byte("A")},
		"m/README":     {Data: []byte("not a migration")},
	}
	got := MustLoad("test", good, "m")
	if len(got) != 2 || got[0] != (Migration{1, "0001_a.sql", "A"}) || got[1] != (Migration{2, "0002_b.sql", "B"}) {
		t.Errorf("MustLoad = %+v", got)
	}
	for name, fsys := range map[string]fstest.MapFS{
		"gap":  {"m/0001_a.sql": {}, "m/0003_c.sql": {}},
		"none": {"m/README": {}},
		"name": {"m/first.sql": {}},
	} {
		func() {
			defer func() {
				if r := recover(); r == nil || !strings.HasPrefix(r.(string), "test: ") {
					t.Errorf("%s: recovered %v, want a panic naming the store", name, r)
				}
			}()
			MustLoad("test", fsys, "m")
		}()
	}
}
