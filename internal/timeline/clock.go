package timeline

import (
	"fmt"
	"strings"
	"time"
)

// t0Layouts are the absolute forms --t0 accepts; the last two are a time of
// day on the first flow's date.
var t0Layouts = []string{time.RFC3339Nano, "2006-01-02 15:04:05.999999999", "2006-01-02T15:04:05.999999999",
	"15:04:05.999999999", "15:04"}

// ParseT0 reads the zero of a report's clock (pilotwire report --t0):
// empty (the first flow, returned as the zero time), an offset from the
// first flow ("-10s", "+1m30s"), or an absolute time. Times without a zone
// are in the zone of the first flow; a time of day is on its date.
func ParseT0(v string, first time.Time) (time.Time, error) {
	v = strings.TrimSpace(v)
	if v == "" {
		return time.Time{}, nil
	}
	if v[0] == '-' || v[0] == '+' {
		d, err := time.ParseDuration(v)
		if err != nil {
			return time.Time{}, fmt.Errorf("--t0 %q: an offset from the first flow looks like -10s or +1m30s", v)
		}
		return first.Add(d), nil
	}
	for i, layout := range t0Layouts {
		t, err := time.ParseInLocation(layout, v, first.Location())
		if err != nil {
			continue
		}
		if i >= 3 { // time of day: on the first flow's date
			y, m, d := first.Date()
			t = time.Date(y, m, d, t.Hour(), t.Minute(), t.Second(), t.Nanosecond(), first.Location())
		}
		return t, nil
	}
	return time.Time{}, fmt.Errorf("--t0 %q: want a time like 2026-11-25T09:14:05Z, \"2026-11-25 09:14:05\" or 09:14:05, "+
		"or an offset like -10s", v)
}
