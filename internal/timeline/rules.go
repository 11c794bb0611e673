package timeline

import (
	"bytes"
	_ "embed"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/pilotwire/pilotwire/internal/pattern"
	"gopkg.in/yaml.v3"
)

//go:embed milestones.yaml
var embeddedRules []byte

// DefaultRules parses the embedded milestones.yaml. The package's tests
// parse it too, so an error here means a broken build, not bad input.
func DefaultRules() (*Rules, error) {
	r, err := ParseRules("milestones.yaml", embeddedRules)
	if err != nil {
		return nil, fmt.Errorf("embedded %w", err)
	}
	return r, nil
}

// Rules say how flows become milestones and phases. They are data
// (milestones.yaml, embedded), so a new milestone is an edit to a YAML file,
// not to Go code.
type Rules struct {
	Version    int         `yaml:"version"`
	Milestones []Rule      `yaml:"milestones"`
	Phases     []PhaseRule `yaml:"phases"`
	// Hurts maps a catalog phase (catalog.KnownPhase) to the ID of the phase
	// that a failure of such a host would hurt, or to "" when provisioning
	// does not depend on it. Catalog phases not listed hurt nothing known.
	Hurts map[string]string `yaml:"hurts"`
	// Content is when a flow counts as a content transfer, and when one is
	// slow.
	Content ContentRule `yaml:"content"`

	// Warnings are what a loader should tell the user about the file
	// although it was accepted, each "FILE:LINE: message": host patterns
	// whose meaning changed when the rules adopted the one pattern
	// language. The embedded rules have none.
	Warnings []string `yaml:"-"`

	// canTell: some rule is marked provisioning, so a session where none
	// fired can be said not to look like provisioning. Rules that mark
	// none (an older user file) cannot tell, and every session counts.
	canTell bool
}

// Kinds of milestone rule.
const (
	KindMatch     = ""           // the first flow (or each burst) that a matcher selects
	KindFirstFlow = "first-flow" // the session's first flow
	KindLastFlow  = "last-flow"  // the session's last flow
	KindReboot    = "reboot"     // silence, then a connectivity probe and a new burst
	// KindProxyConfig is the device fetching pilotwire's own PAC file
	// (flow.KindPAC flows inside the session): one line, never a
	// service, band or phase.
	KindProxyConfig = "proxy-config"
)

// Rule is one kind of milestone.
type Rule struct {
	ID    string `yaml:"id"`
	Title string `yaml:"title"`
	// Text is the sentence shown under the title. It may use {region}
	// (Intune scale unit), {file} (the last path element of the first
	// plain URL), {flows} ("3 flows" behind the milestone), {duration}
	// and {session_flows} (the session's length and flows).
	Text string `yaml:"text"`
	// RegionText is appended to Text when the milestone's hosts name an
	// Intune scale unit.
	RegionText string `yaml:"region_text"`
	// FileText is appended to Text when a plain-HTTP file name is known.
	FileText string `yaml:"file_text"`
	Kind     string `yaml:"kind"`
	// Likely marks milestones inferred from circumstantial evidence; the
	// report says "likely".
	Likely bool `yaml:"likely"`
	// Provisioning marks milestones that only provisioning shows
	// (Autopilot, enrollment, ESP). A session where none fired does not
	// look like provisioning: it gets no phases, and the report says so.
	Provisioning bool `yaml:"provisioning"`
	// Context, when set, is traffic that must come with the milestone:
	// a flow that Context.Match selects, and that succeeded, within
	// Context.Within before or after the flow that would fire it. It
	// keeps a milestone whose hosts an ordinary PC also uses (a
	// Microsoft account sign-in, Windows Update) from firing outside
	// provisioning. Match and reboot rules may have one.
	Context *Context `yaml:"context"`
	// Match selects flows: a flow matches when any of the matchers
	// accepts it.
	Match []Matcher `yaml:"match"`
	// After names a milestone that must have happened first.
	After string `yaml:"after"`
	// QuietBefore: the rule's matchers must have matched nothing for this
	// long before a flow can start the milestone (e.g. a user's sign-in is
	// Entra traffic after a long quiet spell).
	QuietBefore Duration `yaml:"quiet_before"`
	// RepeatAfter makes the rule fire again when it matches after this
	// much quiet; zero means the first occurrence only.
	RepeatAfter Duration `yaml:"repeat_after"`
	// Window is how long after its first flow a milestone keeps gathering
	// matching flows and hosts. Zero means 5 s.
	Window Duration `yaml:"window"`
	// Reboot rules: at least Silence without a new flow, then a flow that
	// Probe selects within ProbeWithin of the silence's end, and at least
	// BurstFlows flows within BurstWithin.
	Silence     Duration  `yaml:"silence"`
	Probe       []Matcher `yaml:"probe"`
	ProbeWithin Duration  `yaml:"probe_within"`
	BurstWithin Duration  `yaml:"burst_within"`
	BurstFlows  int       `yaml:"burst_flows"`
}

// Matcher selects flows. Every non-empty field must accept the flow; a list
// accepts when any of its items does.
type Matcher struct {
	// Services are catalog service IDs.
	Services []string `yaml:"services"`
	// Hosts are host patterns in pilotwire's one language (package
	// pattern), matched label by label: "a.b.c" exactly, "*.b.c" one or
	// more labels under b.c, "a.*.c" one or more labels in the middle,
	// "a.?*.c" exactly one, "kv*.b.c" a glob inside one label.
	Hosts []string `yaml:"hosts"`
	// Paths are case-insensitive globs over the URL's path, where '*'
	// matches any run of characters, '/' included ("*/setup.exe").
	Paths []string `yaml:"paths"`
	// Schemes: "http" selects plain HTTP flows (whose URLs a proxy sees),
	// "https" everything else.
	Schemes []string `yaml:"schemes"`
	// Kinds are flow kinds (http, connect, tls, dns, tcp, quic).
	Kinds []string `yaml:"kinds"`

	hosts []pattern.Pattern
	paths []string
}

// Context is traffic a milestone needs around it (see Rule.Context).
type Context struct {
	Within Duration  `yaml:"within"`
	Match  []Matcher `yaml:"match"`
}

// PhaseRule is one provisioning phase. Phases follow one another in the
// order given; each starts at the earliest of its Start milestones
// ("session-start" is the session's first flow) and ends where the next
// phase that occurred starts.
type PhaseRule struct {
	ID    string   `yaml:"id"`
	Name  string   `yaml:"name"`
	Start []string `yaml:"start"`
	// About is one line on what happens in the phase.
	About string `yaml:"about"`
}

// ContentRule says which flows are content transfers and when one is slow.
type ContentRule struct {
	// MinBytes: flows that bring at least this many bytes down (and have
	// a duration) are content transfers. Zero means 1 MiB.
	MinBytes int64 `yaml:"min_bytes"`
	// SlowFactor: a transfer is slow when its throughput is below the
	// session's best divided by this. Zero means 10.
	SlowFactor float64 `yaml:"slow_factor"`
}

// SessionStart is the pseudo milestone at the session's first flow, for
// PhaseRule.Start.
const SessionStart = "session-start"

// Duration is a time.Duration written in YAML as "30s" or "5m".
type Duration time.Duration

// UnmarshalYAML reads a Go duration string.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	var s string
	if n.Kind != yaml.ScalarNode || n.Decode(&s) != nil {
		return &lineError{line: n.Line, msg: "want a duration like 30s, 5m or 1h", value: true}
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return &lineError{line: n.Line, msg: fmt.Sprintf("%q is not a duration (want one like 30s, 5m or 1h)", s), value: true}
	}
	if v < 0 {
		return &lineError{line: n.Line, msg: fmt.Sprintf("duration %s is negative", s), value: true}
	}
	*d = Duration(v)
	return nil
}

// ParseRules reads milestone rules from YAML. name is used in errors, which
// say where and what is wrong.
func ParseRules(name string, data []byte) (*Rules, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	var r Rules
	if err := dec.Decode(&r); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("%s: no rules (empty file)", name)
		}
		return nil, explain(name, data, err)
	}
	lines := newRuleLines(data)
	if err := r.compile(lines); err != nil {
		return nil, explain(name, data, err)
	}
	for _, h := range lines.hosts() {
		if w := changedMeaning(h.Value); w != "" {
			r.Warnings = append(r.Warnings, fmt.Sprintf("%s:%d: host pattern %s %s", name, h.Line, h.Value, w))
		}
	}
	return &r, nil
}

// changedMeaning says how the meaning of host pattern s changed when rule
// files adopted the one pattern language, or "" when it did not. Before,
// a '*' label meant one or more labels only as the first label(s); any
// later one meant exactly one label. Now a '*' label is one or more labels
// wherever it stands, and zero or more as the last.
func changedMeaning(s string) string {
	labels := strings.Split(strings.TrimSuffix(s, "."), ".")
	lead := true // still in the leading run of '*' labels
	for i, l := range labels {
		switch {
		case l != "*":
			lead = false
		case lead:
		case i == len(labels)-1:
			return "now matches zero or more labels where it matched exactly one"
		default:
			return "now matches one or more labels where it matched exactly one"
		}
	}
	return ""
}

// compile checks the rules and prepares their matchers. lines says where
// the parts are, for errors.
func (r *Rules) compile(lines ruleLines) error {
	if r.Version != 1 {
		return errAt(max(1, lines.item("version", 0)), "version %d: want 1", r.Version)
	}
	if len(r.Milestones) == 0 {
		return errAt(max(1, lines.item("milestones", 0)), "no milestones")
	}
	seen := map[string]bool{SessionStart: true}
	for i := range r.Milestones {
		m := &r.Milestones[i]
		where := fmt.Sprintf("milestone %d (%q)", i+1, m.ID)
		line := lines.item("milestones", i)
		errorf := func(format string, a ...any) error { return errAt(line, where+": "+format, a...) }
		if m.ID == "" || strings.ContainsAny(m.ID, " \t\n") {
			return errorf("id must be a non-empty word")
		}
		if seen[m.ID] {
			return errorf("duplicate id")
		}
		if m.Title == "" {
			return errorf("no title")
		}
		if m.After != "" && !seen[m.After] {
			return errorf("after %q: no such milestone before it", m.After)
		}
		seen[m.ID] = true
		switch m.Kind {
		case KindMatch:
			if len(m.Match) == 0 {
				return errorf("no match")
			}
		case KindFirstFlow, KindLastFlow, KindProxyConfig:
			if len(m.Match) != 0 {
				return errorf("kind %s takes no match", m.Kind)
			}
		case KindReboot:
			if len(m.Probe) == 0 || m.Silence <= 0 || m.ProbeWithin <= 0 || m.BurstWithin <= 0 || m.BurstFlows <= 0 {
				return errorf("a reboot rule needs probe, silence, probe_within, burst_within and burst_flows")
			}
		default:
			return errorf("unknown kind %q (want first-flow, last-flow, reboot, proxy-config or none)", m.Kind)
		}
		if m.Window == 0 {
			m.Window = Duration(5 * time.Second)
		}
		for j := range m.Match {
			if err := m.Match[j].compile(); err != nil {
				return errorf("match %d: %v", j+1, err)
			}
		}
		for j := range m.Probe {
			if err := m.Probe[j].compile(); err != nil {
				return errorf("probe %d: %v", j+1, err)
			}
		}
		if c := m.Context; c != nil {
			if m.Kind != KindMatch && m.Kind != KindReboot {
				return errorf("kind %s takes no context", m.Kind)
			}
			if c.Within <= 0 || len(c.Match) == 0 {
				return errorf("context needs within (a duration like 10m) and match")
			}
			for j := range c.Match {
				if err := c.Match[j].compile(); err != nil {
					return errorf("context match %d: %v", j+1, err)
				}
			}
		}
	}
	phases := map[string]bool{}
	for i, p := range r.Phases {
		where := fmt.Sprintf("phase %d (%q)", i+1, p.ID)
		line := lines.item("phases", i)
		errorf := func(format string, a ...any) error { return errAt(line, where+": "+format, a...) }
		if p.ID == "" || p.Name == "" || phases[p.ID] {
			return errorf("needs a unique id and a name")
		}
		phases[p.ID] = true
		if len(p.Start) == 0 {
			return errorf("no start milestone")
		}
		for _, s := range p.Start {
			if !seen[s] {
				return errorf("start %q: no such milestone", s)
			}
		}
	}
	if len(r.Phases) == 0 || r.Phases[0].Start[0] != SessionStart {
		return errAt(max(1, lines.item("phases", 0)), "the first phase must start at session-start")
	}
	for cp, id := range r.Hurts {
		if id != "" && !phases[id] {
			return errAt(max(1, lines.item("hurts", 0)), "hurts %s: no phase %q", cp, id)
		}
	}
	if r.Content.MinBytes < 0 || r.Content.SlowFactor < 0 {
		return errAt(max(1, lines.item("content", 0)), "content: min_bytes and slow_factor must not be negative")
	}
	r.canTell = false
	for _, m := range r.Milestones {
		r.canTell = r.canTell || m.Provisioning
	}
	if r.Content.MinBytes == 0 {
		r.Content.MinBytes = 1 << 20
	}
	if r.Content.SlowFactor == 0 {
		r.Content.SlowFactor = 10
	}
	return nil
}

func (m *Matcher) compile() error {
	if len(m.Services)+len(m.Hosts)+len(m.Paths)+len(m.Schemes)+len(m.Kinds) == 0 {
		return errors.New("empty matcher")
	}
	m.hosts = m.hosts[:0]
	for _, h := range m.Hosts {
		p, err := pattern.Parse(h)
		if err != nil {
			return err
		}
		m.hosts = append(m.hosts, p)
	}
	m.paths = m.paths[:0]
	for _, p := range m.Paths {
		if p == "" {
			return errors.New("empty path pattern")
		}
		m.paths = append(m.paths, strings.ToLower(p))
	}
	for _, s := range m.Schemes {
		if s != "http" && s != "https" {
			return fmt.Errorf("scheme %q: want http or https", s)
		}
	}
	for _, s := range m.Services {
		if s == "" {
			return errors.New("empty service id")
		}
	}
	return nil
}

// globMatch reports whether s fits pattern, where '*' matches any run of
// bytes (slashes too) and every other byte matches itself.
func globMatch(pattern, s string) bool {
	px, sx := 0, 0
	star, starS := -1, 0
	for sx < len(s) {
		switch {
		case px < len(pattern) && pattern[px] == '*':
			star, starS = px, sx
			px++
		case px < len(pattern) && pattern[px] == s[sx]:
			px++
			sx++
		case star >= 0:
			// Let the last star swallow one more byte and retry.
			starS++
			px, sx = star+1, starS
		default:
			return false
		}
	}
	for px < len(pattern) && pattern[px] == '*' {
		px++
	}
	return px == len(pattern)
}
