// Package timeline turns the flows of one device into what happened when:
// provisioning sessions, service bands, milestones, phases and the things
// that need attention.
//
// Everything here is a pure function of flows and a catalog: no storage, no
// network, no clock. The milestone and phase rules are data
// (milestones.yaml, embedded; see Rules), not code, so a new milestone is a
// YAML edit. Rendering the result is the report package's job.
//
// Build makes the timeline of a session's flows held in memory; a Builder
// makes it from flows streamed one at a time (as a report reads a session
// from a store), keeping a small record of each instead of the flows.
package timeline
