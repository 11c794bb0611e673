// Package check answers "is this network ready for Autopilot?": it picks
// the hosts to check (the catalog's required entries, one representative
// host each, or the hosts a captured device used), reaches each as a
// device would — directly (DNS, TCP, TLS with SNI and the chain validated,
// an HTTP request) or through an HTTP proxy (its answer to CONNECT, then
// TLS and HTTP inside the tunnel) — times every step, and turns what it
// found into verdicts by provisioning phase, in words a network team can
// act on (Summarise, Render).
//
// TLS inspection is detected by the chain not validating against the
// trusted roots (the system's, or Options.RootCAs); the issuer found is
// named. The catalog has no expected issuer per service, so a corporate CA
// that the checking machine trusts is not detected. Inspection of a host
// the catalog marks no-inspect (client certificates, pinning: Intune,
// device authentication, attestation) is an error, elsewhere a warning. A proxy's 407 for a host
// Windows reaches as SYSTEM is an error: SYSTEM cannot answer it.
//
// It never skips certificate verification, and reaches the network only
// through Options.Resolve and Options.Dial when they are set (tests and
// the benchmark use internal/sim).
package check
