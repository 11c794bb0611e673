// Package proxy is pilotwire's capture proxy: an HTTP/1.1 forward proxy that
// records every conversation as a flow.Flow.
//
// Plain HTTP requests in absolute form are forwarded with their bodies
// streamed both ways in constant memory (keep-alive on both sides, chunked
// encoding, Expect: 100-continue, hop-by-hop headers removed); so are
// requests in absolute https:// form, over TLS with the server's
// certificate verified. An Upgrade (WebSocket) over plain HTTP is passed
// on, and after the server's 101 relayed both ways like a tunnel. CONNECT
// tunnels are not decrypted unless Proxy.Intercept is set: the proxy reads
// the TLS ClientHello as it passes, unchanged, to learn the server name,
// ALPN and TLS version, and then relays bytes (on Linux with splice,
// holding no buffer or pipe while a tunnel is idle). With Intercept set
// (intercept.go), the ClientHello is read before anything is relayed and
// the Interceptor decides: pass the tunnel through exactly as above, or
// terminate its TLS and record each request inside as a flow of its own. Requests in origin form to the proxy itself get a PAC
// file (/proxy.pac, /wpad.dat) or a help page.
//
// The proxy is safe by default: only clients on loopback and private
// networks are served, targets on loopback, link-local and cloud metadata
// addresses are refused (checked on the resolved address, at dial time), and
// header size, header time, idle time and open connections are limited.
// Every refusal is recorded as a flow with Decision denied.
//
// The proxy owns its connections (an accept loop and a bufio reader per
// connection) instead of using net/http's server, so that it can peek at
// tunnels, count bytes exactly and record refusals. On the server side of
// plain HTTP, a request without a body (nearly all of them) is written to a
// pooled keep-alive connection and answered on the serving goroutine
// itself; requests with a body, and all traffic through an upstream proxy,
// use net/http's Transport (directpool.go says what the direct path saves).
//
// A request's state from its first byte to its flow's last record is one
// exchange (exchange.go): the request, its flow and timing, the byte
// counts at its start, its server connection and context. Files: conn.go
// reads requests and dispatches them, http.go forwards plain HTTP,
// directpool.go is the direct path, tunnel.go relays CONNECT tunnels and
// Upgrades, dial.go dials targets, upstreamproxy.go the upstream proxy,
// rules.go holds the client and target rules, loop.go the Via and
// loop checks, clienthello.go the ClientHello parser, pac.go the proxy's
// own pages.
package proxy
