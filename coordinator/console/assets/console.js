// The peerdist console's pages (docs/console.md). Plain JavaScript, no libraries: every value
// from the server is put into the page as text (never as HTML), and the API is the admin
// protocol's operations as /api/v1/… (docs/console-openapi.json).
'use strict';

// openOffice: the one office whose devices the offices page lists (the server lists one
// office's devices at a time: a fleet may have 100,000).
const state = { csrf: '', role: '', pollMs: 2000, timer: null, page: '', openOffice: '' };
const $ = (id) => document.getElementById(id);

// An element with attributes and children (strings become text nodes).
function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === 'class') e.className = v;
    else if (k === 'text') e.textContent = v;
    else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v);
  }
  for (const c of children) e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return e;
}

function svgEl(tag, attrs = {}) {
  const e = document.createElementNS('http://www.w3.org/2000/svg', tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  return e;
}

function say(text, isError = false) {
  const s = $('status');
  s.textContent = text;
  s.className = isError ? 'error' : '';
}

function bytes(n) {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return (i ? n.toFixed(1) : n) + ' ' + units[i];
}

function when(ms) { return ms ? new Date(ms).toLocaleString() : ''; }

// One admin operation: GET for the read-only ones, POST (with the session's CSRF token) for
// changes. Resolves to the reply; rejects with the server's error.
async function api(path, params = {}, method = 'GET') {
  let url = '/api/v1/' + path;
  const init = { method, credentials: 'same-origin', headers: {} };
  if (method === 'GET') {
    const q = new URLSearchParams(params).toString();
    if (q) url += '?' + q;
  } else {
    init.headers['Content-Type'] = 'application/json';
    init.headers['X-CSRF-Token'] = state.csrf;
    init.body = JSON.stringify(params);
  }
  const r = await fetch(url, init);
  if (r.status === 401) { showLogin(); throw new Error('log in again'); }
  const reply = await r.json();
  if (!r.ok || !reply.ok) {
    const err = new Error(reply.error || ('HTTP ' + r.status));
    err.reply = reply;
    throw err;
  }
  return reply;
}

function fillTable(table, rows) {
  const body = table.tBodies[0];
  body.replaceChildren(...rows.map((cells) => el('tr', {}, ...cells.map((c) => el('td', {}, c)))));
}

// ---- pages ----

async function loadSettings() {
  const [health, groups, contents] = await Promise.all([api('health'), api('groups/list'), api('contents')]);
  $('server-address').textContent = health.listen;
  $('server-id').textContent = health.server_id;
  $('server-label').textContent = health.server_id.slice(0, 8);
  if (document.activeElement !== $('optimisation-enabled')) $('optimisation-enabled').checked = health.distribution_optimisation;
  $('health-summary').textContent =
    `Coordinator ${health.version}; agents supported: ${health.supported_agent_versions}; ` +
    `${health.devices} devices (${health.online} online, ${health.unsupported} unsupported, ${health.unidentified} unidentified); ` +
    `${health.offices} offices (${health.topology} topology); ${health.contents} contents; database: ${health.database}.`;
  fillTable($('health-agents'), health.agents.map((a) => [a.version || '(none)', a.devices, a.online,
    a.supported ? 'yes' : el('strong', { class: 'flag', text: 'unsupported' })]));
  fillTable($('key-mismatches'), health.key_mismatches.map((m) => [m.address, m.name || m.device_id || '(unknown)', m.attempts, when(m.last_ms)]));
  const admin = state.role === 'admin';
  fillTable($('groups'), groups.groups.map((g) => [g.name, g.devices.join(', '), g.contents.join(', ') || '(every content)',
    admin ? el('button', { type: 'button', 'aria-label': 'Remove group ' + g.name, onclick: () => removeGroup(g.name) }, 'Remove') : '']));
  fillTable($('contents'), contents.contents.map((c) => [el('code', { title: c.content }, c.content.slice(0, 16) + '…'), c.name, bytes(c.size),
    c.signed ? 'yes' : 'no',
    admin ? el('button', { type: 'button', 'aria-label': 'Retire ' + c.name, onclick: () => retire(c) }, 'Retire') : '']));
  const select = $('prestage-content');
  if (document.activeElement !== select) {
    const chosen = select.value;
    select.replaceChildren(...contents.contents.map((c) => el('option', { value: c.content }, c.name + ' (' + c.content.slice(0, 8) + ')')));
    if (chosen) select.value = chosen;
  }
}

// An office's device list, open for the office chosen; opening one closes the others.
function details(o, devices, more) {
  const d = el('details', {}, el('summary', {}, `Devices (${o.device_count})`));
  if (o.name === state.openOffice) { d.open = true; d.append(devices, more); }
  d.addEventListener('toggle', () => {
    if (d.open && state.openOffice !== o.name) { state.openOffice = o.name; refresh(); }
    else if (!d.open && state.openOffice === o.name) { state.openOffice = ''; }
  });
  return d;
}

async function loadOffices() {
  const reply = await api('offices', state.openOffice ? { office: state.openOffice } : {});
  const children = {};
  for (const o of reply.offices) (children[o.parent] = children[o.parent] || []).push(o);
  const item = (o) => {
    const devices = el('table', { class: 'devices' },
      el('thead', {}, el('tr', {}, ...['Device', 'Address', 'Version', 'Online'].map((h) => el('th', { scope: 'col' }, h)))),
      el('tbody', {}, ...o.devices.map((d) => el('tr', {}, el('td', {}, d.name || d.device_id), el('td', {}, d.address),
        el('td', {}, d.supported ? d.version : el('strong', { class: 'flag' }, d.version + ' (unsupported)')), el('td', {}, d.online ? 'yes' : 'no')))));
    const more = o.device_count > o.devices.length ? el('p', {}, `… and ${o.device_count - o.devices.length} more`) : '';
    const li = el('li', { 'data-office': o.name },
      el('div', { class: 'office' },
        el('strong', {}, o.name), ` ${o.type}`, o.ranges.length ? ' · ' + o.ranges.join(', ') : '',
        ` · ${o.online}/${o.device_count} online · RVP ${o.rvp || '(none online)'}`,
        ` · WAN budget ${o.wan_budget ? bytes(o.wan_budget) + '/s' : 'none'}`,
        el('span', { class: 'rate' }, ` · receiving ${bytes(o.rate_bytes_per_s)}/s`)),
      details(o, devices, more));
    const kids = children[o.name] || [];
    if (kids.length) li.append(el('ul', {}, ...kids.map(item)));
    return li;
  };
  $('office-tree').replaceChildren(...(children[''] || []).map(item));
}

const sources = [['origin', 'Origin'], ['wan', 'WAN'], ['lan', 'LAN'], ['local', 'Local']];

// A horizontal bar of the bytes by source, as an SVG with a text equivalent.
function sourceChart(b) {
  const total = sources.reduce((s, [k]) => s + (b[k] || 0), 0);
  const svg = svgEl('svg', { width: 240, height: 14, role: 'img', class: 'chart',
    'aria-label': sources.map(([k, n]) => `${n} ${bytes(b[k] || 0)}`).join(', ') });
  let x = 0;
  for (const [k] of sources) {
    const w = total ? 240 * (b[k] || 0) / total : 0;
    if (w > 0) svg.append(svgEl('rect', { x, y: 0, width: w, height: 14, class: 'src-' + k }));
    x += w;
  }
  return svg;
}

async function loadRollouts() {
  const reply = await api('rollouts');
  const legend = el('p', { class: 'legend' }, ...sources.map(([k, n]) => el('span', {}, el('i', { class: 'src-' + k }), ' ' + n)));
  $('rollouts').replaceChildren(legend, ...reply.contents.map((c) => {
    const rows = c.offices.map((o) => el('tr', { 'data-office': o.office, 'data-percent': o.percent.toFixed(1) },
      el('th', { scope: 'row' }, o.office),
      el('td', {}, el('progress', { max: 100, value: o.percent, 'aria-label': `${o.office}: ${o.percent.toFixed(0)} %` }), ` ${o.percent.toFixed(0)} %`),
      el('td', {}, `${o.complete}/${o.devices} done, ${o.partial} fetching`),
      el('td', {}, `${bytes(o.rate_bytes_per_s)}/s`),
      el('td', {}, sourceChart(o.bytes))));
    const saved = c.default_bytes ? `${(100 * c.saved_fraction).toFixed(1)} % of the WAN and origin bytes saved against every device fetching from the origin (${bytes(c.wan_and_origin_bytes)} instead of ${bytes(c.default_bytes)})` : 'no device holds it yet';
    return el('article', { class: 'rollout', 'data-content': c.content },
      el('h3', {}, `${c.name} (${bytes(c.size)})`),
      el('p', {}, `${c.holders} devices hold it; ${saved}.`),
      el('table', {}, el('thead', {}, el('tr', {}, ...['Office', 'Progress', 'Devices', 'Receiving', 'Bytes by source'].map((h) => el('th', { scope: 'col' }, h)))),
        el('tbody', {}, ...rows)));
  }));
}

async function loadPrestaging() {
  if (!$('prestage-content').options.length) await loadSettings();
  const reply = await api('prestage/status');
  const admin = state.role === 'admin';
  $('prestages').replaceChildren(...reply.prestages.map((p) => el('article', { class: 'rollout', 'data-content': p.content },
    el('h3', {}, `${p.name}: by ${when(p.deadline_ms)} — ${p.done ? 'done' : p.late ? 'late' : 'on time'}`),
    admin ? el('button', { type: 'button', onclick: () => cancelPrestage(p.content) }, 'Cancel pre-staging') : '',
    el('table', {}, el('thead', {}, el('tr', {}, ...['Office', 'State', 'Progress', 'Rate', 'Expected finish', 'Foreground'].map((h) => el('th', { scope: 'col' }, h)))),
      el('tbody', {}, ...p.offices.map((o) => el('tr', {}, el('th', { scope: 'row' }, o.office), el('td', {}, o.state),
        el('td', {}, el('progress', { max: o.block_count || 1, value: o.verified_blocks, 'aria-label': o.office + ' progress' })),
        el('td', {}, o.rate_bytes_per_s ? bytes(o.rate_bytes_per_s) + '/s' : ''), el('td', {}, when(o.expected_finish_ms)),
        el('td', {}, o.raised ? 'raised' : '')))))))) ;
}

const pages = { settings: loadSettings, offices: loadOffices, rollouts: loadRollouts, prestaging: loadPrestaging };

// The page in view is refreshed every poll_ms while the tab is visible: one small GET per
// period per open page, which the coordinator answers from memory.
async function refresh() {
  clearTimeout(state.timer);
  const load = pages[state.page];
  if (load && !document.hidden) {
    try { await load(); } catch (e) { say(e.message, true); }
  }
  state.timer = setTimeout(refresh, state.pollMs);
}

function show(page) {
  for (const p of document.querySelectorAll('.page')) p.hidden = p.id !== 'page-' + page;
  for (const a of document.querySelectorAll('#nav a')) {
    if (a.getAttribute('href') === '#' + page) a.setAttribute('aria-current', 'page'); else a.removeAttribute('aria-current');
  }
  state.page = page;
  refresh();
}

function route() {
  if (!state.csrf) return showLogin();
  const page = location.hash.slice(1);
  show(pages[page] ? page : 'settings');
}

function showLogin() {
  state.csrf = '';
  clearTimeout(state.timer);
  $('nav').hidden = true;
  $('who').hidden = true;
  for (const p of document.querySelectorAll('.page')) p.hidden = p.id !== 'page-login';
  state.page = 'login';
  $('login-name').focus();
}

function loggedIn(reply) {
  state.csrf = reply.csrf;
  state.role = reply.role;
  state.pollMs = reply.poll_ms || 2000;
  $('who-name').textContent = `${reply.name} (${reply.role})`;
  $('nav').hidden = false;
  $('who').hidden = false;
  document.body.classList.toggle('viewer', reply.role !== 'admin');
  route();
}

// ---- actions ----

async function act(what, fn) {
  try {
    say(what + '…');
    await fn();
    say(what + ': done');
    await refresh();
  } catch (e) {
    say(what + ': ' + e.message, true);
  }
}

function lines(text) { return text.split(/[\n,]/).map((s) => s.trim()).filter(Boolean); }

function removeGroup(name) { act('Removing group ' + name, () => api('groups/remove', { name }, 'POST')); }

function retire(c) {
  if (!confirm(`Retire ${c.name}? Every device drops it from its cache.`)) return;
  act('Retiring ' + c.name, () => api('contents/retire', { content: c.content }, 'POST'));
}

function cancelPrestage(content) { act('Cancelling pre-staging', () => api('prestage/cancel', { content }, 'POST')); }

function base64(buffer) {
  let s = '';
  const b = new Uint8Array(buffer);
  for (let i = 0; i < b.length; i += 0x8000) s += String.fromCharCode(...b.subarray(i, i + 0x8000));
  return btoa(s);
}

async function manifests() {
  const files = [...$('publish-files').files];
  if (!files.length) throw new Error('choose one or more manifests');
  const origin = $('publish-origin').value.replace(/\/+$/, '');
  return Promise.all(files.map(async (f) => {
    const entry = { manifest: base64(await f.arrayBuffer()) };
    if (origin) entry.origins = [origin + '/' + encodeURIComponent(f.name.replace(/\.(pdm|manifest)$/, ''))];
    return entry;
  }));
}

function wire() {
  $('login-form').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    try {
      const r = await fetch('/api/login', { method: 'POST', credentials: 'same-origin', headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify({ name: $('login-name').value, password: $('login-password').value }) });
      const reply = await r.json();
      $('login-password').value = '';
      if (!r.ok) return say(reply.error + (r.headers.get('Retry-After') ? ` (${r.headers.get('Retry-After')} s)` : ''), true);
      say('');
      loggedIn(reply);
    } catch (e) { say(e.message, true); }
  });
  $('logout').addEventListener('click', async () => {
    await fetch('/api/logout', { method: 'POST', credentials: 'same-origin', headers: { 'X-CSRF-Token': state.csrf } });
    showLogin();
  });
  window.addEventListener('hashchange', route);
  document.addEventListener('visibilitychange', () => { if (!document.hidden && state.csrf) refresh(); });

  $('key-regenerate').addEventListener('click', () => $('key-dialog').showModal());
  $('key-dialog').addEventListener('close', () => {
    if ($('key-dialog').returnValue !== 'regenerate') return;
    act('Regenerating the shared key', async () => {
      const r = await api('fleet_key/regenerate', { confirm: 'regenerate' }, 'POST');
      $('key-value').value = r.fleet_key;
      $('key-new').hidden = false;
      $('key-value').select();
    });
  });
  $('optimisation-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    act('Distribution optimisation', () => api('optimisation', { enabled: $('optimisation-enabled').checked,
      prefix_v4: Number($('prefix-v4').value), prefix_v6: Number($('prefix-v6').value) }, 'POST'));
  });
  $('topology-file').addEventListener('change', async () => {
    const f = $('topology-file').files[0];
    if (f) $('topology-csv').value = await f.text();
  });
  $('topology-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    $('topology-errors').replaceChildren();
    act('Uploading the topology', async () => {
      try {
        const r = await api('topology/import', { csv: $('topology-csv').value }, 'POST');
        say(`Topology uploaded: ${r.offices} offices`);
      } catch (e) {
        const problems = (e.reply && e.reply.problems) || [];
        $('topology-errors').replaceChildren(...problems.map((p) => el('li', {}, p)));
        throw e;
      }
    });
  });
  $('group-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    act('Saving group ' + $('group-name').value, () => api('groups/set', { name: $('group-name').value,
      devices: lines($('group-devices').value), contents: lines($('group-contents').value) }, 'POST'));
  });
  $('publish-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    act('Publishing', async () => { for (const m of await manifests()) await api('publish', m, 'POST'); });
  });
  $('republish-all').addEventListener('click', () => act('Republishing all', async () => {
    const r = await api('republish', { contents: await manifests() }, 'POST');
    say(`Republished: ${r.added} added, ${r.updated} updated, ${r.unchanged} unchanged`);
  }));
  $('prestage-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    act('Pre-staging', () => api('prestage', { content: $('prestage-content').value, offices: lines($('prestage-offices').value),
      deadline_ms: new Date($('prestage-deadline').value).getTime() }, 'POST'));
  });
}

async function start() {
  wire();
  const r = await fetch('/api/session', { credentials: 'same-origin' });
  if (r.ok) loggedIn(await r.json()); else showLogin();
}

document.addEventListener('DOMContentLoaded', start);
