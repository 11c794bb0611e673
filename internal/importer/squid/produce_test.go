package squid

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"runtime"
	"slices"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"github.com/pilotwire/pilotwire/internal/flow"
	"github.com/pilotwire/pilotwire/internal/importer/internal/importtest"
	"github.com/pilotwire/pilotwire/internal/importer/internal/stretch"
)

// goodLine is a native line that parses, without its newline.
const goodLine = "1157689313.000   1 10.105.21.199 TCP_HIT/200 10 GET http://b/ - NONE/- text/html"

// lineOfLen returns a native line that parses and is n bytes long without
// its newline (n ≥ len(goodLine)), padded inside its URL.
func lineOfLen(n int) string {
	pad := n - len(goodLine)
	return strings.Replace(goodLine, "http://b/", "http://b/"+strings.Repeat("p", pad), 1)
}

// result is what one Read gave, printed so that runs compare exactly.
type result struct {
	flows []string
	skips []importtest.Skip
	err   string
}

func readResult(t testing.TB, r io.Reader) result {
	t.Helper()
	var c importtest.Collector
	err := Read(context.Background(), r, c.Emit, c.Skip)
	var res result
	for _, f := range c.Flows {
		res.flows = append(res.flows, fmt.Sprintf("%+v", f))
	}
	res.skips = c.Skips
	if err != nil {
		res.err = err.Error()
	}
	return res
}

func (r result) keys() []string {
	var keys []string
	for _, f := range r.flows {
		k, _, _ := strings.Cut(f[strings.Index(f, "Key:")+4:], " ")
		keys = append(keys, k)
	}
	return keys
}

func (r result) skipLines() []string {
	var w []string
	for _, s := range r.skips {
		w = append(w, s.Where)
	}
	return w
}

// mixedLog is a log with every kind of line the producer cuts: many short
// lines, bad, blank, comment and CRLF lines, lines between chunkBytes and
// maxLine, lines around maxLine, and a last line without a newline. It
// returns the log and, for each line, whether it gives a flow ('f'), a skip
// ('s') or nothing ('-').
func mixedLog() ([]byte, string) {
	var b bytes.Buffer
	var want strings.Builder
	add := func(line string, kind byte) {
		b.WriteString(line)
		b.WriteByte('\n')
		want.WriteByte(kind)
	}
	gen := strings.Split(strings.TrimSuffix(string(generateLog(3000)), "\n"), "\n")
	for i, l := range gen[:2000] {
		switch i % 500 {
		case 7:
			add("garbage line", 's')
		case 8:
			add("", '-')
		case 9:
			add("# comment", '-')
		case 10:
			add(l+"\r", 'f')
		default:
			add(l, 'f')
		}
	}
	add(lineOfLen(chunkBytes+100), 'f')        // grows the buffer once
	add(lineOfLen(3*chunkBytes), 'f')          // grows it twice
	add(strings.Repeat("x", maxLine+10), 's')  // too long
	add(lineOfLen(maxLine-2), 'f')             // maxLine-1 bytes with its newline
	add(lineOfLen(maxLine-1), 's')             // maxLine bytes with its newline: too long
	add(strings.Repeat("y", 3*maxLine+5), 's') // too long by several buffers
	for _, l := range gen[2000:] {
		add(l, 'f')
	}
	b.WriteString(goodLine) // no newline
	want.WriteByte('f')
	return b.Bytes(), want.String()
}

// wantOf turns mixedLog's kinds into the keys and skip places Read gives.
func wantOf(kinds string) (keys, skips []string) {
	for i, k := range []byte(kinds) {
		switch k {
		case 'f':
			keys = append(keys, fmt.Sprintf("line:%d", i+1))
		case 's':
			skips = append(skips, fmt.Sprintf("line %d", i+1))
		}
	}
	return keys, skips
}

// sizedReader returns at most n bytes a Read.
type sizedReader struct {
	r io.Reader
	n int
}

func (s sizedReader) Read(p []byte) (int, error) {
	return s.r.Read(p[:min(len(p), s.n)])
}

// Every way of handing over the bytes gives the same flows, skips and line
// numbers as reading the whole file: one byte a read, half a buffer,
// reads that end just before or after a chunk's end, data with the EOF.
func TestReadersAgree(t *testing.T) {
	data, kinds := mixedLog()
	whole := readResult(t, bytes.NewReader(data))
	if whole.err != "" {
		t.Fatal(whole.err)
	}
	keys, skips := wantOf(kinds)
	if got := whole.keys(); !slices.Equal(got, keys) {
		t.Fatalf("whole read: %d keys, want %d; first difference at %d", len(got), len(keys), firstDiff(got, keys))
	}
	if got := whole.skipLines(); !slices.Equal(got, skips) {
		t.Fatalf("whole read: skips at %v, want %v", got, skips)
	}
	if n := countReason(whole.skips, errLongLine.Error()); n != 3 {
		t.Errorf("%d lines skipped as too long, want 3", n)
	}

	readers := []struct {
		name string
		r    func() io.Reader
	}{
		{"one byte", func() io.Reader { return iotest.OneByteReader(bytes.NewReader(data)) }},
		{"half", func() io.Reader { return iotest.HalfReader(bytes.NewReader(data)) }},
		{"data with EOF", func() io.Reader { return iotest.DataErrReader(bytes.NewReader(data)) }},
		{"chunk-1", func() io.Reader { return sizedReader{bytes.NewReader(data), chunkBytes - 1} }},
		{"chunk+1", func() io.Reader { return sizedReader{bytes.NewReader(data), chunkBytes + 1} }},
		{"4093", func() io.Reader { return sizedReader{bytes.NewReader(data), 4093} }},
		{"bufio-like", func() io.Reader { return sizedReader{iotest.DataErrReader(bytes.NewReader(data)), 65536} }},
	}
	for _, rd := range readers {
		t.Run(rd.name, func(t *testing.T) {
			got := readResult(t, rd.r())
			if got.err != whole.err {
				t.Errorf("err %q, want %q", got.err, whole.err)
			}
			if i := firstDiff(got.flows, whole.flows); i >= 0 {
				t.Errorf("%d flows, want %d; first difference at flow %d", len(got.flows), len(whole.flows), i)
			}
			if !slices.Equal(got.skips, whole.skips) {
				t.Errorf("skips\n got %q\nwant %q", got.skips, whole.skips)
			}
		})
	}
}

func countReason(skips []importtest.Skip, reason string) int {
	n := 0
	for _, s := range skips {
		if s.Reason == reason {
			n++
		}
	}
	return n
}

// firstDiff is the first index where a and b differ, or -1.
func firstDiff(a, b []string) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	if len(a) != len(b) {
		return min(len(a), len(b))
	}
	return -1
}

// A line whose newline is the last byte of a block read, or the first of
// the next, or one that straddles two reads, keeps its number.
func TestChunkBoundary(t *testing.T) {
	for _, d := range []int{-3, -2, -1, 0, 1, 2, 3} {
		t.Run(fmt.Sprint(d), func(t *testing.T) {
			// The second line's newline is at byte chunkBytes-1+d.
			first := "#" + strings.Repeat("c", chunkBytes-3-len(goodLine)+d)
			input := first + "\n" + goodLine + "\n" + "garbage\n" + goodLine + "\n" + goodLine
			if i := len(first) + 1 + len(goodLine); i != chunkBytes-1+d {
				t.Fatalf("newline at %d", i)
			}
			got := readResult(t, strings.NewReader(input))
			if want := []string{"line:2", "line:4", "line:5"}; !slices.Equal(got.keys(), want) || got.err != "" {
				t.Errorf("keys %v err %q, want %v", got.keys(), got.err, want)
			}
			if want := []string{"line 3"}; !slices.Equal(got.skipLines(), want) {
				t.Errorf("skips %v, want %v", got.skips, want)
			}
		})
	}
}

// The last line may be too long, or just short enough, without a newline.
func TestLongLastLine(t *testing.T) {
	tests := []struct {
		last  string
		keys  []string
		skips []string
	}{
		{strings.Repeat("x", maxLine), []string{"line:1"}, []string{"line 2"}},
		{strings.Repeat("x", maxLine+chunkBytes/2), []string{"line:1"}, []string{"line 2"}},
		{lineOfLen(maxLine - 1), []string{"line:1", "line:2"}, nil},
		{lineOfLen(maxLine-1) + "\n", []string{"line:1"}, []string{"line 2"}},
		{lineOfLen(maxLine-2) + "\n", []string{"line:1", "line:2"}, nil},
		{lineOfLen(chunkBytes), []string{"line:1", "line:2"}, nil},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint(len(tt.last)), func(t *testing.T) {
			got := readResult(t, strings.NewReader(goodLine+"\n"+tt.last))
			if !slices.Equal(got.keys(), tt.keys) || got.err != "" {
				t.Errorf("keys %v err %q, want %v", got.keys(), got.err, tt.keys)
			}
			if !slices.Equal(got.skipLines(), tt.skips) {
				t.Errorf("skips %v, want %v", got.skips, tt.skips)
			}
		})
	}
}

// repeatReader gives n copies of b, then io.EOF; n < 0 never ends.
type repeatReader struct {
	b byte
	n int
}

func (r *repeatReader) Read(p []byte) (int, error) {
	if r.n == 0 {
		return 0, io.EOF
	}
	if r.n > 0 && len(p) > r.n {
		p = p[:r.n]
	}
	for i := range p {
		p[i] = r.b
	}
	if r.n > 0 {
		r.n -= len(p)
	}
	return len(p), nil
}

// A 50 MiB line is read and dropped a buffer at a time, not held, and the
// line after it keeps its number.
func TestHugeLineIsNotHeld(t *testing.T) {
	r := io.MultiReader(strings.NewReader(goodLine+"\n"), &repeatReader{b: 'x', n: 50 << 20}, strings.NewReader("\n"+goodLine+"\n"))
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	got := readResult(t, r)
	runtime.ReadMemStats(&after)
	if want := []string{"line:1", "line:3"}; !slices.Equal(got.keys(), want) || got.err != "" {
		t.Errorf("keys %v err %q, want %v", got.keys(), got.err, want)
	}
	if want := []importtest.Skip{{Where: "line 2", Reason: errLongLine.Error()}}; !slices.Equal(got.skips, want) {
		t.Errorf("skips %v, want %v", got.skips, want)
	}
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 16<<20 {
		t.Errorf("reading a 50 MiB line allocated %d MiB, want a few", alloc>>20)
	}
}

// A read error ends Read with the line it stopped at, after the lines
// before it are emitted; a last line cut short by it is still read, as at
// the end of a file.
func TestReadError(t *testing.T) {
	broken := errors.New("disk on fire")
	lines := strings.Repeat(goodLine+"\n", 3)
	tests := []struct {
		name string
		r    io.Reader
		keys []string
		err  string
	}{
		{"error after lines", io.MultiReader(strings.NewReader(lines), iotest.ErrReader(broken)),
			[]string{"line:1", "line:2", "line:3"}, "line 4: disk on fire"},
		{"error after a line without newline", io.MultiReader(strings.NewReader(lines+goodLine), iotest.ErrReader(broken)),
			[]string{"line:1", "line:2", "line:3", "line:4"}, "line 5: disk on fire"},
		{"error at once", iotest.ErrReader(broken), nil, "line 1: disk on fire"},
		{"timeout", iotest.TimeoutReader(strings.NewReader(lines + lines)),
			[]string{"line:1", "line:2", "line:3", "line:4", "line:5", "line:6"}, "line 7: " + iotest.ErrTimeout.Error()},
		{"error inside a long line", io.MultiReader(strings.NewReader(lines), &repeatReader{b: 'x', n: maxLine + 5}, iotest.ErrReader(broken)),
			[]string{"line:1", "line:2", "line:3"}, "line 5: disk on fire"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := readResult(t, tt.r)
			if !slices.Equal(got.keys(), tt.keys) || got.err != tt.err {
				t.Errorf("keys %v err %q, want %v %q", got.keys(), got.err, tt.keys, tt.err)
			}
		})
	}
}

// stuckReader returns 0, nil forever.
type stuckReader struct{}

func (stuckReader) Read([]byte) (int, error) { return 0, nil }

// A reader that returns nothing and no error, again and again, ends Read
// with io.ErrNoProgress instead of spinning, inside a line or a long line.
func TestNoProgress(t *testing.T) {
	for _, tail := range []io.Reader{strings.NewReader("half a li"), &repeatReader{b: 'x', n: maxLine + 5}} {
		r := io.MultiReader(strings.NewReader(goodLine+"\n"), tail, stuckReader{})
		got := readResult(t, r)
		if want := "line 3: " + io.ErrNoProgress.Error(); !slices.Equal(got.keys(), []string{"line:1"}) || got.err != want {
			t.Errorf("keys %v err %q, want [line:1] %q", got.keys(), got.err, want)
		}
	}
}

// Cancelling ctx or failing emit stops the reading goroutine too (Read
// waits for it), even in the middle of an endless line or file. (Read
// waits for a chunk before it looks at ctx, so an endless first line is
// not stopped by ctx alone.)
func TestStopEndlessInput(t *testing.T) {
	line := []byte(goodLine + "\n")
	endless := func() io.Reader {
		off := 0
		return readerFunc(func(p []byte) (int, error) {
			n := 0
			for n < len(p) {
				c := copy(p[n:], line[off:])
				n += c
				off = (off + c) % len(line)
			}
			return n, nil
		})
	}
	full := errors.New("full")
	// Only the cancel case relies on the deadline; the others must stop on
	// emit's error long before it (a short one failed under -race, where
	// filling the first buffer can take longer than 50ms).
	tests := []struct {
		name string
		r    io.Reader
		emit func(flow.Flow) error
		want error
	}{
		{"emit error", endless(), func(flow.Flow) error { return full }, full},
		{"cancel in endless lines", endless(), func(flow.Flow) error { return nil }, context.DeadlineExceeded},
		// The first line is emitted once the buffer is full; then the
		// reader is stopped inside a line it is dropping.
		{"emit error before an endless line", io.MultiReader(strings.NewReader(goodLine+"\n"), &repeatReader{b: 'x', n: -1}),
			func(flow.Flow) error { return full }, full},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			timeout := 5 * time.Second
			if tt.want == context.DeadlineExceeded {
				timeout = 50 * time.Millisecond
			}
			ctx, cancel := context.WithTimeout(context.Background(), timeout)
			defer cancel()
			done := make(chan error, 1)
			go func() { done <- Read(ctx, tt.r, tt.emit, func(string, error) {}) }()
			select {
			case err := <-done:
				if !errors.Is(err, tt.want) {
					t.Errorf("err %v, want %v", err, tt.want)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("Read did not return 10 s after it was stopped")
			}
		})
	}
}

type readerFunc func([]byte) (int, error)

func (f readerFunc) Read(p []byte) (int, error) { return f(p) }

// countingReader counts the bytes read through it.
type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// A stretch of input with no readable record ends the read once it is
// stretch.MaxRecords lines or maxGapBytes bytes long, naming where the stretch
// began, and the input past it is not read (import --format squid
// /dev/zero once ran forever).
func TestGiveUpOnUnreadableStretch(t *testing.T) {
	good := goodLine + "\n"
	tests := []struct {
		name      string
		r         io.Reader
		keys      []string
		skips     int
		err       string
		maxRead   int64
		totalSize int64
	}{
		{"zeros", &repeatReader{b: 0, n: 200 << 20}, nil, 0,
			"offset 67108864: no readable record in 64 MiB (since line 1, offset 0): giving up; is the rest a Squid access.log?",
			70 << 20, 200 << 20},
		{"zeros after a line", io.MultiReader(strings.NewReader(good), &repeatReader{b: 0, n: 200 << 20}), []string{"line:1"}, 0,
			fmt.Sprintf("offset %d: no readable record in 64 MiB (since line 2, offset %d): giving up; is the rest a Squid access.log?", len(good)+64<<20, len(good)),
			70 << 20, 200 << 20},
		{"garbage lines", io.MultiReader(strings.NewReader(good), strings.NewReader(strings.Repeat("garbage\n", 5_000_000)), strings.NewReader(good)),
			[]string{"line:1"}, stretch.MaxRecords - 1,
			fmt.Sprintf("line 100001: no readable record in 100000 lines (since line 2, offset %d): giving up; is the rest a Squid access.log?", len(good)),
			16 << 20, 40_000_000},
		{"blank lines", io.MultiReader(strings.NewReader(strings.Repeat("\n", 3_000_000)), strings.NewReader(good)), nil, 0,
			"line 100000: no readable record in 100000 lines (since line 1, offset 0): giving up; is the rest a Squid access.log?",
			16 << 20, 3_000_000},
		// Below both bounds the read goes on past the stretch.
		{"long damaged stretch", io.MultiReader(strings.NewReader(good), strings.NewReader(strings.Repeat("garbage\n", stretch.MaxRecords-2)), strings.NewReader(good)),
			[]string{"line:1", fmt.Sprintf("line:%d", stretch.MaxRecords)}, stretch.MaxRecords - 2, "", 1 << 30, 0},
		{"50 MiB line", io.MultiReader(strings.NewReader(good), &repeatReader{b: 'x', n: 50 << 20}, strings.NewReader("\n"+good)),
			[]string{"line:1", "line:3"}, 1, "", 1 << 30, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cr := &countingReader{r: tt.r}
			var c importtest.Collector
			err := Read(context.Background(), cr, c.Emit, c.Skip)
			got := result{skips: c.Skips}
			for _, f := range c.Flows {
				got.flows = append(got.flows, fmt.Sprintf("%+v", f))
			}
			if err != nil {
				got.err = err.Error()
			}
			if !slices.Equal(got.keys(), tt.keys) || got.err != tt.err || len(got.skips) != tt.skips {
				t.Errorf("keys %v, %d skips, err %q\nwant %v, %d skips, err %q", got.keys(), len(got.skips), got.err, tt.keys, tt.skips, tt.err)
			}
			if cr.n > tt.maxRead {
				t.Errorf("read %d bytes of %d, want at most %d", cr.n, tt.totalSize, tt.maxRead)
			}
		})
	}
}
