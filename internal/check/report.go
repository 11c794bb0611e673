package check

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"
)

// Formats are the report formats Render writes.
var Formats = []string{"table", "json", "markdown"}

// PhaseVerdict is one provisioning phase: its worst host decides.
type PhaseVerdict struct {
	Phase   string
	Verdict Verdict
	Results []Result // in target order
}

// Report is a check's answer: ready or not, and why, by phase.
type Report struct {
	Via    string // "directly" or "through proxy HOST:PORT"
	Ready  bool   // no host failed
	Hosts  int
	Failed int
	Warned int
	Phases []PhaseVerdict // in the order their first host was checked
}

// Summarise groups results by phase. The network is ready when no host
// failed; warnings (TLS inspection of a host that tolerates it, proxy
// authentication a user may answer) do not make it unready.
func Summarise(results []Result, o Options) Report {
	r := Report{Via: "directly", Ready: true, Hosts: len(results)}
	if o.Proxy != nil {
		r.Via = "through proxy " + o.Proxy.Host
	}
	index := map[string]int{}
	for _, res := range results {
		i, ok := index[res.Phase]
		if !ok {
			i = len(r.Phases)
			index[res.Phase] = i
			r.Phases = append(r.Phases, PhaseVerdict{Phase: res.Phase, Verdict: Pass})
		}
		ph := &r.Phases[i]
		ph.Results = append(ph.Results, res)
		ph.Verdict = worse(ph.Verdict, res.Verdict)
		switch res.Verdict {
		case Fail:
			r.Failed++
			r.Ready = false
		case Warn:
			r.Warned++
		}
	}
	return r
}

// Sentence is a result in words an admin forwards to the network team:
// "Intune enrollment would fail: enrollment.manage.microsoft.com: CONNECT
// refused with 403 by proxy proxy.corp:8080".
func (r Result) Sentence() string {
	switch r.Verdict {
	case Fail:
		return fmt.Sprintf("%s would fail: %s: %s", r.ServiceName, r.Host, r.Problem)
	case Warn:
		return fmt.Sprintf("%s may fail: %s: %s", r.ServiceName, r.Host, r.Problem)
	}
	return fmt.Sprintf("%s: %s: reachable", r.ServiceName, r.Host)
}

// Headline is the report's first line.
func (r Report) Headline() string {
	if r.Ready {
		s := fmt.Sprintf("READY: all %d hosts reachable %s", r.Hosts, r.Via)
		if r.Warned > 0 {
			s += fmt.Sprintf(", %d with a warning", r.Warned)
		}
		return s
	}
	return fmt.Sprintf("NOT READY: %d of %d hosts fail %s (%d warnings)", r.Failed, r.Hosts, r.Via, r.Warned)
}

// steps says a result's steps with their times: "dns 2ms, tcp 51ms, …".
func steps(res Result) string {
	var s []string
	for _, st := range res.Steps {
		mark := ""
		if !st.OK {
			mark = " FAILED"
		}
		s = append(s, fmt.Sprintf("%s %s%s", st.Name, ms(st.Took), mark))
	}
	return strings.Join(s, ", ")
}

func ms(d time.Duration) string {
	if d < 10*time.Millisecond {
		return fmt.Sprintf("%.1fms", float64(d)/float64(time.Millisecond))
	}
	return fmt.Sprintf("%dms", d.Milliseconds())
}

// Render writes the report in format (Formats).
func Render(w io.Writer, format string, r Report) error {
	switch format {
	case "table":
		return renderTable(w, r)
	case "json":
		return renderJSON(w, r)
	case "markdown", "md":
		return renderMarkdown(w, r)
	}
	return fmt.Errorf("unknown format %q (want %s)", format, strings.Join(Formats, ", "))
}

func renderTable(w io.Writer, r Report) error {
	fmt.Fprintln(w, r.Headline())
	for _, ph := range r.Phases {
		fmt.Fprintf(w, "\nphase %s: %s\n", ph.Phase, strings.ToUpper(string(ph.Verdict)))
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		for _, res := range ph.Results {
			what := steps(res)
			if res.Verdict != Pass {
				what = res.Sentence()
			}
			fmt.Fprintf(tw, "  %s\t%s:%d\t%s\n", strings.ToUpper(string(res.Verdict)), res.Host, res.Port, what)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	return nil
}

// The JSON shapes of a report.
type jsonStep struct {
	Name   string  `json:"name"`
	OK     bool    `json:"ok"`
	MS     float64 `json:"ms"`
	Detail string  `json:"detail,omitempty"`
}

type jsonResult struct {
	Host        string     `json:"host"`
	Port        int        `json:"port"`
	Scheme      string     `json:"scheme"`
	Service     string     `json:"service"`
	ServiceName string     `json:"service_name"`
	Phase       string     `json:"phase"`
	Required    string     `json:"required,omitempty"`
	Pattern     string     `json:"pattern,omitempty"`
	FromSession bool       `json:"from_session,omitempty"`
	Verdict     Verdict    `json:"verdict"`
	Problem     string     `json:"problem,omitempty"`
	Sentence    string     `json:"sentence"`
	Issuer      string     `json:"issuer,omitempty"`
	Steps       []jsonStep `json:"steps"`
}

type jsonPhase struct {
	Phase   string       `json:"phase"`
	Verdict Verdict      `json:"verdict"`
	Hosts   []jsonResult `json:"hosts"`
}

type jsonReport struct {
	Ready    bool        `json:"ready"`
	Headline string      `json:"headline"`
	Via      string      `json:"via"`
	Hosts    int         `json:"hosts"`
	Failed   int         `json:"failed"`
	Warned   int         `json:"warned"`
	Phases   []jsonPhase `json:"phases"`
}

func renderJSON(w io.Writer, r Report) error {
	out := jsonReport{Ready: r.Ready, Headline: r.Headline(), Via: r.Via, Hosts: r.Hosts, Failed: r.Failed, Warned: r.Warned,
		Phases: []jsonPhase{}}
	for _, ph := range r.Phases {
		jp := jsonPhase{Phase: ph.Phase, Verdict: ph.Verdict}
		for _, res := range ph.Results {
			jr := jsonResult{Host: res.Host, Port: res.Port, Scheme: res.Scheme, Service: res.Service, ServiceName: res.ServiceName,
				Phase: res.Phase, Required: string(res.Required), Pattern: res.Pattern, FromSession: res.FromSession,
				Verdict: res.Verdict, Problem: res.Problem, Sentence: res.Sentence(), Issuer: res.Issuer, Steps: []jsonStep{}}
			for _, st := range res.Steps {
				jr.Steps = append(jr.Steps, jsonStep{Name: st.Name, OK: st.OK, MS: float64(st.Took.Microseconds()) / 1000, Detail: st.Detail})
			}
			jp.Hosts = append(jp.Hosts, jr)
		}
		out.Phases = append(out.Phases, jp)
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(out)
}

// mdCell makes text safe inside a markdown table cell.
func mdCell(s string) string {
	s = strings.ReplaceAll(s, "\\", "\\\\")
	s = strings.ReplaceAll(s, "|", "\\|")
	return strings.ReplaceAll(s, "\n", " ")
}

func renderMarkdown(w io.Writer, r Report) error {
	fmt.Fprintf(w, "## Autopilot network check: %s\n", r.Headline())
	var problems []string
	for _, ph := range r.Phases {
		for _, res := range ph.Results {
			if res.Verdict != Pass {
				problems = append(problems, fmt.Sprintf("- **%s** %s", strings.ToUpper(string(res.Verdict)), mdCell(res.Sentence())))
			}
		}
	}
	if len(problems) > 0 {
		fmt.Fprintf(w, "\n### What to change\n\n%s\n", strings.Join(problems, "\n"))
	}
	for _, ph := range r.Phases {
		fmt.Fprintf(w, "\n### Phase %s: %s\n\n| Host | Service | Result | Steps |\n|---|---|---|---|\n", ph.Phase, ph.Verdict)
		for _, res := range ph.Results {
			result := string(res.Verdict)
			if res.Problem != "" {
				result += ": " + res.Problem
			}
			fmt.Fprintf(w, "| `%s:%d` | %s | %s | %s |\n", strings.ReplaceAll(res.Host, "`", ""), res.Port, mdCell(res.ServiceName),
				mdCell(result), mdCell(steps(res)))
		}
	}
	return nil
}
