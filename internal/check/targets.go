package check

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/pilotwire/pilotwire/internal/catalog"
	"github.com/pilotwire/pilotwire/internal/flow"
)

// Target is one host to check and what the catalog says of it.
type Target struct {
	Host   string
	Port   int    // 443, or 80 for plain-HTTP hosts
	Scheme string // "https" or "http"

	Service     string // catalog service ID; "unknown" when not in the catalog
	ServiceName string
	Phase       string           // catalog phase ID; "other" when not in the catalog
	Required    catalog.Required // as the catalog says; "" when not in the catalog
	Pattern     string           // the catalog pattern the host stands for; "" when none
	// FromSession marks a host a captured device used (--from-session).
	FromSession bool
	// System marks a host Windows reaches as SYSTEM (no user signed in),
	// which cannot answer a proxy's authentication request.
	System bool
	// NoInspect marks a host where TLS inspection breaks the service (the
	// catalog says so), and NoInspectWhy says why.
	NoInspect    bool
	NoInspectWhy string
}

// plainServices are reached over plain HTTP on port 80: certificate status
// (OCSP, CRL, CTL and AIA fetches) and the connectivity check. Everything
// else in the catalog is HTTPS.
var plainServices = []string{"cert-status", "ncsi"}

// userPhases are the catalog phases whose traffic runs in the signed-in
// user's context, which can answer a proxy's authentication (Windows'
// integrated authentication). Every other phase runs as SYSTEM during OOBE:
// reference/autopilot-endpoints.md, "TLS inspection and proxy
// authentication caveats": most OOBE traffic runs as SYSTEM and cannot
// answer proxy auth challenges.
var userPhases = []string{"user-esp", "desktop", "teams", "onedrive"}

// Selection says which hosts to check.
type Selection struct {
	Phases   []string // only catalog entries of these phases
	Services []string // only catalog entries of these services
	// Region is the Intune scale unit ("MSUB03") to put in the examples of
	// regional wildcard entries instead of the catalog's own; "" keeps them.
	Region string
	// Session are a captured device's hosts (SessionHosts); with them,
	// CatalogOff leaves the catalog's required entries out.
	Session    []Target
	CatalogOff bool
	// Cloud keeps the catalog's hosts of one Microsoft cloud (Clouds);
	// "" or "all" keeps every cloud's. A session's hosts are all kept.
	Cloud string
}

// Clouds are the values of Selection.Cloud: the worldwide cloud (GCC
// moderate tenants use it too), US Government (GCC High and DoD) and
// 21Vianet's China cloud, told apart by the host's top-level domain
// (reference/autopilot-endpoints.md, "Sovereign clouds").
var Clouds = []string{"worldwide", "usgov", "china", "all"}

// CloudOf says which Microsoft cloud a catalog host belongs to.
func CloudOf(host string) string {
	switch {
	case strings.HasSuffix(host, ".us"):
		return "usgov"
	case strings.HasSuffix(host, ".cn"):
		return "china"
	}
	return "worldwide"
}

// Targets returns the hosts sel picks: the catalog's required entries
// (one representative host each: the example of a wildcard entry, with
// the region filled in), then a session's hosts the entries did not
// already give, each host once. Phase and service filters apply to both.
func Targets(cat *catalog.Catalog, sel Selection) ([]Target, error) {
	var out []Target
	seen := map[string]bool{}
	keep := func(t Target) bool {
		return (len(sel.Phases) == 0 || slices.Contains(sel.Phases, t.Phase)) &&
			(len(sel.Services) == 0 || slices.Contains(sel.Services, t.Service))
	}
	if sel.Cloud != "" && !slices.Contains(Clouds, sel.Cloud) {
		return nil, fmt.Errorf("unknown cloud %q (known: %s)", sel.Cloud, strings.Join(Clouds, ", "))
	}
	if !sel.CatalogOff {
		entries, err := cat.Select(catalog.Selection{Phases: sel.Phases, Services: sel.Services,
			Required: []catalog.Required{catalog.RequiredYes}})
		if err != nil {
			return nil, err
		}
		for _, e := range entries {
			if strings.HasSuffix(e.Pattern, ".*") {
				// A name under the local DNS search suffix (wpad.*):
				// nothing on the internet to check.
				continue
			}
			host := withRegion(cat, e.Example, sel.Region)
			if sel.Cloud != "" && sel.Cloud != "all" && CloudOf(host) != sel.Cloud {
				continue
			}
			if seen[host] {
				continue
			}
			seen[host] = true
			out = append(out, describe(cat, host, e))
		}
	} else {
		for _, p := range sel.Phases {
			if !catalog.KnownPhase(p) {
				return nil, fmt.Errorf("unknown phase %q", p)
			}
		}
	}
	for _, t := range sel.Session {
		if seen[t.Host] || !keep(t) {
			continue
		}
		seen[t.Host] = true
		out = append(out, t)
	}
	return out, nil
}

// describe makes the target for host, which entry e covers.
func describe(cat *catalog.Catalog, host string, e catalog.Entry) Target {
	t := Target{Host: host, Port: 443, Scheme: "https", Service: e.Service, ServiceName: e.Service,
		Phase: e.Phase, Required: e.Required, Pattern: e.Pattern}
	if s, ok := cat.Service(e.Service); ok {
		t.ServiceName = s.Name
	}
	if slices.Contains(plainServices, e.Service) {
		t.Port, t.Scheme = 80, "http"
	}
	t.System = !slices.Contains(userPhases, e.Phase)
	if e, ok := cat.NoInspect(host); ok {
		t.NoInspect, t.NoInspectWhy = true, e.NoInspect
	}
	return t
}

// withRegion puts region in place of the scale-unit token of an Intune
// example host (fef.msua01.manage.microsoft.com → fef.msub03.…).
func withRegion(cat *catalog.Catalog, host, region string) string {
	if region == "" {
		return host
	}
	m, ok := cat.Lookup(host)
	if !ok || m.Region == "" {
		return host
	}
	labels := strings.Split(host, ".")
	for i, l := range labels {
		if strings.EqualFold(l, m.Region) {
			labels[i] = strings.ToLower(region)
			return strings.Join(labels, ".")
		}
	}
	return host
}

// SessionHosts gathers the hosts of a captured session's flows (Add each),
// for Selection.Session. Flows of the proxy itself (its PAC file), DNS
// queries and lost-flow markers are left out.
type SessionHosts struct {
	cat   *catalog.Catalog
	obs   *catalog.Observer
	plain map[string]bool
}

// NewSessionHosts returns an empty SessionHosts labelling hosts with cat.
func NewSessionHosts(cat *catalog.Catalog) *SessionHosts {
	return &SessionHosts{cat: cat, obs: catalog.NewObserver(cat), plain: map[string]bool{}}
}

// Add takes one flow of the session.
func (h *SessionHosts) Add(f *flow.Flow) {
	if f.Kind == flow.KindPAC || f.Kind == flow.KindLost || f.Kind == flow.KindDNS {
		return
	}
	h.obs.Add(*f)
	if f.Kind == flow.KindHTTP && f.Scheme == "http" {
		h.plain[catalog.FlowHost(*f)] = true
	}
}

// Targets returns the hosts as targets, in the order first seen, and the
// Intune scale unit the hosts name ("" when none).
func (h *SessionHosts) Targets() ([]Target, string) {
	var out []Target
	region := ""
	for _, o := range h.obs.Hosts() {
		var t Target
		if o.Known {
			t = describe(h.cat, o.Host, o.Match.Entry)
			if region == "" {
				region = o.Match.Region
			}
		} else {
			t = Target{Host: o.Host, Service: "unknown", ServiceName: "Not in the catalog", Phase: "other", System: true}
		}
		// How the device reached it, whatever the catalog expects.
		t.Port, t.Scheme = 443, "https"
		if h.plain[o.Host] {
			t.Port, t.Scheme = 80, "http"
		}
		if a, err := netip.ParseAddr(strings.Trim(o.Host, "[]")); err == nil {
			t.Host = a.String()
		}
		t.FromSession = true
		out = append(out, t)
	}
	return out, region
}
