// Package timeline turns the flows of one device into what happened when:
// provisioning sessions, service bands, milestones, phases and the things
// that need attention.
//
// Everything here is a pure function of flows and a catalog: no storage, no
// network, no clock. The milestone and phase rules are data
// (milestones.yaml, embedded; see Rules), not code, so a new milestone is a
// YAML edit. Rendering the result is the report package's job.
package timeline
