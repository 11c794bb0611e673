package timeline

// The timeline's evidence is flow.Judge: a milestone fires only on flows
// that succeeded, and refused and failed ones go under "needs attention"
// with their reason and the milestone rule they matched.
//
// The first-flow and last-flow milestones are about the device, not a
// service: they count every device flow, failed or not.
