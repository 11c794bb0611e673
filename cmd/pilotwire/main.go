// Command pilotwire shows what a Windows device says to the network while
// Windows Autopilot provisions it, and what each conversation means.
//
// This package only wires flags to the packages under internal/; run
// "pilotwire help" for the commands.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(exitCode(err, os.Stderr))
}

// usageError marks a mistake in the command line (exit status 2).
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error { return usageError{fmt.Sprintf(format, args...)} }

// emptyResult ends a command that found nothing to show: not a failure
// (exit status 0), but said on standard error, with the way to get data.
type emptyResult struct{ msg string }

func (e emptyResult) Error() string { return e.msg }

func emptyf(format string, args ...any) error { return emptyResult{fmt.Sprintf(format, args...)} }

// exitCode is the one rule every command follows (README: "Exit codes and
// messages"): 0 success, an empty result included; 1 failure; 2 a mistake
// in the command line; 130 interrupted. Messages go to stderr.
func exitCode(err error, stderr io.Writer) int {
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return 0
	case errors.As(err, new(emptyResult)):
		fmt.Fprintf(stderr, "pilotwire: %v\n", err)
		return 0
	case errors.As(err, new(usageError)):
		fmt.Fprintf(stderr, "pilotwire: %v\n", err)
		return 2
	case errors.Is(err, context.Canceled):
		return 130
	default:
		fmt.Fprintf(stderr, "pilotwire: %v\n", err)
		return 1
	}
}

const usage = `pilotwire records and explains the network traffic of Windows Autopilot provisioning.

Usage:
  pilotwire [--store STORE] [--catalog FILE] COMMAND [flags]

Commands:
  proxy       capture: forward proxy (:8080) and live page (127.0.0.1:8081); stores every flow
  gateway     capture with no proxy setting: the devices' router (Linux): transparent TCP, recording DNS
  serve       the live page over the store or capture files, no proxying
  capture     passive: record what passes a network interface (a mirror port, a bridge), no setting on the device
  import      read HAR, SAZ, Squid access.log, pcap/pcapng or Chrome net-log files into the store
  flows       list captured flows, with filters
  sessions    list device sessions
  report      annotated timeline of a session: text, markdown, json, html
  diff        two sessions side by side: phases, services, milestones, hosts, refusals
  export      a session's flows as HAR 1.2, for browsers' DevTools and Fiddler
  scenario    simulated devices' scenarios: list, show, from-session
  demo        the whole product on this machine: proxy, page, stand-in internet, simulated devices
  endpoints   the endpoint catalog: list, look up hosts, export allowlists
  check       is this network ready for Autopilot? required hosts, directly or through a proxy
  store       copy a store into another (SQLite ⇄ PostgreSQL)
  ca          the lab CA for TLS interception: init, export (for the device's trust store), show
  version     print the version

Global flags (also accepted after the command):
  --store STORE     flow store: an SQLite file (default ./pilotwire.db) or a
                    postgres://user@host/db URL; or $PILOTWIRE_STORE
  --catalog FILE    extra catalog entries (or $PILOTWIRE_CATALOG)

Run "pilotwire COMMAND --help" for a command's flags and examples.
`

// globals are the settings every command shares.
type globals struct {
	store   string
	catalog string
	stdout  io.Writer
	stderr  io.Writer
}

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	g := &globals{store: "pilotwire.db", stdout: stdout, stderr: stderr}
	if v := os.Getenv("PILOTWIRE_STORE"); v != "" {
		g.store = v
	}
	g.catalog = os.Getenv("PILOTWIRE_CATALOG")
	fs := flag.NewFlagSet("pilotwire", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&g.store, "store", g.store, "")
	fs.StringVar(&g.catalog, "catalog", g.catalog, "")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprint(stdout, usage)
			return nil
		}
		return usagef("%v (see pilotwire help)", err)
	}
	args = fs.Args()
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return usagef("no command given")
	}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "capture":
		return runCapture(ctx, g, rest)
	case "proxy":
		return runProxy(ctx, g, rest)
	case "gateway":
		return runGateway(ctx, g, rest)
	case "import":
		return runImport(ctx, g, rest)
	case "flows":
		return runFlows(ctx, g, rest)
	case "sessions":
		return runSessions(ctx, g, rest)
	case "serve":
		return runServe(ctx, g, rest)
	case "demo":
		return runDemo(ctx, g, rest)
	case "scenario":
		return runScenario(ctx, g, rest)
	case "export":
		return runExport(ctx, g, rest)
	case "diff":
		return runDiff(ctx, g, rest)
	case "report":
		return runReport(ctx, g, rest)
	case "endpoints":
		return runEndpoints(ctx, g, rest)
	case "check":
		return runCheck(ctx, g, rest)
	case "store":
		return runStore(ctx, g, rest)
	case "ca":
		return runCA(ctx, g, rest)
	case "version":
		fs := newFlagSet(g, "version", "version", "  pilotwire version\n")
		if err := parseFlags(g, fs, rest); err != nil {
			return err
		}
		if fs.NArg() > 0 {
			return usagef("version: unexpected argument %q", fs.Arg(0))
		}
		fmt.Fprintf(stdout, "pilotwire %s\n", version)
		return nil
	case "help", "-h", "--help":
		if len(rest) > 0 && cmd == "help" {
			// "pilotwire help import" is "pilotwire import --help".
			return run(ctx, []string{rest[0], "--help"}, stdout, stderr)
		}
		fmt.Fprint(stdout, usage)
		return nil
	default:
		return usagef("unknown command %q (see pilotwire help)", cmd)
	}
}
