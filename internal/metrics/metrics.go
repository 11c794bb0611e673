// Package metrics owns what pilotwire tells Prometheus: the names, units
// and help of every metric, and the /metrics handler (the official Go
// client's text format). It counts finished flows as the proxy records
// them (Observe), reads gauges from the proxy, the recorder and the
// interceptor when scraped (Sources), and observes the phase durations of
// sessions that have finished (WatchPhases).
//
// Names follow Prometheus' conventions: a pilotwire_ prefix, base units in
// the name (_seconds, _bytes), _total on counters. pilotwire_flows_lost_total
// must stay 0: a flow that was seen but never stored.
//
// It must not import cmd/pilotwire or the web page; the proxy and the web
// server do not import it either (cmd wires it in).
package metrics

import (
	"context"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/pilotwire/pilotwire/internal/catalog"
	"github.com/pilotwire/pilotwire/internal/flow"
	"github.com/pilotwire/pilotwire/internal/session"
	"github.com/pilotwire/pilotwire/internal/timeline"
)

// Sources are read when Prometheus scrapes; a nil func leaves its metrics
// out (serve has no proxy, proxy --record=false no recorder).
type Sources struct {
	// Proxy: client connections and tunnels open now, requests read.
	Proxy func() (openConns, openTunnels, requests int64)
	// Recorder: the recorder's counters and health.
	Recorder func() (flow.RecorderStats, flow.RecorderHealth)
	// Intercept: leaves minted and hosts on the learned pass-through list.
	Intercept func() (minted int64, learned int)
}

// Metrics is one process's registry.
type Metrics struct {
	reg    *prometheus.Registry
	flows  *prometheus.CounterVec
	bytes  *prometheus.CounterVec
	phases *prometheus.HistogramVec

	// The sessions observed so far: every one that ended before upTo,
	// and those in atUpTo that ended at it. A session ends once and
	// sessions are observed in rounds, each taking every finished one, so
	// this stays small however many sessions pass.
	mu     sync.Mutex
	upTo   time.Time
	atUpTo map[sessionKey]bool
}

type sessionKey struct {
	client, name string
	start        int64
}

// PhaseBuckets are the phase duration histogram's buckets, in seconds:
// from 5 s (a profile download) to 4 h (an Office install on a slow line).
var PhaseBuckets = []float64{5, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 14400}

// New makes the registry with the process and Go runtime collectors and
// the metrics src gives.
func New(src Sources) *Metrics {
	m := &Metrics{reg: prometheus.NewRegistry(), atUpTo: map[sessionKey]bool{}}
	m.flows = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "pilotwire_flows_total",
		Help: "Finished flows recorded, by source (proxy, gateway, ...) and decision (allowed, denied)."}, []string{"source", "decision"})
	m.bytes = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "pilotwire_flow_bytes_total",
		Help: "Bytes of finished flows, by direction (up: client to server, down: server to client)."}, []string{"direction"})
	m.phases = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "pilotwire_phase_duration_seconds",
		Help:    "How long each provisioning phase of finished sessions took.",
		Buckets: PhaseBuckets}, []string{"phase"})
	m.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		m.flows, m.bytes, m.phases)
	if src.Proxy != nil {
		get := src.Proxy
		m.reg.MustRegister(
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "pilotwire_open_connections", Help: "Client connections open now."},
				func() float64 { c, _, _ := get(); return float64(c) }),
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "pilotwire_open_tunnels", Help: "CONNECT tunnels open now."},
				func() float64 { _, t, _ := get(); return float64(t) }),
			prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "pilotwire_requests_total", Help: "Requests read (HTTP and CONNECT), refusals included."},
				func() float64 { _, _, r := get(); return float64(r) }),
		)
	}
	if src.Recorder != nil {
		get := src.Recorder
		m.reg.MustRegister(
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "pilotwire_store_queue_flows", Help: "Flows waiting to be written to the store."},
				func() float64 { _, h := get(); return float64(h.Waiting) }),
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "pilotwire_store_recording", Help: "1 while the store is being written, 0 while writes fail."},
				func() float64 {
					if _, h := get(); h.Recording {
						return 1
					}
					return 0
				}),
			prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "pilotwire_store_writes_total", Help: "Flows written to the store (a tunnel written when it opens and again when it ends counts twice)."},
				func() float64 { s, _ := get(); return float64(s.Written) }),
			prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "pilotwire_store_write_errors_total", Help: "Batch writes to the store that failed (they are retried)."},
				func() float64 { s, _ := get(); return float64(s.Errors) }),
			prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "pilotwire_flows_lost_total", Help: "Flows seen but never stored (the store could not be written for too long). Must stay 0."},
				func() float64 { s, _ := get(); return float64(s.Dropped) }),
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "pilotwire_spool_flows", Help: "Flows kept in the local spool until the store takes them."},
				func() float64 { _, h := get(); return float64(h.Spool.Flows) }),
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "pilotwire_spool_bytes", Help: "Bytes the spool takes on disk."},
				func() float64 { _, h := get(); return float64(h.Spool.Bytes) }),
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "pilotwire_spool_oldest_age_seconds", Help: "Age of the oldest flows in the spool; 0 when it is empty."},
				func() float64 {
					if _, h := get(); !h.Spool.Oldest.IsZero() {
						return time.Since(h.Spool.Oldest).Seconds()
					}
					return 0
				}),
		)
	}
	if src.Intercept != nil {
		get := src.Intercept
		m.reg.MustRegister(
			prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "pilotwire_intercept_certificates_minted_total", Help: "Leaf certificates minted for TLS interception."},
				func() float64 { n, _ := get(); return float64(n) }),
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "pilotwire_intercept_learned_hosts", Help: "Hosts tunnelled untouched because a client refused the minted certificate."},
				func() float64 { _, n := get(); return float64(n) }),
		)
	}
	return m
}

// Observe counts f if it is finished (a tunnel is recorded when it opens,
// while it runs and when it ends: only the end counts). It is cheap and
// safe for concurrent use: the proxy calls it for every record.
func (m *Metrics) Observe(f flow.Flow) {
	if f.Open() || f.Kind == flow.KindLost {
		return
	}
	decision := string(f.Decision)
	if decision == "" {
		decision = string(flow.DecisionAllowed)
	}
	m.flows.WithLabelValues(string(f.Source), decision).Inc()
	if f.BytesUp > 0 {
		m.bytes.WithLabelValues("up").Add(float64(f.BytesUp))
	}
	if f.BytesDown > 0 {
		m.bytes.WithLabelValues("down").Add(float64(f.BytesDown))
	}
}

// Handler serves the registry in Prometheus' text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError})
}

// ObservePhases observes the phases of the sessions in src that ended more
// than gap before now and were not observed before. It returns how many
// sessions it observed.
func (m *Metrics) ObservePhases(ctx context.Context, src session.Source, cat *catalog.Catalog, gap time.Duration, now time.Time) (int, error) {
	all, err := session.List(ctx, src, gap)
	if err != nil {
		return 0, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	n := 0
	upTo, atUpTo := m.upTo, m.atUpTo
	for _, s := range all {
		if now.Sub(s.End) <= gap {
			continue // may still grow
		}
		k := sessionKey{client: s.Client, name: s.Name, start: s.Start.UnixNano()}
		if s.End.Before(m.upTo) || s.End.Equal(m.upTo) && m.atUpTo[k] {
			continue
		}
		tl, err := session.Timeline(ctx, src, s, cat, timeline.Options{})
		if err != nil {
			return n, err
		}
		for _, p := range tl.Phases {
			m.phases.WithLabelValues(p.ID).Observe(p.Duration().Seconds())
		}
		switch {
		case s.End.After(upTo):
			upTo, atUpTo = s.End, map[sessionKey]bool{k: true}
		case s.End.Equal(upTo):
			atUpTo[k] = true
		}
		n++
	}
	// Every finished session up to upTo is observed now.
	m.upTo, m.atUpTo = upTo, atUpTo
	return n, nil
}

// WatchPhases runs ObservePhases every interval until ctx ends. Errors
// go to onErr (nil: dropped); the next round tries again.
func (m *Metrics) WatchPhases(ctx context.Context, src session.Source, cat *catalog.Catalog, gap, interval time.Duration, onErr func(error)) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		if _, err := m.ObservePhases(ctx, src, cat, gap, time.Now()); err != nil && onErr != nil && ctx.Err() == nil {
			onErr(err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
