package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/pilotwire/pilotwire/internal/report"
	"github.com/pilotwire/pilotwire/internal/session"
	"github.com/pilotwire/pilotwire/internal/timeline"
)

const reportExamples = `  pilotwire report                                   # the newest session, as text
  pilotwire report --store postgres://pilotwire@db.lab/pilotwire --proxy site-a   # that site's newest session
  pilotwire report --session 3 --format html -o run3.html
  pilotwire report --client 10.0.0.23 --format json
  pilotwire report --format markdown                 # paste into a ticket or a blog post
  pilotwire report --t0 -10s                         # clock starts 10 s before the first flow
  pilotwire report --t0 "2026-11-25 09:14:05"        # clock starts when the video did
  pilotwire report customer.har --format html -o customer.html   # straight from a capture file
  pilotwire report --rules my-milestones.yaml        # your own milestone rules
  pilotwire report --session 4 --against allowlist.txt   # what this allowlist would have broken
`

func runReport(ctx context.Context, g *globals, args []string) error {
	fs := newFlagSet(g, "report", "report [flags] [CAPTURE-FILE]", reportExamples)
	var (
		number                         int
		client, proxyName, format, out string
		t0s, rules                     string
		against, deny                  string
		gap                            time.Duration
		strict                         bool
	)
	fs.IntVar(&number, "session", 0, "report session `N` (see pilotwire sessions; default: the newest)")
	fs.StringVar(&client, "client", "", "report the newest session of this client `ADDR` or device label")
	fs.StringVar(&proxyName, "proxy", "", "only sessions recorded by the pilotwire proxy of this `NAME` (proxy --name)")
	fs.StringVar(&format, "format", "text", "output `FORMAT`: "+strings.Join(report.Formats, ", "))
	fs.StringVar(&out, "o", "", "write to `FILE` instead of standard output")
	fs.StringVar(&t0s, "t0", "", "zero of the clock: a `TIME` (2026-11-25T09:14:05Z, \"2026-11-25 09:14:05\", 09:14:05 on the\n"+
		"session's day) or an offset from the first flow (-10s); default: the first flow")
	fs.DurationVar(&gap, "gap", timeline.DefaultGap, "idle `TIME` that ends a session")
	fs.StringVar(&rules, "rules", "", "milestone and phase rules from `FILE` instead of the built-in ones\n"+
		"(YAML, like internal/timeline/milestones.yaml)")
	fs.StringVar(&against, "against", "", "instead of the report, what the allowlist `FILE` (any format endpoints export writes, or\n"+
		"catalog YAML) would have denied in the session: hosts, milestones and phases hit, provisioning stoppers first")
	fs.StringVar(&deny, "deny", "", "with --against (or alone): also deny the hosts of the list `FILE`")
	addStrictFlag(fs, &strict)
	pos, err := parseInterleaved(g, fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 1 {
		return usagef("report: one capture file at most, got %q", pos)
	}
	if !slices.Contains(report.Formats, format) && format != "md" {
		return usagef("report: --format %q: want %s", format, strings.Join(report.Formats, ", "))
	}
	if gap <= 0 {
		return usagef("report: --gap %s: want a positive duration like 30m", gap)
	}
	cat, err := loadCatalog(g)
	if err != nil {
		return err
	}
	rs, err := loadRules(g, rules)
	if err != nil {
		return err
	}
	src, err := openSource(ctx, g, first(pos), strict)
	if err != nil {
		return err
	}
	defer src.Close()
	s, err := session.Find(ctx, src, gap, number, session.Who{Proxy: proxyName, Client: client})
	if err != nil {
		return sessionError(err)
	}
	// The report has no place for notes yet: stderr.
	if notes, err := session.IncompleteNotes(ctx, src, []timeline.Session{s}); err != nil {
		return err
	} else if n := notes[s.Number]; n != "" {
		fmt.Fprintf(g.stderr, "pilotwire: session %d: %s\n", s.Number, n)
	}
	if s.Lost > 0 {
		fmt.Fprintf(g.stderr, "pilotwire: session %d: %s\n", s.Number, session.LostNote(s.Lost))
	}
	t0, err := timeline.ParseT0(t0s, s.Start)
	if err != nil {
		return usagef("report: %v", err)
	}
	tl, err := session.Timeline(ctx, src, s, cat, timeline.Options{T0: t0, Rules: rs})
	if err != nil {
		return err
	}
	if against != "" || deny != "" {
		policy, err := loadPolicy(against, deny)
		if err != nil {
			return err
		}
		res, err := session.Against(ctx, src, s, cat, timeline.Options{T0: t0, Rules: rs}, policy.Decide)
		if err != nil {
			return err
		}
		printAgainst(g.stdout, s, policy, res)
		return nil
	}
	opt := report.Options{Generator: "pilotwire " + version, Source: src.Name()}
	if out == "" || out == "-" {
		return report.Render(g.stdout, format, tl, opt)
	}
	return writeFileAtomic(out, func(w io.Writer) error { return report.Render(w, format, tl, opt) })
}

// writeFileAtomic writes a file through a temporary one beside it, so a
// failed report never leaves half a file under the name asked for. Errors
// name the file the user gave, never the temporary one. A name that is a
// device or a pipe (-o /dev/stdout, a fifo) is written to directly:
// renaming over it would replace it.
func writeFileAtomic(name string, write func(io.Writer) error) error {
	fail := func(err error) error { return fmt.Errorf("write %s: %w", name, withoutPath(err)) }
	if fi, err := os.Stat(name); err == nil && !fi.Mode().IsRegular() {
		if fi.IsDir() {
			return fmt.Errorf("write %s: it is a directory; give a file name", name)
		}
		f, err := os.OpenFile(name, os.O_WRONLY, 0)
		if err != nil {
			return fail(err)
		}
		if err := write(pathlessWriter{f}); err != nil {
			f.Close()
			return fmt.Errorf("write %s: %w", name, err)
		}
		if err := f.Close(); err != nil {
			return fail(err)
		}
		return nil
	}
	dir := filepath.Dir(name)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(name)+".*")
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("write %s: directory %s does not exist", name, dir)
		}
		return fail(err)
	}
	defer os.Remove(tmp.Name())
	if err := write(pathlessWriter{tmp}); err != nil {
		// pathlessWriter already took the temporary name out.
		tmp.Close()
		return fmt.Errorf("write %s: %w", name, err)
	}
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		return fail(err)
	}
	if err := tmp.Close(); err != nil {
		return fail(err)
	}
	if err := os.Rename(tmp.Name(), name); err != nil {
		return fail(err)
	}
	return nil
}

// pathlessWriter drops the file name from write errors ("write
// /d/.out.html.12345: no space left on device"): the caller names the file
// the user asked for.
type pathlessWriter struct{ f *os.File }

func (w pathlessWriter) Write(b []byte) (int, error) {
	n, err := w.f.Write(b)
	return n, withoutPath(err)
}

// withoutPath returns the reason inside an error that names a file (a
// *fs.PathError or *os.LinkError), or err itself.
func withoutPath(err error) error {
	var pe *fs.PathError
	var le *os.LinkError
	switch {
	case errors.As(err, &pe):
		return pe.Err
	case errors.As(err, &le):
		return le.Err
	}
	return err
}

// loadRules reads a --rules file ("" for the built-in rules), warning on
// stderr about what its patterns now mean.
func loadRules(g *globals, path string) (*timeline.Rules, error) {
	if path == "" {
		return nil, nil
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("rules: %w", err)
	}
	rs, err := timeline.ParseRules(path, data)
	if err != nil {
		return nil, err
	}
	for _, w := range rs.Warnings {
		fmt.Fprintf(g.stderr, "pilotwire: %s\n", w)
	}
	return rs, nil
}
