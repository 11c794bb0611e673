package main

import (
	"context"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/pilotwire/pilotwire/internal/flow"
)

const sessionsExamples = `  pilotwire sessions
  pilotwire sessions --store lab.db
`

func runSessions(ctx context.Context, g *globals, args []string) error {
	fs := newFlagSet(g, "sessions", "sessions [flags]", sessionsExamples)
	if err := parseFlags(g, fs, args); err != nil {
		return err
	}
	st, err := openStore(ctx, g)
	if err != nil {
		return err
	}
	defer st.Close()
	clients, err := st.Clients(ctx, flow.Filter{})
	if err != nil {
		return err
	}
	if len(clients) == 0 {
		fmt.Fprintf(g.stderr, "no flows in %s yet: run pilotwire proxy or pilotwire import first\n", g.store)
		return nil
	}
	tw := tabwriter.NewWriter(g.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "CLIENT\tDEVICE\tFIRST SEEN\tLAST SEEN\tDURATION\tFLOWS\tBYTES")
	for _, c := range clients {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%s\n", c.Client, dash(c.Device), c.First.Local().Format("2006-01-02 15:04:05"),
			c.Last.Local().Format("2006-01-02 15:04:05"), c.Last.Sub(c.First).Round(time.Second), c.Flows, humanBytes(c.Bytes))
	}
	return tw.Flush()
}
