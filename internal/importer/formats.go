package importer

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/pilotwire/pilotwire/internal/flow"
	"github.com/pilotwire/pilotwire/internal/importer/har"
	"github.com/pilotwire/pilotwire/internal/importer/netlog"
	"github.com/pilotwire/pilotwire/internal/importer/pcap"
	"github.com/pilotwire/pilotwire/internal/importer/saz"
	"github.com/pilotwire/pilotwire/internal/importer/squid"
)

// Format names a supported file format.
type Format string

// FormatAuto asks ReadFile to detect the format.
const FormatAuto Format = "auto"

// The supported formats, one registry entry each (see registry).
const (
	FormatSquid  Format = "squid"
	FormatHAR    Format = "har"
	FormatSAZ    Format = "saz"
	FormatPcap   Format = "pcap" // pcap and pcapng
	FormatNetlog Format = "netlog"
)

// registry is every format ReadFile reads, in the order Detect tries them:
// magic numbers first (exact and cheap), then the first key of a JSON
// object, and Squid's line shapes last, since other text could pass for
// them. Adding a format is adding one entry here; nothing else in this
// package names a format.
var registry = []entry{
	register(entry{
		name: FormatPcap, aliases: []string{"pcapng"}, listed: 3,
		tried:  "pcap and pcapng (magic number)",
		detect: func(h *sniffed) bool { return pcap.Sniff(h.raw) },
	}, func(ctx context.Context, in input, _ noOptions, emit func(flow.Flow) error, skip func(string, error)) error {
		return pcap.Read(ctx, in.r, emit, skip)
	}),
	register(entry{
		name: FormatSAZ, listed: 2,
		tried:  "Fiddler SAZ (zip)",
		detect: func(h *sniffed) bool { return strings.HasPrefix(string(h.raw), "PK\x03\x04") },
	}, func(ctx context.Context, in input, _ noOptions, emit func(flow.Flow) error, skip func(string, error)) error {
		// A zip is read from its end.
		return saz.Read(ctx, in.at, in.size, emit, skip)
	}),
	register(entry{
		name: FormatHAR, listed: 1,
		tried:  `HAR (JSON object with "log")`,
		detect: func(h *sniffed) bool { return h.json && h.key == "log" },
	}, func(ctx context.Context, in input, _ noOptions, emit func(flow.Flow) error, skip func(string, error)) error {
		return har.Read(ctx, in.r, emit, skip)
	}),
	register(entry{
		name: FormatNetlog, listed: 4,
		tried: `Chrome/Edge net-log (JSON object with "constants" or "events")`,
		detect: func(h *sniffed) bool {
			return h.json && (h.key == "constants" || h.key == "events" || h.key == "polledData")
		},
	}, func(ctx context.Context, in input, _ noOptions, emit func(flow.Flow) error, skip func(string, error)) error {
		return netlog.Read(ctx, in.r, emit, skip)
	}),
	register(entry{
		name: FormatSquid, listed: 0,
		tried: "Squid access.log (native, common or combined lines)",
		// A JSON object is never taken for a log, whatever its lines look like.
		detect: func(h *sniffed) bool { return !h.json && looksSquid(h.text) },
	}, func(ctx context.Context, in input, o squid.Options, emit func(flow.Flow) error, skip func(string, error)) error {
		return squid.ReadLayout(ctx, in.r, o.Layout, emit, skip)
	}),
}

// entry is one format of the registry.
type entry struct {
	name    Format
	aliases []string // other names ParseFormat accepts for it
	// listed is its place where formats are listed for a user (ParseFormat's
	// error, FormatList), which is not the order Detect tries them in: the
	// commonest first.
	listed int
	tried  string              // how Detect's error describes what it looked for
	detect func(*sniffed) bool // whether a file's head is of this format
	// read reads the file with the format's reader, handing it the value
	// of its own options type found in opts, or that type's zero value.
	read func(ctx context.Context, in input, opts []any, emit func(flow.Flow) error, skip func(string, error)) error
	// ownsOptions reports whether v is of the format's options type.
	ownsOptions func(v any) bool
}

// noOptions is the options type of a format that takes none. It is
// unexported, so no Options.FormatOptions value is ever one.
type noOptions struct{}

// register completes e with a reader taking the format's own options type
// O: Options.FormatOptions carries a value of it to the reader.
func register[O any](e entry, read func(ctx context.Context, in input, o O, emit func(flow.Flow) error, skip func(string, error)) error) entry {
	e.ownsOptions = func(v any) bool { _, ok := v.(O); return ok }
	e.read = func(ctx context.Context, in input, opts []any, emit func(flow.Flow) error, skip func(string, error)) error {
		var o O
		for _, v := range opts {
			if mine, ok := v.(O); ok {
				o = mine
			}
		}
		return read(ctx, in, o, emit, skip)
	}
	return e
}

// input is an opened file as a format reader sees it: streamed from its
// start (r) or read at random (at, size). Both count progress.
type input struct {
	r    io.Reader
	at   io.ReaderAt
	size int64
}

// lookup returns the registry entry of a format, or nil.
func lookup(f Format) *entry {
	for i := range registry {
		if registry[i].name == f {
			return &registry[i]
		}
	}
	return nil
}

// Formats lists the formats ReadFile reads, in the order Detect tries them.
func Formats() []Format {
	out := make([]Format, len(registry))
	for i, e := range registry {
		out[i] = e.name
	}
	return out
}

// FormatList names the formats for a user, e.g. in a flag's help: "squid,
// har, saz, pcap (also pcapng) or netlog". ParseFormat accepts each name.
func FormatList() string {
	return listFormats(func(e entry) string {
		if len(e.aliases) > 0 {
			return fmt.Sprintf("%s (also %s)", e.name, strings.Join(e.aliases, ", "))
		}
		return string(e.name)
	})
}

// listFormats joins what name says of each format, in the listed order:
// "a, b or c".
func listFormats(name func(entry) string) string {
	es := slices.Clone(registry)
	slices.SortFunc(es, func(a, b entry) int { return a.listed - b.listed })
	names := make([]string, len(es))
	for i, e := range es {
		names[i] = name(e)
	}
	if len(names) == 1 {
		return names[0]
	}
	return strings.Join(names[:len(names)-1], ", ") + " or " + names[len(names)-1]
}

// ParseFormat turns a --format value into a Format: a format's name or
// alias, in any case, or "auto" (or "") to detect it.
func ParseFormat(s string) (Format, error) {
	f := Format(strings.ToLower(strings.TrimSpace(s)))
	if f == "" || f == FormatAuto {
		return FormatAuto, nil
	}
	for _, e := range registry {
		if e.name == f || slices.Contains(e.aliases, string(f)) {
			return e.name, nil
		}
	}
	return "", fmt.Errorf("unknown format %q (want auto, %s)", s, listFormats(func(e entry) string { return string(e.name) }))
}

// checkFormatOptions makes sure each value of opts is the options type of
// a registered format: one of another type would be ignored silently.
func checkFormatOptions(opts []any) error {
	for _, v := range opts {
		owned := false
		for _, e := range registry {
			if e.ownsOptions(v) {
				owned = true
				break
			}
		}
		if !owned {
			return fmt.Errorf("options of type %T are no format's options (want, e.g., squid.Options)", v)
		}
	}
	return nil
}
