package main

import "context"

// runEndpoints is a placeholder until the endpoints command lands.
func runEndpoints(ctx context.Context, g *globals, args []string) error {
	return notYet(g.stderr, "endpoints")
}
