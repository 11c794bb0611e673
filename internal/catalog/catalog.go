package catalog

import (
	_ "embed"
	"fmt"
	"os"
	"slices"
	"sync"

	"github.com/pilotwire/pilotwire/internal/pattern"
)

// Required says whether a Microsoft endpoint list names a host as required.
type Required string

// The values of Required.
const (
	RequiredYes     Required = "yes"     // a Microsoft list marks it required (or a required wildcard covers it)
	RequiredNo      Required = "no"      // marked optional, or provisioning does not depend on it
	RequiredUnknown Required = "unknown" // no Microsoft list names it: community or capture evidence only
)

// Valid reports whether r is one of the three known values.
func (r Required) Valid() bool {
	return r == RequiredYes || r == RequiredNo || r == RequiredUnknown
}

// Entry is one host pattern and what it means.
type Entry struct {
	Pattern  string   // "ztd.dds.microsoft.com" or "*.manage.microsoft.com"; see the package doc
	Service  string   // service ID, e.g. "intune-checkin"
	Phase    string   // a known phase ID (KnownPhase), e.g. "mdm-enrollment"
	Purpose  string   // one line, our own words
	Required Required // whether Microsoft lists it as required
	Source   string   // source keys from the reference document, comma separated
	Example  string   // a representative host for wildcard entries (exact entries: the host)
	// NoInspect, when not empty, says why TLS to the entry's hosts must
	// never be inspected (client certificates, pinning): `proxy
	// --intercept` tunnels them untouched and `check` makes inspection
	// there an error. The entry's Source cites it.
	NoInspect string
	// NoBodies, when not empty, says why the bodies of requests to the
	// entry's hosts are never kept, even when `proxy --intercept --bodies`
	// keeps others' (they carry passwords, tokens or product keys).
	NoBodies string

	// File and Line say where the entry was defined; the embedded file is
	// "catalog.yaml".
	File string
	Line int

	pat pattern.Pattern // Pattern, parsed
}

// HostPattern returns the entry's pattern, parsed: its Match is the one
// definition of which hosts the entry covers (Lookup then picks the best
// of the entries that match).
func (e Entry) HostPattern() pattern.Pattern { return e.pat }

// Service is a group of endpoints drawn as one band in every view.
type Service struct {
	ID    string // e.g. "intune-checkin"
	Name  string // display name, e.g. "Intune check-in"
	Color string // "#rrggbb", distinct and readable on white and on dark backgrounds
	// Noise marks background traffic a person watching a run hides first
	// (certificate checks, telemetry, time): the live page's noise toggle.
	Noise bool
}

// NoInspect returns the first entry that covers host and says its TLS must
// never be inspected. Every covering entry counts, not only Lookup's best:
// "*.manage.microsoft.com" marks enrollment.manage.microsoft.com too,
// though a more specific entry describes that host.
func (c *Catalog) NoInspect(host string) (Entry, bool) { return c.firstCovering(c.noInspect, host) }

// NoBodies returns the first entry that covers host and says the bodies
// of its requests are never kept; like NoInspect, every covering entry
// counts.
func (c *Catalog) NoBodies(host string) (Entry, bool) { return c.firstCovering(c.noBodies, host) }

// firstCovering is the first of the entries at indexes that covers host.
func (c *Catalog) firstCovering(indexes []int, host string) (Entry, bool) {
	for _, i := range indexes {
		if c.entries[i].pat.Match(host) {
			return c.entries[i], true
		}
	}
	return Entry{}, false
}

// Match is the answer to a Lookup.
type Match struct {
	Entry   Entry
	Service Service
	// Region is the Intune scale unit ("MSUA01", "AMSUA0602") when the host
	// name carries one, else "".
	Region string
}

// Catalog maps host names to entries. It is immutable and safe for
// concurrent use.
type Catalog struct {
	entries    []Entry
	services   []Service
	svcIndex   map[string]int
	suffixes   suffixTable    // literal pattern suffixes and their last two labels
	bound      []int          // bound[d]: the best wildcard score of a suffix of ≤ d labels
	regional   []bool         // per entry: its hosts may carry an Intune scale-unit token
	svcOf      []int          // per entry: index of its service in services
	matches    []Match        // per entry: its Lookup answer but the region
	prefix     map[string]int // first label → entry index, for "label.*" patterns
	prefixLens uint64         // bit n set: prefix holds a label of n bytes
	noInspect  []int          // entries with NoInspect set, in catalog order
	noBodies   []int          // entries with NoBodies set, in catalog order
}

// phases are the provisioning phases, in the order a device meets them.
var phases = []string{
	"network-up", "autopilot-registration", "profile", "activation", "oobe-updates", "telemetry",
	"certificates", "time", "aad-signin", "mdm-enrollment", "esp-device", "ime", "apps-win32",
	"office", "teams", "onedrive", "store", "defender", "notifications", "windows-update",
	"delivery-optimization", "tpm-attestation", "user-esp", "desktop", "third-party", "other",
}

// KnownPhase reports whether p is one of the phase IDs.
func KnownPhase(p string) bool { return slices.Contains(phases, p) }

//go:embed catalog.yaml
var embedded []byte

// Default returns the embedded catalog. It is parsed once and shared: a
// Catalog never changes after it is built. The embedded file is checked by
// the package's tests, so a failure here is a build defect and panics.
func Default() *Catalog { return defaultCatalog() }

var defaultCatalog = sync.OnceValue(func() *Catalog {
	b := newBuilder()
	if err := b.add("catalog.yaml", embedded, true); err != nil {
		panic(fmt.Sprintf("catalog: embedded catalog.yaml is invalid: %v", err))
	}
	return b.build()
})

// Load returns the embedded catalog plus the entries and services of files,
// applied in order: an entry whose pattern is already known replaces it, a
// new pattern is added. Errors name the file, line and reason.
func Load(files ...string) (*Catalog, error) {
	c := Default()
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("catalog: %w", err)
		}
		if c, err = c.With(f, data); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// With returns a new catalog: c plus the entries and services of a user
// catalog file held in data (name is used in error messages). c is not
// changed.
func (c *Catalog) With(name string, data []byte) (*Catalog, error) {
	b := &builder{
		entries:  slices.Clone(c.entries),
		byPat:    make(map[string]int, len(c.entries)),
		services: slices.Clone(c.services),
		svcIndex: make(map[string]int, len(c.services)),
	}
	for i, e := range b.entries {
		b.byPat[e.Pattern] = i
	}
	for i, s := range b.services {
		b.svcIndex[s.ID] = i
	}
	if err := b.add(name, data, false); err != nil {
		return nil, err
	}
	return b.build(), nil
}

// Services returns the services in file order (embedded first).
func (c *Catalog) Services() []Service { return slices.Clone(c.services) }

// Service returns the service with the given ID.
func (c *Catalog) Service(id string) (Service, bool) {
	i, ok := c.svcIndex[id]
	if !ok {
		return Service{}, false
	}
	return c.services[i], true
}

// Entries returns the entries in file order: embedded entries (overridden
// ones in place), then entries the user files added.
func (c *Catalog) Entries() []Entry { return slices.Clone(c.entries) }
