package timeline_test

import (
	"path/filepath"
	"slices"
	"testing"

	"github.com/pilotwire/pilotwire/internal/catalog"
	"github.com/pilotwire/pilotwire/internal/timeline"
)

// provisioningMilestones are the milestones that claim Autopilot,
// enrollment or ESP: none may fire on a PC that is not provisioning.
var provisioningMilestones = []string{"registration-lookup", "profile-download", "oobe-update-check", "tpm-attestation",
	"reboot", "entra-signin", "intune-enrollment", "intune-checkin", "ime-content", "win32-content", "user-signin", "desktop"}

// TestNegativeCorpus: captures of Windows PCs that are not provisioning
// (testdata/negative: browsing with a sleep and wake, Windows Update with
// its restart, Office and Teams at work, a consumer sign-in in Chrome)
// fire no provisioning milestone, have no phases, and say so.
func TestNegativeCorpus(t *testing.T) {
	files, err := filepath.Glob("testdata/negative/*.jsonl")
	if err != nil || len(files) < 4 {
		t.Fatalf("negative corpus: %v, %v", files, err)
	}
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) {
			flows, err := readJSONL(file)
			if err != nil {
				t.Fatal(err)
			}
			sessions := split(flows, 0)
			if len(sessions) != 1 {
				t.Fatalf("%d sessions, want 1", len(sessions))
			}
			tl, err := timeline.Build(flows, catalog.Default(), timeline.Options{})
			if err != nil {
				t.Fatal(err)
			}
			for _, m := range tl.Milestones {
				if slices.Contains(provisioningMilestones, m.ID) {
					t.Errorf("%s %s (%s) fired on a PC that is not provisioning; hosts %v", timeline.FormatOffset(m.Offset), m.ID, m.Title, m.Hosts)
				}
			}
			if tl.Provisioning {
				t.Errorf("Provisioning = true, want false")
			}
			if len(tl.Phases) != 0 {
				t.Errorf("phases %+v, want none: a PC in use is in no provisioning phase", tl.Phases)
			}
		})
	}
}

// TestProvisioningRulesMarked keeps the test's list and the rules'
// provisioning flags the same.
func TestProvisioningRulesMarked(t *testing.T) {
	r, err := timeline.DefaultRules()
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, m := range r.Milestones {
		if m.Provisioning {
			got = append(got, m.ID)
		}
	}
	if !slices.Equal(got, provisioningMilestones) {
		t.Errorf("rules marked provisioning: %q, want %q", got, provisioningMilestones)
	}
}
