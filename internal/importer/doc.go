// Package importer turns capture files made by other tools into flows:
// Squid access.log, HAR 1.2, Fiddler SAZ, pcap/pcapng and Chrome/Edge
// net-log JSON.
//
// Each format lives in its own sub-package (squid, har, saz, pcap, netlog)
// with the same shape:
//
//	func Read(ctx context.Context, r io.Reader,
//		emit func(flow.Flow) error, skip func(where string, err error)) error
//
// (saz takes an io.ReaderAt and a size, because a zip is read from its end).
// A format reader streams: it never holds the whole file, it emits each flow
// as soon as it is complete, it reports a damaged part through skip ("line
// 12", "entry 3", "offset 0x1f40") and goes on, and it returns an error only
// when it cannot read any further. It sets a Key that is local to the file
// and deterministic ("line:123", "entry:7", "conn:…"), and imports nothing
// from the project but internal/flow.
//
// This package owns the registry of formats (formats.go): one entry per
// format with its name, its detector, its reader and its own options type
// (squid.Options; Options.FormatOptions carries such values to the
// reader). Detect, ParseFormat, Formats and the list of formats in error
// messages all come from the registry, so a new format is one entry there
// plus its sub-package. This package detects the format from the content
// (never the name), works out the file's identity, prefixes every Key with
// it, and stamps each flow with SourceFile and Device.
//
// The invariants every format reader keeps (times, byte counts, host
// names, keys) are checked by importtest.Check, which each sub-package's
// tests and fuzz targets run.
//
// # File identity
//
// A file is recognised by the SHA-256 of its first MiB together with its
// size in bytes (the first 16 hex digits of it are the identity, e.g.
// "3f9c0d2a51e8b7a4"). Import stores a file's flows through
// flow.Store.PutFileFlows under that identity, part by part (5,000 flows a
// part), so importing the same file twice (under any name or path)
// replaces its parts instead of duplicating them, while two different
// captures never collide. Every Key is "<identity>/<local key>". A file that
// grows (a live access.log imported again later) gets a new identity: its
// flows are then imported again as a new file, beside the first import.
// That is the price of not hashing whole multi-GiB captures.
package importer
