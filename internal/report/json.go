package report

import (
	"bufio"
	"encoding/json"
	"io"
	"time"

	"github.com/pilotwire/pilotwire/internal/timeline"
)

// SchemaVersion is the version of the JSON report's shape
// (docs/report-json.md). It goes up when a field changes meaning or goes
// away; new fields do not change it.
const SchemaVersion = 1

// The JSON document. Field comments are in docs/report-json.md; keep the
// two in step.
type jsonDoc struct {
	SchemaVersion  int             `json:"schema_version"`
	Generator      string          `json:"generator,omitempty"`
	Source         string          `json:"source,omitempty"`
	Session        jsonSession     `json:"session"`
	T0             time.Time       `json:"t0"`
	Milestones     []jsonMilestone `json:"milestones"`
	Phases         []jsonPhase     `json:"phases"`
	Services       []jsonService   `json:"services"`
	Attention      []jsonAttention `json:"attention"`
	BestThroughput float64         `json:"best_throughput_bytes_per_second"`
	Provisioning   bool            `json:"provisioning"`
	Verdict        string          `json:"verdict,omitempty"`
}

// SessionJSON is a session as the JSON report (and `pilotwire sessions
// --json`) writes it; docs/report-json.md describes it.
type SessionJSON = jsonSession

// NewSessionJSON describes s the way the JSON report does.
func NewSessionJSON(s timeline.Session) SessionJSON {
	return jsonSession{Number: s.Number, Proxy: s.Proxy, Client: s.Client, Device: s.Device, Name: s.Name, Start: s.Start, End: s.End,
		Duration: timeline.FormatOffset(s.Duration()), DurationSeconds: secs(s.Duration()), Flows: s.Flows, Bytes: s.Bytes, Lost: s.Lost}
}

type jsonSession struct {
	Number          int       `json:"number,omitempty"`
	Proxy           string    `json:"proxy,omitempty"`
	Client          string    `json:"client"`
	Device          string    `json:"device,omitempty"`
	Name            string    `json:"name,omitempty"`
	Start           time.Time `json:"start"`
	End             time.Time `json:"end"`
	Duration        string    `json:"duration"`
	DurationSeconds float64   `json:"duration_seconds"`
	Flows           int64     `json:"flows"`
	Bytes           int64     `json:"bytes"`
	Lost            int64     `json:"lost,omitempty"`
}

type jsonHost struct {
	Host        string `json:"host"`
	Service     string `json:"service"`
	ServiceName string `json:"service_name"`
	Purpose     string `json:"purpose,omitempty"`
	Known       bool   `json:"known"`
	PlainHTTP   bool   `json:"plain_http,omitempty"`
	URL         string `json:"url,omitempty"`
	Region      string `json:"region,omitempty"`
}

type jsonMilestone struct {
	ID            string     `json:"id"`
	Title         string     `json:"title"`
	Text          string     `json:"text"`
	Time          time.Time  `json:"time"`
	Offset        string     `json:"offset"`
	OffsetSeconds float64    `json:"offset_seconds"`
	Likely        bool       `json:"likely,omitempty"`
	Why           string     `json:"why,omitempty"`
	Region        string     `json:"region,omitempty"`
	Hosts         []jsonHost `json:"hosts"`
	FlowIDs       []int64    `json:"flow_ids"`
	Flows         int        `json:"flows"`
}

type jsonShare struct {
	Service       string  `json:"service"`
	Name          string  `json:"name"`
	Flows         int64   `json:"flows"`
	Bytes         int64   `json:"bytes"`
	ActiveSeconds float64 `json:"active_seconds"`
}

type jsonPhase struct {
	ID                 string      `json:"id"`
	Name               string      `json:"name"`
	About              string      `json:"about,omitempty"`
	Start              time.Time   `json:"start"`
	End                time.Time   `json:"end"`
	StartOffset        string      `json:"start_offset"`
	EndOffset          string      `json:"end_offset"`
	StartOffsetSeconds float64     `json:"start_offset_seconds"`
	EndOffsetSeconds   float64     `json:"end_offset_seconds"`
	DurationSeconds    float64     `json:"duration_seconds"`
	Milestone          string      `json:"milestone"`
	Flows              int64       `json:"flows"`
	Bytes              int64       `json:"bytes"`
	Services           []jsonShare `json:"services"`
}

type jsonHostStat struct {
	Host  string `json:"host"`
	Flows int64  `json:"flows"`
	Bytes int64  `json:"bytes"`
}

type jsonService struct {
	ID                 string         `json:"id"`
	Name               string         `json:"name"`
	Color              string         `json:"color"`
	First              time.Time      `json:"first"`
	Last               time.Time      `json:"last"`
	FirstOffsetSeconds float64        `json:"first_offset_seconds"`
	LastOffsetSeconds  float64        `json:"last_offset_seconds"`
	Flows              int64          `json:"flows"`
	BytesUp            int64          `json:"bytes_up"`
	BytesDown          int64          `json:"bytes_down"`
	HostCount          int            `json:"host_count"`
	Hosts              []jsonHostStat `json:"hosts"`
	Transfers          int            `json:"transfers"`
	TransferBytes      int64          `json:"transfer_bytes"`
	TransferSeconds    float64        `json:"transfer_seconds"`
	Throughput         float64        `json:"throughput_bytes_per_second"`
	Activity           [][2]float64   `json:"activity"`
}

type jsonAttention struct {
	Kind          string    `json:"kind"`
	Host          jsonHost  `json:"host"`
	Detail        string    `json:"detail,omitempty"`
	Flows         int       `json:"flows"`
	Bytes         int64     `json:"bytes"`
	First         time.Time `json:"first"`
	Offset        string    `json:"offset"`
	OffsetSeconds float64   `json:"offset_seconds"`
	Last          time.Time `json:"last"`
	LastOffset    string    `json:"last_offset"`
	LastSeconds   float64   `json:"last_offset_seconds"`
	Blocks        string    `json:"blocks,omitempty"`
	BlocksTitle   string    `json:"blocks_title,omitempty"`
	BlocksFired   bool      `json:"blocks_fired,omitempty"`
	Hurts         string    `json:"hurts,omitempty"`
	HurtsName     string    `json:"hurts_name,omitempty"`
	FlowIDs       []int64   `json:"flow_ids"`
}

// JSON writes the report as one indented JSON document in the shape of
// docs/report-json.md, version SchemaVersion.
func JSON(w io.Writer, tl *timeline.Timeline, opt Options) error {
	bw := bufio.NewWriter(w)
	enc := json.NewEncoder(bw)
	enc.SetIndent("", "  ")
	if err := enc.Encode(document(tl, opt)); err != nil {
		return err
	}
	return bw.Flush()
}

func secs(d time.Duration) float64 { return d.Seconds() }

func hostJSON(h timeline.HostRef) jsonHost {
	return jsonHost{Host: h.Host, Service: h.Service, ServiceName: h.ServiceName, Purpose: h.Purpose, Known: h.Known,
		PlainHTTP: h.PlainHTTP, URL: h.URL, Region: h.Region}
}

func orEmpty[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

func document(tl *timeline.Timeline, opt Options) jsonDoc {
	s := tl.Session
	d := jsonDoc{
		SchemaVersion: SchemaVersion, Generator: opt.Generator, Source: opt.Source, T0: tl.T0,
		Session:    NewSessionJSON(s),
		Milestones: []jsonMilestone{}, Phases: []jsonPhase{}, Services: []jsonService{}, Attention: []jsonAttention{},
		BestThroughput: tl.BestThroughput, Provisioning: tl.Provisioning, Verdict: verdict(tl),
	}
	for _, m := range tl.Milestones {
		jm := jsonMilestone{ID: m.ID, Title: m.Title, Text: m.Text, Time: m.Time, Offset: timeline.FormatOffset(m.Offset),
			OffsetSeconds: secs(m.Offset), Likely: m.Likely, Why: m.Why, Region: m.Region, Hosts: []jsonHost{},
			FlowIDs: orEmpty(m.FlowIDs), Flows: m.Flows}
		for _, h := range m.Hosts {
			jm.Hosts = append(jm.Hosts, hostJSON(h))
		}
		d.Milestones = append(d.Milestones, jm)
	}
	for _, p := range tl.Phases {
		jp := jsonPhase{ID: p.ID, Name: p.Name, About: p.About, Start: p.Start, End: p.End,
			StartOffset: timeline.FormatOffset(p.StartOffset), EndOffset: timeline.FormatOffset(p.EndOffset),
			StartOffsetSeconds: secs(p.StartOffset), EndOffsetSeconds: secs(p.EndOffset), DurationSeconds: secs(p.Duration()),
			Milestone: p.Milestone, Flows: p.Flows, Bytes: p.Bytes, Services: []jsonShare{}}
		for _, sh := range p.Services {
			jp.Services = append(jp.Services, jsonShare{Service: sh.Service.ID, Name: sh.Service.Name, Flows: sh.Flows,
				Bytes: sh.Bytes, ActiveSeconds: secs(sh.Active)})
		}
		d.Phases = append(d.Phases, jp)
	}
	for _, b := range tl.Services {
		js := jsonService{ID: b.Service.ID, Name: b.Service.Name, Color: color(b.Service.Color), First: b.First, Last: b.Last,
			FirstOffsetSeconds: secs(b.First.Sub(tl.T0)), LastOffsetSeconds: secs(b.Last.Sub(tl.T0)), Flows: b.Flows,
			BytesUp: b.BytesUp, BytesDown: b.BytesDown, HostCount: b.HostCount, Hosts: []jsonHostStat{},
			Transfers: b.Transfers, TransferBytes: b.TransferBytes, TransferSeconds: secs(b.TransferTime),
			Throughput: b.Throughput, Activity: [][2]float64{}}
		for _, h := range b.Hosts {
			js.Hosts = append(js.Hosts, jsonHostStat(h))
		}
		for _, sp := range b.Activity {
			js.Activity = append(js.Activity, [2]float64{secs(sp.Start), secs(sp.End)})
		}
		d.Services = append(d.Services, js)
	}
	for _, a := range tl.Attention {
		d.Attention = append(d.Attention, jsonAttention{Kind: a.Kind, Host: hostJSON(a.Host), Detail: a.Detail, Flows: a.Flows,
			Bytes: a.Bytes, First: a.First, Offset: timeline.FormatOffset(a.Offset), OffsetSeconds: secs(a.Offset),
			Last: a.Last, LastOffset: timeline.FormatOffset(a.LastOffset), LastSeconds: secs(a.LastOffset),
			Blocks: a.Blocks, BlocksTitle: a.BlocksTitle, BlocksFired: a.BlocksFired, Hurts: a.Hurts, HurtsName: a.HurtsName, FlowIDs: orEmpty(a.FlowIDs)})
	}
	return d
}
