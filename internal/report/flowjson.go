package report

import (
	"time"

	"github.com/pilotwire/pilotwire/internal/flow"
)

// FlowJSON is the stable JSON shape of one flow (`pilotwire flows --json`,
// one object a line).
func FlowJSON(f *flow.Flow) map[string]any {
	m := map[string]any{
		"id": f.ID, "start": f.Start.Format(time.RFC3339Nano), "client": f.Client, "source": f.Source,
		"kind": f.Kind, "host": f.Host, "port": f.Port, "bytes_up": f.BytesUp, "bytes_down": f.BytesDown,
	}
	if !f.End.IsZero() {
		m["end"] = f.End.Format(time.RFC3339Nano)
		m["duration_ms"] = float64(f.Duration().Microseconds()) / 1000
	} else {
		m["open"] = true
	}
	opt := map[string]string{"device": f.Device, "session": f.Session, "source_file": f.SourceFile, "method": f.Method,
		"scheme": f.Scheme, "url": f.URL, "sni": f.SNI, "alpn": f.ALPN, "tls_version": f.TLSVersion, "error": f.Error,
		"decision": string(f.Decision), "reason": f.Reason, "note": f.Note, "tunnel": f.Tunnel, "headers": f.Headers,
		"proxy": f.Proxy}
	for k, v := range opt {
		if v != "" {
			m[k] = v
		}
	}
	if f.ClientPort != 0 {
		m["client_port"] = f.ClientPort
	}
	if f.Status != 0 {
		m["status"] = f.Status
	}
	if f.Lost != 0 {
		m["lost"] = f.Lost
	}
	if f.Bodies != nil {
		req, resp, err := KeptBodies(f)
		switch {
		case err != nil:
			m["bodies_error"] = err.Error()
		default:
			if req != nil {
				m["request_body"] = req.JSON()
			}
			if resp != nil {
				m["response_body"] = resp.JSON()
			}
		}
	}
	return m
}
