// Package report renders a timeline (package timeline) for people and for
// other tools: text that reads like a hand-annotated capture, Markdown for
// tickets and blog posts, versioned JSON (docs/report-json.md), and one
// self-contained HTML file with an SVG swimlane of services over time.
//
// It computes no meaning: everything it shows comes from the timeline.
// Host names and URLs come from the network and are treated as hostile:
// every renderer escapes them for its format.
package report
