package main

import "context"

// runReport is a placeholder until the report command lands.
func runReport(ctx context.Context, g *globals, args []string) error {
	return notYet(g.stderr, "report")
}
