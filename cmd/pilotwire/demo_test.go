package main

import (
	"strings"
	"testing"
)

// TestDemo plays the seed's run on two simulated devices at 400x through
// the real proxy and page: both devices' reports find the Autopilot
// profile download and Intune enrollment, and nothing is refused.
func TestDemo(t *testing.T) {
	if testing.Short() {
		t.Skip("runs for about 6 s")
	}
	out, stderr, code := pw(t, "demo", "--devices", "2", "--speed", "400", "--ui", "127.0.0.1:0")
	if code != 0 {
		t.Fatalf("demo: exit %d: %s", code, stderr)
	}
	for _, want := range []string{
		`pilotwire demo: 2 devices play "user-driven" (145 steps`,
		"  live page: http://127.0.0.1:",
		"Provisioning timeline, session 1: autopilot-vm-01 (127.0.0.10)",
		"Provisioning timeline, session 2: autopilot-vm-02 (127.0.0.11)",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("demo output lacks %q:\n%s", want, out)
		}
	}
	if n := strings.Count(out, "Autopilot profile download"); n != 2 {
		t.Errorf("%d reports name the profile download, want 2", n)
	}
	if n := strings.Count(out, "Intune enrollment —"); n != 2 {
		t.Errorf("%d reports name Intune enrollment, want 2", n)
	}
	if strings.Contains(stderr, "did not end as the scenario expects") {
		t.Errorf("demo: %s", stderr)
	}
}
