package scenario

import (
	"bytes"
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/pilotwire/pilotwire/internal/flow"
)

// FromFlows makes a scenario of a captured session's flows: every tunnel
// and plain HTTP request becomes a step at its offset from the first flow,
// with its bytes, duration and outcome. Flows a device cannot replay
// through a proxy (DNS, raw TCP, QUIC, the proxy's own PAC answers, lost
// records) are left out and counted in skipped.
func FromFlows(name, device string, flows []flow.Flow) (sc *Scenario, skipped int) {
	sc = &Scenario{Name: name, Device: device}
	var t0 time.Time
	for i := range flows {
		if t0.IsZero() || flows[i].Start.Before(t0) {
			t0 = flows[i].Start
		}
	}
	for i := range flows {
		f := &flows[i]
		st, ok := stepOf(f)
		if !ok {
			skipped++
			continue
		}
		st.At = f.Start.Sub(t0).Truncate(time.Millisecond)
		sc.Steps = append(sc.Steps, st)
	}
	slices.SortStableFunc(sc.Steps, func(a, b Step) int { return int(a.At - b.At) })
	return sc, skipped
}

func stepOf(f *flow.Flow) (Step, bool) {
	st := Step{Host: f.Host, Port: f.Port, Up: max(f.BytesUp, 0), Down: max(f.BytesDown, 0)}
	if checkHost(f.Host) != nil {
		return st, false
	}
	if !f.End.IsZero() && f.End.After(f.Start) {
		st.Duration = f.End.Sub(f.Start).Truncate(time.Millisecond)
	}
	switch f.Kind {
	case flow.KindConnect, flow.KindTLS:
		st.Method, st.Path = "CONNECT", "/"
		if st.Port <= 0 {
			st.Port = 443
		}
	case flow.KindHTTP:
		st.Method = strings.ToUpper(f.Method)
		if !slices.Contains([]string{"GET", "POST", "PUT", "HEAD", "DELETE"}, st.Method) || f.Scheme == "https" {
			return st, false
		}
		if st.Port <= 0 {
			st.Port = 80
		}
		st.Path = "/"
		if u, err := url.Parse(f.URL); err == nil && u.RequestURI() != "" {
			st.Path = u.RequestURI()
		}
	default:
		return st, false
	}
	out, _ := flow.Judge(f)
	switch {
	case out == flow.Refused:
		st.Expect = ExpectRefused
	case f.Kind == flow.KindHTTP && f.Status >= 400:
		st.Expect = strconv.Itoa(f.Status)
	case out == flow.Failed:
		st.Expect = ExpectFail
	}
	return st, true
}

// Format writes sc as a scenario file, one step a line, which Parse reads
// back to the same scenario.
func Format(sc *Scenario, comment string) []byte {
	var b bytes.Buffer
	for l := range strings.SplitSeq(strings.TrimSpace(comment), "\n") {
		if l != "" {
			fmt.Fprintf(&b, "# %s\n", l)
		}
	}
	fmt.Fprintf(&b, "name: %s\n", strconv.Quote(sc.Name))
	if sc.Description != "" {
		fmt.Fprintf(&b, "description: %s\n", strconv.Quote(sc.Description))
	}
	if sc.Device != "" {
		fmt.Fprintf(&b, "device: %s\n", strconv.Quote(sc.Device))
	}
	b.WriteString("steps:\n")
	for _, st := range sc.Steps {
		fmt.Fprintf(&b, "  - {at: %s, ", st.At)
		if st.Method == "CONNECT" {
			fmt.Fprintf(&b, "connect: %s", strconv.Quote(hostPort(st.Host, st.Port)))
		} else {
			u := "http://" + hostPort(st.Host, st.Port) + st.Path
			if st.Port == 80 {
				u = "http://" + bracket(st.Host) + st.Path
			}
			fmt.Fprintf(&b, "%s: %s", strings.ToLower(st.Method), strconv.Quote(u))
		}
		if st.Up > 0 {
			fmt.Fprintf(&b, ", up: %d", st.Up)
		}
		if st.Down > 0 {
			fmt.Fprintf(&b, ", down: %d", st.Down)
		}
		if st.Duration > 0 {
			fmt.Fprintf(&b, ", duration: %s", st.Duration)
		}
		if st.Expect != "" {
			fmt.Fprintf(&b, ", expect: %s", strconv.Quote(st.Expect))
		}
		b.WriteString("}\n")
	}
	return b.Bytes()
}

func bracket(h string) string {
	if strings.Contains(h, ":") {
		return "[" + h + "]"
	}
	return h
}

func hostPort(h string, port int) string { return bracket(h) + ":" + strconv.Itoa(port) }
