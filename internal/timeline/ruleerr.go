package timeline

import (
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// A rules file is user input (--rules), so its errors say file:line and
// what was expected in words a user of the file knows: field names and
// "a list", never the Go types the YAML decoder reports.

// lineError is an error at a line of the rules file. When value is set
// the message is about that value, and the key it belongs to is named.
type lineError struct {
	line  int
	msg   string
	value bool
}

func (e *lineError) Error() string { return fmt.Sprintf("line %d: %s", e.line, e.msg) }

func errAt(line int, format string, a ...any) error {
	return &lineError{line: line, msg: fmt.Sprintf(format, a...)}
}

// ruleLines finds where the parts of a rules file are, for messages.
type ruleLines struct{ root *yaml.Node }

func newRuleLines(data []byte) ruleLines {
	var doc yaml.Node
	if yaml.Unmarshal(data, &doc) != nil || len(doc.Content) == 0 {
		return ruleLines{}
	}
	return ruleLines{root: doc.Content[0]}
}

// hosts returns the items of every "hosts" list in the file, wherever it
// stands, in file order.
func (l ruleLines) hosts() []*yaml.Node {
	var out []*yaml.Node
	var walk func(n *yaml.Node)
	walk = func(n *yaml.Node) {
		if n == nil {
			return
		}
		if n.Kind == yaml.MappingNode {
			for j := 0; j+1 < len(n.Content); j += 2 {
				if k, v := n.Content[j], n.Content[j+1]; k.Value == "hosts" && v.Kind == yaml.SequenceNode {
					for _, h := range v.Content {
						if h.Kind == yaml.ScalarNode {
							out = append(out, h)
						}
					}
					continue
				}
				walk(n.Content[j+1])
			}
			return
		}
		for _, c := range n.Content {
			walk(c)
		}
	}
	walk(l.root)
	return out
}

// item is the line of the i-th (0-based) item of the top-level list key,
// or 0 when unknown.
func (l ruleLines) item(key string, i int) int {
	if l.root == nil || l.root.Kind != yaml.MappingNode {
		return 0
	}
	for j := 0; j+1 < len(l.root.Content); j += 2 {
		if l.root.Content[j].Value == key {
			v := l.root.Content[j+1]
			if v.Kind == yaml.SequenceNode && i < len(v.Content) {
				return v.Content[i].Line
			}
			return v.Line
		}
	}
	return 0
}

// keyAt names the mapping key whose value sits at line (and, when value is
// not empty, reads value), or "".
func (l ruleLines) keyAt(line int, value string) string {
	var find func(n *yaml.Node) string
	find = func(n *yaml.Node) string {
		if n == nil {
			return ""
		}
		if n.Kind == yaml.MappingNode {
			for j := 0; j+1 < len(n.Content); j += 2 {
				k, v := n.Content[j], n.Content[j+1]
				if v.Line == line && (value == "" || v.Value == value) {
					return k.Value
				}
			}
		}
		for _, c := range n.Content {
			if k := find(c); k != "" {
				return k
			}
		}
		return ""
	}
	return find(l.root)
}

// What a YAML value is, by its tag, and what a Go type wants, in words.
var (
	yamlKinds = map[string]string{"str": "text", "seq": "a list", "map": "a mapping", "int": "a number",
		"float": "a number", "bool": "true or false", "null": "nothing", "binary": "binary data", "timestamp": "a time"}
	wants = map[string]string{
		"int": "a whole number", "int64": "a whole number", "float64": "a number", "bool": "true or false",
		"string": "text", "[]string": "a list, e.g. [a, b]", "map[string]string": "a mapping of catalog phase to phase id",
		"timeline.Rules":       "a mapping with version, milestones, phases, hurts and content",
		"[]timeline.Rule":      "a list of milestone rules",
		"timeline.Rule":        "a milestone rule (a mapping with id, title, …)",
		"[]timeline.Matcher":   "a list of matchers, each a mapping of services, hosts, paths, schemes or kinds",
		"timeline.Matcher":     "a matcher (a mapping of services, hosts, paths, schemes or kinds)",
		"[]timeline.PhaseRule": "a list of phases",
		"timeline.PhaseRule":   "a phase (a mapping with id, name, start and about)",
		"timeline.ContentRule": "a mapping with min_bytes and slow_factor",
		"timeline.Context":     "a mapping with within and match",
		"*timeline.Context":    "a mapping with within and match",
		"timeline.Duration":    "a duration like 30s or 5m",
	}
	// What each part of the file is called, and its fields.
	parts = map[string]struct {
		name string
		typ  reflect.Type
	}{
		"timeline.Rules":       {"the rules file", reflect.TypeOf(Rules{})},
		"timeline.Rule":        {"a milestone rule", reflect.TypeOf(Rule{})},
		"timeline.Matcher":     {"a matcher", reflect.TypeOf(Matcher{})},
		"timeline.PhaseRule":   {"a phase", reflect.TypeOf(PhaseRule{})},
		"timeline.ContentRule": {"content", reflect.TypeOf(ContentRule{})},
		"timeline.Context":     {"a context", reflect.TypeOf(Context{})},
	}
	reUnmarshal = regexp.MustCompile("^line (\\d+): cannot unmarshal !!(\\w+) (?:`(.*)` )?into (.+)$")
	reUnknown   = regexp.MustCompile(`^line (\d+): field (\S+) not found in type (\S+)$`)
	reSyntax    = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)
)

// fields lists the YAML field names of t, in order.
func fields(t reflect.Type) string {
	var out []string
	for i := 0; i < t.NumField(); i++ {
		if tag, _, _ := strings.Cut(t.Field(i).Tag.Get("yaml"), ","); tag != "" && tag != "-" {
			out = append(out, tag)
		}
	}
	return strings.Join(out, ", ")
}

// explain turns an error of the YAML decoder into "file:line: what".
func explain(name string, data []byte, err error) error {
	lines := newRuleLines(data)
	at := func(line int, key, msg string) string {
		if key != "" {
			msg = key + ": " + msg
		}
		return fmt.Sprintf("%s:%d: %s", name, line, msg)
	}
	var le *lineError
	if errors.As(err, &le) {
		key := ""
		if le.value {
			key = lines.keyAt(le.line, "")
		}
		return errors.New(at(le.line, key, le.msg))
	}
	var te *yaml.TypeError
	if errors.As(err, &te) {
		var msgs []string
		for _, e := range te.Errors {
			msgs = append(msgs, explainOne(e, lines, at))
		}
		return errors.New(strings.Join(msgs, "; "))
	}
	if m := reSyntax.FindStringSubmatch(err.Error()); m != nil {
		n, _ := strconv.Atoi(m[1])
		return errors.New(at(n, "", "not valid YAML: "+m[2]))
	}
	return fmt.Errorf("%s: not valid YAML: %s", name, strings.TrimPrefix(err.Error(), "yaml: "))
}

func explainOne(e string, lines ruleLines, at func(int, string, string) string) string {
	if m := reUnmarshal.FindStringSubmatch(e); m != nil {
		n, _ := strconv.Atoi(m[1])
		got := yamlKinds[m[2]]
		if got == "" {
			got = "a value of another kind"
		}
		if m[3] != "" {
			got += " (" + m[3] + ")"
		}
		want := wants[m[4]]
		if want == "" {
			want = "another kind of value"
		}
		return at(n, lines.keyAt(n, m[3]), "got "+got+", want "+want)
	}
	if m := reUnknown.FindStringSubmatch(e); m != nil {
		n, _ := strconv.Atoi(m[1])
		p, ok := parts[m[3]]
		if !ok {
			return at(n, "", fmt.Sprintf("unknown field %q", m[2]))
		}
		return at(n, "", fmt.Sprintf("unknown field %q in %s (known: %s)", m[2], p.name, fields(p.typ)))
	}
	// A decoder message this does not know: keep its line, drop the rest
	// of its wording only if it names a Go type.
	if i := strings.Index(e, " into "); i >= 0 {
		e = e[:i]
	}
	return e
}
