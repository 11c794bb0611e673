package web

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/pilotwire/pilotwire/internal/flow"
	"github.com/pilotwire/pilotwire/internal/live"
)

// SSE timings.
const (
	heartbeat    = 15 * time.Second
	devicesEvery = time.Second
	// maxEventRows bounds one flows event; more go in several.
	maxEventRows = 500
)

// events streams Server-Sent Events: "flows" (new and updated flows, as
// /api/flows rows), "devices" (as /api/devices, at most once a second
// when flows came), "lagged" (the viewer fell behind: fetch
// /api/flows?after_id=N), and a comment line as heartbeat.
func (s *Server) events(w http.ResponseWriter, r *http.Request) {
	if s.o.Hub == nil {
		apiError(w, http.StatusNotFound, "nothing is live here: this page shows capture files (reload to see them)")
		return
	}
	fl, ok := w.(http.Flusher)
	if !ok {
		apiError(w, http.StatusInternalServerError, "streaming is not supported on this connection")
		return
	}
	sub, err := s.o.Hub.Subscribe()
	if errors.Is(err, live.ErrTooManyViewers) {
		apiError(w, http.StatusTooManyRequests, "%v: close a page and try again", err)
		return
	}
	if err != nil {
		apiError(w, http.StatusInternalServerError, "%v", err)
		return
	}
	defer sub.Close()
	rc := http.NewResponseController(w)
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	fmt.Fprintf(w, "retry: 2000\n: pilotwire %s\n\n", s.o.Version)
	fl.Flush()

	sendRaw := func(event string, b []byte) error {
		// A viewer that stops reading is dropped after this long, so a
		// stalled browser holds no goroutine for ever.
		rc.SetWriteDeadline(time.Now().Add(10 * time.Second))
		if _, err := fmt.Fprintf(w, "event: %s\ndata: %s\n\n", event, b); err != nil {
			return err
		}
		return rc.Flush()
	}
	send := func(event string, v any) error {
		b, err := json.Marshal(v)
		if err != nil {
			return err
		}
		return sendRaw(event, b)
	}
	var buf bytes.Buffer
	beat := time.NewTicker(heartbeat)
	defer beat.Stop()
	devTimer := time.NewTimer(time.Hour)
	devTimer.Stop()
	devPending := false
	var devSent time.Time
	var seen int64 // the greatest flow ID sent
	sendDevices := func() error {
		devSent = time.Now()
		list, err := s.deviceList(r, seen)
		if err != nil {
			return nil // the next flows try again
		}
		return send("devices", map[string]any{"devices": list})
	}
	for {
		select {
		case <-r.Context().Done():
			return
		case <-beat.C:
			rc.SetWriteDeadline(time.Now().Add(10 * time.Second))
			if _, err := fmt.Fprint(w, ": ping\n\n"); err != nil || rc.Flush() != nil {
				return
			}
		case <-devTimer.C:
			devPending = false
			if sendDevices() != nil {
				return
			}
		case <-sub.Ready():
			flows, lagged, after := sub.Take()
			if lagged {
				if send("lagged", map[string]int64{"after_id": after}) != nil {
					return
				}
				continue
			}
			for i := range flows {
				seen = max(seen, flows[i].ID)
			}
			for len(flows) > 0 {
				n := min(len(flows), maxEventRows)
				buf.Reset()
				buf.WriteString(`{"flows":[`)
				for i := range n {
					if i > 0 {
						buf.WriteByte(',')
					}
					buf.Write(s.encodedRow(&flows[i]))
				}
				buf.WriteString(`]}`)
				if sendRaw("flows", buf.Bytes()) != nil {
					return
				}
				flows = flows[n:]
			}
			// Devices at once when the last list is a second old, else
			// when it will be: a new device shows without delay, and a
			// busy proxy costs one list a second.
			switch wait := devicesEvery - time.Since(devSent); {
			case devPending:
			case wait <= 0:
				if sendDevices() != nil {
					return
				}
			default:
				devPending = true
				devTimer.Reset(wait)
			}
		}
	}
}

// rowKey says which state of a flow an encoded row shows: a tunnel is
// published when it opens, with its bytes so far, and when it ends.
type rowKey struct {
	id, end, up, down int64
	status            int
	decision, err     string
}

// rowCacheSize bounds the encoded rows kept: a few seconds of a busy
// proxy, enough for every viewer to take the same batch.
const rowCacheSize = 16384

// encodedRow is f as an event's row, JSON-encoded once for every viewer.
func (s *Server) encodedRow(f *flow.Flow) []byte {
	k := rowKey{f.ID, f.End.UnixNano(), f.BytesUp, f.BytesDown, f.Status, string(f.Decision), f.Error}
	s.rowMu.Lock()
	b, ok := s.rowCache[k]
	s.rowMu.Unlock()
	if ok {
		return b
	}
	b, err := json.Marshal(s.row(f))
	if err != nil {
		b = []byte("null")
	}
	s.rowMu.Lock()
	if len(s.rowCache) >= rowCacheSize {
		clear(s.rowCache)
	}
	s.rowCache[k] = b
	s.rowMu.Unlock()
	return b
}
