package timeline_test

import (
	"strings"
	"testing"
	"time"

	"github.com/pilotwire/pilotwire/internal/timeline"
)

func TestParseT0(t *testing.T) {
	first := time.Date(2026, 11, 25, 9, 14, 20, 0, time.UTC)
	berlin := time.FixedZone("CET", 3600)
	for _, tt := range []struct {
		in    string
		first time.Time
		want  time.Time
		err   bool
	}{
		{"", first, time.Time{}, false},
		{"-10s", first, first.Add(-10 * time.Second), false},
		{"+1m30s", first, first.Add(90 * time.Second), false},
		{"2026-11-25T09:14:05Z", first, time.Date(2026, 11, 25, 9, 14, 5, 0, time.UTC), false},
		{"2026-11-25 09:14:05", first.In(berlin), time.Date(2026, 11, 25, 9, 14, 5, 0, berlin), false},
		{"09:14:05", first, time.Date(2026, 11, 25, 9, 14, 5, 0, time.UTC), false},
		{"09:14:05.5", first, time.Date(2026, 11, 25, 9, 14, 5, 5e8, time.UTC), false},
		{"09:14", first, time.Date(2026, 11, 25, 9, 14, 0, 0, time.UTC), false},
		{"-10", first, time.Time{}, true},
		{"yesterday", first, time.Time{}, true},
		{"25:00:00", first, time.Time{}, true},
	} {
		got, err := timeline.ParseT0(tt.in, tt.first)
		if (err != nil) != tt.err || !got.Equal(tt.want) {
			t.Errorf("ParseT0(%q) = %v, %v; want %v (error %v)", tt.in, got, err, tt.want, tt.err)
		}
	}
}

func FuzzParseT0(f *testing.F) {
	for _, s := range []string{"", "-10s", "+1m30s", "2026-11-25T09:14:05Z", "2026-11-25 09:14:05", "09:14:05", "09:14",
		"-9223372036854775808ns", "+", "2026-02-30 10:00:00", "24:00"} {
		f.Add(s)
	}
	first := time.Date(2026, 11, 25, 9, 14, 20, 0, time.UTC)
	f.Fuzz(func(t *testing.T, s string) {
		got, err := timeline.ParseT0(s, first)
		if err != nil && !got.IsZero() {
			t.Errorf("ParseT0(%q) returned %v with error %v", s, got, err)
		}
		if err == nil && strings.TrimSpace(s) != "" && got.IsZero() {
			t.Errorf("ParseT0(%q) returned the zero time without an error", s)
		}
	})
}
