package scenario_test

import (
	"bufio"
	"encoding/json"
	"flag"
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pilotwire/pilotwire/internal/catalog"
	"github.com/pilotwire/pilotwire/internal/flow"
	"github.com/pilotwire/pilotwire/internal/scenario"
)

var update = flag.Bool("update", false, "rewrite the scenario generated from the seed")

func seedFlows(t testing.TB) []flow.Flow {
	t.Helper()
	f, err := os.Open("../timeline/testdata/seed.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []flow.Flow
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var fl flow.Flow
		if err := json.Unmarshal(sc.Bytes(), &fl); err != nil {
			t.Fatal(err)
		}
		out = append(out, fl)
	}
	return out
}

// TestUserDrivenIsTheSeed keeps the built-in user-driven scenario equal to
// the seed's run made into a scenario (go test -update rewrites it).
func TestUserDrivenIsTheSeed(t *testing.T) {
	sc, skipped := scenario.FromFlows("user-driven", "autopilot-vm", seedFlows(t))
	if skipped != 0 || len(sc.Steps) != 145 {
		t.Fatalf("the seed's 145 flows made %d steps, %d skipped", len(sc.Steps), skipped)
	}
	sc.Description = "User-driven Autopilot with Entra join: the run of the seed document (oofhours.com, 2019), at its timings."
	got := scenario.Format(sc, "The seed's run (internal/timeline/testdata/seed.jsonl) as a scenario:\ngo test ./internal/scenario -update rewrites this file.")
	const path = "scenarios/user-driven.yaml"
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != string(want) {
		t.Errorf("%s is not the seed's run (go test -update rewrites it)", path)
	}
}

// TestFormatRoundTrip: Format writes what Parse reads back, every built-in
// scenario included.
func TestFormatRoundTrip(t *testing.T) {
	for _, name := range scenario.Embedded() {
		sc, err := scenario.Load(name, os.ReadFile)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		again, err := scenario.Parse("again", scenario.Format(sc, "x"))
		if err != nil {
			t.Fatalf("%s: formatted, it does not parse: %v", name, err)
		}
		for i := range sc.Steps {
			sc.Steps[i].Line, again.Steps[i].Line = 0, 0
		}
		again.File = sc.File
		if !reflect.DeepEqual(sc, again) {
			t.Errorf("%s: Format then Parse changed the scenario", name)
		}
	}
}

func TestParseErrors(t *testing.T) {
	for _, tc := range []struct{ yaml, want string }{
		{"", "f.yaml: empty scenario file"},
		{"name: x\n", `f.yaml: scenario "x" has no steps`},
		{"name: x\nsteps:\n  - {at: 1s}\n", "f.yaml:3: step 1: say what the step does"},
		{"name: x\nsteps:\n  - {at: 1s, get: http://a.example/}\n  - {at: soon, get: http://a.example/}\n", `f.yaml:4: step 2: at "soon": want an offset like 2m10.5s`},
		{"name: x\nsteps:\n  - {at: 1s, connect: a.example}\n", `f.yaml:3: step 1: connect "a.example": want HOST:PORT`},
		{"name: x\nsteps:\n  - {at: 1s, get: https://a.example/}\n", `want a plain http:// URL (HTTPS goes through connect:)`},
		{"name: x\nsteps:\n  - {at: 1s, get: http://a.example/, connect: a.example:443}\n", "one of connect, get at a time"},
		{"name: x\nsteps:\n  - {at: 1s, get: http://a.example/, down: lots}\n", `down: "lots": want a size like 1500`},
		{"name: x\nsteps:\n  - {at: 1s, get: http://a.example/, down: 17GiB}\n", "at most 16GiB"},
		{"name: x\nsteps:\n  - {at: 1s, get: http://a.example/, expect: maybe}\n", `expect "maybe": want refused, fail or an HTTP status`},
		{"name: x\nsteps:\n  - {at: 1s, connect: a.example:443, expect: 404}\n", "use refused or fail"},
		{"name: x\nsteps:\n  - {at: 1s, get: http://a.example/, colour: red}\n", `f.yaml:3: step 1: field colour not found`},
		{"name: x\nsteps:\n  - {at: 1s, connect: 'a b:443'}\n", `host "a b" is not a host name`},
		{"name: x\nsteps:\n  - {at: 1s, connect: '*.example:443'}\n", `host "*.example" is not a host name`},
	} {
		_, err := scenario.Parse("f.yaml", []byte(tc.yaml))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Parse(%q): %v, want an error saying %q", tc.yaml, err, tc.want)
		}
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte("name: x\nsteps:\n  - {at: 1s, get: http://a.example/p?q=1, up: 1KiB, down: 2MiB, duration: 3s, expect: \"404\"}\n"))
	f.Add([]byte("name: x\nsteps:\n  - {at: 2m, connect: \"[::1]:443\", expect: refused}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		sc, err := scenario.Parse("fuzz.yaml", data)
		if err != nil {
			return
		}
		// What parses formats and parses back.
		if _, err := scenario.Parse("again", scenario.Format(sc, "")); err != nil {
			t.Fatalf("formatted scenario does not parse: %v\n%s", err, scenario.Format(sc, ""))
		}
	})
}

// derived are the built-in scenarios made from the seed's run, each by a
// change a provisioning engineer would recognise. They are written by
// go test -update, like user-driven.
var derived = []struct {
	name, description string
	make              func(seed *scenario.Scenario, tpm []string) []scenario.Step
}{
	{"self-deploying", "Self-deploying mode: TPM attestation after the profile, device ESP, no user phase (the seed's run without its user).",
		func(seed *scenario.Scenario, tpm []string) []scenario.Step {
			var out []scenario.Step
			for _, st := range seed.Steps {
				if st.At < 16*time.Minute {
					out = append(out, st)
				}
			}
			return append(out, tpmSteps(tpm, 20*time.Second)...)
		}},
	{"pre-provisioning", "Pre-provisioning (white glove): technician phase with TPM attestation and device ESP, reseal, then the user phase 30 minutes later.",
		func(seed *scenario.Scenario, tpm []string) []scenario.Step {
			var out []scenario.Step
			for _, st := range seed.Steps {
				if st.At >= 16*time.Minute {
					st.At += 30 * time.Minute // resealed, shipped, switched on by the user
				}
				out = append(out, st)
			}
			return append(out, tpmSteps(tpm, 20*time.Second)...)
		}},
	{"failing-enrollment", "A failing run: the network blocks Intune enrollment; the device retries, then sits on the ESP error.",
		func(seed *scenario.Scenario, _ []string) []scenario.Step {
			var out []scenario.Step
			for _, st := range seed.Steps {
				if st.At > 115*time.Second {
					break
				}
				if strings.HasSuffix(st.Host, "manage.microsoft.com") {
					st.Expect, st.Down, st.Duration = scenario.ExpectFail, 0, 0
				}
				out = append(out, st)
			}
			for i := range 8 { // the retries
				out = append(out, scenario.Step{At: 2*time.Minute + time.Duration(i)*30*time.Second, Method: "CONNECT",
					Host: "enrollment.manage.microsoft.com", Port: 443, Path: "/", Up: 3072, Expect: scenario.ExpectFail})
			}
			return out
		}},
}

// tpmSteps are the TPM attestation exchanges (EK validation and AIK
// issuance) at and after at, to the catalog's example hosts.
func tpmSteps(hosts []string, at time.Duration) []scenario.Step {
	var out []scenario.Step
	for i, h := range hosts {
		out = append(out, scenario.Step{At: at + time.Duration(i)*time.Second, Method: "CONNECT", Host: h, Port: 443, Path: "/",
			Up: 4096, Down: 6144, Duration: 800 * time.Millisecond})
	}
	return out
}

func TestDerivedScenarios(t *testing.T) {
	seed, err := scenario.Load("user-driven", os.ReadFile)
	if err != nil {
		t.Fatal(err)
	}
	var tpm []string
	for _, e := range catalog.Default().Entries() {
		if e.Service == "tpm-attestation" && e.Example != "" {
			tpm = append(tpm, e.Example)
		}
	}
	if len(tpm) == 0 {
		t.Fatal("the catalog has no TPM attestation host with an example")
	}
	for _, d := range derived {
		sc := &scenario.Scenario{Name: d.name, Description: d.description, Device: "autopilot-vm", Steps: d.make(seed, tpm)}
		slices.SortStableFunc(sc.Steps, func(a, b scenario.Step) int { return int(a.At - b.At) })
		got := scenario.Format(sc, "Made from the seed's run (user-driven.yaml) by internal/scenario/scenario_test.go:\ngo test ./internal/scenario -update rewrites this file.")
		path := "scenarios/" + d.name + ".yaml"
		if *update {
			if err := os.WriteFile(path, got, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		want, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != string(want) {
			t.Errorf("%s is not what its recipe makes (go test -update rewrites it)", path)
		}
	}
}
