// pilotwire's live page. Every value from the network (hosts, URLs, device
// labels) is put in the page with textContent or setAttribute, never as
// HTML; the Content-Security-Policy forbids inline script and eval.
'use strict';

const $ = (id) => document.getElementById(id);
const MAX_ROWS = 2000; // rows kept in the flows table
const state = {
  view: 'devices', following: true, newCount: 0, next: null, rows: new Map(),
  filter: {}, session: 0, catalog: null, devices: [], live: false, tlTimer: 0,
};

function el(tag, attrs = {}, ...kids) {
  const ns = ['svg', 'g', 'rect', 'line', 'text', 'circle', 'title'].includes(tag) ? 'http://www.w3.org/2000/svg' : null;
  const e = ns ? document.createElementNS(ns, tag) : document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'text') e.textContent = v;
    else if (k === 'class') e.setAttribute('class', v);
    else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v);
  }
  for (const k of kids) if (k !== null && k !== undefined) e.append(k);
  return e;
}

async function api(path) {
  const r = await fetch(path, { credentials: 'same-origin', cache: 'no-store' });
  if (!r.ok) {
    let msg = r.status + ' ' + r.statusText;
    try { msg = (await r.json()).error || msg; } catch (_) { /* not JSON */ }
    throw new Error(msg);
  }
  return r.json();
}

function bytes(n) {
  if (n === undefined || n === null) return '';
  const u = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0; let v = n;
  while (v >= 1024 && i < u.length - 1) { v /= 1024; i++; }
  return (i === 0 ? v : v.toFixed(1)) + ' ' + u[i];
}

function clock(s) {
  const d = new Date(s);
  return isNaN(d) ? '' : d.toLocaleTimeString([], { hour12: false }) + '.' + String(d.getMilliseconds()).padStart(3, '0');
}

function span(sec) {
  sec = Math.max(0, Math.floor(sec));
  const h = Math.floor(sec / 3600); const m = Math.floor(sec / 60) % 60; const s = sec % 60;
  const mm = String(m).padStart(2, '0'); const ss = String(s).padStart(2, '0');
  return h > 0 ? `${h}:${mm}:${ss}` : `${mm}:${ss}`;
}

function swatch(color) {
  const s = el('span', { class: 'swatch' });
  if (/^#[0-9a-fA-F]{6}$/.test(color || '')) s.style.background = color;
  return s;
}

function banner(text) {
  const b = $('banner');
  b.textContent = text || '';
  b.classList.toggle('hidden', !text);
}

// ---- routing ----
function route() {
  const h = location.hash.replace(/^#\/?/, '');
  const [path, query] = h.split('?');
  const parts = path.split('/');
  const view = ['devices', 'flows', 'session', 'hosts'].includes(parts[0]) ? parts[0] : 'devices';
  state.view = view;
  for (const v of ['devices', 'flows', 'session', 'hosts']) {
    $('view-' + v).classList.toggle('hidden', v !== view);
  }
  for (const a of document.querySelectorAll('.tabs a')) a.classList.toggle('active', a.dataset.view === view);
  const params = new URLSearchParams(query || '');
  if (view === 'devices') loadDevices();
  if (view === 'flows') {
    const f = {};
    for (const k of ['client', 'service', 'phase', 'q', 'session']) if (params.get(k)) f[k] = params.get(k);
    if (params.get('problems') === '1') f.problems = '1';
    setFilterInputs(f);
    state.filter = f;
    reloadFlows();
    if (params.get('flow')) showDetail(params.get('flow'));
  }
  if (view === 'session') loadSession(parseInt(parts[1] || '0', 10));
  if (view === 'hosts') loadHosts();
}

// ---- status ----
async function loadStatus() {
  const box = $('status');
  try {
    const s = await api('/api/status');
    state.live = s.live;
    box.replaceChildren();
    if (s.recording) {
      box.append(el('span', { class: 'badge ' + (s.recording.ok ? 'ok' : 'bad'), text: s.recording.ok ? 'recording' : s.recording.text }));
    } else {
      box.append(el('span', { class: 'badge', text: s.mode === 'proxy' ? 'not recording (--record=false)' : 'read only' }));
    }
    if (s.proxy) {
      if (s.proxy.intercepting) box.append(el('span', { class: 'badge warn', text: 'TLS INTERCEPTION ON' }));
      box.append(el('span', { text: `${s.proxy.open_conns} connections, ${s.proxy.open_tunnels} tunnels` }));
    }
    box.append(el('span', { class: 'mono', text: s.source || '' }));
    if (s.viewers) box.append(el('span', { text: `${s.viewers} watching` }));
  } catch (e) {
    box.replaceChildren(el('span', { class: 'badge bad', text: 'pilotwire unreachable: ' + e.message }));
  }
}

// ---- devices ----
async function loadDevices() {
  try {
    const d = await api('/api/devices');
    renderDevices(d.devices);
  } catch (e) { banner('Devices: ' + e.message); }
}

function renderDevices(list) {
  state.devices = list;
  const box = $('devices');
  box.replaceChildren();
  $('devices-summary').textContent = list.length === 0
    ? 'No device yet: point one at the proxy (the address pilotwire printed), and it appears here.'
    : `${list.length} device${list.length === 1 ? '' : 's'}; newest activity first.`;
  for (const d of list) {
    const card = el('div', { class: 'card', role: 'link', tabindex: '0', onclick: () => { location.hash = '#/session/' + d.session; } },
      el('div', { class: 'row' }, el('span', { class: 'name', text: d.label }), el('span', { class: 'badge state-' + d.state, text: d.state })),
      el('div', { class: 'row' }, el('span', { class: 'mono', text: d.client }), el('span', { text: 'session ' + d.session })),
      el('div', { class: 'phase', text: d.phase_name ? 'Phase: ' + d.phase_name : (d.provisioning ? '' : 'not provisioning (yet)') }),
      el('div', { class: 'row' }, el('span', { text: span(d.elapsed_seconds) + ' elapsed' }), el('span', { text: `${d.flows} flows, ${bytes(d.bytes)}` })),
      el('div', { class: 'row' }, el('span', { class: 'mono', text: d.last_host ? 'last: ' + d.last_host : '' })));
    box.append(card);
  }
  // The device filter lists the devices.
  const sel = $('f-client'); const cur = sel.value;
  sel.replaceChildren(el('option', { value: '', text: 'all' }));
  for (const d of list) sel.append(el('option', { value: d.client, text: d.label === d.client ? d.client : `${d.label} (${d.client})` }));
  sel.value = cur;
}

// ---- flows ----
function setFilterInputs(f) {
  $('f-client').value = f.client || '';
  $('f-service').value = f.service || '';
  $('f-phase').value = f.phase || '';
  $('f-problems').checked = f.problems === '1';
  $('f-q').value = f.q || '';
}

function filterFromInputs() {
  const f = {};
  if ($('f-client').value) f.client = $('f-client').value;
  if ($('f-service').value) f.service = $('f-service').value;
  if ($('f-phase').value) f.phase = $('f-phase').value;
  if ($('f-problems').checked) f.problems = '1';
  if ($('f-noise').checked) f.noise = '0';
  if ($('f-q').value.trim()) f.q = $('f-q').value.trim();
  if (state.filter.session) f.session = state.filter.session;
  return f;
}

function query(f, extra = {}) {
  const p = new URLSearchParams();
  for (const [k, v] of Object.entries({ ...f, ...extra })) if (v) p.set(k, v);
  return p.toString();
}

async function reloadFlows() {
  state.rows.clear();
  state.next = null;
  state.newCount = 0;
  updateNewPill();
  $('flows').tBodies[0].replaceChildren();
  await loadOlder(true);
}

async function loadOlder(first) {
  const f = { ...state.filter };
  if ($('f-noise').checked) f.noise = '0';
  const extra = first ? {} : { before: state.next };
  if (!first && !state.next) return;
  try {
    const d = await api('/api/flows?' + query(f, extra));
    for (const r of d.flows) addRow(r, false);
    state.next = d.next;
    $('older').classList.toggle('hidden', !d.next);
    $('flows-empty').textContent = state.rows.size === 0 ? 'No flows match.' : '';
  } catch (e) { banner('Flows: ' + e.message); }
}

// matches says whether a pushed row passes the filters the way the
// server's would (the service, phase and text filters are the catalog's
// and the store's: those re-query instead).
function matches(r) {
  const f = state.filter;
  if (f.client && r.client !== f.client && r.device !== f.client) return false;
  if (f.service && r.service !== f.service) return false;
  if (f.phase && r.phase !== f.phase) return false;
  if (f.problems && !(r.outcome === 'refused' || r.outcome === 'failed')) return false;
  if ($('f-noise').checked && r.noise) return false;
  if (f.q) {
    const q = f.q.toLowerCase();
    if (!(r.host || '').toLowerCase().includes(q) && !(r.url || '').toLowerCase().includes(q)) return false;
  }
  if (f.session) return false; // a session's page is not live
  return true;
}

function rowCells(r) {
  const kind = r.method && r.kind !== 'connect' ? `${r.kind} ${r.method}` : r.kind;
  let st = r.status ? String(r.status) : '';
  if (r.decision === 'denied') st = 'denied';
  if (r.open) st = st || 'open';
  const tls = [r.sni && r.sni !== r.host ? 'SNI ' + r.sni : '', r.alpn || ''].filter(Boolean).join(' ');
  const target = r.url || (r.port ? `${r.host}:${r.port}` : r.host);
  return [
    el('td', { class: 'mono', text: clock(r.start) }),
    el('td', { text: r.device || r.client || '' }),
    el('td', {}, el('span', { class: 'chip', title: r.service_name }, swatch(r.color), r.service_name)),
    el('td', { class: 'host mono', text: target, title: r.url || '' }),
    el('td', { text: kind || '' }),
    el('td', { class: 'num st', text: st, title: r.outcome_reason || r.reason || '' }),
    el('td', { class: 'num', text: bytes(r.bytes_up) }),
    el('td', { class: 'num', text: bytes(r.bytes_down) }),
    el('td', { class: 'num dur', text: r.open ? 'open' : (r.duration_ms !== undefined ? (r.duration_ms / 1000).toFixed(2) + ' s' : '') }),
    el('td', { class: 'mono', text: tls }),
  ];
}

function addRow(r, live) {
  const body = $('flows').tBodies[0];
  const old = state.rows.get(r.id);
  const tr = el('tr', { 'data-id': r.id, onclick: () => showDetail(r.id) }, ...rowCells(r));
  if (r.outcome === 'refused' || r.outcome === 'failed') tr.classList.add('problem');
  if (r.open) tr.classList.add('open');
  if (old) { old.replaceWith(tr); state.rows.set(r.id, tr); return; }
  state.rows.set(r.id, tr);
  if (live) body.prepend(tr); else body.append(tr);
  while (state.rows.size > MAX_ROWS) {
    const last = body.lastElementChild;
    state.rows.delete(Number(last.dataset.id));
    last.remove();
    state.next = state.next || 'more';
  }
}

function updateNewPill() {
  const p = $('newpill');
  p.textContent = `${state.newCount} new`;
  p.classList.toggle('hidden', state.newCount === 0);
}

function onFlows(rows) {
  for (const r of rows) {
    if (!matches(r)) continue;
    if (state.rows.has(r.id)) { addRow(r, true); continue; } // a tunnel that closed: in place
    if (!state.following) { state.newCount++; continue; }
    addRow(r, true);
  }
  updateNewPill();
  $('flows-empty').textContent = state.rows.size === 0 ? 'No flows match.' : '';
  if (state.view === 'session' && state.session) scheduleTimeline();
}

async function showDetail(id) {
  const box = $('detail');
  for (const tr of document.querySelectorAll('table.flows tr.sel')) tr.classList.remove('sel');
  const tr = state.rows.get(Number(id));
  if (tr) tr.classList.add('sel');
  try {
    const d = await api('/api/flows/' + encodeURIComponent(id));
    const f = d.flow;
    const dl = el('dl');
    for (const [k, v] of Object.entries(f)) {
      if (v === '' || v === null || typeof v === 'object') continue;
      dl.append(el('dt', { text: k }), el('dd', { class: 'mono', text: String(v) }));
    }
    box.replaceChildren(el('h3', { text: `Flow ${f.id}` }), el('button', { type: 'button', text: 'Close', onclick: () => box.classList.add('hidden') }), dl);
    if (d.catalog) {
      const c = d.catalog;
      box.append(el('h3', { text: 'Catalog' }), el('dl', {},
        el('dt', { text: 'pattern' }), el('dd', { class: 'mono', text: c.pattern }),
        el('dt', { text: 'service' }), el('dd', { text: c.service_name || c.service }),
        el('dt', { text: 'phase' }), el('dd', { text: c.phase || '' }),
        el('dt', { text: 'purpose' }), el('dd', { text: c.purpose || '' }),
        el('dt', { text: 'required' }), el('dd', { text: c.required || '' })));
    } else {
      box.append(el('h3', { text: 'Catalog' }), el('p', { class: 'muted', text: 'No catalog entry names this host.' }));
    }
    if (d.milestones.length) {
      const ul = el('ul');
      for (const m of d.milestones) ul.append(el('li', {}, el('a', { href: `#/session/${d.session}?m=${encodeURIComponent(m.id)}`, text: `${m.offset} ${m.title}` })));
      box.append(el('h3', { text: 'Milestones' }), ul);
    }
    box.classList.remove('hidden');
  } catch (e) { banner('Flow ' + id + ': ' + e.message); }
}

// ---- session timeline ----
async function loadSessions() {
  const d = await api('/api/sessions');
  const sel = $('s-pick'); const cur = sel.value;
  const cmp = $('s-compare');
  sel.replaceChildren();
  cmp.replaceChildren(el('option', { value: '', text: '…' }));
  for (const s of d.sessions) {
    const label = `${s.number}: ${s.device || s.client || '?'} ${new Date(s.start).toLocaleString()} (${s.duration})`;
    sel.append(el('option', { value: s.number, text: label }));
    cmp.append(el('option', { value: s.number, text: label }));
  }
  if (cur) sel.value = cur;
  return d.sessions;
}

async function loadSession(n) {
  try {
    const list = await loadSessions();
    if (!n && list.length) n = list[0].number;
    if (!n) { $('s-title').textContent = 'No sessions yet.'; $('chart').replaceChildren(); return; }
    state.session = n;
    $('s-pick').value = String(n);
    const tl = await api(`/api/sessions/${n}/report?format=json`);
    renderTimeline(tl, n);
  } catch (e) { banner('Timeline: ' + e.message); }
}

function scheduleTimeline() {
  if (state.tlTimer) return;
  state.tlTimer = setTimeout(() => { state.tlTimer = 0; if (state.view === 'session') loadSession(state.session); }, 2000);
}

function renderTimeline(tl, n) {
  const s = tl.session;
  $('s-title').textContent = `Session ${n}: ${s.device || s.client || 'unknown device'}`;
  $('s-summary').textContent = `${s.client || ''} — started ${new Date(s.start).toLocaleString()}, ${s.duration}, ${s.flows} flows, ${bytes(s.bytes)}`;
  $('s-verdict').textContent = tl.verdict || '';
  $('s-verdict').classList.toggle('hidden', !tl.verdict);
  const dl = $('downloads');
  dl.replaceChildren();
  for (const [label, href] of [['HTML', 'html'], ['Markdown', 'markdown'], ['JSON', 'json']]) {
    dl.append(el('a', { href: `/api/sessions/${n}/report?format=${href}&download=1`, text: label }));
  }
  dl.append(el('a', { href: `/api/sessions/${n}/har`, text: 'HAR', download: `pilotwire-session-${n}.har` }));
  $('chart').replaceChildren(chart(tl, n));
  const mb = $('milestones').tBodies[0];
  mb.replaceChildren();
  tl.milestones.forEach((m, i) => {
    const hosts = (m.hosts || []).map((h) => h.host).join(', ');
    const link = el('a', { href: `#/flows?session=${n}&q=${encodeURIComponent((m.hosts && m.hosts[0] && m.hosts[0].host) || '')}`, text: m.title, class: 'mlink', 'data-milestone': m.id });
    mb.append(el('tr', { id: 'm' + (i + 1) }, el('td', { class: 'num mono', text: `${i + 1}. ${m.offset}` }),
      el('td', {}, link, el('div', { class: 'muted', text: m.text })), el('td', { class: 'mono', text: hosts }), el('td', { class: 'num', text: String(m.flows) })));
  });
  const ab = $('attention').tBodies[0];
  ab.replaceChildren();
  for (const a of tl.attention) {
    ab.append(el('tr', {}, el('td', { class: 'num mono', text: a.offset }), el('td', { text: a.kind }),
      el('td', { class: 'mono', text: a.host.host }), el('td', { text: a.detail || '' }), el('td', { class: 'num', text: String(a.flows) })));
  }
  if (!tl.attention.length) ab.append(el('tr', {}, el('td', { colspan: '5', class: 'muted', text: 'Nothing.' })));
}

// chart draws the swimlanes: a lane per service, phases behind, milestone
// markers above, an axis below — SVG built element by element.
function chart(tl, n) {
  const lanes = tl.services; const laneH = 18; const left = 230; const top = 40; const W = 1000;
  const H = top + lanes.length * laneH + 24;
  const t0 = 0;
  const end = Math.max(tl.session.duration_seconds + (tl.milestones.length ? tl.milestones[0].offset_seconds : 0), 1);
  const x = (sec) => left + (W - left - 10) * Math.max(0, sec - t0) / end;
  const svg = el('svg', { viewBox: `0 0 ${W} ${H}`, role: 'img', 'aria-label': 'Services over time' });
  const cur = tl.phases.length - 1;
  tl.phases.forEach((p, i) => {
    const cls = i === cur && isActive(tl) ? ' current' : '';
    svg.append(el('rect', { class: 'phase-band' + cls, x: x(p.start_offset_seconds), y: 14, width: Math.max(1, x(p.end_offset_seconds) - x(p.start_offset_seconds)), height: H - 38 }, el('title', { text: `${p.name} ${p.start_offset}–${p.end_offset}` })));
    svg.append(el('text', { class: 'phase-name' + cls, x: x(p.start_offset_seconds) + 3, y: 36 - (i % 2) * 12, text: p.name }));
  });
  lanes.forEach((b, i) => {
    const y = top + i * laneH;
    const g = el('g', { class: 'lane', 'data-service': b.id });
    g.append(el('text', { class: 'lane-label', x: 4, y: y + 12, text: b.name }));
    for (const [a, z] of b.activity || []) {
      g.append(el('rect', { class: 'span', x: x(a), y: y + 4, width: Math.max(1.5, x(z) - x(a)), height: 10, fill: /^#[0-9a-fA-F]{6}$/.test(b.color) ? b.color : '#888888' },
        el('title', { text: `${b.name} ${span(a)}–${span(z)}` })));
    }
    svg.append(g);
  });
  tl.milestones.forEach((m, i) => {
    const mx = x(m.offset_seconds);
    svg.append(el('line', { class: 'mline', x1: mx, x2: mx, y1: 14, y2: H - 24 }));
    const g = el('g', { class: 'marker', 'data-milestone': m.id, tabindex: '0', onclick: () => { location.hash = `#/flows?session=${n}&q=${encodeURIComponent((m.hosts && m.hosts[0] && m.hosts[0].host) || '')}`; } },
      el('title', { text: `${m.offset} ${m.title}` }), el('circle', { class: 'mdot', cx: mx, cy: 8, r: 6 }), el('text', { class: 'mnum', x: mx, y: 11, text: String(i + 1) }));
    svg.append(g);
  });
  const axisY = H - 8;
  svg.append(el('line', { class: 'grid', x1: left, x2: W - 10, y1: axisY - 12, y2: axisY - 12 }));
  const step = niceStep(end);
  for (let t = 0; t <= end; t += step) svg.append(el('text', { class: 'axis', x: x(t), y: axisY, text: span(t), 'text-anchor': 'middle' }));
  return svg;
}

function isActive(tl) { return (Date.now() - new Date(tl.session.end)) < 10 * 60 * 1000; }

function niceStep(total) {
  for (const s of [10, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200]) if (total / s <= 10) return s;
  return 14400;
}

// ---- hosts ----
let hostsTimer = 0;
async function loadHosts() {
  try {
    const d = await api('/api/hosts?' + query({ q: $('h-q').value.trim() }));
    const ub = $('unknown').tBodies[0]; ub.replaceChildren();
    for (const u of d.unknown) ub.append(el('tr', {}, el('td', { class: 'mono', text: u.host }), el('td', { class: 'num', text: String(u.flows) }), el('td', { class: 'num', text: bytes(u.bytes) }), el('td', { text: new Date(u.last).toLocaleString() })));
    if (!d.unknown.length) ub.append(el('tr', {}, el('td', { colspan: '4', class: 'muted', text: 'Every host seen is in the catalog.' })));
    state.unknown = d.unknown;
    const cb = $('catalog').tBodies[0]; cb.replaceChildren();
    for (const c of d.catalog) cb.append(el('tr', {}, el('td', { class: 'mono', text: c.pattern }), el('td', { text: c.service_name || c.service }), el('td', { text: c.phase || '' }), el('td', { text: c.required || '' }), el('td', { text: c.purpose || '' })));
  } catch (e) { banner('Hosts: ' + e.message); }
}

function catalogYAML(list) {
  const lines = ['entries:'];
  for (const u of list) {
    if (!/^[a-z0-9.*?_-]+$/i.test(u.host)) continue; // not a name a pattern can hold
    lines.push(`  - pattern: ${u.host}`, '    service: third-party', '    phase: ""', `    purpose: "seen ${u.flows} times; say what it is"`);
  }
  return lines.join('\n') + '\n';
}

// ---- live events ----
function connect() {
  if (!state.live) return;
  const es = new EventSource('/api/events');
  es.addEventListener('flows', (e) => onFlows(JSON.parse(e.data).flows));
  es.addEventListener('devices', (e) => renderDevices(JSON.parse(e.data).devices));
  es.addEventListener('lagged', async (e) => {
    const after = JSON.parse(e.data).after_id;
    banner('This page fell behind the traffic; catching up from the store…');
    try {
      let from = after;
      for (let i = 0; i < 20; i++) {
        const d = await api('/api/flows?' + query({}, { after_id: from, limit: 500 }));
        onFlows(d.flows);
        if (d.flows.length < 500) break;
        from = Math.max(...d.flows.map((f) => f.id));
      }
      banner('');
    } catch (err) { banner('Catching up failed: ' + err.message); }
  });
  es.onerror = () => { if (es.readyState === EventSource.CLOSED) banner('Live updates stopped (too many viewers, or pilotwire stopped). Reload to try again.'); };
  es.onopen = () => banner('');
}

// ---- start ----
async function start() {
  $('follow').addEventListener('click', () => {
    state.following = !state.following;
    $('follow').textContent = state.following ? 'Pause' : 'Follow';
    if (state.following && state.newCount) reloadFlows();
  });
  $('newpill').addEventListener('click', () => { state.following = true; $('follow').textContent = 'Pause'; reloadFlows(); });
  $('older').addEventListener('click', () => loadOlder(false));
  for (const id of ['f-client', 'f-service', 'f-phase', 'f-problems', 'f-noise']) {
    $(id).addEventListener('change', () => { location.hash = '#/flows?' + query(filterFromInputs()); });
  }
  let qTimer = 0;
  $('f-q').addEventListener('input', () => { clearTimeout(qTimer); qTimer = setTimeout(() => { location.hash = '#/flows?' + query(filterFromInputs()); }, 300); });
  $('s-pick').addEventListener('change', () => { location.hash = '#/session/' + $('s-pick').value; });
  // The comparison opens as its own page (pilotwire diff's HTML, both runs on one clock).
  $('s-compare').addEventListener('change', () => {
    const other = $('s-compare').value;
    if (other) window.open(`/api/diff?a=${encodeURIComponent(state.session)}&b=${encodeURIComponent(other)}&format=html`, '_blank', 'noopener');
    $('s-compare').value = '';
  });
  $('h-q').addEventListener('input', () => { clearTimeout(hostsTimer); hostsTimer = setTimeout(loadHosts, 300); });
  $('copy-yaml').addEventListener('click', async () => {
    const text = catalogYAML(state.unknown || []);
    try { await navigator.clipboard.writeText(text); banner('Copied ' + (state.unknown || []).length + ' hosts as catalog YAML.'); } catch (_) { banner('Copy failed: the browser refused the clipboard.'); }
    setTimeout(() => banner(''), 3000);
  });
  try {
    const c = await api('/api/catalog');
    for (const sv of [...c.services].sort((a, b) => a.name.localeCompare(b.name))) $('f-service').append(el('option', { value: sv.id, text: sv.name }));
    $('f-service').append(el('option', { value: 'unknown', text: 'Not in the catalog' }));
    for (const p of c.phases) $('f-phase').append(el('option', { value: p, text: p }));
  } catch (e) { banner(e.message); }
  await loadStatus();
  setInterval(loadStatus, 5000);
  window.addEventListener('hashchange', route);
  route();
  connect();
}

start();
