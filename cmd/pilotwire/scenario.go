package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/pilotwire/pilotwire/internal/flow"
	"github.com/pilotwire/pilotwire/internal/scenario"
	"github.com/pilotwire/pilotwire/internal/session"
	"github.com/pilotwire/pilotwire/internal/timeline"
)

const scenarioUsage = `Usage: pilotwire scenario SUBCOMMAND [flags]

Scenarios are what simulated devices do (pilotwire demo, the tests): YAML, one step a line.

Subcommands:
  list                       the built-in scenarios
  show NAME|FILE             print a scenario (a built-in one, or check a file of yours)
  from-session [N] [-o FILE] turn captured session N (default: the newest) into a scenario

Examples:
  pilotwire scenario list
  pilotwire scenario from-session 3 -o lab.yaml      # a customer's run becomes a lab case
  pilotwire scenario from-session customer.har -o customer.yaml
  pilotwire demo --scenario lab.yaml
`

func runScenario(ctx context.Context, g *globals, args []string) error {
	args, err := takeGlobals(g, args)
	if err != nil {
		return err
	}
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		if len(args) == 0 {
			return usagef("scenario: give a subcommand: list, show, from-session (see pilotwire scenario --help)")
		}
		fmt.Fprint(g.stdout, scenarioUsage)
		return flag.ErrHelp
	}
	switch args[0] {
	case "list":
		for _, name := range scenario.Embedded() {
			sc, err := scenario.Load(name, os.ReadFile)
			if err != nil {
				return err
			}
			fmt.Fprintf(g.stdout, "%-20s %3d steps, %s  %s\n", name, len(sc.Steps), timeline.FormatOffset(sc.Steps[len(sc.Steps)-1].At), sc.Description)
		}
		return nil
	case "show":
		if len(args) != 2 {
			return usagef("scenario show: give one scenario name or file")
		}
		sc, err := scenario.Load(args[1], os.ReadFile)
		if err != nil {
			return err
		}
		_, err = g.stdout.Write(scenario.Format(sc, ""))
		return err
	case "from-session":
		return scenarioFromSession(ctx, g, args[1:])
	}
	return usagef("scenario: unknown subcommand %q (list, show, from-session)", args[0])
}

func scenarioFromSession(ctx context.Context, g *globals, args []string) error {
	fs := newFlagSet(g, "scenario from-session", "scenario from-session [flags] [N | CAPTURE-FILE]", "  pilotwire scenario from-session 3 -o lab.yaml\n")
	var (
		out, name string
		gap       time.Duration
		strict    bool
	)
	fs.StringVar(&out, "o", "", "write to `FILE` instead of standard output")
	fs.StringVar(&name, "name", "", "the scenario's `NAME` (default: from the session)")
	fs.DurationVar(&gap, "gap", timeline.DefaultGap, "idle `TIME` that ends a session")
	addStrictFlag(fs, &strict)
	pos, err := parseInterleaved(g, fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 1 {
		return usagef("scenario from-session: one session number or capture file, got %q", pos)
	}
	number, path := 0, first(pos)
	if path != "" {
		if n, err := fmt.Sscanf(path, "%d", &number); err == nil && n == 1 && fmt.Sprint(number) == path {
			path = ""
		} else {
			number = 0
		}
	}
	src, err := openSource(ctx, g, path, strict)
	if err != nil {
		return err
	}
	defer src.Close()
	s, err := session.Find(ctx, src, gap, number, session.Who{})
	if err != nil {
		return sessionError(err)
	}
	var flows []flow.Flow
	if err := session.Flows(ctx, src, s, 0, func(f *flow.Flow) { flows = append(flows, *f) }); err != nil {
		return err
	}
	if name == "" {
		name = fmt.Sprintf("session-%d", s.Number)
	}
	sc, skipped := scenario.FromFlows(name, s.Device, flows)
	if len(sc.Steps) == 0 {
		return emptyf("session %d has no tunnel or HTTP flow a device could replay (%d flows left out)", s.Number, skipped)
	}
	sc.Description = fmt.Sprintf("Session %d of %s (%s, %s), captured %s.", s.Number, src.Name(), s.Client, s.Device, s.Start.Format(time.RFC3339))
	data := scenario.Format(sc, fmt.Sprintf("Made by pilotwire scenario from-session from session %d of %s.\n%d flows, %d steps (%d DNS, raw TCP, QUIC or PAC flows left out).",
		s.Number, src.Name(), s.Flows, len(sc.Steps), skipped))
	if out == "" || out == "-" {
		_, err = g.stdout.Write(data)
		return err
	}
	if err := writeFileAtomic(out, func(w io.Writer) error { _, err := w.Write(data); return err }); err != nil {
		return err
	}
	fmt.Fprintf(g.stderr, "pilotwire scenario: %d steps written to %s\n", len(sc.Steps), out)
	return nil
}
