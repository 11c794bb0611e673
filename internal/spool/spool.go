// Package spool keeps flows on local disk while the store cannot take
// them (a PostgreSQL server that went away), and hands them back in the
// order they came when it can: flow.Recorder's second line after its
// bounded memory backlog. It imports only internal/flow of the project.
//
// A spool is a directory of its own. Each Append writes one file (written
// to a temporary name, synced, renamed), named by a sequence number and
// its count of flows, holding the flows as JSON lines. Deliver gives the
// oldest file's flows to the store and only then removes the file: a
// crash in between sends them again, which a store takes as the same
// flows (PutFlows replaces by Key), so nothing is lost or duplicated. A
// lock on the directory keeps two pilotwires from sharing one spool.
package spool

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/pilotwire/pilotwire/internal/flow"
)

// DefaultMaxBytes bounds a spool's size on disk when the caller gives no
// bound: a day of a busy proxy's flows.
const DefaultMaxBytes = 4 << 30

// ErrFull is returned (wrapped) by Append when the spool holds MaxBytes.
var ErrFull = errors.New("spool full")

// Dir is a spool directory. It is safe for concurrent use.
type Dir struct {
	path     string
	maxBytes int64
	unlock   func()

	mu      sync.Mutex
	files   []file // oldest first
	nextSeq uint64
	damaged int // files set aside as damaged since Open
}

type file struct {
	name    string
	seq     uint64
	flows   int64
	bytes   int64
	written time.Time
}

var _ flow.Spool = (*Dir)(nil)

// Open opens (making it, 0700) the spool directory at path, finding the
// flows an earlier run left there. maxBytes <= 0 means DefaultMaxBytes.
func Open(path string, maxBytes int64) (*Dir, error) {
	if maxBytes <= 0 {
		maxBytes = DefaultMaxBytes
	}
	if err := os.MkdirAll(path, 0o700); err != nil {
		return nil, fmt.Errorf("spool %s: %w", path, err)
	}
	unlock, err := lockDir(path)
	if err != nil {
		return nil, fmt.Errorf("spool %s: %w", path, err)
	}
	d := &Dir{path: path, maxBytes: maxBytes, unlock: unlock, nextSeq: 1}
	entries, err := os.ReadDir(path)
	if err != nil {
		unlock()
		return nil, fmt.Errorf("spool %s: %w", path, err)
	}
	for _, e := range entries {
		name := e.Name()
		if strings.HasSuffix(name, ".tmp") {
			// An Append that never finished: its flows were kept in
			// memory, or are lost with the process that was writing.
			os.Remove(filepath.Join(path, name))
			continue
		}
		seq, n, ok := parseName(name)
		if !ok {
			continue
		}
		info, err := e.Info()
		if err != nil {
			continue
		}
		d.files = append(d.files, file{name: name, seq: seq, flows: n, bytes: info.Size(), written: info.ModTime()})
		d.nextSeq = max(d.nextSeq, seq+1)
	}
	slices.SortFunc(d.files, func(a, b file) int { return cmpUint(a.seq, b.seq) })
	return d, nil
}

func cmpUint(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// fileName is a spool file's name: sequence and count of flows.
func fileName(seq uint64, flows int) string {
	return fmt.Sprintf("%016d-%d.jsonl", seq, flows)
}

func parseName(name string) (seq uint64, flows int64, ok bool) {
	base, found := strings.CutSuffix(name, ".jsonl")
	if !found {
		return 0, 0, false
	}
	a, b, found := strings.Cut(base, "-")
	if !found {
		return 0, 0, false
	}
	s, err1 := strconv.ParseUint(a, 10, 64)
	n, err2 := strconv.ParseInt(b, 10, 64)
	return s, n, err1 == nil && err2 == nil && n >= 0
}

// Path is the spool's directory.
func (d *Dir) Path() string { return d.path }

// Append keeps flows, after every flow kept before.
func (d *Dir) Append(flows []flow.Flow) error {
	if len(flows) == 0 {
		return nil
	}
	var buf []byte
	for i := range flows {
		line, err := json.Marshal(&flows[i])
		if err != nil {
			return fmt.Errorf("spool: flow %s: %w", flows[i].Key, err)
		}
		buf = append(append(buf, line...), '\n')
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	var held int64
	for _, f := range d.files {
		held += f.bytes
	}
	if held+int64(len(buf)) > d.maxBytes {
		return fmt.Errorf("%w: %s holds %d bytes of at most %d", ErrFull, d.path, held, d.maxBytes)
	}
	name := fileName(d.nextSeq, len(flows))
	tmp := filepath.Join(d.path, name+".tmp")
	if err := writeSynced(tmp, buf); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("spool: %w", err)
	}
	if err := os.Rename(tmp, filepath.Join(d.path, name)); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("spool: %w", err)
	}
	syncDir(d.path)
	d.files = append(d.files, file{name: name, seq: d.nextSeq, flows: int64(len(flows)), bytes: int64(len(buf)), written: time.Now()})
	d.nextSeq++
	return nil
}

func writeSynced(path string, data []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// syncDir makes a rename or removal in dir durable, where the platform
// allows it.
func syncDir(dir string) {
	if f, err := os.Open(dir); err == nil {
		f.Sync()
		f.Close()
	}
}

// Held says what the spool holds.
func (d *Dir) Held() flow.SpoolHeld {
	d.mu.Lock()
	defer d.mu.Unlock()
	var h flow.SpoolHeld
	for _, f := range d.files {
		h.Flows += f.flows
		h.Bytes += f.bytes
	}
	if len(d.files) > 0 {
		h.Oldest = d.files[0].written
	}
	h.Damaged = d.damaged
	return h
}

// Deliver hands the spool's flows to put, oldest file first, one file a
// call, removing each file once put took it. It stops at put's first
// error, keeping that file and the later ones. A file that cannot be read
// back (damaged on disk) is renamed to NAME.damaged, counted, and
// skipped: its flows are lost, and Held says how many files were.
func (d *Dir) Deliver(ctx context.Context, put func(context.Context, []flow.Flow) error) error {
	for {
		d.mu.Lock()
		if len(d.files) == 0 {
			d.mu.Unlock()
			return nil
		}
		f := d.files[0]
		d.mu.Unlock()
		path := filepath.Join(d.path, f.name)
		flows, err := readFile(path, f.flows)
		if err != nil {
			os.Rename(path, path+".damaged")
			d.drop(f, true)
			continue
		}
		if err := put(ctx, flows); err != nil {
			return err
		}
		if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("spool: %w", err)
		}
		syncDir(d.path)
		d.drop(f, false)
	}
}

func (d *Dir) drop(f file, damaged bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if len(d.files) > 0 && d.files[0].seq == f.seq {
		d.files = d.files[1:]
	}
	if damaged {
		d.damaged++
	}
}

// readFile reads a spool file of n flows.
func readFile(path string, n int64) ([]flow.Flow, error) {
	fh, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer fh.Close()
	out := make([]flow.Flow, 0, min(n, 1<<16))
	sc := bufio.NewScanner(fh)
	sc.Buffer(make([]byte, 64<<10), 64<<20)
	for line := 1; sc.Scan(); line++ {
		var f flow.Flow
		if err := json.Unmarshal(sc.Bytes(), &f); err != nil {
			return nil, fmt.Errorf("%s line %d: %w", path, line, err)
		}
		out = append(out, f)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if int64(len(out)) != n {
		return nil, fmt.Errorf("%s: %d flows, its name says %d", path, len(out), n)
	}
	return out, nil
}

// Close releases the directory's lock; the flows stay for the next run.
func (d *Dir) Close() error {
	d.unlock()
	return nil
}
