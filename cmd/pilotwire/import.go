package main

import "context"

// runImport is a placeholder until the import command lands.
func runImport(ctx context.Context, g *globals, args []string) error {
	return notYet(g.stderr, "import")
}
