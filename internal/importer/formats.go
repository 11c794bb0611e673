package importer

import (
	"context"
	"errors"
	"io"

	"github.com/pilotwire/pilotwire/internal/flow"
)

// The format readers. Each sub-package is wired here once it exists.

func readSquid(ctx context.Context, r io.Reader, emit func(flow.Flow) error, skip func(string, error)) error {
	return errors.New("squid import is not built yet")
}

func readHAR(ctx context.Context, r io.Reader, emit func(flow.Flow) error, skip func(string, error)) error {
	return errors.New("HAR import is not built yet")
}

func readNetlog(ctx context.Context, r io.Reader, emit func(flow.Flow) error, skip func(string, error)) error {
	return errors.New("net-log import is not built yet")
}

func readPcap(ctx context.Context, r io.Reader, emit func(flow.Flow) error, skip func(string, error)) error {
	return errors.New("pcap import is not built yet (internal/importer/pcap)")
}

func readSAZ(ctx context.Context, r io.ReaderAt, size int64, emit func(flow.Flow) error, skip func(string, error)) error {
	return errors.New("SAZ import is not built yet")
}
