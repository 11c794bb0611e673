package main

import (
	"fmt"
	"io"

	"github.com/pilotwire/pilotwire/internal/allowlist"
)

// loadPolicy reads the --enforce/--against allowlist and the --deny list
// ("" for none); nil when neither is given.
func loadPolicy(allow, deny string) (*allowlist.Policy, error) {
	if allow == "" && deny == "" {
		return nil, nil
	}
	var p allowlist.Policy
	var err error
	if allow != "" {
		if p.Allow, err = allowlist.Load(allow); err != nil {
			return nil, err
		}
	}
	if deny != "" {
		if p.Deny, err = allowlist.Load(deny); err != nil {
			return nil, err
		}
	}
	return &p, nil
}

// describePolicy says on stderr what a policy holds, so a user sees the
// file was read as the format they meant.
func describePolicy(w io.Writer, cmd string, p *allowlist.Policy) {
	for _, l := range []*allowlist.List{p.Allow, p.Deny} {
		if l == nil {
			continue
		}
		kind := "allowlist"
		if l == p.Deny {
			kind = "denylist"
		}
		fmt.Fprintf(w, "pilotwire %s: %s %s: %d rules (%s format)\n", cmd, kind, l.File, len(l.Rules), l.Format)
	}
}
