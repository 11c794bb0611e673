package sqlite

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"path/filepath"
	"strings"
	"time"
	"unsafe"

	"modernc.org/libc"
	lib "modernc.org/sqlite/lib"
)

// rawConn is a connection opened through SQLite's C API as modernc.org/sqlite
// compiles it to Go (modernc.org/sqlite/lib), for the two loops that move
// every flow: PutFlows and Flows. Through database/sql and the driver each
// value costs a Go allocation, a C allocation for each bound string, and a
// mutex per call into SQLite (the driver opens connections FULLMUTEX); here
// strings are bound from one reused C buffer, text columns are read in place
// and copied only when new, and the connection is NOMUTEX because only one
// goroutine uses it at a time (DB hands them out from a free list).
//
// Every connection of a DB is one (see getRaw).
type rawConn struct {
	tls   *libc.TLS
	db    uintptr
	stmts map[string]uintptr // prepared statements kept for reuse
	buf   uintptr            // C buffer the strings of one row are bound from
	bufN  int
	cache int // page cache size in KiB, as last set by useCache
}

// cptr turns an address in C memory (allocated by modernc.org/libc, outside
// the Go heap) into a pointer.
func cptr(p uintptr) unsafe.Pointer { return unsafe.Add(nil, p) }

// rawPragmas are run on each new raw connection; journal_mode is set by the
// DB (see Open and getRaw). wal_autocheckpoint is per connection, and it is these
// connections that commit the bulk of the writes: a checkpoint (with its
// fsync) every 64 MiB of WAL instead of every 4 MiB made BenchmarkPutFlows
// ~45% faster.
const rawPragmas = `PRAGMA synchronous=NORMAL; PRAGMA wal_autocheckpoint=16384; PRAGMA temp_store=MEMORY; PRAGMA foreign_keys=ON;`

// The page cache of a raw connection: large while writing, where the pages
// of the indexes are changed over and over, small while reading, where a
// scan in start order reads each page once and a large cache would only
// add to the memory of a reader that holds a million flows.
const (
	writeCacheKiB = 64 << 10
	readCacheKiB  = 2 << 10
)

// useCache sets the size of the page cache.
func (c *rawConn) useCache(kib int) error {
	if c.cache == kib {
		return nil
	}
	if err := c.exec(fmt.Sprintf("PRAGMA cache_size=-%d", kib)); err != nil {
		return err
	}
	c.cache = kib
	return nil
}

// openRaw opens the database file at path: for writing (creating the file
// if needed), or read-only (mode=ro, and immutable=1 when asked; see
// OpenReadOnly). The busy timeout is set before anything else runs on the
// connection, so that even its first statement waits for other processes.
func openRaw(path string, readOnly, immutable bool) (*rawConn, error) {
	c := &rawConn{tls: libc.NewTLS(), stmts: map[string]uintptr{}}
	name := path
	flags := int32(lib.SQLITE_OPEN_READWRITE | lib.SQLITE_OPEN_CREATE | lib.SQLITE_OPEN_NOMUTEX)
	if readOnly {
		name = roURI(path, immutable)
		flags = lib.SQLITE_OPEN_READONLY | lib.SQLITE_OPEN_URI | lib.SQLITE_OPEN_NOMUTEX
	}
	cpath, err := libc.CString(name)
	if err != nil {
		c.tls.Close()
		return nil, err
	}
	defer libc.Xfree(c.tls, cpath)
	pdb := c.tls.Alloc(8)
	rc := lib.Xsqlite3_open_v2(c.tls, cpath, pdb, flags, 0)
	c.db = *(*uintptr)(cptr(pdb))
	c.tls.Free(8)
	if rc != lib.SQLITE_OK {
		err := fmt.Errorf("sqlite error %d", rc)
		if c.db != 0 {
			err = c.err(rc)
		}
		c.close()
		return nil, err
	}
	lib.Xsqlite3_busy_timeout(c.tls, c.db, busyTimeoutMs)
	if err := c.exec(rawPragmas); err != nil {
		c.close()
		return nil, err
	}
	return c, nil
}

// busyTimeoutMs is how long a statement waits for another connection's
// lock (another process migrating, a checkpoint) before "database is
// locked".
const busyTimeoutMs = 10000

// roURI is the SQLite URI that opens path read-only.
func roURI(path string, immutable bool) string {
	if abs, err := filepath.Abs(path); err == nil {
		path = abs
	}
	u := url.URL{Scheme: "file", Path: filepath.ToSlash(path)}
	if !strings.HasPrefix(u.Path, "/") {
		u.Path = "/" + u.Path // a Windows drive: file:///C:/…
	}
	q := "mode=ro"
	if immutable {
		q += "&immutable=1"
	}
	return u.String() + "?" + q
}

// close finalizes the statements and closes the connection.
func (c *rawConn) close() {
	for _, st := range c.stmts {
		lib.Xsqlite3_finalize(c.tls, st)
	}
	if c.db != 0 {
		lib.Xsqlite3_close_v2(c.tls, c.db)
	}
	if c.buf != 0 {
		lib.Xsqlite3_free(c.tls, c.buf)
	}
	c.tls.Close()
}

// err is the connection's last error.
func (c *rawConn) err(rc int32) error {
	msg := libc.GoString(lib.Xsqlite3_errmsg(c.tls, c.db))
	if rc&0xff == lib.SQLITE_INTERRUPT {
		return fmt.Errorf("%s (%w)", msg, context.Canceled)
	}
	return fmt.Errorf("%s (%d)", msg, rc)
}

// exec runs SQL statements that return no rows.
func (c *rawConn) exec(sql string) error {
	csql, err := libc.CString(sql)
	if err != nil {
		return err
	}
	defer libc.Xfree(c.tls, csql)
	if rc := lib.Xsqlite3_exec(c.tls, c.db, csql, 0, 0, 0); rc != lib.SQLITE_OK {
		return c.err(rc)
	}
	return nil
}

// execWaiting is exec for a statement SQLite may refuse with SQLITE_BUSY
// without calling the busy handler: changing the journal mode, whose
// SHARED-to-EXCLUSIVE step SQLite will not wait on while another process
// holds RESERVED (it could deadlock). It tries again for up to the busy
// timeout.
func (c *rawConn) execWaiting(sql string) error {
	csql, err := libc.CString(sql)
	if err != nil {
		return err
	}
	defer libc.Xfree(c.tls, csql)
	deadline := time.Now().Add(busyTimeoutMs * time.Millisecond)
	for pause := time.Millisecond; ; pause = min(2*pause, 50*time.Millisecond) {
		rc := lib.Xsqlite3_exec(c.tls, c.db, csql, 0, 0, 0)
		if rc == lib.SQLITE_OK {
			return nil
		}
		if rc&0xff != lib.SQLITE_BUSY || time.Now().After(deadline) {
			return c.err(rc)
		}
		time.Sleep(pause)
	}
}

// prepare returns a prepared statement for sql, reset and with its bindings
// cleared; keep says to keep it for the next call.
func (c *rawConn) prepare(sql string, keep bool) (uintptr, error) {
	if st, ok := c.stmts[sql]; ok {
		return st, nil
	}
	csql, err := libc.CString(sql)
	if err != nil {
		return 0, err
	}
	defer libc.Xfree(c.tls, csql)
	pst := c.tls.Alloc(8)
	defer c.tls.Free(8)
	if rc := lib.Xsqlite3_prepare_v2(c.tls, c.db, csql, -1, pst, 0); rc != lib.SQLITE_OK {
		return 0, c.err(rc)
	}
	st := *(*uintptr)(cptr(pst))
	if keep {
		c.stmts[sql] = st
	}
	return st, nil
}

// interruptOn makes ctx's end interrupt the connection's statement. stop
// undoes it, and reports false when the interrupt happened (it waits for it
// to finish, so the connection can be closed safely).
func (c *rawConn) interruptOn(ctx context.Context) (stop func() bool) {
	if ctx.Done() == nil {
		return func() bool { return true }
	}
	db := c.db
	done := make(chan struct{})
	cancel := context.AfterFunc(ctx, func() {
		defer close(done)
		// sqlite3_interrupt may be called from any thread; it needs no
		// state of the connection's own TLS.
		tls := libc.NewTLS()
		lib.Xsqlite3_interrupt(tls, db)
		tls.Close()
	})
	return func() bool {
		if cancel() {
			return true
		}
		<-done
		return false
	}
}

// binder binds the values of one row of a statement, its strings copied
// into the connection's C buffer, which must stay as it is until the
// statement has been stepped.
type binder struct {
	c   *rawConn
	st  uintptr
	off int
	rc  int32
}

// reserve makes the connection's buffer hold at least n bytes. It must be
// called before the strings of a row are bound.
func (c *rawConn) reserve(n int) error {
	if n <= c.bufN && c.buf != 0 {
		return nil
	}
	n = max(n, 2*c.bufN, 4096)
	p := lib.Xsqlite3_malloc64(c.tls, uint64(n))
	if p == 0 {
		return errors.New("out of C memory for a row of flows")
	}
	if c.buf != 0 {
		lib.Xsqlite3_free(c.tls, c.buf)
	}
	c.buf, c.bufN = p, n
	return nil
}

func (b *binder) text(i int32, s string) {
	p := b.c.buf + uintptr(b.off)
	if len(s) > 0 {
		copy(unsafe.Slice((*byte)(cptr(p)), len(s)), s)
		b.off += len(s)
	}
	// A non-NULL pointer with length 0 is the empty string, not NULL.
	// Static: SQLite uses the bytes in place until the next step.
	if rc := lib.Xsqlite3_bind_text(b.c.tls, b.st, i, p, int32(len(s)), 0); rc != lib.SQLITE_OK && b.rc == 0 {
		b.rc = rc
	}
}

func (b *binder) int(i int32, v int64) {
	if rc := lib.Xsqlite3_bind_int64(b.c.tls, b.st, i, v); rc != lib.SQLITE_OK && b.rc == 0 {
		b.rc = rc
	}
}

func (b *binder) null(i int32) {
	if rc := lib.Xsqlite3_bind_null(b.c.tls, b.st, i); rc != lib.SQLITE_OK && b.rc == 0 {
		b.rc = rc
	}
}

// columnInt is column i of the current row as an integer (0 for NULL).
func (c *rawConn) columnInt(st uintptr, i int32) int64 {
	return lib.Xsqlite3_column_int64(c.tls, st, i)
}

// columnNull reports whether column i of the current row is NULL.
func (c *rawConn) columnNull(st uintptr, i int32) bool {
	return lib.Xsqlite3_column_type(c.tls, st, i) == lib.SQLITE_NULL
}

// columnView is column i of the current row as text, pointing into SQLite's
// memory: valid only until the next step. Callers copy it (see segment.Interner).
func (c *rawConn) columnView(st uintptr, i int32) string {
	p := lib.Xsqlite3_column_text(c.tls, st, i)
	n := lib.Xsqlite3_column_bytes(c.tls, st, i)
	if p == 0 || n <= 0 {
		return ""
	}
	return unsafe.String((*byte)(cptr(p)), int(n))
}

// blob binds b, copied into the connection's buffer (see text).
func (b *binder) blob(i int32, v []byte) {
	p := b.c.buf + uintptr(b.off)
	if len(v) > 0 {
		copy(unsafe.Slice((*byte)(cptr(p)), len(v)), v)
		b.off += len(v)
	}
	if rc := lib.Xsqlite3_bind_blob(b.c.tls, b.st, i, p, int32(len(v)), 0); rc != lib.SQLITE_OK && b.rc == 0 {
		b.rc = rc
	}
}

// bindArgs binds args (strings, integers and byte slices) to st's
// parameters 1, 2, …
func (c *rawConn) bindArgs(st uintptr, args []any) error {
	n := 0
	for _, a := range args {
		switch v := a.(type) {
		case string:
			n += len(v)
		case []byte:
			n += len(v)
		}
	}
	if err := c.reserve(n); err != nil {
		return err
	}
	b := binder{c: c, st: st}
	for i, a := range args {
		switch v := a.(type) {
		case string:
			b.text(int32(i+1), v)
		case []byte:
			b.blob(int32(i+1), v)
		case int64:
			b.int(int32(i+1), v)
		case int:
			b.int(int32(i+1), int64(v))
		case nil:
			b.null(int32(i + 1))
		default:
			return fmt.Errorf("cannot bind %T", a)
		}
	}
	if b.rc != 0 {
		return c.err(b.rc)
	}
	return nil
}

// run runs one statement, kept prepared, with args, and calls row (when
// not nil) for each row it returns.
func (c *rawConn) run(sql string, args []any, row func(st uintptr) error) error {
	st, err := c.prepare(sql, true)
	if err != nil {
		return err
	}
	defer lib.Xsqlite3_reset(c.tls, st)
	if err := c.bindArgs(st, args); err != nil {
		return err
	}
	for {
		switch rc := lib.Xsqlite3_step(c.tls, st); rc {
		case lib.SQLITE_ROW:
			if row != nil {
				if err := row(st); err != nil {
					return err
				}
			}
		case lib.SQLITE_DONE:
			return nil
		default:
			return c.err(rc)
		}
	}
}

// nextID is the ID the next new flow gets; setNextID moves it on. Both run
// inside the write transaction that hands the IDs out.
func (c *rawConn) nextID() (int64, error) {
	var next int64
	err := c.run(`SELECT value FROM counters WHERE name = 'next_flow_id'`, nil, func(st uintptr) error {
		next = c.columnInt(st, 0)
		return nil
	})
	if err == nil && next <= 0 {
		err = errors.New("the flow ID counter is missing")
	}
	return next, err
}

func (c *rawConn) setNextID(next int64) error {
	return c.run(`UPDATE counters SET value = ? WHERE name = 'next_flow_id'`, []any{next}, nil)
}

// columnBlob is column i of the current row as bytes, pointing into
// SQLite's memory: valid only until the next step.
func (c *rawConn) columnBlob(st uintptr, i int32) []byte {
	p := lib.Xsqlite3_column_blob(c.tls, st, i)
	n := lib.Xsqlite3_column_bytes(c.tls, st, i)
	if p == 0 || n <= 0 {
		return nil
	}
	return unsafe.Slice((*byte)(cptr(p)), int(n))
}
