package main

import (
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/pilotwire/pilotwire/internal/allowlist"
	"github.com/pilotwire/pilotwire/internal/proxy"
	"github.com/pilotwire/pilotwire/internal/timeline"
)

// policyFlags are --enforce and --deny, of the proxy and the gateway.
type policyFlags struct{ enforce, deny string }

// register adds the flags; refused says what a refused client gets.
func (f *policyFlags) register(fs *flag.FlagSet, refused string) {
	fs.StringVar(&f.enforce, "enforce", "", "allow only the hosts of the allowlist `FILE` (Squid dstdomain, plain pattern list, CSV, JSON\n"+
		"or catalog YAML, as endpoints export writes them); "+refused)
	fs.StringVar(&f.deny, "deny", "", "deny the hosts of the list `FILE` (same formats), with or without --enforce")
}

// on reports whether a list is given.
func (f *policyFlags) on() bool { return f.enforce != "" || f.deny != "" }

// apply reads the lists, if any, into p's policy and says on w what they
// hold.
func (f *policyFlags) apply(p *proxy.Proxy, w io.Writer, cmd string) error {
	policy, err := loadPolicy(f.enforce, f.deny)
	if err != nil || policy == nil {
		return err
	}
	p.Policy = policy.Decide
	describePolicy(w, cmd, policy)
	return nil
}

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

// printAgainst prints what a policy would have done to session s.
func printAgainst(w io.Writer, s timeline.Session, p *allowlist.Policy, a *timeline.Against) {
	var lists []string
	for _, l := range []*allowlist.List{p.Allow, p.Deny} {
		if l != nil {
			lists = append(lists, l.File)
		}
	}
	if len(a.Denials) == 0 {
		fmt.Fprintf(w, "Session %d against %s: nothing would have been denied.\n", s.Number, strings.Join(lists, " and "))
		return
	}
	fmt.Fprintf(w, "Session %d against %s: %d hosts (%d flows) would have been denied.\n", s.Number, strings.Join(lists, " and "),
		len(a.Denials), a.DeniedFlows)
	if len(a.Phases) > 0 {
		fmt.Fprintf(w, "Phases hit: %s\n", strings.Join(a.Phases, ", "))
	}
	heading := ""
	for _, d := range a.Denials {
		h := "\nWould also be denied:"
		if d.Stops {
			h = "\nProvisioning would stop or go wrong:"
		}
		if h != heading {
			fmt.Fprintln(w, h)
			heading = h
		}
		fmt.Fprintf(w, "  %s  %s (%s): %s, %d", timeline.FormatOffset(d.Offset), d.Host.Host, d.Host.ServiceName, d.Rule, d.Flows)
		if d.Flows == 1 {
			fmt.Fprint(w, " flow")
		} else {
			fmt.Fprint(w, " flows")
		}
		if d.BlocksTitle != "" {
			fmt.Fprintf(w, "; blocks %q", d.BlocksTitle)
		}
		if d.HurtsName != "" {
			fmt.Fprintf(w, "; hurts %s", d.HurtsName)
		}
		fmt.Fprintln(w)
	}
	if len(a.Lost) > 0 {
		fmt.Fprintln(w, "\nMilestones of the capture that would not have happened:")
		for _, m := range a.Lost {
			fmt.Fprintf(w, "  %s  %s\n", timeline.FormatOffset(m.Offset), m.Title)
		}
	}
}
