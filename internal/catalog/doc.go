// Package catalog is pilotwire's knowledge of endpoints: which service a host
// name belongs to, what a Windows device uses it for during Autopilot
// provisioning, in which phase it first matters, and whether Microsoft lists
// it as required.
//
// The data lives in catalog.yaml, embedded in the binary and reviewed like
// code; users add or override entries with their own YAML files (Load). A
// Catalog is immutable once built and safe for concurrent use.
//
// # Host patterns
//
// Patterns are in pilotwire's one host-pattern language (package pattern,
// which parses them and whose Match says which hosts an entry covers),
// matched label by label, never as substrings. The catalog admits the
// forms Microsoft's endpoint lists use, which its suffix index serves:
//
//	ztd.dds.microsoft.com          exactly this host
//	*.manage.microsoft.com         any host one or more labels under the suffix,
//	                               but not manage.microsoft.com itself
//	fef.*.manage.microsoft.com     '*' as a whole inner label: one or more labels
//	kv*.prod.do.dsp.mp.microsoft.com
//	                               '*' inside a label: a glob within that one label
//	                               (the first label only)
//	wpad.*                         first label wpad under any DNS suffix (or none);
//	                               used only for the LAN proxy discovery name
//
// It refuses the language's other forms: '?', more than one label with a
// '*', a wildcard in the last two labels, a numeric top-level label.
//
// An exact pattern beats every wildcard; among wildcards the one with more
// literal labels wins (the longest suffix). Host names are compared case
// insensitively, with a trailing dot and a port ignored and IDNA names
// converted to their ASCII form. IP literals never match. Lookup does not
// allocate for ASCII names; Match.Region names the Intune scale unit a host
// carries (fef.msua01.manage.microsoft.com is in MSUA01).
//
// # User files
//
// A user file has the shape of catalog.yaml. Services need an id and a
// name (a colour is picked when none is given); entries need a pattern,
// service and phase, and default to required "unknown", the file name as
// source and a made-up example for wildcards:
//
//	services:
//	  - {id: lab, name: Lab infrastructure, color: "#336699"}
//	entries:
//	  - pattern: proxy.lab.example
//	    service: lab
//	    phase: network-up
//	    purpose: the lab's upstream proxy
//	  - pattern: ztd.dds.microsoft.com   # an entry with a known pattern replaces it
//	    service: autopilot
//	    phase: profile
//	    required: yes
//	    purpose: Autopilot profile lookup (our notes)
//
// Mistakes are refused with the file, line and reason (Error).
//
// # Exports
//
// Export writes entries as a Squid dstdomain list (overlaps removed, as
// Squid requires), a PAC file, a plain pattern list, CSV, JSON or markdown.
// MergeMS turns Microsoft's endpoint web service answer into a user file
// holding the patterns the catalog lacks; Observer summarises the hosts of
// captured flows against the catalog.
package catalog
