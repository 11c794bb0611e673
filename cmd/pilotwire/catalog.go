package main

import (
	"path/filepath"

	"github.com/pilotwire/pilotwire/internal/catalog"
)

// loadCatalog returns the built-in endpoint catalog plus the user files
// named by --catalog or $PILOTWIRE_CATALOG (several joined by the path list
// separator, ':' on Unix and ';' on Windows), applied in order.
func loadCatalog(g *globals) (*catalog.Catalog, error) {
	if g.catalog == "" {
		return catalog.Default(), nil
	}
	var files []string
	for _, f := range filepath.SplitList(g.catalog) {
		if f != "" {
			files = append(files, f)
		}
	}
	return catalog.Load(files...)
}
