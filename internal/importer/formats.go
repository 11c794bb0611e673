package importer

import (
	"context"
	"io"

	"github.com/pilotwire/pilotwire/internal/flow"
	"github.com/pilotwire/pilotwire/internal/importer/har"
	"github.com/pilotwire/pilotwire/internal/importer/netlog"
	"github.com/pilotwire/pilotwire/internal/importer/pcap"
	"github.com/pilotwire/pilotwire/internal/importer/saz"
)

// The format readers, one per sub-package.

func readHAR(ctx context.Context, r io.Reader, emit func(flow.Flow) error, skip func(string, error)) error {
	return har.Read(ctx, r, emit, skip)
}

func readNetlog(ctx context.Context, r io.Reader, emit func(flow.Flow) error, skip func(string, error)) error {
	return netlog.Read(ctx, r, emit, skip)
}

func readPcap(ctx context.Context, r io.Reader, emit func(flow.Flow) error, skip func(string, error)) error {
	return pcap.Read(ctx, r, emit, skip)
}

func readSAZ(ctx context.Context, r io.ReaderAt, size int64, emit func(flow.Flow) error, skip func(string, error)) error {
	return saz.Read(ctx, r, size, emit, skip)
}
