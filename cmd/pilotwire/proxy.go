package main

import "context"

// runProxy is a placeholder until the proxy command lands.
func runProxy(ctx context.Context, g *globals, args []string) error {
	return notYet(g.stderr, "proxy")
}
