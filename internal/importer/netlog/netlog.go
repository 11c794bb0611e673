// Package netlog reads Chrome and Edge net-log JSON files (chrome://net-export,
// --log-net-log) into flows: one flow per URL request job, that is per URL
// a request fetched, a redirect starting a new job.
//
// A net-log is {"constants": {…}, "events": [...], "polledData": {…}}.
// Event types are numbers mapped to names by constants.logEventTypes, and
// event times are milliseconds on a tick clock that constants.timeTickOffset
// turns into Unix time; both are read from the file, never assumed. The
// events array is streamed: only requests still in progress are held.
//
// A request job starts at URL_REQUEST_START_JOB (method and URL), takes its
// status from HTTP_TRANSACTION_READ_RESPONSE_HEADERS, counts the bytes of
// URL_REQUEST_JOB_BYTES_READ, and ends at the next job of the same request
// (a redirect) or at REQUEST_ALIVE's end, whose net_error becomes Error.
// Chrome writes the log as it goes, so a browser that was killed leaves it
// without its closing brackets: the requests read so far are still
// emitted, those unfinished as open flows.
package netlog

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/pilotwire/pilotwire/internal/flow"
	"github.com/pilotwire/pilotwire/internal/importer/internal/jsontok"
	"github.com/pilotwire/pilotwire/internal/importer/internal/stretch"
	"github.com/pilotwire/pilotwire/internal/importer/internal/target"
)

// The event types the reader uses; the numbers come from the file.
const (
	evStartJob        = "URL_REQUEST_START_JOB"
	evRequestAlive    = "REQUEST_ALIVE"
	evResponseHeaders = "HTTP_TRANSACTION_READ_RESPONSE_HEADERS"
	evBytesRead       = "URL_REQUEST_JOB_BYTES_READ"
	evBoundToQUIC     = "HTTP_STREAM_REQUEST_BOUND_TO_QUIC_SESSION"
)

const (
	phaseBegin = 1
	phaseEnd   = 2
)

type constants struct {
	LogEventTypes  map[string]int  `json:"logEventTypes"`
	TimeTickOffset json.Number     `json:"timeTickOffset"`
	NetError       map[string]int  `json:"netError"`
	LogEventPhase  map[string]int  `json:"logEventPhase"`
	ClientInfo     json.RawMessage `json:"clientInfo"`
}

type event struct {
	Time   json.Number `json:"time"`
	Type   int         `json:"type"`
	Phase  int         `json:"phase"`
	Source struct {
		ID   int64 `json:"id"`
		Type int   `json:"type"`
	} `json:"source"`
	Params json.RawMessage `json:"params"`
}

// reader holds what is needed to turn events into flows.
type reader struct {
	types     map[int]string // event type number → name, for the types used
	netErrors map[int]string // net error code → name
	offset    int64          // timeTickOffset, ms
	open      map[int64]*job // URL requests in progress, by source id
	emit      func(flow.Flow) error
	last      time.Time // time of the latest event read
}

// job is a URL request job being read.
type job struct {
	f    flow.Flow
	quic bool
}

// Read streams the net-log in r, emitting a flow per URL request job with
// Key "req:<source id>:event:<N>", N the job's start event, counting from 1. An event it cannot read is reported
// through skip ("event 12") and reading goes on; a syntax error or a
// truncated file stops it after emitting the requests in progress.
func Read(ctx context.Context, r io.Reader, emit func(flow.Flow) error, skip func(where string, err error)) error {
	dec := json.NewDecoder(bufio.NewReaderSize(r, 64<<10))
	dec.UseNumber()
	at := func(err error) error {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return fmt.Errorf("offset %#x: %w", dec.InputOffset(), err)
	}
	if err := jsontok.ExpectDelim(dec, '{'); err != nil {
		return at(fmt.Errorf("not a net-log: %w", err))
	}
	rd := &reader{open: map[int64]*job{}, emit: emit}
	sawEvents := false
	for dec.More() {
		key, err := jsontok.ObjectKey(dec)
		if err != nil {
			return at(err)
		}
		switch key {
		case "constants":
			var c constants
			if err := dec.Decode(&c); err != nil {
				return at(fmt.Errorf("constants: %w", err))
			}
			if err := rd.setConstants(&c); err != nil {
				return at(err)
			}
		case "events":
			if rd.types == nil {
				return at(errors.New("events come before constants: event types cannot be named"))
			}
			sawEvents = true
			if err := rd.readEvents(ctx, dec, skip); err != nil {
				if ferr := rd.flush("the log ends before the request finished"); ferr != nil {
					return ferr
				}
				return err
			}
		default:
			if err := jsontok.SkipValue(dec); err != nil {
				return at(fmt.Errorf("%s: %w", key, err))
			}
		}
	}
	if !sawEvents {
		return errors.New("not a net-log: no \"events\" array")
	}
	return rd.flush("the log ends before the request finished")
}

func (rd *reader) setConstants(c *constants) error {
	if len(c.LogEventTypes) == 0 {
		return errors.New("constants.logEventTypes is missing")
	}
	off, err := strconv.ParseInt(string(c.TimeTickOffset), 10, 64)
	if err != nil {
		f, ferr := c.TimeTickOffset.Float64()
		if ferr != nil {
			return fmt.Errorf("constants.timeTickOffset %q: %w", c.TimeTickOffset, err)
		}
		off = int64(f)
	}
	rd.offset = off
	rd.types = map[int]string{}
	for _, name := range []string{evStartJob, evRequestAlive, evResponseHeaders, evBytesRead, evBoundToQUIC} {
		if n, ok := c.LogEventTypes[name]; ok {
			rd.types[n] = name
		}
	}
	rd.netErrors = map[int]string{}
	for name, code := range c.NetError {
		rd.netErrors[code] = name
	}
	return nil
}

func (rd *reader) readEvents(ctx context.Context, dec *json.Decoder, skip func(string, error)) error {
	if err := jsontok.ExpectDelim(dec, '['); err != nil {
		return fmt.Errorf("events at offset %#x: %w", dec.InputOffset(), err)
	}
	n := 0
	// Events of types the reader does not use are readable records too;
	// only a run of damaged ones ends the read (see package stretch).
	bound := stretch.Bound{Unit: "event", What: "net-log events"}
	skipEvent := func(err error) error {
		if berr := bound.Check(n, dec.InputOffset()); berr != nil {
			return berr
		}
		skip(fmt.Sprintf("event %d", n), err)
		return nil
	}
	for dec.More() {
		n++
		if n&1023 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		start := dec.InputOffset()
		var ev event
		if err := dec.Decode(&ev); err != nil {
			var syntaxErr *json.SyntaxError
			if !errors.As(err, &syntaxErr) && !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
				// The event was read whole but a field did not fit.
				if err := skipEvent(err); err != nil {
					return err
				}
				continue
			}
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return fmt.Errorf("event %d at offset %#x: %w", n, start, err)
		}
		if err := rd.event(&ev, n); err != nil {
			var skipErr skipError
			if errors.As(err, &skipErr) {
				if err := skipEvent(err); err != nil {
					return err
				}
				continue
			}
			return err
		}
		bound.Good(n, dec.InputOffset())
	}
	if _, err := dec.Token(); err != nil { // ']'
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return fmt.Errorf("after event %d at offset %#x: %w", n, dec.InputOffset(), err)
	}
	return nil
}

// skipError marks an event that is damaged but does not stop the reading.
type skipError struct{ error }

func (rd *reader) event(ev *event, index int) error {
	name, ok := rd.types[ev.Type]
	if !ok {
		return nil
	}
	t, err := rd.time(ev.Time)
	if err != nil {
		return skipError{fmt.Errorf("%s: time %q: %w", name, ev.Time, err)}
	}
	if t.After(rd.last) {
		rd.last = t
	}
	id := ev.Source.ID
	switch name {
	case evStartJob:
		if ev.Phase != phaseBegin {
			return nil
		}
		var p struct {
			Method string `json:"method"`
			URL    string `json:"url"`
		}
		if err := json.Unmarshal(ev.Params, &p); err != nil || p.URL == "" {
			return skipError{fmt.Errorf("%s without a readable url", name)}
		}
		if j := rd.open[id]; j != nil {
			// A new job on the same request: the previous one was
			// redirected.
			j.f.End = t
			if err := rd.finish(id, j); err != nil {
				return err
			}
		}
		j := &job{}
		j.f = flow.Flow{
			Key:    "req:" + strconv.FormatInt(id, 10) + ":event:" + strconv.Itoa(index),
			Start:  t,
			Source: flow.SourceNetlog,
			Kind:   flow.KindHTTP,
			Method: strings.ToUpper(p.Method),
		}
		setTarget(&j.f, p.URL)
		rd.open[id] = j
	case evResponseHeaders:
		j := rd.open[id]
		if j == nil {
			return nil
		}
		var p struct {
			Headers []string `json:"headers"`
		}
		if err := json.Unmarshal(ev.Params, &p); err != nil {
			return skipError{fmt.Errorf("%s: %w", name, err)}
		}
		if len(p.Headers) > 0 {
			j.f.Status = statusOf(p.Headers[0])
		}
	case evBytesRead:
		j := rd.open[id]
		if j == nil {
			return nil
		}
		var p struct {
			ByteCount int64 `json:"byte_count"`
		}
		if err := json.Unmarshal(ev.Params, &p); err == nil && p.ByteCount > 0 {
			j.f.BytesDown += p.ByteCount
		}
	case evBoundToQUIC:
		if j := rd.open[id]; j != nil {
			j.quic = true
		}
	case evRequestAlive:
		if ev.Phase != phaseEnd {
			return nil
		}
		j := rd.open[id]
		if j == nil {
			return nil
		}
		var p struct {
			NetError int `json:"net_error"`
		}
		if len(ev.Params) > 0 && json.Unmarshal(ev.Params, &p) == nil && p.NetError != 0 {
			j.f.Error = rd.netError(p.NetError)
		}
		j.f.End = t
		delete(rd.open, id)
		return rd.emit(j.finalise())
	}
	return nil
}

// finish emits a redirected job.
func (rd *reader) finish(id int64, j *job) error {
	delete(rd.open, id)
	return rd.emit(j.finalise())
}

func (j *job) finalise() flow.Flow {
	f := j.f
	if !f.End.IsZero() && f.End.Before(f.Start) {
		// Events come in the order Chrome logged them: one dated before
		// its request began is damage, and a flow never ends before it
		// starts.
		f.End = f.Start
	}
	if j.quic {
		f.Note = "over QUIC (HTTP/3)"
	}
	return f
}

// flush emits the requests still open, in the order they started.
func (rd *reader) flush(why string) error {
	ids := make([]int64, 0, len(rd.open))
	for id := range rd.open {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(a, b int) bool { return ids[a] < ids[b] })
	for _, id := range ids {
		j := rd.open[id]
		delete(rd.open, id)
		f := j.finalise()
		f.Note = strings.TrimPrefix(f.Note+"; "+why, "; ")
		if err := rd.emit(f); err != nil {
			return err
		}
	}
	return nil
}

func (rd *reader) netError(code int) string {
	if name, ok := rd.netErrors[code]; ok {
		return fmt.Sprintf("net::%s (%d)", name, code)
	}
	return fmt.Sprintf("net error %d", code)
}

// time turns an event tick into a UTC time.
func (rd *reader) time(n json.Number) (time.Time, error) {
	ms, err := strconv.ParseInt(string(n), 10, 64)
	if err != nil {
		f, ferr := n.Float64()
		if ferr != nil {
			return time.Time{}, err
		}
		ms = int64(f)
	}
	return time.UnixMilli(rd.offset + ms).UTC(), nil
}

// statusOf reads the status from a status line, "HTTP/1.1 200" or
// ":status: 200".
func statusOf(line string) int {
	line = strings.TrimPrefix(line, ":status:")
	fields := strings.Fields(line)
	for _, f := range fields {
		if len(f) == 3 {
			if n, err := strconv.Atoi(f); err == nil {
				return n
			}
		}
	}
	return 0
}

func setTarget(f *flow.Flow, raw string) {
	if err := target.SetURL(f, raw); err != nil {
		f.URL = raw // keep what the log said, even when it is not a URL
	}
}
