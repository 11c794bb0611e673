package main

import (
	"regexp"
	"strings"
	"testing"

	"github.com/pilotwire/pilotwire/internal/testutil"
)

// TestPostgresStoreCommands: the commands that read and write flows work
// on a PostgreSQL store as on SQLite, and give the same answers: the seed
// store copied over (store copy), a capture imported into both.
func TestPostgresStoreCommands(t *testing.T) {
	srv := testutil.StartPostgres(t)
	url := srv.NewDatabase(t)
	lite := seedStore(t)

	_, stderr, err := runCmd(t, "store", "copy", "--from", lite, "--to", url)
	if err != nil {
		t.Fatalf("store copy: %v\n%s", err, stderr)
	}
	if !regexp.MustCompile(`store copy: 166 flows and 0 learned pass-through hosts copied from \S+pilotwire.db to postgres://pilotwire@127\.0\.0\.1:\d+/t1\?sslmode=disable in`).MatchString(stderr) {
		t.Errorf("store copy said:\n%s", stderr)
	}
	// Again: the same flows replace the first copy's.
	if _, stderr, err := runCmd(t, "store", "copy", "--from", lite, "--to", url); err != nil {
		t.Fatalf("store copy again: %v\n%s", err, stderr)
	}
	for _, imp := range []string{lite, url} {
		if _, stderr, err := runCmd(t, "import", pcapFile, "--store", imp); err != nil {
			t.Fatalf("import into %s: %v\n%s", imp, err, stderr)
		}
	}
	for _, args := range [][]string{
		{"sessions"},
		{"flows", "--host", "*.manage.microsoft.com"},
		{"flows", "--json", "--limit", "40"},
		{"report"},
		{"report", "--session", "2", "--format", "markdown"},
		{"endpoints", "observed"},
	} {
		want, _, err := runCmd(t, append(args, "--store", lite)...)
		if err != nil {
			t.Fatalf("%v on SQLite: %v", args, err)
		}
		got, stderr, err := runCmd(t, append(args, "--store", url)...)
		if err != nil {
			t.Fatalf("%v on PostgreSQL: %v\n%s", args, err, stderr)
		}
		if args[0] == "flows" && args[1] == "--json" {
			// IDs are the store's own.
			re := regexp.MustCompile(`"id":\d+`)
			want, got = re.ReplaceAllString(want, `"id":N`), re.ReplaceAllString(got, `"id":N`)
		}
		// The report names its source.
		want, got = strings.ReplaceAll(want, lite, "STORE"), strings.ReplaceAll(got, url, "STORE")
		if got != want {
			t.Errorf("%v: PostgreSQL says\n%s\nSQLite says\n%s", args, got, want)
		}
		if strings.Count(want, "\n") < 2 {
			t.Errorf("%v: too little output to compare:\n%s", args, want)
		}
	}
}

// TestPostgresStoreErrors: a store that cannot be reached is an error that
// names it without its password; the usage of store copy is checked.
func TestPostgresStoreErrors(t *testing.T) {
	const bad = "postgres://pilotwire:Sup3rS3cret@127.0.0.1:1/pw?sslmode=disable&connect_timeout=2"
	for _, args := range [][]string{
		{"sessions", "--store", bad},
		{"import", pcapFile, "--store", bad},
		{"store", "copy", "--from", bad, "--to", "x.db"},
	} {
		_, stderr, code := pw(t, args...)
		if code != 1 || strings.Contains(stderr, "Sup3rS3cret") || !strings.Contains(stderr, "postgres://pilotwire:xxxxx@127.0.0.1:1/pw") {
			t.Errorf("%v: exit %d, stderr:\n%s", args, code, stderr)
		}
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"store", "copy", "--from", "a.db"}, "--to STORE is required"},
		{[]string{"store", "copy", "--from", "a.db", "--to", "a.db"}, "the same store"},
		{[]string{"store", "copy", "--to", "b.db", "a.db"}, `unexpected argument "a.db"`},
		{[]string{"store"}, "no subcommand"},
	} {
		_, stderr, code := pw(t, c.args...)
		if code != 2 || !strings.Contains(stderr, c.want) {
			t.Errorf("%v: exit %d, stderr:\n%s", c.args, code, stderr)
		}
	}
}
