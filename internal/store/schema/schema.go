// Package schema loads a store's embedded, numbered migrations: files
// named NNNN_what.sql, numbered from 1 without gaps. The SQLite and
// PostgreSQL stores each embed their own and apply them their own way.
// It also names the flows table's columns, which both stores share. Of
// the project it imports only internal/flow.
package schema

import (
	"fmt"

	"github.com/pilotwire/pilotwire/internal/flow"
	"io/fs"
	"sort"
	"strconv"
	"strings"
)

// Migration is one embedded schema change.
type Migration struct {
	Version int    // its number, from 1
	Name    string // its file name
	Body    string // its SQL
}

// MustLoad returns the migrations in fsys's directory dir, oldest first.
// A directory without them, or with a gap in the numbers, is a broken
// build, not bad input: it panics, naming store.
func MustLoad(store string, fsys fs.FS, dir string) []Migration {
	names, err := fs.Glob(fsys, dir+"/*.sql")
	if err != nil || len(names) == 0 {
		panic(fmt.Sprintf("%s: no embedded migrations (%v)", store, err))
	}
	sort.Strings(names)
	var out []Migration
	for _, name := range names {
		base := strings.TrimPrefix(name, dir+"/")
		v, err := strconv.Atoi(strings.SplitN(base, "_", 2)[0])
		if err != nil || v != len(out)+1 {
			panic(fmt.Sprintf("%s: migration %s: want a name starting %04d_", store, base, len(out)+1))
		}
		body, err := fs.ReadFile(fsys, name)
		if err != nil {
			panic(err)
		}
		out = append(out, Migration{Version: v, Name: base, Body: string(body)})
	}
	return out
}

// FieldColumns are the flows table's columns of the fields that
// flow.Filter.Fields may leave out (ID and Start are id, start_ns and
// start_tz, always read), in the order both stores read them.
var FieldColumns = []struct {
	Field  flow.Fields
	Column string
}{
	{flow.FieldKey, "key"}, {flow.FieldEnd, "end_ns"}, {flow.FieldClient, "client"}, {flow.FieldClientPort, "client_port"},
	{flow.FieldDevice, "device"}, {flow.FieldSession, "session"}, {flow.FieldSource, "source"},
	{flow.FieldSourceFile, "source_file"}, {flow.FieldKind, "kind"}, {flow.FieldMethod, "method"},
	{flow.FieldScheme, "scheme"}, {flow.FieldHost, "host"}, {flow.FieldPort, "port"}, {flow.FieldURL, "url"},
	{flow.FieldStatus, "status"}, {flow.FieldBytesUp, "bytes_up"}, {flow.FieldBytesDown, "bytes_down"},
	{flow.FieldSNI, "sni"}, {flow.FieldALPN, "alpn"}, {flow.FieldTLSVersion, "tls_version"},
	{flow.FieldError, "error"}, {flow.FieldDecision, "decision"}, {flow.FieldReason, "reason"}, {flow.FieldNote, "note"},
	{flow.FieldLost, "lost"}, {flow.FieldTunnel, "tunnel"}, {flow.FieldHeaders, "headers"}, {flow.FieldProxy, "proxy"},
	{flow.FieldBodies, "bodies"},
}
