package report_test

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/pilotwire/pilotwire/internal/catalog"
	"github.com/pilotwire/pilotwire/internal/flow"
	"github.com/pilotwire/pilotwire/internal/testutil"
	"github.com/pilotwire/pilotwire/internal/timeline"
)

// layoutWidths are the window widths the HTML report must read well at: a
// laptop and a narrow window (half a screen, a tablet).
var layoutWidths = []int64{1280, 800}

// stressCatalog adds services with long names and hosts with long labels,
// the kind a user's own catalog brings.
const stressCatalog = `
services:
  - {id: lob-content, name: "Line-of-business application content from the regional mirrors of Contoso", color: "#3b7dd8"}
  - {id: vendor-agent, name: "Hardware vendor management agent (Fabrikam device health and firmware)", color: "#c2410c"}
  - {id: vpn-profile, name: "Always On VPN profile and certificate distribution", color: "#15803d"}
entries:
  - service: lob-content
    phase: apps-win32
    required: "no"
    purpose: Contoso's own apps, from the mirror nearest the device
    patterns:
      - step01-provisioning-orchestrator-westeurope-prod.contoso-lob-content-distribution.example
      - step02.content-delivery-mirror-frankfurt-001.contoso-lob-content-distribution.example
      - step03-package-manifest.westeurope.cdn.contoso-lob-content-distribution.example
      - step04.contoso-lob-content-distribution.example
  - service: vendor-agent
    phase: third-party
    required: "no"
    purpose: The hardware vendor's agent checks device health and firmware
    patterns:
      - step05-firmware-catalog-download-service.fabrikam-device-management.example
      - step06.telemetry-ingestion-eu-west-prod-cluster-07.fabrikam-device-management.example
      - step07.fabrikam-device-management.example
      - step08-bios-settings-attestation-endpoint.fabrikam-device-management.example
  - service: vpn-profile
    phase: esp-device
    required: "no"
    purpose: VPN profile and its certificates
    patterns:
      - step09-always-on-vpn-profile-distribution.corp.contoso-networking.example
      - step10.scep-certificate-enrollment-gateway-westeurope.corp.contoso-networking.example
      - step11.corp.contoso-networking.example
      - step12-ndes-connector-health.corp.contoso-networking.example
`

// stressPhases are the phase names of the stress timeline: short and long,
// most of them lasting seconds in a twenty-minute session.
var stressPhases = []string{
	"Getting started",
	"Firmware",
	"Device health attestation and compliance evaluation",
	"VPN",
	"Certificates for Wi-Fi and VPN (SCEP)",
	"Line-of-business apps",
	"Baseline security policies",
	"Reboot",
	"BitLocker key escrow",
	"Kiosk",
	"Win32 app content from the regional mirrors",
	"Desktop",
	"Done",
}

// stressAt are the seconds at which step01…step12 are first seen: clusters
// a second or two apart, one long stretch, and two steps in the session's
// last seconds.
var stressAt = []int{60, 61, 62, 64, 65, 67, 300, 301, 303, 900, 1195, 1198}

// stressTimeline builds a twenty-minute session with twelve phases, most of
// them a few seconds long, services with long names and hosts with long
// labels (some in no catalog, some failing), through the real timeline
// builder with rules and a catalog of its own.
func stressTimeline(t testing.TB) *timeline.Timeline {
	t.Helper()
	cat, err := catalog.Default().With("stress-catalog.yaml", []byte(stressCatalog))
	if err != nil {
		t.Fatal(err)
	}
	steps := []string{}
	for _, e := range cat.Entries() {
		if e.File == "stress-catalog.yaml" {
			steps = append(steps, e.Pattern)
		}
	}
	if len(steps) != len(stressAt) {
		t.Fatalf("stress catalog has %d step hosts, want %d", len(steps), len(stressAt))
	}
	rules := "version: 1\nmilestones:\n  - {id: first-flow, kind: first-flow, title: First signs of life, text: The device's first traffic.}\n"
	for i, h := range steps {
		rules += fmt.Sprintf("  - {id: step%02d, title: \"Step %d reached\", text: \"The device reached step %d.\", match: [{hosts: [%q]}]}\n", i+1, i+1, i+1, h)
	}
	rules += "phases:\n"
	for i, name := range stressPhases {
		start := "session-start"
		if i > 0 {
			start = fmt.Sprintf("step%02d", i)
		}
		rules += fmt.Sprintf("  - {id: p%02d, name: %q, about: \"What happens in %s.\", start: [%s]}\n", i, name, name, start)
	}
	r, err := timeline.ParseRules("stress-rules.yaml", []byte(rules))
	if err != nil {
		t.Fatalf("%v\n%s", err, rules)
	}

	t0 := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	var flows []flow.Flow
	add := func(sec float64, host string, plain bool, down int64, fail string) {
		s := t0.Add(time.Duration(sec * float64(time.Second)))
		f := flow.Flow{ID: int64(len(flows) + 1), Start: s, End: s.Add(400 * time.Millisecond), Client: "10.0.0.42",
			Device: "stress-vm", Source: flow.SourceProxy, Host: host, BytesUp: 700, BytesDown: down,
			Decision: flow.DecisionAllowed, Status: 200, Error: fail}
		if plain {
			f.Kind, f.Method, f.Scheme, f.Port, f.URL = flow.KindHTTP, "GET", "http", 80, "http://"+host+"/connecttest.txt"
		} else {
			f.Kind, f.Method, f.Scheme, f.Port, f.SNI = flow.KindConnect, "CONNECT", "https", 443, host
		}
		if fail != "" {
			f.Status, f.BytesDown = 0, 0
		}
		flows = append(flows, f)
	}
	add(0, "www.msftconnecttest.com", true, 22, "")
	add(0.5, "login.live.com", false, 9<<10, "")
	for sec := 20; sec < 1200; sec += 45 {
		add(float64(sec), "ocsp.digicert.com", true, 1500, "")
		add(float64(sec)+0.2, "v10.events.data.microsoft.com", false, 2<<10, "")
	}
	for i, h := range steps {
		add(float64(stressAt[i]), h, false, int64(i+1)<<20, "")
		add(float64(stressAt[i])+0.5, h, false, 64<<10, "")
	}
	add(410, "unregistered-line-of-business-updater-service-westeurope.apps.contoso-internal-tools.example", false, 3<<10, "")
	add(415, "kv801-provisioning-secrets-vault-westeurope-prod.vault.contoso-internal-tools.example", false, 0,
		"dial tcp: connection refused")
	add(1199, "www.msftconnecttest.com", true, 22, "")
	slices.SortStableFunc(flows, func(a, b flow.Flow) int { return a.Start.Compare(b.Start) })
	for i := range flows {
		flows[i].ID = int64(i + 1)
	}
	tl, err := timeline.Build(flows, cat, timeline.Options{Rules: r})
	if err != nil {
		t.Fatal(err)
	}
	tl.Session.Number = 7
	return tl
}

// layoutWant is what the layout probe looks for: every service and phase
// name, whole and visible, and every host name, wrapped only at its dots.
type layoutWant struct {
	Services []string `json:"services"`
	Phases   []string `json:"phases"`
	Hosts    []string `json:"hosts"`
}

func wantedNames(tl *timeline.Timeline) layoutWant {
	var w layoutWant
	seen := map[string]bool{}
	host := func(h string) {
		if !seen[h] {
			seen[h] = true
			w.Hosts = append(w.Hosts, h)
		}
	}
	for _, b := range tl.Services {
		w.Services = append(w.Services, b.Service.Name)
		for _, h := range b.Hosts {
			host(h.Host)
		}
	}
	for _, p := range tl.Phases {
		w.Phases = append(w.Phases, p.Name)
	}
	for _, m := range tl.Milestones {
		for _, h := range m.Hosts {
			host(h.Host)
		}
	}
	for _, a := range tl.Attention {
		host(a.Host.Host)
	}
	return w
}

// layoutProbe runs in the page and returns what is wrong with its layout,
// measured from the DOM's boxes:
//   - the page is wider than the window (it scrolls sideways);
//   - a text box (each line of each text node; an SVG text element) is not
//     inside its container (the nearest block box; an SVG text's svg) or is
//     cut by an ancestor that clips (overflow other than visible, which
//     includes every svg and a figure that scrolls);
//   - two text boxes overlap;
//   - a service name is not shown whole and visible in the swimlane and in
//     the bytes chart, a phase name not in the swimlane (visible: a box of
//     non-zero size, not display:none, visibility:hidden or opacity 0, not
//     cut by an ancestor);
//   - a host name in a table cell breaks across lines other than after a dot.
const layoutProbe = `(want) => {
  const out = [];
  const tol = 1;
  const root = document.documentElement;
  const vw = root.clientWidth;
  if (root.scrollWidth > vw + tol) out.push('the page is ' + root.scrollWidth + ' px wide in a ' + vw + ' px window: it scrolls sideways');
  const fmt = q => '[' + [q.left, q.top, q.right, q.bottom].map(v => Math.round(v)).join(' ') + ']';
  const name = e => {
    let s = e.tagName.toLowerCase();
    if (e.id) s += '#' + e.id;
    const c = e.getAttribute('class');
    if (c) s += '.' + c.trim().split(/\s+/).join('.');
    return s;
  };
  const where = e => {
    const p = [];
    for (let x = e; x && x !== document.body && p.length < 4; x = x.parentElement) p.unshift(name(x));
    return p.join(' > ');
  };
  const shown = e => {
    for (let x = e; x; x = x.parentElement) {
      const cs = getComputedStyle(x);
      if (cs.display === 'none' || cs.visibility !== 'visible' || cs.opacity === '0') return false;
    }
    return true;
  };
  const clippers = e => {
    const out = [];
    for (let x = e; x && x !== root && x !== document.body; x = x.parentElement) {
      const cs = getComputedStyle(x);
      if (cs.overflowX !== 'visible' || cs.overflowY !== 'visible') out.push(x);
    }
    return out;
  };
  const container = e => {
    if (e instanceof SVGElement && e.ownerSVGElement) return e.ownerSVGElement;
    for (let x = e; x; x = x.parentElement) {
      const d = getComputedStyle(x).display;
      if (d !== 'inline' && d !== 'contents') return x;
    }
    return document.body;
  };
  const inside = (q, c) => q.left >= c.left - tol && q.right <= c.right + tol && q.top >= c.top - tol && q.bottom <= c.bottom + tol;
  const norm = s => s.replace(/\s+/g, ' ').trim();

  const boxes = [];
  const walk = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  for (let n; (n = walk.nextNode()); ) {
    const lead = n.data.length - n.data.trimStart().length, trail = n.data.length - n.data.trimEnd().length;
    if (lead === n.data.length) continue;
    const e = n.parentElement;
    if (e.closest('title, style, script') || !shown(e)) continue;
    let rects;
    if (e instanceof SVGElement) {
      rects = [e.getBoundingClientRect()];
    } else {
      const r = document.createRange();
      r.setStart(n, lead);
      r.setEnd(n, n.data.length - trail);
      rects = [...r.getClientRects()];
    }
    rects = rects.filter(q => q.width > 0.5 && q.height > 0.5);
    const label = JSON.stringify(norm(n.data).slice(0, 50)) + ' (' + where(e) + ')';
    if (!rects.length) {
      out.push('text ' + label + ' is shown but has no box');
      continue;
    }
    const c = container(e), cr = c.getBoundingClientRect();
    const clips = clippers(e);
    for (const q of rects) {
      if (!inside(q, cr)) out.push('text ' + label + ' ' + fmt(q) + ' overflows its container ' + where(c) + ' ' + fmt(cr));
      for (const k of clips) {
        const kr = k.getBoundingClientRect();
        if (!inside(q, kr)) out.push('text ' + label + ' ' + fmt(q) + ' is cut by ' + where(k) + ' ' + fmt(kr) + ' (overflow ' + getComputedStyle(k).overflowX + ')');
      }
      if (q.left < -tol || q.right > vw + tol) out.push('text ' + label + ' ' + fmt(q) + ' is outside the window');
      boxes.push({q, n, label});
    }
  }
  boxes.sort((a, b) => a.q.top - b.q.top);
  for (let i = 0; i < boxes.length; i++) {
    const a = boxes[i];
    for (let j = i + 1; j < boxes.length && boxes[j].q.top < a.q.bottom - tol; j++) {
      const b = boxes[j];
      if (a.n === b.n) continue;
      const w = Math.min(a.q.right, b.q.right) - Math.max(a.q.left, b.q.left);
      const h = Math.min(a.q.bottom, b.q.bottom) - Math.max(a.q.top, b.q.top);
      if (w > tol && h > tol) out.push('text ' + a.label + ' ' + fmt(a.q) + ' overlaps ' + b.label + ' ' + fmt(b.q));
    }
  }

  const visible = (sel, text) => {
    const r = document.querySelector(sel);
    if (!r) return 'has no ' + sel;
    const cands = [...r.querySelectorAll('*')].filter(e => !e.closest('title') && norm(e.textContent) === text &&
      ![...e.children].some(k => norm(k.textContent) === text));
    if (!cands.length) return 'is missing from ' + sel;
    for (const e of cands) {
      const q = e.getBoundingClientRect();
      if (shown(e) && q.width >= 1 && q.height >= 1 && clippers(e.parentElement).every(k => inside(q, k.getBoundingClientRect()))) return '';
    }
    return 'is in ' + sel + ' but hidden, empty or cut';
  };
  for (const s of want.services) {
    for (const sel of ['#swimlane', '#bytes']) {
      const p = visible(sel, s);
      if (p) out.push('service ' + JSON.stringify(s) + ' ' + p);
    }
  }
  for (const s of want.phases) {
    const p = visible('#swimlane', s);
    if (p) out.push('phase ' + JSON.stringify(s) + ' ' + p);
  }

  const cells = [...document.querySelectorAll('td')];
  for (const host of want.hosts) {
    for (const cell of cells) {
      const text = cell.textContent;
      let at = text.indexOf(host);
      if (at < 0) continue;
      const chars = [];
      const w2 = document.createTreeWalker(cell, NodeFilter.SHOW_TEXT);
      for (let n; (n = w2.nextNode()); ) for (let i = 0; i < n.data.length; i++) chars.push([n, i]);
      for (; at >= 0; at = text.indexOf(host, at + 1)) {
        let prev = null;
        for (let k = at; k < at + host.length; k++) {
          const r = document.createRange();
          r.setStart(chars[k][0], chars[k][1]);
          r.setEnd(chars[k][0], chars[k][1] + 1);
          const top = r.getBoundingClientRect().top;
          if (prev !== null && Math.abs(top - prev) > 3 && host[k - at - 1] !== '.') {
            out.push('host ' + host + ' breaks inside a label, after "' + host.slice(0, k - at) + '" (' + where(cell) + ')');
            break;
          }
          prev = top;
        }
      }
    }
  }
  return [...new Set(out)];
}`

// TestHTMLLayoutInChromium renders the seed's report and a stress report
// (twelve phases mostly seconds long, long service names, long host names)
// at 1280 and 800 px in headless Chromium and checks the layout from the
// DOM's boxes (see layoutProbe): nothing overflows, is cut or overlaps,
// every service and phase name is shown whole, host names wrap only at
// dots. It keeps a full-page screenshot of each in the artifacts directory
// (testutil.ArtifactDir).
func TestHTMLLayoutInChromium(t *testing.T) {
	b := newBrowser(t)
	dir := testutil.ArtifactDir(t, "report")
	for _, c := range []struct {
		name string
		tl   *timeline.Timeline
	}{{"seed", seedTimeline(t)}, {"stress", stressTimeline(t)}} {
		url := writeHTML(t, c.tl)
		want, err := json.Marshal(wantedNames(c.tl))
		if err != nil {
			t.Fatal(err)
		}
		for _, width := range layoutWidths {
			t.Run(fmt.Sprintf("%s-%d", c.name, width), func(t *testing.T) {
				if err := chromedp.Do(b.Ctx, chromedp.EmulateViewport(width, 900), chromedp.Navigate(url),
					chromedp.WaitReady(chromedp.CSS("body"))); err != nil {
					t.Fatal(err)
				}
				problems, err := chromedp.Run(b.Ctx, chromedp.Evaluate[[]string]("("+layoutProbe+")("+string(want)+")"))
				if err != nil {
					t.Fatal(err)
				}
				shot, err := chromedp.Run(b.Ctx, chromedp.FullScreenshot(100))
				if err != nil {
					t.Fatal(err)
				}
				path := filepath.Join(dir, fmt.Sprintf("%s-%d.png", c.name, width))
				if err := os.WriteFile(path, shot, 0o644); err != nil {
					t.Fatal(err)
				}
				t.Logf("screenshot: %s", path)
				const most = 40
				for i, p := range problems {
					if i == most {
						t.Errorf("… and %d more", len(problems)-most)
						break
					}
					t.Error(p)
				}
			})
		}
	}
	if p := b.Problems(); len(p) > 0 {
		t.Errorf("the pages logged problems: %q", p)
	}
}
