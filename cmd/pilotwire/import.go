package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"golang.org/x/term"

	"github.com/pilotwire/pilotwire/internal/importer"
	"github.com/pilotwire/pilotwire/internal/importer/squid"
)

const importExamples = `  pilotwire import access.log                     # format detected from content, not the name
  pilotwire import --format har --device LAB-VM-07 capture.har
  pilotwire import trace.pcapng other.saz netlog.json
  pilotwire import --squid-logformat '%ts.%03tu %6tr %>a %>p %Ss/%03>Hs %<st %rm %ru %[un %Sh/%<a %mt' custom.log
  pilotwire import --store /tmp/case-4711.db customer/*.har
  pilotwire import --store postgres://pilotwire@db.lab/pilotwire --proxy site-b site-b-oobe.pcapng
`

// shownSkips is how many skipped parts are listed per file before a count.
const shownSkips = 5

func runImport(ctx context.Context, g *globals, args []string) error {
	fs := newFlagSet(g, "import", "import [flags] FILE...", importExamples)
	var formatFlag, device, logformat, proxyName string
	var batch int
	var quiet, strict bool
	fs.StringVar(&formatFlag, "format", "auto", "file `FORMAT`: auto (detect from the content), "+importer.FormatList())
	fs.StringVar(&device, "device", "", "label every imported flow with this device `NAME` (e.g. LAB-VM-07)")
	fs.StringVar(&proxyName, "proxy", "", "record every imported flow as captured at the site (proxy --name) `NAME`: in a shared store,\n"+
		"its devices then never mix with another site's of the same address (sessions, flows and report --proxy NAME)")
	fs.StringVar(&logformat, "squid-logformat", "", "the custom Squid `LOGFORMAT` the log was written with (squid.conf format string; see docs/squid.md)")
	fs.IntVar(&batch, "batch", importer.DefaultBatch, "`N` flows written per store transaction")
	fs.BoolVar(&quiet, "quiet", false, "no progress display, even on a terminal")
	addStrictFlag(fs, &strict)
	files, err := parseInterleaved(g, fs, args)
	if err != nil {
		return err
	}
	if len(files) == 0 {
		return usagef("import: no file given (see pilotwire import --help)")
	}
	format, err := importer.ParseFormat(formatFlag)
	if err != nil {
		return usagef("import: --format: %v", err)
	}
	var squidOpt squid.Options
	if logformat != "" {
		if squidOpt.Layout, err = squid.ParseLogformat(logformat); err != nil {
			return usagef("import: --squid-logformat: %v", err)
		}
	}
	st, err := openStore(ctx, g)
	if err != nil {
		return err
	}
	defer st.Close()

	failed := 0
	var imported int64
	defer func() { refreshStats(ctx, st, imported) }()
	for _, path := range files {
		prog := newProgress(g.stderr, filepath.Base(path), quiet)
		opt := importer.Options{Format: format, Device: device, Proxy: proxyName, FormatOptions: []any{squidOpt}, Strict: strict, Progress: prog.update}
		start := time.Now()
		res, err := importer.Import(ctx, st, path, opt, batch)
		prog.done()
		if errors.Is(err, context.Canceled) {
			fmt.Fprintf(g.stderr, "pilotwire: %s: interrupted after %d flows\n", path, res.Flows)
			return err
		}
		if err != nil {
			failed++
			fmt.Fprintf(g.stderr, "pilotwire: %v\n", err)
			printSkips(g.stderr, res.Result)
			continue
		}
		// The summary is the command's result (stdout); what went wrong
		// reading the file is a warning (stderr).
		fewer := ""
		if res.Dropped > 0 {
			fewer = fmt.Sprintf(", %d fewer than before", res.Dropped)
		}
		imported += int64(res.Flows)
		fmt.Fprintf(g.stdout, "%s: %s, %d flows (%d new%s), %d skipped, %s\n", path, res.Format, res.Flows, res.New, fewer, res.SkipCount,
			time.Since(start).Round(time.Millisecond))
		warnPartial(g.stderr, res.Result)
		if res.Flows == 0 {
			fmt.Fprintf(g.stderr, "pilotwire: %s: no flows in it, nothing imported\n", path)
		}
	}
	if failed > 0 {
		return fmt.Errorf("import: %d of %d files could not be read", failed, len(files))
	}
	return nil
}

// addStrictFlag adds --strict to a command that reads capture files.
func addStrictFlag(fs *flag.FlagSet, strict *bool) {
	what := "fail (exit 1) when a capture file cannot be read whole: a damaged part skipped, or a read\nthat stops early"
	if fs.Name() == "import" {
		what += "; such a file is then not stored at all (it is read through once first)"
	}
	fs.BoolVar(strict, "strict", false, what)
}

// warnPartial says on w how much of a file that could not be read whole was
// read, and lists the first parts skipped.
func warnPartial(w io.Writer, res importer.Result) {
	if p := res.Partial(); p != "" {
		fmt.Fprintf(w, "pilotwire: %s: partly read: %s\n", res.File, p)
		printSkips(w, res)
	}
}

// printSkips lists the first skipped parts of a file, then a count.
func printSkips(w io.Writer, res importer.Result) {
	for i, s := range res.Skipped {
		if i == shownSkips {
			break
		}
		fmt.Fprintf(w, "  skipped %s: %s\n", s.Where, s.Reason)
	}
	if res.SkipCount > shownSkips {
		fmt.Fprintf(w, "  … and %d more skipped\n", res.SkipCount-shownSkips)
	}
}

// progress draws one status line on a terminal: bytes, flows, rate and
// time left. On anything else (a pipe, a file, a test buffer) it is silent.
type progress struct {
	mu      sync.Mutex
	w       io.Writer
	name    string
	on      bool
	start   time.Time
	last    time.Time
	drawn   bool
	lineLen int
}

func newProgress(w io.Writer, name string, quiet bool) *progress {
	p := &progress{w: w, name: name, start: time.Now()}
	if f, ok := w.(*os.File); ok && !quiet && term.IsTerminal(int(f.Fd())) {
		p.on = true
	}
	return p
}

func (p *progress) update(read, total, flows int64) {
	if !p.on {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	now := time.Now()
	// Nothing for the first half second (small files), then 4 times a second.
	if now.Sub(p.start) < 500*time.Millisecond || now.Sub(p.last) < 250*time.Millisecond {
		return
	}
	p.last = now
	elapsed := now.Sub(p.start).Seconds()
	rate := float64(read) / elapsed
	line := fmt.Sprintf("%s: %s of %s", p.name, humanBytes(read), humanBytes(total))
	if total > 0 {
		line += fmt.Sprintf(" (%d%%)", read*100/total)
	}
	line += fmt.Sprintf(", %d flows, %s/s", flows, humanBytes(int64(rate)))
	if rate > 0 && total > read {
		left := time.Duration(float64(total-read) / rate * float64(time.Second))
		line += ", " + left.Round(time.Second).String() + " left"
	}
	pad := ""
	if n := p.lineLen - len(line); n > 0 {
		pad = strings.Repeat(" ", n)
	}
	p.lineLen = len(line)
	fmt.Fprintf(p.w, "\r%s%s", line, pad)
	p.drawn = true
}

// done clears the status line.
func (p *progress) done() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.drawn {
		fmt.Fprintf(p.w, "\r%s\r", strings.Repeat(" ", p.lineLen))
	}
}
