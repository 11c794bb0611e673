package importer

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pilotwire/pilotwire/internal/flow"
)

// Options tune ReadFile.
type Options struct {
	// Format is the file's format; "" or FormatAuto detects it from the
	// content.
	Format Format
	// Device labels every flow of the file (Flow.Device), e.g. "LAB-VM-07".
	Device string
	// Proxy names the site (the pilotwire proxy) the file was captured
	// at, for every flow of it (Flow.Proxy), e.g. "site-b": in a store
	// several sites share, its devices then never mix with another
	// site's of the same address.
	Proxy string
	// FormatOptions are options of particular formats, each a value of its
	// format's own options type (squid.Options, with a custom logformat's
	// Layout): the file's format gets the one of its type and the others
	// are ignored. A value that is no format's options type is an error.
	FormatOptions []any
	// Strict makes a file that cannot be read whole an error (wrapping
	// ErrDamaged): one damaged part skipped, or a read that stops before
	// the end. Import in strict mode stores nothing from such a file.
	Strict bool
	// Progress, when set, is called from time to time (at most 10 times a
	// second, and once at the end) with the bytes read so far, the file's
	// size and the flows emitted so far. It may run on a goroutine of the
	// format reader, never on two at once, and must be quick.
	Progress func(read, total int64, flows int64)
}

// Skip is one damaged part of a file that the import left out.
type Skip struct {
	Where  string // "line 12", "entry 3", "offset 0x1f40", "raw/4_c.txt"
	Reason string
}

// MaxSkips is how many Skip records a Result keeps; Result.SkipCount counts
// them all.
const MaxSkips = 100

// Result says what ReadFile made of one file.
type Result struct {
	File     string // the path as given
	Format   Format
	Identity string // see the package comment
	Size     int64
	Flows    int // flows emitted
	// Skipped holds the first MaxSkips damaged parts; SkipCount counts all.
	Skipped   []Skip
	SkipCount int
	// StoppedAt is set when the file could not be read to its end: what
	// stopped the reader, and where. The flows before it were emitted.
	StoppedAt string
}

// ErrUnknownFormat is returned (wrapped) for a file that is none of the
// supported formats.
var ErrUnknownFormat = errors.New("not a supported format")

// ErrEmpty is returned (wrapped) for a file of 0 bytes.
var ErrEmpty = errors.New("is empty")

// ErrDamaged is returned (wrapped) in strict mode for a file that could
// not be read whole.
var ErrDamaged = errors.New("not read whole")

// Partial says how much of a file that could not be read whole was read:
// "read 12,345 flows of a 987,654-byte file, then stopped early: line
// 20001: …; skipped 3 damaged parts (first: line 12: …)". The reason a
// reader stopped names where (a line, an entry, an offset). It is "" for a
// file read whole.
func (r Result) Partial() string {
	if r.StoppedAt == "" && r.SkipCount == 0 {
		return ""
	}
	var b strings.Builder
	fmt.Fprintf(&b, "read %s of a %s-byte file", plural(r.Flows, "flow"), flow.Thousands(r.Size))
	if r.StoppedAt != "" {
		fmt.Fprintf(&b, ", then stopped early: %s", r.StoppedAt)
	}
	if r.SkipCount > 0 {
		fmt.Fprintf(&b, "; skipped %s (first: %s: %s)", plural(r.SkipCount, "damaged part"), r.Skipped[0].Where, r.Skipped[0].Reason)
	}
	return b.String()
}

// plural is "1 flow", "2 flows", "12,345 flows".
func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return flow.Thousands(int64(n)) + " " + what + "s"
}

// headSize is how much of a file Detect looks at and the identity hashes.
const headSize = 1 << 20

// ReadFile imports the file at path: it detects the format (unless
// opt.Format names one), reads the file with that format's reader, and calls
// emit for each flow, with Key prefixed by the file identity, SourceFile set
// to the absolute path and Device to opt.Device.
//
// It returns an error when the file cannot be opened, is of no supported
// format, cannot be read at all (nothing emitted, every part skipped), when
// emit fails, or when ctx is done. A file that breaks off part-way is not an
// error: Result says where it stopped, and the flows read before that were
// emitted.
func ReadFile(ctx context.Context, path string, opt Options, emit func(flow.Flow) error) (Result, error) {
	o, res, err := openFile(path, opt)
	if err != nil {
		return res, err
	}
	defer o.f.Close()
	return o.read(ctx, opt, emit)
}

// openedFile is a file opened for reading, its identity and format worked
// out from its first MiB.
type openedFile struct {
	f   *os.File
	res Result // File, Size, Identity and Format set
	abs string // the absolute path, for Flow.SourceFile
}

// openFile opens the file at path and works out its identity and, when
// opt.Format is "" or FormatAuto, its format. The Result says as much as
// was found before an error.
func openFile(path string, opt Options) (*openedFile, Result, error) {
	res := Result{File: path}
	if err := checkFormatOptions(opt.FormatOptions); err != nil {
		return nil, res, fmt.Errorf("import %s: %w", path, err)
	}
	format := opt.Format
	f, err := os.Open(path)
	if err != nil {
		return nil, res, fmt.Errorf("import %s: %w", path, err)
	}
	fail := func(err error) (*openedFile, Result, error) {
		f.Close()
		return nil, res, fmt.Errorf("import %s: %w", path, err)
	}
	st, err := f.Stat()
	if err != nil {
		return fail(err)
	}
	if st.IsDir() {
		return fail(errors.New("is a directory"))
	}
	res.Size = st.Size()
	if res.Size == 0 && st.Mode().IsRegular() {
		// Said plainly: no format can be detected in, or read from, no
		// bytes (a pipe reports size 0 too, so only regular files).
		f.Close()
		return nil, res, fmt.Errorf("%s %w (0 bytes): nothing to read", path, ErrEmpty)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		abs = path
	}

	head := make([]byte, headSize)
	n, err := io.ReadFull(f, head)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		return fail(err)
	}
	head = head[:n]
	res.Identity = identity(head, res.Size)
	if format == "" || format == FormatAuto {
		if format, err = Detect(head); err != nil {
			return fail(err)
		}
	}
	res.Format = format
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return fail(err)
	}
	return &openedFile{f: f, res: res, abs: abs}, res, nil
}

// read reads the opened file: see ReadFile.
func (o *openedFile) read(ctx context.Context, opt Options, emit func(flow.Flow) error) (Result, error) {
	res, abs, path, format, f := o.res, o.abs, o.res.File, o.res.Format, o.f
	var err error
	prefix := res.Identity + "/"
	prog := &progress{total: res.Size, fn: opt.Progress}
	e := lookup(format)
	if e == nil {
		return res, fmt.Errorf("import %s: unknown format %q", path, format)
	}
	var emitErr error
	wrapped := func(fl flow.Flow) error {
		if err := ctx.Err(); err != nil {
			emitErr = err
			return err
		}
		fl.Key = prefix + fl.Key
		fl.SourceFile = abs
		if opt.Device != "" {
			fl.Device = opt.Device
		}
		if opt.Proxy != "" {
			fl.Proxy = opt.Proxy
		}
		if err := emit(fl); err != nil {
			emitErr = err
			return err
		}
		res.Flows++
		prog.flows.Add(1)
		return nil
	}
	skip := func(where string, err error) {
		res.SkipCount++
		if len(res.Skipped) < MaxSkips {
			reason := "damaged"
			if err != nil {
				reason = err.Error()
			}
			res.Skipped = append(res.Skipped, Skip{Where: where, Reason: reason})
		}
	}

	in := input{r: &countingReader{r: f, p: prog}, at: &countingReaderAt{r: f, p: prog}, size: res.Size}
	err = e.read(ctx, in, opt.FormatOptions, wrapped, skip)
	prog.report()
	switch {
	case emitErr != nil:
		return res, fmt.Errorf("import %s: %w", path, emitErr)
	case ctx.Err() != nil:
		return res, fmt.Errorf("import %s: %w", path, ctx.Err())
	case err != nil && res.Flows == 0 && res.SkipCount > 0:
		// The first skipped part usually says why nothing was readable
		// (a custom logformat, the wrong --format).
		return res, fmt.Errorf("import %s as %s: %w (first skipped: %s: %s)", path, format, err, res.Skipped[0].Where, res.Skipped[0].Reason)
	case err != nil && res.Flows == 0:
		return res, fmt.Errorf("import %s as %s: %w", path, format, err)
	case err != nil:
		res.StoppedAt = err.Error()
	case res.Flows == 0 && res.SkipCount > 0:
		return res, fmt.Errorf("import %s as %s: nothing readable, all %d parts skipped (first: %s: %s)",
			path, format, res.SkipCount, res.Skipped[0].Where, res.Skipped[0].Reason)
	}
	if opt.Strict && res.Partial() != "" {
		return res, fmt.Errorf("import %s: %w (strict): %s", path, ErrDamaged, res.Partial())
	}
	return res, nil
}

// identity is the file identity described in the package comment.
func identity(head []byte, size int64) string {
	h := sha256.New()
	h.Write(head)
	fmt.Fprintf(h, "\x00%d", size)
	return hex.EncodeToString(h.Sum(nil))[:16]
}

// progress throttles Options.Progress calls.
type progress struct {
	total int64
	read  atomic.Int64
	flows atomic.Int64
	fn    func(read, total, flows int64)
	mu    sync.Mutex
	last  time.Time
}

func (p *progress) add(n int, at int64) {
	if at >= 0 {
		// ReadAt: progress is the furthest offset reached.
		for {
			old := p.read.Load()
			if at <= old || p.read.CompareAndSwap(old, at) {
				break
			}
		}
	} else {
		p.read.Add(int64(n))
	}
	if p.fn == nil {
		return
	}
	if !p.mu.TryLock() {
		return // another goroutine is reporting
	}
	defer p.mu.Unlock()
	if now := time.Now(); now.Sub(p.last) >= 100*time.Millisecond {
		p.last = now
		p.fn(p.read.Load(), p.total, p.flows.Load())
	}
}

func (p *progress) report() {
	if p.fn != nil {
		p.mu.Lock()
		defer p.mu.Unlock()
		p.fn(p.read.Load(), p.total, p.flows.Load())
	}
}

type countingReader struct {
	r io.Reader
	p *progress
}

func (c *countingReader) Read(b []byte) (int, error) {
	n, err := c.r.Read(b)
	c.p.add(n, -1)
	return n, err
}

type countingReaderAt struct {
	r io.ReaderAt
	p *progress
}

func (c *countingReaderAt) ReadAt(b []byte, off int64) (int, error) {
	n, err := c.r.ReadAt(b, off)
	c.p.add(n, off+int64(n))
	return n, err
}
