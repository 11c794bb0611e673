package proxy

import (
	"crypto/tls"

	"github.com/pilotwire/pilotwire/internal/sim"
)

func tlsConfig(in *sim.Internet) *tls.Config {
	return &tls.Config{RootCAs: in.CertPool()}
}
