package proxy

import (
	"context"
	"errors"
	"io"
	"net"
	"net/netip"
	"testing"
	"time"
)

// TestShutdownCancelsDials checks that an exchange's context is cancelled
// when Shutdown gives up waiting: a dial that hangs in name resolution
// (on each path that dials: the direct pool, the Transport, a CONNECT)
// ends then, and its flow is recorded, instead of holding Shutdown for
// the dial timeout.
func TestShutdownCancelsDials(t *testing.T) {
	cases := []struct{ name, request, wantErr string }{
		{"direct", "GET http://hang.test/ HTTP/1.1\r\nHost: hang.test\r\n\r\n", "resolve hang.test: resolution abandoned"},
		// The Transport says why its round trip ended: its context.
		{"transport", "POST http://hang.test/ HTTP/1.1\r\nHost: hang.test\r\nContent-Length: 2\r\n\r\nhi", "context canceled"},
		{"connect", "CONNECT hang.test:443 HTTP/1.1\r\nHost: hang.test:443\r\n\r\n", "resolve hang.test: resolution abandoned"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			entered := make(chan struct{})
			cause := make(chan error, 1)
			e := newEnv(t, func(p *Proxy) {
				p.DialTimeout = time.Minute
				p.Resolve = func(ctx context.Context, host string) ([]netip.Addr, error) {
					close(entered)
					select {
					case <-ctx.Done():
						cause <- ctx.Err()
					case <-time.After(30 * time.Second):
						cause <- errors.New("not cancelled")
					}
					return nil, errors.New("resolution abandoned")
				}
			})
			c, err := net.Dial("tcp", e.addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if _, err := io.WriteString(c, tc.request); err != nil {
				t.Fatal(err)
			}
			select {
			case <-entered:
			case <-time.After(10 * time.Second):
				t.Fatal("the request did not reach the resolver")
			}
			ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
			defer cancel()
			if err := e.p.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("Shutdown: %v, want the deadline", err)
			}
			if err := <-cause; !errors.Is(err, context.Canceled) {
				t.Errorf("the resolver's context ended with %v, want it cancelled", err)
			}
			flows := e.flows()
			if len(flows) != 1 || flows[0].Status != 502 || flows[0].Error != tc.wantErr {
				t.Errorf("flows: %+v", flows)
			}
		})
	}
}
