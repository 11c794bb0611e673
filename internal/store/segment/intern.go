package segment

import (
	"strings"
	"time"
)

// Interner gives one Go copy of each distinct string of the columns whose
// values repeat from flow to flow (client, host, method, …): a million flows
// then hold one "GET", not a million, and reading them allocates only for
// values not seen before. It stops adding after maxInterned values, so a
// column of unique values costs a bounded map.
type Interner map[string]string

const maxInterned = 1 << 16

func (in Interner) Get(view string) string {
	if view == "" {
		return ""
	}
	if s, ok := in[view]; ok {
		return s
	}
	s := strings.Clone(view)
	if len(in) < maxInterned && len(s) <= 256 {
		in[s] = s
	}
	return s
}

// GetBytes is Get for bytes that are about to change: a value seen before
// costs no allocation.
func (in Interner) GetBytes(view []byte) string {
	if len(view) == 0 {
		return ""
	}
	if s, ok := in[string(view)]; ok {
		return s
	}
	s := string(view)
	if len(in) < maxInterned && len(s) <= 256 {
		in[s] = s
	}
	return s
}

// Zones holds one *time.Location per zone offset met in one read:
// time.FixedZone allocates, and a capture has one or two zones.
type Zones map[int64]*time.Location

func (z Zones) Get(offset int64) *time.Location {
	if offset == 0 {
		return time.UTC
	}
	loc, ok := z[offset]
	if !ok {
		loc = time.FixedZone("", int(offset))
		z[offset] = loc
	}
	return loc
}
