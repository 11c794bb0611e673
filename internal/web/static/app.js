// pilotwire's live page: devices, live flows, a session's timeline, hosts.
//
// One ES module, no build step, no third-party code. Everything comes from
// pilotwire's JSON API (docs/api.md) and its Server-Sent Events feed.
//
// Safety: host names, URLs, labels and error texts come from the network.
// They reach the document only through textContent and setAttribute of
// plain attributes (never innerHTML, never an event-handler attribute, never
// a URL built from them except with encodeURIComponent into our own hash
// routes). The server's CSP forbids inline script and style; the one
// computed style (a service's colour) goes through CSSOM setProperty after
// checking it is a #rrggbb colour.
//
// Bounded memory: at most MAX_ROWS flow rows in the DOM, nothing buffered
// while paused (only counted), one timer of each kind.

const MAX_ROWS = 2000;
const PAGE = 100;
const CATCHUP_PAGE = 500;
const CATCHUP_PAGES = 20; // further behind than this: reload from the top
const SESSION_REFRESH_MS = 2000;
const STATUS_EVERY_MS = 5000;
const DEVICES_EVERY_MS = 30000;
const SSE_RETRY_MS = 10000;
const MAX_OPTIONS = 200;
const GREY = '#8b949e';

const $ = (id) => document.getElementById(id);
const SVGNS = 'http://www.w3.org/2000/svg';

// el makes an HTML element with an optional class and text.
function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined && text !== null) e.textContent = String(text);
  return e;
}

// sv makes an SVG element with attributes (all set with setAttribute).
function sv(tag, attrs, text) {
  const e = document.createElementNS(SVGNS, tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, String(v));
  if (text !== undefined) e.textContent = String(text);
  return e;
}

function td(text, cls) {
  return el('td', cls, text);
}

// safeColor returns c when it is a #rrggbb colour, else grey: colours end
// up in CSS and SVG attributes, so nothing else may pass.
function safeColor(c) {
  return typeof c === 'string' && /^#[0-9a-fA-F]{6}$/.test(c) ? c : GREY;
}

function chip(name, color) {
  const s = el('span', 'chip', name);
  s.style.setProperty('--c', safeColor(color));
  return s;
}

function fmtBytes(n) {
  n = Number(n) || 0;
  if (n < 1024) return n + ' B';
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let i = -1;
  do { n /= 1024; i++; } while (n >= 1024 && i < units.length - 1);
  return n.toFixed(1) + ' ' + units[i];
}

function fmtDur(sec) {
  sec = Math.max(0, Math.floor(Number(sec) || 0));
  const h = Math.floor(sec / 3600), m = Math.floor(sec / 60) % 60, s = sec % 60;
  const p = (x) => String(x).padStart(2, '0');
  return h > 0 ? h + ':' + p(m) + ':' + p(s) : p(m) + ':' + p(s);
}

function fmtMs(ms) {
  if (ms === undefined || ms === null) return '';
  if (ms < 1000) return Math.round(ms) + ' ms';
  if (ms < 60000) return (ms / 1000).toFixed(1) + ' s';
  return fmtDur(ms / 1000);
}

function fmtClock(iso) {
  const d = new Date(iso);
  if (isNaN(d)) return '';
  const p = (x) => String(x).padStart(2, '0');
  return p(d.getHours()) + ':' + p(d.getMinutes()) + ':' + p(d.getSeconds());
}

function fmtDateTime(iso) {
  const d = new Date(iso);
  if (isNaN(d)) return '';
  return d.toLocaleDateString(undefined, { month: 'short', day: 'numeric' }) + ' ' + fmtClock(iso);
}

function banner(text) {
  const b = $('banner');
  b.textContent = text || '';
  b.hidden = !text;
}

// ApiError carries the server's {"error": …} text.
class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

async function api(path, method) {
  const headers = { Accept: 'application/json' };
  // A POST carries a header no other site's page can send unasked
  // (docs/api.md: the network check).
  if (method === 'POST') headers['X-Pilotwire-Page'] = '1';
  const r = await fetch(path, { method: method || 'GET', credentials: 'same-origin', headers });
  let body = null;
  try {
    body = await r.json();
  } catch {
    body = null;
  }
  if (!r.ok) {
    const msg = body && typeof body.error === 'string' ? body.error : r.status + ' ' + r.statusText;
    if (r.status === 401) {
      banner('This page needs pilotwire\'s token: open it as ' + location.origin + '/?token=TOKEN (the token file given with --ui-token-file). ' + msg);
    }
    throw new ApiError(r.status, msg);
  }
  return body || {};
}

function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v !== '' && v !== undefined && v !== null && v !== false) q.set(k, v === true ? '1' : String(v));
  }
  const s = q.toString();
  return s ? '?' + s : '';
}

// ---------------------------------------------------------------- routing

const state = {
  view: '',
  devices: [],
  live: false,
  lastId: 0, // highest flow ID seen, for catching up after a gap
  lastSession: 0, // the session the Timeline tab opens
  feed: true, // the server has a live feed (/api/status "live")
};

function parseHash() {
  const h = location.hash.replace(/^#\/?/, '');
  const [path, qs] = h.split('?', 2);
  const parts = path.split('/').filter(Boolean);
  return { view: parts[0] || 'devices', arg: parts[1] || '', params: new URLSearchParams(qs || '') };
}

function route() {
  const r = parseHash();
  const views = ['devices', 'flows', 'session', 'hosts'];
  const view = views.includes(r.view) ? r.view : 'devices';
  for (const v of views) $('view-' + v).hidden = v !== view;
  for (const a of document.querySelectorAll('.tabs a')) a.classList.toggle('active', a.dataset.view === view);
  state.view = view;
  if (!(view === 'flows' && r.params.get('flow'))) closeDetail();
  if (view === 'devices') showDevices();
  if (view === 'flows') showFlows(r.params);
  if (view === 'session') showSession(r.arg);
  if (view === 'hosts') showHosts();
}

function setTimelineTab(n) {
  if (!n) return;
  state.lastSession = n;
  document.querySelector('.tabs a[data-view="session"]').setAttribute('href', '#/session/' + n);
}

// ---------------------------------------------------------------- status

async function refreshStatus() {
  let s;
  try {
    s = await api('/api/status');
  } catch (e) {
    $('status-text').textContent = 'pilotwire does not answer: ' + e.message;
    $('status').className = 'status down';
    return;
  }
  state.feed = s.live !== false;
  const parts = [];
  parts.push(s.mode === 'proxy' ? 'proxy' : 'serve');
  if (s.proxy) {
    parts.push(s.proxy.open_conns + ' conns, ' + s.proxy.open_tunnels + ' tunnels, ' + s.proxy.requests + ' requests');
  }
  if (s.recording) parts.push(s.recording.ok ? 'recording' : 'NOT RECORDING');
  else if (s.mode === 'proxy') parts.push('not recording (--record=false)');
  else parts.push('read only');
  parts.push((s.viewers || 0) + (s.viewers === 1 ? ' viewer' : ' viewers'));
  parts.push(!state.feed ? 'no live feed' : state.live ? 'live' : 'not live');
  $('status-text').textContent = parts.join(' · ');
  $('status').className = 'status ' + (state.live ? 'live' : 'down');
  $('status').title = (s.version ? 'pilotwire ' + s.version : 'pilotwire') + (s.source ? ' — ' + s.source : '');
  // What must not be missed is said in a banner: a proxy that is not
  // recording, and TLS interception (the lab devices' TLS is being opened).
  const loud = [];
  if (s.recording && !s.recording.ok) {
    loud.push((s.recording.text || 'NOT RECORDING') + (s.recording.dropped ? ' — ' + s.recording.dropped + ' flows dropped' : ''));
  }
  let learnedTitle = '';
  if (s.proxy && s.proxy.intercepting) {
    loud.push('TLS INTERCEPTION ON');
    // Hosts a client refused the minted certificate for: tunnelled
    // untouched from then on (pilotwire endpoints learned).
    try {
      const learned = await api('/api/passthrough');
      if (learned.length) {
        loud.push(learned.length + (learned.length === 1 ? ' host' : ' hosts') + ' learned as pass-through');
        learnedTitle = learned.map(p => p.host + ' — ' + p.reason + ' (' + p.client + ')').join('\n');
      }
    } catch (e) { /* the banner says the rest */ }
  }
  const rec = $('recording');
  rec.textContent = loud.join(' · ');
  rec.title = learnedTitle;
  rec.hidden = loud.length === 0;
  $('foot-source').textContent = s.source ? 'Source: ' + s.source + (s.version ? ' · pilotwire ' + s.version : '') : '';
}

// ---------------------------------------------------------------- devices

function deviceName(d) {
  return d.label || d.device || d.client || '(no address)';
}

function renderDevices(list) {
  state.devices = Array.isArray(list) ? list : [];
  const body = $('devices-body');
  const rows = [];
  for (const d of state.devices) {
    const tr = el('tr', 'click');
    tr.setAttribute('data-client', d.client || '');
    tr.setAttribute('data-session', String(d.session || ''));
    const name = td('', 'dev');
    name.append(el('span', 'dev-label wrap', deviceName(d)));
    if (d.client && deviceName(d) !== d.client) name.append(el('span', 'dev-addr', d.client));
    if (d.proxy) name.append(el('span', 'dev-addr', 'via ' + d.proxy));
    tr.append(name);
    const st = td('');
    st.append(el('span', 'badge ' + (d.state || ''), d.state || ''));
    tr.append(st);
    tr.append(d.phase_name || d.phase ? td(d.phase_name || d.phase) : td(d.provisioning === false ? 'not provisioning (yet)' : '—', 'muted'));
    tr.append(td(fmtDur(d.elapsed_seconds), 'num'));
    tr.append(td(d.flows, 'num'));
    tr.append(td(fmtBytes(d.bytes), 'num'));
    tr.append(td(d.last_host || '', 'host'));
    tr.addEventListener('click', () => {
      if (d.session) location.hash = '#/session/' + d.session;
    });
    rows.push(tr);
  }
  body.replaceChildren(...rows);
  $('devices-empty').hidden = state.devices.length > 0;
  const active = state.devices.filter((d) => d.state === 'active').length;
  $('devices-summary').textContent = state.devices.length
    ? state.devices.length + (state.devices.length === 1 ? ' device' : ' devices') + ', ' + active + ' active now. Click a device for its timeline.'
    : '';
  if (!state.lastSession && state.devices.length && state.devices[0].session) setTimelineTab(state.devices[0].session);
  fillDeviceFilter();
  if (state.view === 'session') markCurrentPhase();
}

async function refreshDevices() {
  try {
    const d = await api('/api/devices');
    renderDevices(d.devices);
  } catch (e) {
    if (state.view === 'devices') $('devices-summary').textContent = 'Devices could not be loaded: ' + e.message;
  }
}

function showDevices() {
  refreshDevices();
}

// ---------------------------------------------------------------- flows

const flows = {
  loaded: false,
  rows: new Map(), // id -> tr
  paused: false,
  pending: 0,
  cursor: null, // `next` of the oldest page shown
  marks: new Map(), // id of a page's last row -> that page's `next`
  cursorLost: false, // rows of every page were dropped: Load older starts over
  filter: {},
  filterKey: null,
  selection: null, // {ids, title}: the flows behind a milestone
  gen: 0, // stale answers of an older query are ignored
  services: new Map(),
  phases: new Map(),
};

// filterFrom reads the flows filter from the route's parameters. The same
// names are the API's (/api/flows).
function filterFrom(params) {
  return {
    client: params.get('client') || '',
    service: params.get('service') || '',
    phase: params.get('phase') || '',
    problems: params.get('problems') === '1',
    q: params.get('q') || '',
    noise: params.get('noise') === '0' ? '0' : '',
    session: params.get('session') || '',
  };
}

// matches is the API's filter rule (docs/api.md) applied to a row that SSE
// pushed: the server computes service, phase, outcome and noise, so the
// page compares what it was given and never re-derives meaning.
function matches(f, flt) {
  if (flt.session) return false; // a past session's list is not followed live
  if (flt.client && f.client !== flt.client && f.device !== flt.client) return false;
  if (flt.service && (f.service || 'unknown') !== flt.service) return false;
  if (flt.phase && f.phase !== flt.phase) return false;
  if (flt.problems && f.outcome !== 'refused' && f.outcome !== 'failed') return false;
  if (flt.noise === '0' && f.noise) return false;
  if (flt.q) {
    const q = flt.q.toLowerCase();
    if (!String(f.host || '').toLowerCase().includes(q) && !String(f.url || '').toLowerCase().includes(q)) return false;
  }
  return true;
}

function resultCell(f) {
  const c = td('', 'result');
  let text;
  if (f.outcome === 'refused') {
    text = 'refused';
    c.className = 'res-refused';
  } else if (f.outcome === 'failed') {
    text = f.status ? String(f.status) : 'failed';
    c.className = 'res-failed';
  } else if (f.status) {
    text = String(f.status);
  } else if (f.open) {
    text = 'open';
    c.className = 'open';
  } else {
    text = f.decision || f.outcome || '';
    if (f.outcome === 'undecided') c.className = 'res-undecided';
  }
  c.textContent = text;
  const why = f.outcome_reason || f.reason || f.error || '';
  if (why) c.title = why;
  return c;
}

function flowRow(f) {
  const tr = el('tr', 'click');
  tr.setAttribute('data-id', String(f.id));
  tr.append(td(fmtClock(f.start), 'num'));
  const dev = td('', 'dev');
  dev.append(el('span', 'dev-text', f.device || f.client || ''));
  if (f.device && f.client) dev.title = f.client;
  tr.append(dev);
  const svc = td('', 'svc');
  svc.append(chip(f.service_name || f.service || 'Not in the catalog', f.color));
  tr.append(svc);
  const host = td('', 'host');
  const port = f.port && f.port !== 443 && f.port !== 80 ? ':' + f.port : '';
  // TLS interception (proxy --intercept): a request read inside a tunnel
  // hangs under it; a tunnel says whether it was opened, and if not why.
  if (f.tunnel) {
    tr.classList.add('in-tunnel');
    const m = el('span', 'tunnel-mark', '↳');
    m.title = 'read inside the intercepted tunnel ' + f.tunnel;
    host.append(m);
  }
  host.append(el('span', 'hostname', (f.host || '(no host)') + port));
  if (f.kind === 'connect' && f.note) {
    const i = f.note.indexOf('not intercepted: ');
    if (i >= 0) {
      const b = el('span', 'badge passthrough', 'passed through');
      b.title = f.note.slice(i + 'not intercepted: '.length);
      host.append(b);
    } else if (f.note.includes('intercepted (')) {
      const b = el('span', 'badge intercepted', 'intercepted');
      b.title = f.note;
      host.append(b);
    }
  }
  if (f.url) {
    const u = el('span', 'url', f.url);
    u.title = f.url;
    host.append(u);
  }
  tr.append(host);
  tr.append(td(f.method || f.kind || ''));
  tr.append(resultCell(f));
  tr.append(td(fmtBytes(f.bytes_up), 'num up'));
  tr.append(td(fmtBytes(f.bytes_down), 'num'));
  tr.append(td(f.open ? 'open' : fmtMs(f.duration_ms), 'num dur'));
  const tls = [f.sni, f.alpn].filter(Boolean).join(' · ');
  const t = td('', 'tls');
  if (tls) {
    t.append(el('span', 'tls-text', tls));
    t.title = tls;
  }
  tr.append(t);
  tr.addEventListener('click', () => openDetail(f.id, tr));
  return tr;
}

function noteOptions(f) {
  const svc = f.service || 'unknown';
  if (!flows.services.has(svc) && flows.services.size < MAX_OPTIONS) {
    flows.services.set(svc, f.service_name || svc);
    addOption(document.querySelector('#filters select[name=service]'), svc, f.service_name || svc);
  }
  if (f.phase && !flows.phases.has(f.phase) && flows.phases.size < MAX_OPTIONS) {
    flows.phases.set(f.phase, f.phase);
    addOption(document.querySelector('#filters select[name=phase]'), f.phase, f.phase);
  }
}

function addOption(sel, value, label) {
  for (const o of sel.options) if (o.value === value) return;
  const o = el('option', '', label);
  o.value = value;
  sel.append(o);
}

// loadCatalog lists the catalog's services and phases in the filters.
async function loadCatalog() {
  try {
    const c = await api('/api/catalog');
    const svc = document.querySelector('#filters select[name=service]');
    for (const x of [...(c.services || [])].sort((a, b) => String(a.name).localeCompare(String(b.name)))) {
      flows.services.set(x.id, x.name);
      addOption(svc, x.id, x.name);
    }
    flows.services.set('unknown', 'Not in the catalog');
    addOption(svc, 'unknown', 'Not in the catalog');
    const ph = document.querySelector('#filters select[name=phase]');
    for (const p of c.phases || []) {
      flows.phases.set(p, p);
      addOption(ph, p, p);
    }
    syncForm();
  } catch (e) {
    banner('The catalog could not be loaded: ' + e.message);
  }
}

function fillDeviceFilter() {
  const sel = document.querySelector('#filters select[name=client]');
  for (const d of state.devices) {
    if (sel.options.length > MAX_OPTIONS) break;
    const label = d.label || d.device ? (d.label || d.device) + ' (' + d.client + ')' : d.client;
    if (d.client) addOption(sel, d.client, label);
  }
  if (flows.filter.client) sel.value = flows.filter.client;
}

function syncForm() {
  const form = $('filters');
  const f = flows.filter;
  if (f.client) addOption(form.client, f.client, f.client);
  if (f.service) addOption(form.service, f.service, flows.services.get(f.service) || f.service);
  if (f.phase) addOption(form.phase, f.phase, f.phase);
  form.client.value = f.client;
  form.service.value = f.service;
  form.phase.value = f.phase;
  if (document.activeElement !== form.q) form.q.value = f.q;
  form.problems.checked = f.problems;
  form.hidenoise.checked = f.noise === '0';
}

function formToHash() {
  const form = $('filters');
  const p = {
    client: form.client.value,
    service: form.service.value,
    phase: form.phase.value,
    problems: form.problems.checked,
    q: form.q.value.trim(),
    noise: form.hidenoise.checked ? '0' : '',
    session: flows.filter.session || '',
  };
  history.replaceState(null, '', '#/flows' + query(p));
  route();
}

function showFlows(params) {
  const ids = (params.get('ids') || '').split(',').map((x) => parseInt(x, 10)).filter((x) => x > 0).slice(0, 50);
  const selection = ids.length ? { ids, title: params.get('title') || 'Selected flows', total: parseInt(params.get('total'), 10) || ids.length } : null;
  const filter = filterFrom(params);
  const key = JSON.stringify([filter, selection]);
  flows.filter = filter;
  flows.selection = selection;
  syncForm();
  const detail = parseInt(params.get('flow'), 10);
  if (detail > 0) openDetail(detail, null);
  if (flows.loaded && key === flows.filterKey) return;
  flows.filterKey = key;
  flows.loaded = true;
  reloadFlows();
}

function clearRows() {
  flows.rows.clear();
  flows.marks.clear();
  flows.cursor = null;
  flows.cursorLost = false;
  $('flows-body').replaceChildren();
}

function updateFlowTools() {
  const sel = flows.selection;
  $('selection').hidden = !sel;
  if (sel) {
    $('selection-text').textContent = sel.title + ': ' + (sel.total > sel.ids.length ? 'the first ' + sel.ids.length + ' of ' + sel.total + ' flows.' : sel.ids.length + (sel.ids.length === 1 ? ' flow.' : ' flows.'));
  }
  $('filters').hidden = !!sel;
  document.querySelector('.flow-tools').hidden = !!sel;
  const pause = $('pause');
  pause.textContent = flows.paused ? 'Resume' : 'Pause';
  pause.classList.toggle('on', flows.paused);
  const pill = $('newpill');
  pill.hidden = !(flows.paused && flows.pending > 0);
  pill.textContent = flows.pending + ' new';
  $('older').hidden = !!sel || (!flows.cursor && !flows.cursorLost);
  $('flows-empty').hidden = flows.rows.size > 0;
  $('flows-count').textContent = sel ? '' : flows.rows.size + (flows.rows.size === 1 ? ' flow shown' : ' flows shown') + (flows.paused ? ', paused' : ', following');
}

async function reloadFlows() {
  const gen = ++flows.gen;
  flows.paused = false;
  flows.pending = 0;
  clearRows();
  updateFlowTools();
  try {
    if (flows.selection) {
      const got = await Promise.all(flows.selection.ids.map((id) => api('/api/flows/' + id).then((d) => d.flow, () => null)));
      if (gen !== flows.gen) return;
      const list = got.filter(Boolean).sort((a, b) => b.id - a.id);
      appendRows(list);
    } else {
      const d = await api('/api/flows' + query({ ...flows.filter, limit: PAGE }));
      if (gen !== flows.gen) return;
      appendPage(d);
    }
  } catch (e) {
    if (gen === flows.gen) banner('Flows could not be loaded: ' + e.message);
  }
  updateFlowTools();
}

function appendRows(list) {
  const body = $('flows-body');
  const frag = document.createDocumentFragment();
  for (const f of list) {
    if (!f || flows.rows.has(f.id)) continue;
    noteOptions(f);
    if (f.id > state.lastId && !flows.selection) state.lastId = f.id;
    const tr = flowRow(f);
    flows.rows.set(f.id, tr);
    frag.append(tr);
  }
  body.append(frag);
}

function appendPage(d) {
  const list = Array.isArray(d.flows) ? d.flows : [];
  appendRows(list);
  flows.cursor = d.next || null;
  flows.cursorLost = false;
  if (list.length && d.next) flows.marks.set(list[list.length - 1].id, d.next);
  trim(false);
}

async function loadOlder() {
  const gen = flows.gen;
  try {
    if (flows.cursorLost) {
      // The rows that carried a cursor were dropped while following: page
      // down from the newest flow to the one at the bottom, and go on
      // from there (the cursor is the server's, never made up here).
      let d = await findBottom();
      if (gen !== flows.gen) return;
      if (!d) return reloadFlows();
      if (!d.flows.length && d.next) {
        // The bottom row ended its page: the older flows start on the next.
        d = await api('/api/flows' + query({ ...flows.filter, before: d.next, limit: PAGE }));
        if (gen !== flows.gen) return;
      }
      appendPage(d);
    } else {
      if (!flows.cursor) return;
      const d = await api('/api/flows' + query({ ...flows.filter, before: flows.cursor, limit: PAGE }));
      if (gen !== flows.gen) return;
      appendPage(d);
    }
  } catch (e) {
    banner('Older flows could not be loaded: ' + e.message);
  }
  updateFlowTools();
}

// findBottom pages through the filtered flows, newest first, to the row
// at the bottom of the table; it returns the flows after it on that page
// and the page's cursor, or null when the row is not found in
// MAX_ROWS + CATCHUP_PAGE flows.
async function findBottom() {
  const last = $('flows-body').lastElementChild;
  if (!last) return null;
  const bottom = Number(last.getAttribute('data-id'));
  let cursor = '';
  for (let seen = 0; seen < MAX_ROWS + CATCHUP_PAGE; seen += CATCHUP_PAGE) {
    const d = await api('/api/flows' + query({ ...flows.filter, before: cursor, limit: CATCHUP_PAGE }));
    const list = Array.isArray(d.flows) ? d.flows : [];
    const i = list.findIndex((f) => f && f.id === bottom);
    if (i >= 0) return { flows: list.slice(i + 1), next: d.next };
    if (!d.next) return null;
    cursor = d.next;
  }
  return null;
}

// trim keeps at most MAX_ROWS rows: while following it drops the oldest
// (bottom) rows, and the cursor for "Load older" falls back to the last
// page boundary still shown; while browsing back it drops the newest (top)
// rows, and Resume reloads from the top.
function trim(following) {
  const body = $('flows-body');
  if (flows.rows.size <= MAX_ROWS) return;
  if (!following) {
    while (flows.rows.size > MAX_ROWS && body.firstElementChild) removeRow(body.firstElementChild);
    return;
  }
  while (flows.rows.size > MAX_ROWS && body.lastElementChild) removeRow(body.lastElementChild);
  flows.cursor = null;
  for (let tr = body.lastElementChild; tr; tr = tr.previousElementSibling) {
    const c = flows.marks.get(Number(tr.getAttribute('data-id')));
    if (c) {
      flows.cursor = c;
      break;
    }
  }
  flows.cursorLost = !flows.cursor;
}

function removeRow(tr) {
  const id = Number(tr.getAttribute('data-id'));
  flows.rows.delete(id);
  flows.marks.delete(id);
  tr.remove();
}

// ingest takes new and updated flows (oldest first) from SSE or a catch-up.
function ingest(list) {
  if (!Array.isArray(list) || !list.length) return;
  let touched = false;
  const clients = new Set();
  for (const f of list) {
    if (!f || typeof f.id !== 'number') continue;
    if (f.id > state.lastId) state.lastId = f.id;
    if (f.client) clients.add(f.client);
    if (!flows.loaded) continue;
    const old = flows.rows.get(f.id);
    if (old) {
      // A tunnel recorded when it opened and again when it ended keeps its
      // ID: its row is replaced where it stands.
      const tr = flowRow(f);
      if (old.classList.contains('selected')) tr.classList.add('selected');
      old.replaceWith(tr);
      flows.rows.set(f.id, tr);
      touched = true;
      continue;
    }
    if (flows.selection || !matches(f, flows.filter)) continue;
    noteOptions(f);
    if (flows.paused) {
      flows.pending++;
      touched = true;
      continue;
    }
    const tr = flowRow(f);
    tr.classList.add('fresh');
    flows.rows.set(f.id, tr);
    $('flows-body').prepend(tr);
    touched = true;
  }
  if (touched) {
    trim(true);
    updateFlowTools();
  }
  sessionSawFlows(clients);
}

async function catchUp(afterId, why) {
  let after = afterId;
  banner(why === undefined ? 'Fell behind, catching up…' : why);
  try {
    for (let i = 0; i < CATCHUP_PAGES; i++) {
      const d = await api('/api/flows' + query({ after_id: after, limit: CATCHUP_PAGE }));
      const list = Array.isArray(d.flows) ? d.flows : [];
      ingest(list);
      if (list.length < CATCHUP_PAGE) {
        banner('');
        return;
      }
      after = list[list.length - 1].id;
    }
    // Too far behind to replay row by row: start from the newest page.
    if (flows.loaded) await reloadFlows();
    banner('');
  } catch (e) {
    banner('Fell behind and could not catch up: ' + e.message);
  }
}

// ---------------------------------------------------------------- detail

const FIELD_ORDER = ['id', 'start', 'end', 'duration_ms', 'open', 'client', 'client_port', 'device', 'session', 'source', 'source_file',
  'kind', 'method', 'scheme', 'host', 'port', 'url', 'status', 'outcome', 'outcome_reason', 'reason', 'decision', 'error', 'bytes_up', 'bytes_down',
  'sni', 'alpn', 'tls_version', 'service', 'service_name', 'phase', 'noise', 'color', 'note', 'lost'];

function kvTable(obj, order) {
  const t = el('table', 'kv');
  const keys = Object.keys(obj || {});
  keys.sort((a, b) => {
    const ia = order.indexOf(a), ib = order.indexOf(b);
    return (ia < 0 ? 999 : ia) - (ib < 0 ? 999 : ib) || a.localeCompare(b);
  });
  for (const k of keys) {
    const v = obj[k];
    if (v === '' || v === null || v === undefined) continue;
    const tr = el('tr');
    tr.append(el('th', '', k));
    tr.append(el('td', 'mono', typeof v === 'object' ? JSON.stringify(v) : String(v)));
    t.append(tr);
  }
  return t;
}

let detailGen = 0;

async function openDetail(id, tr) {
  const gen = ++detailGen;
  for (const s of document.querySelectorAll('tr.selected')) s.classList.remove('selected');
  if (tr) tr.classList.add('selected');
  const panel = $('detail');
  const body = $('detail-body');
  $('detail-title').textContent = 'Flow ' + id;
  body.replaceChildren(el('p', 'muted', 'Loading…'));
  panel.hidden = false;
  let d;
  try {
    d = await api('/api/flows/' + encodeURIComponent(id));
  } catch (e) {
    if (gen === detailGen) body.replaceChildren(el('p', 'res-failed', 'Flow ' + id + ' could not be loaded: ' + e.message));
    return;
  }
  if (gen !== detailGen) return;
  const f = d.flow || {};
  $('detail-title').textContent = (f.host || 'Flow ' + id);
  const parts = [];
  parts.push(el('h3', '', 'Flow'));
  parts.push(kvTable(f, FIELD_ORDER));
  parts.push(el('h3', '', 'Catalog'));
  if (d.catalog && d.catalog.known) {
    parts.push(kvTable(d.catalog, ['host', 'pattern', 'service', 'service_name', 'phase', 'required', 'region', 'purpose', 'source']));
  } else {
    parts.push(el('p', 'muted', 'No catalog entry names this host.'));
  }
  parts.push(el('h3', '', 'Session and milestones'));
  if (d.session) {
    const p = el('p');
    const a = el('a', '', 'Session ' + d.session + ' timeline');
    a.setAttribute('href', '#/session/' + Number(d.session));
    p.append(a);
    parts.push(p);
  }
  const ms = Array.isArray(d.milestones) ? d.milestones : [];
  if (ms.length) {
    const ul = el('ul', 'hosts-list');
    for (const m of ms) {
      const li = el('li');
      li.append(el('strong', '', m.offset || ''), document.createTextNode(' '));
      const a = el('a', 'milestone-link', m.title || m.id);
      a.setAttribute('href', '#/session/' + Number(d.session || 0));
      li.append(a);
      ul.append(li);
    }
    parts.push(ul);
  } else {
    parts.push(el('p', 'muted', 'This flow is behind no milestone.'));
  }
  body.replaceChildren(...parts);
}

function closeDetail() {
  detailGen++;
  $('detail').hidden = true;
  for (const s of document.querySelectorAll('tr.selected')) s.classList.remove('selected');
}

// ---------------------------------------------------------------- session timeline

const sess = {
  n: 0,
  report: null,
  gen: 0,
  timer: null,
  lastLoad: 0,
  live: false, // the session was drawn as still going (its last phase is current)
};

function showSession(arg) {
  const n = parseInt(arg, 10) || state.lastSession || (state.devices[0] && state.devices[0].session) || 0;
  if (!n) {
    $('session-title').textContent = 'Timeline';
    $('session-summary').textContent = '';
    $('session-empty').hidden = false;
    $('session-downloads').hidden = true;
    $('swim-figure').hidden = true;
    $('session-tables').hidden = true;
    return;
  }
  $('session-empty').hidden = true;
  setTimelineTab(n);
  loadSessionList(n);
  if (n !== sess.n || !sess.report) {
    if (n !== sess.n) $('session-check').hidden = true; // another session's check
    sess.n = n;
    sess.report = null;
    loadSession();
  } else {
    renderSwim();
  }
}

// runCheck asks pilotwire to check, from its machine, every host the
// session used, and shows each host's verdict.
async function runCheck() {
  const n = sess.n;
  if (!n) return;
  const box = $('session-check');
  const btn = $('s-check');
  box.hidden = false;
  btn.disabled = true;
  $('check-via').textContent = '';
  $('check-headline').textContent = 'Checking the hosts of session ' + n + '…';
  $('check-headline').className = 'verdict';
  $('check-body').replaceChildren();
  let d;
  try {
    d = await api('/api/sessions/' + n + '/check', 'POST');
  } catch (e) {
    $('check-headline').textContent = 'The check could not run: ' + e.message;
    btn.disabled = false;
    return;
  }
  btn.disabled = false;
  if (n !== sess.n) return;
  $('check-via').textContent = '(from pilotwire\'s machine, ' + (d.via || 'directly') + ')';
  $('check-headline').textContent = d.headline || '';
  $('check-headline').className = 'verdict ' + (d.ready ? 'check-ready' : 'check-not-ready');
  const rows = [];
  for (const p of Array.isArray(d.phases) ? d.phases : []) {
    for (const h of Array.isArray(p.hosts) ? p.hosts : []) {
      const tr = el('tr', 'check-' + (h.verdict || ''));
      tr.setAttribute('data-host', h.host || '');
      const port = h.port && h.port !== 443 ? ':' + h.port : '';
      tr.append(td((h.host || '') + port, 'host'), td(h.service_name || h.service || ''), td(h.phase || ''));
      const v = td(String(h.verdict || '').toUpperCase(), 'verdict-cell res-' + (h.verdict === 'fail' ? 'failed' : h.verdict === 'warn' ? 'undecided' : 'ok'));
      tr.append(v, td(h.problem || h.sentence || ''));
      rows.push(tr);
    }
  }
  $('check-body').replaceChildren(...rows);
}

async function loadSession() {
  const gen = ++sess.gen;
  const n = sess.n;
  sess.lastLoad = Date.now();
  let r;
  try {
    r = await api('/api/sessions/' + n + '/report?format=json');
  } catch (e) {
    if (gen !== sess.gen) return;
    $('session-title').textContent = 'Session ' + n;
    $('session-summary').textContent = 'The timeline could not be loaded: ' + e.message;
    $('swim-figure').hidden = true;
    $('session-tables').hidden = true;
    return;
  }
  if (gen !== sess.gen) return;
  sess.report = r;
  sess.live = sessionLive();
  renderSession();
}

// loadSessionList fills the session picker and the "Compare with" list
// (pilotwire diff of this session and another, as its own page).
async function loadSessionList(n) {
  let d;
  try {
    d = await api('/api/sessions');
  } catch {
    return;
  }
  const pick = $('s-pick');
  const cmp = $('s-compare');
  const opts = [];
  const cmps = [el('option', '', '…')];
  cmps[0].value = '';
  for (const x of (Array.isArray(d.sessions) ? d.sessions : []).slice(0, MAX_OPTIONS)) {
    const label = x.number + ': ' + (x.device || x.client || '?') + ', ' + fmtDateTime(x.start) + ' (' + (x.duration || '') + ')';
    const o = el('option', '', label);
    o.value = String(x.number);
    opts.push(o);
    if (x.number !== n) {
      const c = el('option', '', label);
      c.value = String(x.number);
      cmps.push(c);
    }
  }
  pick.replaceChildren(...opts);
  pick.value = String(n);
  cmp.replaceChildren(...cmps);
}

// sessionSawFlows refreshes the timeline shown when new flows of its
// client arrive, at most once every SESSION_REFRESH_MS.
function sessionSawFlows(clients) {
  if (state.view !== 'session' || !sess.report || !sess.report.session) return;
  if (!clients.has(sess.report.session.client)) return;
  if (sess.timer) return;
  const wait = Math.max(0, sess.lastLoad + SESSION_REFRESH_MS - Date.now());
  sess.timer = setTimeout(() => {
    sess.timer = null;
    if (state.view === 'session') loadSession();
  }, wait);
}

function sessionLive() {
  const s = sess.report && sess.report.session;
  if (!s) return false;
  const d = state.devices.find((x) => x.client === s.client && x.session === sess.n);
  return !!d && d.state !== 'finished';
}

function milestoneHref(m, title) {
  const ids = (m.flow_ids || []).slice(0, 50);
  return '#/flows' + query({ ids: ids.join(','), title, total: m.flows || ids.length });
}

function renderSession() {
  const r = sess.report;
  const s = r.session || {};
  const who = (s.device ? s.device + ' (' + (s.client || 'no address') + ')' : s.client || 'unknown client') + (s.proxy ? ' via proxy ' + s.proxy : '');
  $('session-title').textContent = 'Session ' + (s.number || sess.n) + ': ' + who;
  $('session-summary').textContent = fmtDateTime(s.start) + ' to ' + fmtDateTime(s.end) + ' · ' + (s.duration || '') + ' · ' +
    s.flows + (s.flows === 1 ? ' flow' : ' flows') + ' · ' + fmtBytes(s.bytes);
  const n = sess.n;
  const dl = { 'dl-html': 'html', 'dl-markdown': 'markdown', 'dl-json': 'json' };
  for (const [id, fmt] of Object.entries(dl)) $(id).setAttribute('href', '/api/sessions/' + n + '/report?format=' + fmt + '&download=1');
  $('dl-har').setAttribute('href', '/api/sessions/' + n + '/har');
  $('session-downloads').hidden = false;
  const v = $('session-verdict');
  v.textContent = r.verdict || '';
  v.hidden = !r.verdict;
  $('swim-figure').hidden = false;
  $('session-tables').hidden = false;
  renderSwim();
  renderMilestones();
  renderPhases();
  renderAttention();
}

function offsetOf(iso, t0) {
  return (new Date(iso) - new Date(t0)) / 1000;
}

// stack places items (sorted by x) in rows so that none overlaps the one
// before it in its row; it returns each item's row and the row count.
function stack(xs, widths) {
  const ends = [];
  const rows = xs.map((x, i) => {
    let r = ends.findIndex((e) => e <= x);
    if (r < 0) {
      r = ends.length;
      ends.push(0);
    }
    ends[r] = x + widths[i];
    return r;
  });
  return { rows, count: Math.max(1, ends.length) };
}

function niceStep(span, maxTicks) {
  const steps = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 14400, 21600, 43200, 86400];
  for (const s of steps) if (span / s <= maxTicks) return s;
  return Math.ceil(span / maxTicks / 86400) * 86400;
}

// renderSwim draws the services over time as one SVG in pixels of the
// figure's width: milestone markers on top, phase names, one lane per
// service with its activity, an axis. Built with createElementNS only.
function renderSwim() {
  const r = sess.report;
  const box = $('swim');
  if (!r || $('swim-figure').hidden) return;
  const services = Array.isArray(r.services) ? r.services : [];
  const milestones = Array.isArray(r.milestones) ? r.milestones : [];
  const phases = Array.isArray(r.phases) ? r.phases : [];
  const s = r.session || {};
  const W = Math.max(720, box.parentElement.clientWidth - 18);
  const labelW = Math.min(260, Math.round(W * 0.24));
  const x0 = labelW + 10, x1 = W - 14;
  let d0 = Math.min(0, offsetOf(s.start, r.t0) || 0);
  let d1 = Math.max(offsetOf(s.end, r.t0) || 0, d0 + 1);
  for (const p of phases) d1 = Math.max(d1, p.end_offset_seconds || 0);
  for (const m of milestones) d1 = Math.max(d1, m.offset_seconds || 0);
  const x = (sec) => x0 + ((sec - d0) / (d1 - d0)) * (x1 - x0);

  const mStack = stack(milestones.map((m) => x(m.offset_seconds) - 8), milestones.map(() => 18));
  const phaseLabels = phases.map((p) => ({ x: x(p.start_offset_seconds) + 3, w: String(p.name || p.id).length * 6.4 + 10 }));
  const pStack = stack(phaseLabels.map((p) => p.x), phaseLabels.map((p) => p.w));
  const markerH = mStack.count * 16 + 4;
  const phaseTop = markerH + 2;
  const phaseH = pStack.count * 14 + 6;
  const laneTop = phaseTop + phaseH;
  const laneH = 22;
  const lanesH = Math.max(1, services.length) * laneH;
  const axisTop = laneTop + lanesH;
  const H = axisTop + 24;
  const live = sessionLive();

  const root = sv('svg', { width: W, height: H, viewBox: '0 0 ' + W + ' ' + H, role: 'group', 'aria-label': 'Services over time, with phases and milestones', class: 'swimlane' });

  // Phase bands behind everything; the current phase (the last one of a
  // session still going) highlighted.
  const gPhases = sv('g', { class: 'phases' });
  phases.forEach((p, i) => {
    const a = x(p.start_offset_seconds), b = x(p.end_offset_seconds);
    const current = live && i === phases.length - 1;
    const band = sv('rect', { class: 'band' + (i % 2 ? ' odd' : '') + (current ? ' current' : ''), x: a, y: phaseTop, width: Math.max(0, b - a), height: axisTop - phaseTop, 'data-phase': p.id || '' });
    band.append(sv('title', {}, (p.name || p.id) + ' ' + (p.start_offset || '') + '–' + (p.end_offset || '')));
    gPhases.append(band);
    gPhases.append(sv('line', { class: 'phase-line', x1: a, x2: a, y1: phaseTop, y2: axisTop }));
    const lbl = phaseLabels[i];
    const t = sv('text', { class: 'muted phase-name' + (current ? ' current' : ''), x: lbl.x, y: phaseTop + 11 + pStack.rows[i] * 14 }, (p.name || p.id) + (current ? ' (now)' : ''));
    gPhases.append(t);
  });
  root.append(gPhases);

  // Time grid.
  const step = niceStep(d1 - d0, Math.max(2, Math.floor((x1 - x0) / 90)));
  const gGrid = sv('g', { class: 'axis' });
  gGrid.append(sv('line', { class: 'gridline', x1: x0, x2: x1, y1: axisTop + 0.5, y2: axisTop + 0.5 }));
  for (let t = Math.ceil(d0 / step) * step; t <= d1 && gGrid.childNodes.length < 200; t += step) {
    const tx = x(t);
    gGrid.append(sv('line', { class: 'gridline', x1: tx, x2: tx, y1: laneTop, y2: axisTop + 4 }));
    gGrid.append(sv('text', { class: 'muted', x: tx, y: axisTop + 17, 'text-anchor': 'middle' }, (t < 0 ? '-' : '') + fmtDur(Math.abs(t))));
  }
  root.append(gGrid);

  // Lanes.
  const gLanes = sv('g', { class: 'lanes' });
  services.forEach((svc, i) => {
    const y = laneTop + i * laneH;
    const color = safeColor(svc.color);
    const g = sv('g', { class: 'lane', 'data-service': svc.id || '' });
    if (i % 2 === 1) g.append(sv('rect', { class: 'lane-bg', x: 0, y, width: W, height: laneH }));
    g.append(sv('rect', { x: 6, y: y + 6, width: 10, height: 10, rx: 2, fill: color }));
    let name = String(svc.name || svc.id || '');
    const maxChars = Math.floor((labelW - 24) / 6.6);
    const label = sv('text', { x: 22, y: y + 15 }, name.length > maxChars ? name.slice(0, Math.max(1, maxChars - 1)) + '…' : name);
    label.append(sv('title', {}, name + ': ' + svc.flows + ' flows, ' + fmtBytes((svc.bytes_up || 0) + (svc.bytes_down || 0))));
    g.append(label);
    for (const span of Array.isArray(svc.activity) ? svc.activity.slice(0, 5000) : []) {
      const a = x(span[0]), b = x(span[1]);
      const rect = sv('rect', { class: 'span', x: a, y: y + 5, width: Math.max(1.5, b - a), height: 12, fill: color });
      rect.append(sv('title', {}, name + ' ' + fmtDur(span[0]) + '–' + fmtDur(span[1])));
      g.append(rect);
    }
    gLanes.append(g);
  });
  root.append(gLanes);

  // Milestone markers: a numbered dot, a line down through the lanes, a
  // link to the milestone's flows.
  const gMarks = sv('g', { class: 'markers' });
  milestones.forEach((m, i) => {
    const mx = x(m.offset_seconds);
    const cy = 9 + mStack.rows[i] * 16;
    const a = sv('a', { class: 'marker', href: milestoneHref(m, 'Flows of milestone ' + (m.offset || '') + ' ' + (m.title || m.id)), 'data-milestone': m.id || '' });
    a.append(sv('title', {}, (i + 1) + '. ' + (m.offset || '') + ' ' + (m.title || m.id) + (m.likely ? ' (likely)' : '')));
    a.append(sv('line', { class: 'mline', x1: mx, x2: mx, y1: cy + 7, y2: axisTop }));
    a.append(sv('circle', { class: 'mdot' + (m.likely ? ' likely' : ''), cx: mx, cy, r: 7 }));
    a.append(sv('text', { class: 'mnum', x: mx, y: cy + 3.5 }, i + 1));
    gMarks.append(a);
  });
  root.append(gMarks);
  box.replaceChildren(root);
}

function renderMilestones() {
  const r = sess.report;
  const rows = (r.milestones || []).map((m, i) => {
    const tr = el('tr');
    tr.setAttribute('data-milestone', m.id || '');
    const num = td('', 'num');
    num.append(el('span', 'num-badge', i + 1));
    tr.append(num);
    tr.append(td(m.offset || '', 'num time'));
    const what = td('');
    what.append(el('strong', '', m.title || m.id));
    if (m.likely) what.append(document.createTextNode(' '), el('span', 'likely', 'likely'));
    if (m.text) what.append(el('span', 'text', m.text));
    if (m.why) what.append(el('span', 'text', 'Why likely: ' + m.why));
    tr.append(what);
    const hosts = td('');
    const ul = el('ul', 'hosts-list');
    for (const h of (m.hosts || []).slice(0, 8)) {
      const li = el('li');
      li.append(el('code', 'host', (h.plain_http ? 'http://' : '') + (h.host || '')));
      li.append(document.createTextNode(' '), el('span', 'muted', h.service_name || ''));
      if (h.url) li.title = h.url;
      ul.append(li);
    }
    hosts.append(ul);
    tr.append(hosts);
    const fl = td('', 'num');
    const a = el('a', 'flows-link', (m.flows || 0) + (m.flows === 1 ? ' flow' : ' flows'));
    a.setAttribute('href', milestoneHref(m, 'Flows of milestone ' + (m.offset || '') + ' ' + (m.title || m.id)));
    fl.append(a);
    tr.append(fl);
    return tr;
  });
  $('milestones-body').replaceChildren(...rows);
}

function renderPhases() {
  const r = sess.report;
  const live = sessionLive();
  const phases = r.phases || [];
  const rows = phases.map((p, i) => {
    const tr = el('tr', live && i === phases.length - 1 ? 'current' : '');
    tr.setAttribute('data-phase', p.id || '');
    const name = td('');
    name.append(el('strong', '', p.name || p.id));
    if (live && i === phases.length - 1) name.append(document.createTextNode(' '), el('span', 'badge active', 'now'));
    if (p.about) name.append(el('span', 'muted', ' — ' + p.about));
    tr.append(name);
    tr.append(td(p.start_offset || '', 'num'));
    tr.append(td(p.end_offset || '', 'num'));
    tr.append(td(fmtDur(p.duration_seconds), 'num'));
    tr.append(td(p.flows, 'num'));
    tr.append(td(fmtBytes(p.bytes), 'num'));
    const mostly = td('');
    for (const s of (p.services || []).slice(0, 3)) {
      const div = el('div');
      div.append(chip(s.name || s.service, serviceColor(s.service)));
      div.append(document.createTextNode(' '), el('span', 'muted', fmtBytes(s.bytes)));
      mostly.append(div);
    }
    tr.append(mostly);
    return tr;
  });
  $('phases-body').replaceChildren(...rows);
}

function serviceColor(id) {
  const s = (sess.report.services || []).find((x) => x.id === id);
  return s ? s.color : GREY;
}

function markCurrentPhase() {
  const live = sessionLive();
  if (sess.report && live !== sess.live) {
    sess.live = live;
    renderSwim();
    renderPhases();
  }
}

function renderAttention() {
  const items = sess.report.attention || [];
  const rows = items.map((a) => {
    const tr = el('tr');
    tr.append(td(a.offset || '', 'num time'));
    tr.append(td(String(a.kind || '').replace('-', ' '), 'kind-' + String(a.kind || '').replace(/[^a-z-]/g, '')));
    const h = td('', 'host');
    h.append(el('code', 'host', (a.host && a.host.host) || ''));
    if (a.host && a.host.service_name) h.append(el('span', 'dev-addr', a.host.service_name));
    tr.append(h);
    const det = td(a.detail || '');
    if (a.blocks_title) det.append(el('span', 'dev-addr', 'kept from firing: ' + a.blocks_title + (a.blocks_fired ? ' (fired on another try)' : '')));
    tr.append(det);
    const fl = td('', 'num');
    const link = el('a', 'flows-link', (a.flows || 0) + (a.flows === 1 ? ' flow' : ' flows'));
    link.setAttribute('href', milestoneHref(a, 'Flows of ' + String(a.kind || '').replace('-', ' ') + ' ' + ((a.host && a.host.host) || '')));
    fl.append(link);
    tr.append(fl);
    return tr;
  });
  $('attention-body').replaceChildren(...rows);
  $('attention-empty').hidden = items.length > 0;
}

// ---------------------------------------------------------------- hosts

const hosts = { gen: 0, unknown: [] };

async function showHosts() {
  const q = $('hosts-form').q.value.trim();
  const gen = ++hosts.gen;
  let d;
  try {
    d = await api('/api/hosts' + query({ q }));
  } catch (e) {
    if (gen === hosts.gen) $('unknown-count').textContent = 'could not be loaded: ' + e.message;
    return;
  }
  if (gen !== hosts.gen) return;
  hosts.unknown = Array.isArray(d.unknown) ? d.unknown : [];
  const cat = Array.isArray(d.catalog) ? d.catalog : [];
  $('unknown-body').replaceChildren(...hosts.unknown.map((h) => {
    const tr = el('tr', 'click');
    tr.append(td(h.host || '', 'host'), td(h.flows, 'num'), td(fmtBytes(h.bytes), 'num'), td(fmtDateTime(h.last), 'num'));
    tr.addEventListener('click', () => {
      location.hash = '#/flows' + query({ q: h.host || '' });
    });
    return tr;
  }));
  $('catalog-body').replaceChildren(...cat.map((h) => {
    const tr = el('tr');
    const p = td('', 'host');
    p.append(el('code', '', h.pattern || h.host || ''));
    if (h.purpose) p.append(el('span', 'dev-addr', h.purpose));
    tr.append(p);
    tr.append(td(h.service_name || h.service || ''), td(h.phase || ''), td(h.required || ''));
    return tr;
  }));
  $('unknown-count').textContent = '(' + hosts.unknown.length + ')';
  $('catalog-count').textContent = '(' + cat.length + ')';
  $('unknown-empty').hidden = hosts.unknown.length > 0;
  $('catalog-empty').hidden = cat.length > 0;
  $('copy-yaml').disabled = hosts.unknown.length === 0;
}

// catalogYAML writes the unknown hosts as entries of a user catalog file
// (--catalog FILE). Names are JSON-quoted, which YAML reads as the same
// double-quoted strings, so no host name can break the file's structure.
function catalogYAML(list) {
  const lines = [
    '# Hosts pilotwire saw that no catalog entry names. Set service and phase,',
    '# write what each is for, then load the file with --catalog FILE.',
    'entries:',
  ];
  for (const h of list) {
    lines.push('  - pattern: ' + JSON.stringify(String(h.host || '')));
    lines.push('    service: third-party');
    lines.push('    phase: other');
    lines.push('    required: unknown');
    lines.push('    purpose: ' + JSON.stringify('Seen in ' + h.flows + (h.flows === 1 ? ' flow, ' : ' flows, ') + fmtBytes(h.bytes) + '; not yet described'));
  }
  return lines.join('\n') + '\n';
}

async function copyYAML() {
  const text = catalogYAML(hosts.unknown);
  const area = $('yaml');
  area.value = text;
  area.hidden = false;
  let copied = false;
  try {
    if (navigator.clipboard && window.isSecureContext) {
      await navigator.clipboard.writeText(text);
      copied = true;
    }
  } catch {
    copied = false;
  }
  if (!copied) {
    area.focus();
    area.select();
    try {
      copied = document.execCommand('copy');
    } catch {
      copied = false;
    }
  }
  $('copy-note').textContent = copied
    ? 'Copied ' + hosts.unknown.length + (hosts.unknown.length === 1 ? ' entry.' : ' entries.')
    : 'Select the text below and copy it.';
}

// ---------------------------------------------------------------- live feed

const sse = { es: null, retry: null, everOpen: false };

function connect() {
  if (sse.retry) {
    clearTimeout(sse.retry);
    sse.retry = null;
  }
  const es = new EventSource('/api/events');
  sse.es = es;
  es.addEventListener('open', () => {
    const reconnected = sse.everOpen;
    sse.everOpen = true;
    state.live = true;
    $('status').className = 'status live';
    // Flows stored between the first page and this moment came before the
    // stream: fetch them (quietly the first time, saying so after a gap).
    if (state.lastId) catchUp(state.lastId, reconnected ? 'Reconnected, catching up…' : '');
    else banner('');
    refreshStatus();
  });
  es.addEventListener('flows', (e) => {
    const d = parseData(e);
    if (d) ingest(d.flows);
  });
  es.addEventListener('devices', (e) => {
    const d = parseData(e);
    if (d) renderDevices(d.devices);
  });
  es.addEventListener('lagged', (e) => {
    const d = parseData(e);
    const after = d && typeof d.after_id === 'number' ? d.after_id : state.lastId;
    catchUp(after);
  });
  es.addEventListener('error', () => {
    state.live = false;
    $('status').className = 'status down';
    if (es.readyState === EventSource.CLOSED) {
      // The browser gave up (an error status such as 429, or 401): try
      // again later, once.
      banner('Live updates stopped (too many viewers, or pilotwire went away); retrying in ' + SSE_RETRY_MS / 1000 + ' s.');
      es.close();
      if (!sse.retry) sse.retry = setTimeout(connect, SSE_RETRY_MS);
    }
  });
}

function parseData(e) {
  try {
    return JSON.parse(e.data);
  } catch {
    return null;
  }
}

// ---------------------------------------------------------------- wiring

function debounce(fn, ms) {
  let t = null;
  return (...args) => {
    if (t) clearTimeout(t);
    t = setTimeout(() => {
      t = null;
      fn(...args);
    }, ms);
  };
}

async function init() {
  window.addEventListener('hashchange', route);
  const form = $('filters');
  form.addEventListener('submit', (e) => e.preventDefault());
  for (const name of ['client', 'service', 'phase', 'problems', 'hidenoise']) form[name].addEventListener('change', formToHash);
  form.q.addEventListener('input', debounce(formToHash, 300));
  $('pause').addEventListener('click', () => {
    if (flows.paused) {
      reloadFlows();
    } else {
      flows.paused = true;
      flows.pending = 0;
      updateFlowTools();
    }
  });
  $('newpill').addEventListener('click', () => reloadFlows());
  $('older').addEventListener('click', () => {
    // Reading older flows is browsing: stop following so the list stays put.
    if (!flows.paused) {
      flows.paused = true;
      flows.pending = 0;
    }
    loadOlder();
  });
  $('detail-close').addEventListener('click', closeDetail);
  document.addEventListener('keydown', (e) => {
    if (e.key === 'Escape') closeDetail();
  });
  const hf = $('hosts-form');
  hf.addEventListener('submit', (e) => e.preventDefault());
  hf.q.addEventListener('input', debounce(showHosts, 250));
  $('copy-yaml').addEventListener('click', copyYAML);
  $('s-pick').addEventListener('change', () => {
    location.hash = '#/session/' + encodeURIComponent($('s-pick').value);
  });
  $('s-check').addEventListener('click', runCheck);
  $('s-compare').addEventListener('change', () => {
    const other = $('s-compare').value;
    if (other) window.open('/api/diff' + query({ a: sess.n, b: other, format: 'html' }), '_blank', 'noopener');
    $('s-compare').value = '';
  });
  window.addEventListener('resize', debounce(() => {
    if (state.view === 'session') renderSwim();
  }, 200));

  route();
  refreshDevices();
  setInterval(refreshStatus, STATUS_EVERY_MS);
  // Devices change state (active → idle → finished) with no new flow, so
  // the list is fetched now and then besides the pushed updates.
  setInterval(refreshDevices, DEVICES_EVERY_MS);
  loadCatalog();
  // A page over capture files has no live feed: nothing to connect to.
  await refreshStatus();
  if (state.feed) connect();
  // Tests wait for this before they look at the page.
  document.body.classList.add('ready');
}

init();
