package catalog

import (
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/pilotwire/pilotwire/internal/flow"
)

// Observation is one host that captured flows went to, with what the
// catalog says of it.
type Observation struct {
	Host        string
	Flows       int
	Bytes       int64
	First, Last time.Time
	Match       Match
	Known       bool // the catalog has an entry for the host
}

// Unlisted reports whether no Microsoft list names the host: it is not in
// the catalog, or only community or capture evidence puts it there.
func (o Observation) Unlisted() bool { return !o.Known || o.Match.Entry.Required == RequiredUnknown }

// Entry returns the observation as an exact-host entry, for exports of
// what a device really used. Unknown hosts get an empty Service, phase
// "other" and required "unknown".
func (o Observation) Entry() Entry {
	e := Entry{Pattern: o.Host, Example: o.Host, Phase: "other", Required: RequiredUnknown,
		Purpose: "not in the catalog", Source: "observed"}
	if o.Known {
		m := o.Match.Entry
		e.Service, e.Phase, e.Required, e.Purpose = m.Service, m.Phase, m.Required, m.Purpose
		e.Source = "observed; catalog " + m.Pattern + " (" + m.Source + ")"
	}
	return e
}

// Observer gathers the hosts of flows. Feed it with Add, then read Hosts.
// It is not safe for concurrent use.
type Observer struct {
	c     *Catalog
	hosts map[string]*Observation
}

// NewObserver returns an Observer that labels hosts with c.
func NewObserver(c *Catalog) *Observer {
	return &Observer{c: c, hosts: map[string]*Observation{}}
}

// FlowHost is the name a flow went to: the host it asked for, or the TLS
// server name when the host is only an address.
func FlowHost(f flow.Flow) string {
	h := strings.TrimSuffix(strings.ToLower(f.Host), ".")
	if _, err := netip.ParseAddr(strings.Trim(h, "[]")); (err == nil || h == "") && f.SNI != "" {
		return strings.TrimSuffix(strings.ToLower(f.SNI), ".")
	}
	return h
}

// Add counts one flow.
func (o *Observer) Add(f flow.Flow) {
	h := FlowHost(f)
	if h == "" {
		return
	}
	ob := o.hosts[h]
	if ob == nil {
		ob = &Observation{Host: h, First: f.Start, Last: f.Start}
		ob.Match, ob.Known = o.c.Lookup(h)
		o.hosts[h] = ob
	}
	ob.Flows++
	ob.Bytes += f.Bytes()
	if f.Start.Before(ob.First) {
		ob.First = f.Start
	}
	if f.Start.After(ob.Last) {
		ob.Last = f.Start
	}
}

// Hosts returns the observations in the order the hosts were first seen
// (then by name).
func (o *Observer) Hosts() []Observation {
	out := make([]Observation, 0, len(o.hosts))
	for _, ob := range o.hosts {
		out = append(out, *ob)
	}
	slices.SortFunc(out, func(a, b Observation) int {
		if c := a.First.Compare(b.First); c != 0 {
			return c
		}
		return strings.Compare(a.Host, b.Host)
	})
	return out
}
