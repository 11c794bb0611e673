// Package scenario owns simulated devices: scenarios (what a device does
// during provisioning, as data: steps with an offset, a host, CONNECT or an
// HTTP request, bytes each way, a duration and the outcome expected), the
// runner that plays one through a proxy as a real client does, and the
// stand-in servers' handler that answers its requests. The demo, the
// end-to-end tests and the load benchmark drive devices with it, and
// `scenario from-session` turns a captured run into one.
//
// It imports flow and sim's conventions only: never a store, the proxy,
// the timeline or a renderer (the tests that compare a run's timeline with
// the scenario's do that from outside).
package scenario

import (
	"bytes"
	"embed"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/pilotwire/pilotwire/internal/pattern"
	"gopkg.in/yaml.v3"
)

// Scenario is what one simulated device does, step by step.
type Scenario struct {
	Name        string `yaml:"name"`
	Description string `yaml:"description"`
	// Device is the label the device gets ("autopilot-vm").
	Device string `yaml:"device"`
	Steps  []Step `yaml:"steps"`
	// File is where the scenario was read from ("embedded:NAME" for the
	// built-in ones).
	File string `yaml:"-"`
}

// Expectations of a step's outcome.
const (
	ExpectOK      = ""        // the exchange works
	ExpectRefused = "refused" // the proxy refuses it (403 from the proxy)
	ExpectFail    = "fail"    // the network fails it (the name does not resolve, or nothing answers)
)

// Step is one exchange of the device.
type Step struct {
	// At is the offset from the scenario's start.
	At time.Duration
	// Method is CONNECT (a tunnel, TLS inside) or an HTTP method (a plain
	// HTTP request through the proxy).
	Method string
	Host   string
	Port   int
	// Path is the HTTP request's path and query ("/" for CONNECT steps).
	Path string
	// Up and Down are the bytes of content each way.
	Up, Down int64
	// Duration is how long the exchange takes at speed 1.
	Duration time.Duration
	// Expect is ExpectOK, ExpectRefused, ExpectFail, or an HTTP status
	// ("404") that the server answers.
	Expect string
	// Line is the step's line in its file.
	Line int
}

// Status is the HTTP status a step expects from the server: 200 unless
// Expect names another.
func (s *Step) Status() int {
	if n, err := strconv.Atoi(s.Expect); err == nil {
		return n
	}
	return 200
}

// stepYAML is a step as a file writes it: one of connect/get/post/put/
// head/delete says what and where.
type stepYAML struct {
	At       string `yaml:"at"`
	Connect  string `yaml:"connect,omitempty"`
	Get      string `yaml:"get,omitempty"`
	Post     string `yaml:"post,omitempty"`
	Put      string `yaml:"put,omitempty"`
	Head     string `yaml:"head,omitempty"`
	Delete   string `yaml:"delete,omitempty"`
	Up       string `yaml:"up,omitempty"`
	Down     string `yaml:"down,omitempty"`
	Duration string `yaml:"duration,omitempty"`
	Expect   string `yaml:"expect,omitempty"`
}

// MaxSteps bounds a scenario file.
const MaxSteps = 100_000

// MaxBytes bounds one step's content each way (at speed 1, before any
// scaling): 16 GiB.
const MaxBytes = 16 << 30

// Parse reads a scenario from YAML. Errors name the file and line.
func Parse(name string, data []byte) (*Scenario, error) {
	var doc struct {
		Name        string      `yaml:"name"`
		Description string      `yaml:"description"`
		Device      string      `yaml:"device"`
		Steps       []yaml.Node `yaml:"steps"`
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("%s: empty scenario file", name)
		}
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	sc := &Scenario{Name: doc.Name, Description: doc.Description, Device: doc.Device, File: name}
	if sc.Name == "" {
		return nil, fmt.Errorf("%s: the scenario has no name (name: …)", name)
	}
	if len(doc.Steps) == 0 {
		return nil, fmt.Errorf("%s: scenario %q has no steps", name, sc.Name)
	}
	if len(doc.Steps) > MaxSteps {
		return nil, fmt.Errorf("%s: %d steps; at most %d", name, len(doc.Steps), MaxSteps)
	}
	for i := range doc.Steps {
		n := &doc.Steps[i]
		var y stepYAML
		if err := decodeStrict(n, &y); err != nil {
			return nil, fmt.Errorf("%s:%d: step %d: %w", name, n.Line, i+1, err)
		}
		st, err := y.step()
		if err != nil {
			return nil, fmt.Errorf("%s:%d: step %d: %w", name, n.Line, i+1, err)
		}
		st.Line = n.Line
		sc.Steps = append(sc.Steps, st)
	}
	slices.SortStableFunc(sc.Steps, func(a, b Step) int { return int(a.At - b.At) })
	return sc, nil
}

// decodeStrict decodes a node refusing unknown keys (yaml.Node.Decode does
// not know KnownFields).
func decodeStrict(n *yaml.Node, v any) error {
	b, err := yaml.Marshal(n)
	if err != nil {
		return err
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(v); err != nil {
		// yaml's messages count lines from the step: drop them.
		msg := err.Error()
		if i := strings.Index(msg, "line "); i >= 0 {
			if j := strings.Index(msg[i:], ": "); j >= 0 {
				msg = msg[:i] + msg[i+j+2:]
			}
		}
		return errors.New(strings.TrimPrefix(msg, "yaml: unmarshal errors:\n  "))
	}
	return nil
}

func (y *stepYAML) step() (Step, error) {
	var st Step
	at, err := parseDuration(y.At)
	if err != nil || y.At == "" {
		return st, fmt.Errorf("at %q: want an offset like 2m10.5s", y.At)
	}
	st.At = at
	var what []string
	for _, m := range []struct{ method, target string }{
		{"CONNECT", y.Connect}, {"GET", y.Get}, {"POST", y.Post}, {"PUT", y.Put}, {"HEAD", y.Head}, {"DELETE", y.Delete},
	} {
		if m.target != "" {
			what = append(what, strings.ToLower(m.method))
			st.Method = m.method
			if err := st.target(m.target); err != nil {
				return st, err
			}
		}
	}
	switch len(what) {
	case 0:
		return st, errors.New("say what the step does: connect: HOST:PORT, or get/post/put/head/delete: http://HOST/PATH")
	case 1:
	default:
		return st, fmt.Errorf("one of %s at a time", strings.Join(what, ", "))
	}
	if st.Up, err = ParseBytes(y.Up); err != nil {
		return st, fmt.Errorf("up: %w", err)
	}
	if st.Down, err = ParseBytes(y.Down); err != nil {
		return st, fmt.Errorf("down: %w", err)
	}
	if y.Duration != "" {
		if st.Duration, err = parseDuration(y.Duration); err != nil {
			return st, fmt.Errorf("duration %q: want a duration like 900ms", y.Duration)
		}
	}
	switch y.Expect {
	case ExpectOK, ExpectRefused, ExpectFail:
		st.Expect = y.Expect
	default:
		n, err := strconv.Atoi(y.Expect)
		if err != nil || n < 100 || n > 599 {
			return st, fmt.Errorf("expect %q: want refused, fail or an HTTP status like 404", y.Expect)
		}
		if st.Method == "CONNECT" {
			return st, fmt.Errorf("expect %q: a CONNECT step's server status is not seen by the proxy; use refused or fail", y.Expect)
		}
		st.Expect = y.Expect
	}
	return st, nil
}

// target reads a step's host, port and path.
func (st *Step) target(s string) error {
	if st.Method == "CONNECT" {
		host, port, err := splitHostPort(s)
		if err != nil {
			return fmt.Errorf("connect %q: want HOST:PORT, e.g. ztd.dds.microsoft.com:443", s)
		}
		st.Host, st.Port, st.Path = host, port, "/"
		return checkHost(st.Host)
	}
	u, err := url.Parse(s)
	if err != nil || u.Scheme != "http" || u.Host == "" || u.User != nil || u.Fragment != "" {
		return fmt.Errorf("%s %q: want a plain http:// URL (HTTPS goes through connect:)", strings.ToLower(st.Method), s)
	}
	st.Host, st.Port = u.Hostname(), 80
	if p := u.Port(); p != "" {
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 || n > 65535 {
			return fmt.Errorf("%q: port %q", s, p)
		}
		st.Port = n
	}
	st.Path = u.RequestURI()
	return checkHost(st.Host)
}

func splitHostPort(s string) (string, int, error) {
	i := strings.LastIndexByte(s, ':')
	if i <= 0 {
		return "", 0, errors.New("no port")
	}
	n, err := strconv.Atoi(s[i+1:])
	if err != nil || n < 1 || n > 65535 {
		return "", 0, errors.New("bad port")
	}
	return strings.Trim(s[:i], "[]"), n, nil
}

// checkHost refuses what is not a host name or address: a literal host
// pattern is exactly one host.
func checkHost(h string) error {
	p, err := pattern.Parse(h)
	if err != nil || !p.Literal() {
		return fmt.Errorf("host %q is not a host name", h)
	}
	return nil
}

func parseDuration(s string) (time.Duration, error) {
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 || d > 48*time.Hour {
		return 0, errors.New("bad duration")
	}
	return d, nil
}

// ParseBytes reads a byte count: 1500, 14KiB, 1.5MiB, 2GiB (KB, MB and GB
// are powers of 1000).
func ParseBytes(s string) (int64, error) {
	if s == "" {
		return 0, nil
	}
	units := []struct {
		suffix string
		mult   float64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"B", 1}}
	num, mult := s, 1.0
	for _, u := range units {
		if v, ok := strings.CutSuffix(s, u.suffix); ok {
			num, mult = strings.TrimSpace(v), u.mult
			break
		}
	}
	f, err := strconv.ParseFloat(num, 64)
	if err != nil || f < 0 || f*mult > MaxBytes {
		return 0, fmt.Errorf("%q: want a size like 1500, 14KiB or 1.5MiB, at most 16GiB", s)
	}
	return int64(f * mult), nil
}

//go:embed scenarios/*.yaml
var embedded embed.FS

// Embedded lists the built-in scenarios' names.
func Embedded() []string {
	entries, _ := fs.ReadDir(embedded, "scenarios")
	var out []string
	for _, e := range entries {
		out = append(out, strings.TrimSuffix(e.Name(), ".yaml"))
	}
	return out
}

// Load returns the built-in scenario name, or reads the file name when no
// built-in one has that name.
func Load(name string, readFile func(string) ([]byte, error)) (*Scenario, error) {
	if data, err := embedded.ReadFile("scenarios/" + name + ".yaml"); err == nil {
		return Parse("embedded:"+name, data)
	}
	data, err := readFile(name)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("scenario %q: no such built-in scenario (%s) nor file", name, strings.Join(Embedded(), ", "))
		}
		return nil, fmt.Errorf("scenario: %w", err)
	}
	return Parse(name, data)
}
