package catalog

import (
	"bytes"
	"errors"
	"fmt"
	"hash/fnv"
	"regexp"
	"strings"

	"gopkg.in/yaml.v3"
)

// Error is a problem in a catalog file, with the place it was found.
type Error struct {
	File   string
	Line   int // 1-based; 0 when the problem is not on one line
	Reason string
}

func (e *Error) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("catalog %s:%d: %s", e.File, e.Line, e.Reason)
	}
	return fmt.Sprintf("catalog %s: %s", e.File, e.Reason)
}

// maxFileSize bounds a user catalog file; the embedded one is ~100 KiB.
const maxFileSize = 16 << 20

// builder accumulates files into a catalog.
type builder struct {
	entries  []Entry
	byPat    map[string]int
	services []Service
	svcIndex map[string]int
}

func newBuilder() *builder {
	return &builder{byPat: map[string]int{}, svcIndex: map[string]int{}}
}

// fileDoc is the top level of a catalog file.
//
//	services: [{id, name, color, noise}]
//	entries:  [{pattern | patterns, service, phase, required, purpose, source, example, no-inspect, no-bodies}]
func (b *builder) add(file string, data []byte, builtin bool) (err error) {
	fail := func(line int, format string, args ...any) error {
		return &Error{File: file, Line: line, Reason: fmt.Sprintf(format, args...)}
	}
	if len(data) > maxFileSize {
		return fail(0, "file is larger than %d bytes", maxFileSize)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		line, reason := yamlErrorLine(err, data)
		return fail(line, "not valid YAML: %s", reason)
	}
	if doc.Kind == 0 || len(doc.Content) == 0 {
		return fail(0, "file is empty")
	}
	top := doc.Content[0]
	if top.Kind != yaml.MappingNode {
		return fail(top.Line, "the top level must be a mapping with \"services\" and/or \"entries\"")
	}
	var svcNode, entNode *yaml.Node
	for i := 0; i+1 < len(top.Content); i += 2 {
		k, v := top.Content[i], top.Content[i+1]
		switch k.Value {
		case "services":
			svcNode = v
		case "entries":
			entNode = v
		default:
			return fail(k.Line, "unknown key %q (want services or entries)", k.Value)
		}
	}
	if svcNode == nil && entNode == nil {
		return fail(top.Line, "no services and no entries")
	}
	if svcNode != nil {
		if err := b.addServices(file, svcNode, builtin, fail); err != nil {
			return err
		}
	}
	if entNode != nil {
		if err := b.addEntries(file, entNode, builtin, fail); err != nil {
			return err
		}
	}
	return nil
}

type failFunc func(line int, format string, args ...any) error

// fields reads a flat mapping of scalars (and, for listKey, one list of
// scalars) and refuses unknown or repeated keys.
func fields(n *yaml.Node, allowed []string, listKey string, fail failFunc) (map[string]*yaml.Node, []*yaml.Node, error) {
	if n.Kind != yaml.MappingNode {
		return nil, nil, fail(n.Line, "want a mapping, found %s", kindName(n))
	}
	m := map[string]*yaml.Node{}
	var list []*yaml.Node
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if _, dup := m[k.Value]; dup {
			return nil, nil, fail(k.Line, "key %q given twice", k.Value)
		}
		if k.Value == listKey && listKey != "" {
			if v.Kind != yaml.SequenceNode || len(v.Content) == 0 {
				return nil, nil, fail(v.Line, "%s must be a non-empty list of host names", listKey)
			}
			for _, it := range v.Content {
				if it.Kind != yaml.ScalarNode {
					return nil, nil, fail(it.Line, "%s items must be host names, found %s", listKey, kindName(it))
				}
			}
			list = v.Content
			m[k.Value] = v
			continue
		}
		known := false
		for _, a := range allowed {
			known = known || a == k.Value
		}
		if !known {
			return nil, nil, fail(k.Line, "unknown key %q (known: %s)", k.Value, strings.Join(allowed, ", "))
		}
		if v.Kind != yaml.ScalarNode {
			return nil, nil, fail(v.Line, "%s must be a single value, found %s", k.Value, kindName(v))
		}
		m[k.Value] = v
	}
	return m, list, nil
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.AliasNode:
		return "an alias"
	default:
		return "a single value"
	}
}

func (b *builder) addServices(file string, n *yaml.Node, builtin bool, fail failFunc) error {
	if n.Kind != yaml.SequenceNode {
		return fail(n.Line, "services must be a list, found %s", kindName(n))
	}
	seen := map[string]int{}
	for _, item := range n.Content {
		m, _, err := fields(item, []string{"id", "name", "color", "noise"}, "", fail)
		if err != nil {
			return err
		}
		id := value(m, "id")
		if id == "" {
			return fail(item.Line, "service has no id")
		}
		if !validID(id) {
			return fail(m["id"].Line, "service id %q: use lower-case letters, digits and '-'", id)
		}
		if prev, ok := seen[id]; ok {
			return fail(item.Line, "service %q already defined at line %d", id, prev)
		}
		seen[id] = item.Line
		s := Service{ID: id, Name: value(m, "name"), Color: strings.ToLower(value(m, "color"))}
		old, exists := b.svcIndex[id]
		switch noise := value(m, "noise"); noise {
		case "true":
			s.Noise = true
		case "false":
		case "":
			if exists {
				s.Noise = b.services[old].Noise
			}
		default:
			return fail(m["noise"].Line, "service %q: noise %q: want true or false", id, noise)
		}
		if s.Name == "" {
			if !exists {
				return fail(item.Line, "service %q has no name", id)
			}
			s.Name = b.services[old].Name
		}
		switch {
		case s.Color != "" && !validColor(s.Color):
			return fail(m["color"].Line, "service %q: color %q is not #rrggbb", id, s.Color)
		case s.Color == "" && builtin:
			return fail(item.Line, "service %q has no color", id)
		case s.Color == "" && exists:
			s.Color = b.services[old].Color
		case s.Color == "":
			s.Color = fallbackColor(id)
		}
		if exists {
			b.services[old] = s
			continue
		}
		b.svcIndex[id] = len(b.services)
		b.services = append(b.services, s)
	}
	return nil
}

var entryKeys = []string{"pattern", "service", "phase", "required", "purpose", "source", "example", "no-inspect", "no-bodies"}

func (b *builder) addEntries(file string, n *yaml.Node, builtin bool, fail failFunc) error {
	if n.Kind != yaml.SequenceNode {
		return fail(n.Line, "entries must be a list, found %s", kindName(n))
	}
	seen := map[string]int{}
	for _, item := range n.Content {
		m, list, err := fields(item, entryKeys, "patterns", fail)
		if err != nil {
			return err
		}
		tmpl := Entry{
			Service:   value(m, "service"),
			Phase:     value(m, "phase"),
			Purpose:   value(m, "purpose"),
			Required:  Required(value(m, "required")),
			Source:    value(m, "source"),
			Example:   strings.ToLower(value(m, "example")),
			NoInspect: value(m, "no-inspect"),
			NoBodies:  value(m, "no-bodies"),
			File:      file,
			Line:      item.Line,
		}
		if err := b.checkEntry(&tmpl, m, item, builtin, file, fail); err != nil {
			return err
		}
		var pats []*yaml.Node
		switch {
		case m["pattern"] != nil && list != nil:
			return fail(item.Line, "give pattern or patterns, not both")
		case m["pattern"] != nil:
			pats = []*yaml.Node{m["pattern"]}
		case list != nil:
			if tmpl.Example != "" {
				return fail(m["example"].Line, "an entry with patterns (a list of exact hosts) takes no example")
			}
			pats = list
		default:
			return fail(item.Line, "entry has no pattern")
		}
		for _, pn := range pats {
			e := tmpl
			pat, reason := parsePattern(strings.TrimSpace(pn.Value))
			if reason != "" {
				return fail(pn.Line, "pattern %q: %s", pn.Value, reason)
			}
			e.Pattern, e.pat = pat.String(), pat
			if list != nil && hasStar(e.Pattern) {
				return fail(pn.Line, "pattern %q: a patterns list holds exact hosts only; give a wildcard its own entry with an example", pn.Value)
			}
			if prev, ok := seen[e.Pattern]; ok {
				return fail(pn.Line, "pattern %q already defined at line %d", e.Pattern, prev)
			}
			seen[e.Pattern] = pn.Line
			if err := fillExample(&e, builtin); err != nil {
				return fail(pn.Line, "%v", err)
			}
			if i, ok := b.byPat[e.Pattern]; ok {
				b.entries[i] = e
				continue
			}
			b.byPat[e.Pattern] = len(b.entries)
			b.entries = append(b.entries, e)
		}
	}
	return nil
}

// checkEntry validates the fields shared by all patterns of an entry and
// fills defaults that user files may leave out.
func (b *builder) checkEntry(e *Entry, m map[string]*yaml.Node, item *yaml.Node, builtin bool, file string, fail failFunc) error {
	line := func(k string) int {
		if n := m[k]; n != nil {
			return n.Line
		}
		return item.Line
	}
	if e.Service == "" {
		return fail(item.Line, "entry has no service")
	}
	if _, ok := b.svcIndex[e.Service]; !ok {
		return fail(line("service"), "unknown service %q (define it under services:)", e.Service)
	}
	if e.Phase == "" {
		return fail(item.Line, "entry has no phase")
	}
	if !KnownPhase(e.Phase) {
		return fail(line("phase"), "unknown phase %q (known: %s)", e.Phase, strings.Join(phases, ", "))
	}
	if e.Required == "" {
		if builtin {
			return fail(item.Line, "entry has no required (yes, no or unknown)")
		}
		e.Required = RequiredUnknown
	}
	if !e.Required.Valid() {
		return fail(line("required"), "required is %q; want yes, no or unknown", e.Required)
	}
	if strings.ContainsAny(e.Purpose, "\n\r") {
		return fail(line("purpose"), "purpose must be one line")
	}
	if e.Purpose == "" && builtin {
		return fail(item.Line, "entry has no purpose")
	}
	if e.Source == "" {
		if builtin {
			return fail(item.Line, "entry has no source")
		}
		e.Source = "user file " + file
	}
	return nil
}

// fillExample checks the entry's example host, deriving one for user
// entries that give none.
func fillExample(e *Entry, builtin bool) error {
	if !hasStar(e.Pattern) {
		if e.Example != "" && e.Example != e.Pattern {
			return fmt.Errorf("example %q of exact pattern %q must be the pattern itself (or left out)", e.Example, e.Pattern)
		}
		e.Example = e.Pattern
		return nil
	}
	if e.Example == "" {
		if builtin {
			return fmt.Errorf("wildcard pattern %q needs an example host", e.Pattern)
		}
		e.Example = deriveExample(e.Pattern)
	}
	if !e.pat.Match(e.Example) {
		return fmt.Errorf("example %q does not match pattern %q", e.Example, e.Pattern)
	}
	return nil
}

// deriveExample makes a host that pattern matches, for user entries.
func deriveExample(pattern string) string {
	if strings.HasSuffix(pattern, ".*") {
		return strings.TrimSuffix(pattern, "*") + "example"
	}
	labels := strings.Split(pattern, ".")
	for i, l := range labels {
		if strings.Contains(l, "*") {
			labels[i] = strings.ReplaceAll(l, "*", "x")
		}
	}
	return strings.Join(labels, ".")
}

func value(m map[string]*yaml.Node, k string) string {
	if n := m[k]; n != nil {
		return strings.TrimSpace(n.Value)
	}
	return ""
}

func validID(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

func validColor(s string) bool {
	if len(s) != 7 || s[0] != '#' {
		return false
	}
	for i := 1; i < 7; i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// userPalette colours services a user file defines without a colour; the
// choice depends only on the ID, so every view agrees.
var userPalette = [...]string{"#8c564b", "#7f7f7f", "#bcbd22", "#17becf", "#9467bd", "#e377c2", "#2ca02c", "#d62728"}

func fallbackColor(id string) string {
	h := fnv.New32a()
	h.Write([]byte(id))
	return userPalette[h.Sum32()%uint32(len(userPalette))]
}

// yamlErrorLine pulls the line number out of a yaml.v3 error message
// ("yaml: line 7: …") and says it in the words of a catalog file: a type
// error names a YAML tag and a Go type ("cannot unmarshal !!str `abc` into
// catalog.entry"), which becomes what was found and what was expected; a
// syntax error gets a hint at its usual cause.
func yamlErrorLine(err error, data []byte) (int, string) {
	msg := err.Error()
	var te *yaml.TypeError
	if errors.As(err, &te) && len(te.Errors) > 0 {
		msg = te.Errors[0]
	}
	msg = strings.TrimPrefix(msg, "yaml: ")
	line := 0
	if n, _ := fmt.Sscanf(msg, "line %d:", &line); n == 1 {
		if i := strings.Index(msg, ":"); i >= 0 {
			msg = strings.TrimSpace(msg[i+1:])
		}
	}
	if m := typeErrRE.FindStringSubmatch(msg); m != nil {
		msg = fmt.Sprintf("found %s%s where %s was expected", tagName(m[1]), m[2], goKindName(m[3]))
	}
	switch {
	case strings.Contains(msg, "cannot start any token") && line > 0 && bytes.Contains(lineOf(data, line), []byte("\t")):
		msg += " (a tab: YAML indents with spaces only)"
	case strings.Contains(msg, "mapping values are not allowed"):
		msg += " (a value holding \": \" needs quotes; or the indentation is off)"
	case strings.Contains(msg, "did not find expected key"), strings.Contains(msg, "did not find expected '-'"):
		msg += " (check the indentation of this line and the one before)"
	}
	return line, msg
}

// typeErrRE matches a yaml.v3 type error: its tag, value and Go type.
var typeErrRE = regexp.MustCompile("^cannot unmarshal !!(\\w+)( `[^`]*`)? into (\\S+)$")

// tagName says what a YAML tag (without "!!") is in a catalog's words.
func tagName(tag string) string {
	switch tag {
	case "seq":
		return "a list"
	case "map":
		return "a mapping"
	}
	return "a single value"
}

// goKindName says what shape of YAML a Go type takes.
func goKindName(typ string) string {
	switch {
	case strings.HasPrefix(typ, "[]"):
		return "a list"
	case strings.HasPrefix(typ, "map["), strings.Contains(typ, "."):
		// A map, or a named (struct) type of the package.
		return "a mapping"
	}
	return "a single value"
}

// lineOf returns line n (1-based) of data.
func lineOf(data []byte, n int) []byte {
	for i := 1; i < n; i++ {
		j := bytes.IndexByte(data, '\n')
		if j < 0 {
			return nil
		}
		data = data[j+1:]
	}
	if j := bytes.IndexByte(data, '\n'); j >= 0 {
		data = data[:j]
	}
	return data
}
