// Package allowlist reads the allow and deny lists a network team keeps —
// in every format `pilotwire endpoints export` writes that names hosts
// (a Squid dstdomain list, a plain pattern list, CSV, JSON) and the
// pilotwire catalog YAML of user files — into host patterns of the one
// pattern language (package pattern), and decides hosts against them
// (Policy), for `proxy --enforce`, `report --against` and `check`.
//
// Every rule keeps the file and line it came from, so a denial names the
// rule that made it, and a mistake in a file is refused with its file,
// line and reason.
//
// # Line lists
//
// One value a line; blank lines and lines starting with '#' are comments.
// A value is a host pattern ("ztd.dds.microsoft.com", "*.manage.microsoft.com")
// or a Squid dstdomain value: ".example.com" means example.com and every
// name under it, as in Squid. The two exports differ only in that form,
// so one reader takes both.
package allowlist

import (
	"bufio"
	"bytes"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/pilotwire/pilotwire/internal/catalog"
	"github.com/pilotwire/pilotwire/internal/pattern"
)

// MaxFileSize bounds a list file: the catalog's whole export is ~10 KiB.
const MaxFileSize = 16 << 20

// Formats a list can be read from (List.Format).
const (
	FormatLines   = "lines"   // Squid dstdomain or plain pattern list
	FormatCSV     = "csv"     // endpoints export --format csv
	FormatJSON    = "json"    // endpoints export --format json
	FormatCatalog = "catalog" // a pilotwire catalog file (YAML)
)

// Rule is one value of a list: the host patterns it stands for (a Squid
// ".domain" value is two: the domain and everything under it) and where
// it was written.
type Rule struct {
	Patterns []pattern.Pattern
	Text     string // the value as written
	File     string
	Line     int
}

// String names the rule as a denial reason quotes it: "allow.txt:12 (.example.com)".
func (r Rule) String() string { return fmt.Sprintf("%s:%d (%s)", r.File, r.Line, r.Text) }

// Match reports whether one of the rule's patterns matches host.
func (r Rule) Match(host string) bool {
	for _, p := range r.Patterns {
		if p.Match(host) {
			return true
		}
	}
	return false
}

// List is a parsed allow or deny list.
type List struct {
	File   string
	Format string
	Rules  []Rule
}

// Patterns returns every pattern of the list, in file order.
func (l *List) Patterns() []pattern.Pattern {
	var out []pattern.Pattern
	for _, r := range l.Rules {
		out = append(out, r.Patterns...)
	}
	return out
}

// Match returns the first rule that matches host.
func (l *List) Match(host string) (Rule, bool) {
	for _, r := range l.Rules {
		if r.Match(host) {
			return r, true
		}
	}
	return Rule{}, false
}

// Error is a list that could not be read: where, and why.
type Error struct {
	File   string
	Line   int // 1-based; 0 when the trouble is not on one line
	Reason string
}

func (e *Error) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("allowlist %s:%d: %s", e.File, e.Line, e.Reason)
	}
	return fmt.Sprintf("allowlist %s: %s", e.File, e.Reason)
}

// Load reads the list in file.
func Load(file string) (*List, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, fmt.Errorf("allowlist: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("allowlist %s: %w", file, err)
	}
	return Parse(file, data)
}

// Parse reads a list held in data; name is the file name errors and rules
// give. The format is told from the content: a catalog file has a
// top-level "services:" or "entries:" key, a JSON export starts with '[',
// a CSV export with its "pattern,example," header; anything else is a
// line list.
func Parse(name string, data []byte) (*List, error) {
	if len(data) > MaxFileSize {
		return nil, &Error{File: name, Reason: fmt.Sprintf("larger than %d bytes", MaxFileSize)}
	}
	l := &List{File: name}
	var err error
	trimmed := bytes.TrimLeft(data, " \t\r\n\ufeff")
	switch {
	case isCatalog(data):
		l.Format = FormatCatalog
		l.Rules, err = parseCatalog(name, data)
	case bytes.HasPrefix(trimmed, []byte("[")):
		l.Format = FormatJSON
		l.Rules, err = parseJSON(name, data)
	case bytes.HasPrefix(trimmed, []byte("pattern,")):
		l.Format = FormatCSV
		l.Rules, err = parseCSV(name, data)
	default:
		l.Format = FormatLines
		l.Rules, err = parseLines(name, data)
	}
	if err != nil {
		return nil, err
	}
	if len(l.Rules) == 0 {
		return nil, &Error{File: name, Reason: "no hosts in it (an empty allowlist would deny everything)"}
	}
	return l, nil
}

// isCatalog reports whether data has a top-level services: or entries:
// key, as catalog files do and line lists cannot (':' is not in a host).
func isCatalog(data []byte) bool {
	for line := range bytes.SplitSeq(data, []byte("\n")) {
		if bytes.HasPrefix(line, []byte("services:")) || bytes.HasPrefix(line, []byte("entries:")) {
			return true
		}
	}
	return false
}

// value parses one value of a list into its patterns.
func value(v string) ([]pattern.Pattern, error) {
	ps, err := values(v)
	for _, p := range ps {
		if err == nil && p.IsZero() {
			// pattern.Parse takes a name that IDNA maps to nothing
			// ("\u00ad") for the zero Pattern, which matches no host.
			err = fmt.Errorf("%q names no host", v)
		}
	}
	return ps, err
}

func values(v string) ([]pattern.Pattern, error) {
	if dom, ok := strings.CutPrefix(v, "."); ok {
		// Squid dstdomain: the domain and every name under it.
		p, err := pattern.Parse(dom)
		if err != nil {
			return nil, err
		}
		if !p.Literal() {
			return nil, fmt.Errorf("%q: a Squid \".domain\" value takes no wildcard", v)
		}
		under, err := pattern.Parse("*." + dom)
		if err != nil {
			return nil, err
		}
		return []pattern.Pattern{p, under}, nil
	}
	p, err := pattern.Parse(v)
	if err != nil {
		return nil, err
	}
	return []pattern.Pattern{p}, nil
}

func parseLines(name string, data []byte) ([]Rule, error) {
	var rules []Rule
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 4096), 64<<10)
	n := 0
	for sc.Scan() {
		n++
		line := strings.TrimSpace(sc.Text())
		if n == 1 {
			line = strings.TrimPrefix(line, "\ufeff")
		}
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if strings.ContainsAny(line, " \t") {
			return nil, &Error{File: name, Line: n, Reason: fmt.Sprintf("%q: one host pattern a line (comments start the line with '#')", line)}
		}
		ps, err := value(line)
		if err != nil {
			return nil, &Error{File: name, Line: n, Reason: reason(err)}
		}
		rules = append(rules, Rule{Patterns: ps, Text: line, File: name, Line: n})
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return nil, &Error{File: name, Line: n + 1, Reason: "line longer than 64 KiB"}
		}
		return nil, &Error{File: name, Reason: err.Error()}
	}
	return rules, nil
}

// reason is a pattern error without its own "host pattern" prefix when
// it is a *pattern.Error (the caller says where it is).
func reason(err error) string {
	var pe *pattern.Error
	if errors.As(err, &pe) {
		return fmt.Sprintf("%q: %s (at offset %d)", pe.Pattern, pe.Reason, pe.Offset)
	}
	return err.Error()
}

func parseCSV(name string, data []byte) ([]Rule, error) {
	r := csv.NewReader(bytes.NewReader(data))
	r.FieldsPerRecord = -1
	var rules []Rule
	col := -1
	for {
		rec, err := r.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			var pe *csv.ParseError
			if errors.As(err, &pe) {
				return nil, &Error{File: name, Line: pe.Line, Reason: "not valid CSV: " + pe.Err.Error()}
			}
			return nil, &Error{File: name, Reason: err.Error()}
		}
		line, _ := r.FieldPos(0)
		if col < 0 {
			for i, h := range rec {
				if strings.TrimPrefix(h, "\ufeff") == "pattern" {
					col = i
				}
			}
			if col < 0 {
				return nil, &Error{File: name, Line: line, Reason: "no \"pattern\" column in the header"}
			}
			continue
		}
		if col >= len(rec) {
			return nil, &Error{File: name, Line: line, Reason: fmt.Sprintf("%d fields; the pattern is field %d", len(rec), col+1)}
		}
		v := strings.TrimSpace(rec[col])
		ps, err := value(v)
		if err != nil {
			return nil, &Error{File: name, Line: line, Reason: reason(err)}
		}
		rules = append(rules, Rule{Patterns: ps, Text: v, File: name, Line: line})
	}
	return rules, nil
}

func parseJSON(name string, data []byte) ([]Rule, error) {
	lineAt := func(off int64) int {
		// The next value starts after blanks and the comma before it.
		for off < int64(len(data)) && strings.IndexByte(" \t\r\n,", data[off]) >= 0 {
			off++
		}
		return 1 + bytes.Count(data[:off], []byte("\n"))
	}
	fail := func(off int64, err error) error {
		var se *json.SyntaxError
		if errors.As(err, &se) {
			off = se.Offset - 1
		}
		if off < 0 {
			off = 0
		}
		return &Error{File: name, Line: lineAt(off), Reason: "not a JSON export: " + err.Error()}
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	if _, err := dec.Token(); err != nil { // '['
		return nil, fail(0, err)
	}
	var rules []Rule
	for dec.More() {
		off := dec.InputOffset()
		var e struct {
			Pattern *string `json:"pattern"`
		}
		if err := dec.Decode(&e); err != nil {
			return nil, fail(off, err)
		}
		line := lineAt(off)
		if e.Pattern == nil {
			return nil, &Error{File: name, Line: line, Reason: "entry has no \"pattern\""}
		}
		ps, err := value(strings.TrimSpace(*e.Pattern))
		if err != nil {
			return nil, &Error{File: name, Line: line, Reason: reason(err)}
		}
		rules = append(rules, Rule{Patterns: ps, Text: *e.Pattern, File: name, Line: line})
	}
	if _, err := dec.Token(); err != nil { // ']'
		return nil, fail(dec.InputOffset(), err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, &Error{File: name, Line: lineAt(dec.InputOffset()), Reason: "more after the end of the JSON list"}
	}
	return rules, nil
}

// parseCatalog reads a catalog file the way --catalog does (the catalog
// checks it and names the line of a mistake) and keeps its own entries.
func parseCatalog(name string, data []byte) ([]Rule, error) {
	c, err := catalog.Default().With(name, data)
	if err != nil {
		return nil, fmt.Errorf("allowlist: %w", err)
	}
	var rules []Rule
	for _, e := range c.Entries() {
		if e.File != name {
			continue
		}
		rules = append(rules, Rule{Patterns: []pattern.Pattern{e.HostPattern()}, Text: e.Pattern, File: name, Line: e.Line})
	}
	return rules, nil
}

// Policy decides hosts against an allowlist, a denylist, or both: a host
// the denylist matches is denied; otherwise, with an allowlist, a host it
// does not match is denied. With neither, everything is allowed.
type Policy struct {
	Allow *List
	Deny  *List
}

// Decide reports whether host may be reached and, either way, the rule
// that decided it, in words a 403 body and a flow's Reason carry. The port
// plays no part: lists name hosts. Its shape is proxy.Proxy's Policy.
func (p Policy) Decide(host string, _ int) (bool, string) {
	if p.Deny != nil {
		if r, ok := p.Deny.Match(host); ok {
			return false, "denied by denylist rule " + r.String()
		}
	}
	if p.Allow != nil {
		r, ok := p.Allow.Match(host)
		if !ok {
			return false, "not in allowlist " + p.Allow.File
		}
		return true, "allowed by allowlist rule " + r.String()
	}
	return true, ""
}
