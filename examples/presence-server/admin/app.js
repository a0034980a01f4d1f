// The admin page of presence-server: plain JavaScript, no build step, no
// library. Live data comes over server-sent events (api/events): a
// "hello" with the chart's history and the recent log, "batch" arrays of
// joins and leaves, a "tick" every second with the totals and the
// largest channels, and "resync" when the server had to drop events for
// this page. Events are queued and drawn once per animation frame, so a
// burst of thousands keeps the page responsive.
'use strict';

const PAGE_SIZE = 50;
const LOG_ROWS = 200;
const CHANNEL_ROWS = 200;

const $ = (id) => document.getElementById(id);

const state = {
  source: null,
  channels: new Map(), // channel -> {nc, nu}
  channelCount: 0,
  selected: null,
  cursors: ['0'], // the cursor of each page seen, for "Previous"
  nextCursor: null,
  membersTimer: null,
  membersLoading: false,
  membersAgain: false,
  pending: [], // events not drawn yet
  frame: 0,
  history: [],
  historyLen: 600,
  own: [], // the page's own connections
};

// ---- helpers ---------------------------------------------------------------

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === 'class') e.className = v;
    else if (k.startsWith('data-')) e.setAttribute(k, v);
    else e[k] = v;
  }
  for (const c of children) e.append(c instanceof Node ? c : String(c ?? ''));
  return e;
}

function timeText(ms) {
  const d = new Date(ms);
  return d.toLocaleTimeString([], { hour12: false }) + '.' +
    String(d.getMilliseconds()).padStart(3, '0');
}

async function api(path, body) {
  const opts = body === undefined ? {} : {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify(body),
  };
  const res = await fetch('api/' + path, { credentials: 'same-origin', ...opts });
  let data = null;
  try { data = await res.json(); } catch (e) { data = null; }
  if (res.status === 401 && path !== 'auth') {
    showSignin();
  }
  return { status: res.status, data };
}

// ---- sign-in -----------------------------------------------------------------

function showSignin() {
  if (state.source) { state.source.close(); state.source = null; }
  $('app-view').hidden = true;
  $('totals').hidden = true;
  $('signin-view').hidden = false;
}

$('signin').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const r = await api('auth', { password: $('password').value });
  if (r.status === 200) {
    $('password').value = '';
    $('signin-error').textContent = '';
    start();
  } else {
    $('signin-error').textContent = (r.data && r.data.error) || 'sign-in failed';
  }
});

$('logout').addEventListener('click', async () => {
  await api('logout', {});
  showSignin();
});

// ---- live data -----------------------------------------------------------------

function setLive(on) {
  $('live').textContent = on ? 'live' : 'offline';
  $('live').className = 'live ' + (on ? 'on' : 'off');
}

function start() {
  $('signin-view').hidden = true;
  $('app-view').hidden = false;
  $('totals').hidden = false;
  if (state.source) state.source.close();
  const source = new EventSource('api/events');
  state.source = source;
  source.addEventListener('open', () => setLive(true));
  source.addEventListener('error', async () => {
    setLive(false);
    if (source.readyState === EventSource.CLOSED) {
      // Refused (signed out, or too many streams): ask why.
      const r = await api('session');
      if (r.status === 200 && state.source === source) setTimeout(start, 2000);
    }
  });
  source.addEventListener('hello', (m) => {
    const hello = JSON.parse(m.data);
    state.history = hello.history;
    state.historyLen = hello.history_len;
    $('log').tBodies[0].textContent = '';
    queue(hello.log);
    drawChart();
  });
  source.addEventListener('batch', (m) => queue(JSON.parse(m.data)));
  source.addEventListener('tick', (m) => onTick(JSON.parse(m.data)));
  source.addEventListener('resync', () => scheduleMembers(0));
}

function queue(events) {
  for (const e of events) state.pending.push(e);
  if (!state.frame) state.frame = requestAnimationFrame(flush);
}

// Draw what came since the last frame: the newest LOG_ROWS log lines, the
// channels' counts, and a reload of the members page if its channel moved.
function flush() {
  state.frame = 0;
  const events = state.pending;
  state.pending = [];
  let selectedTouched = false;
  for (const e of events) {
    if (e.nc === 0) state.channels.delete(e.ch);
    else state.channels.set(e.ch, { nc: e.nc, nu: e.nu });
    if (e.ch === state.selected) {
      selectedTouched = true;
      if (e.k === 'leave') markLeft(e.client);
    }
  }
  const body = $('log').tBodies[0];
  const frag = document.createDocumentFragment();
  for (const e of events.slice(-LOG_ROWS).reverse()) {
    frag.append(el('tr', { class: e.k + ' fresh', 'data-client': e.client, 'data-kind': e.k },
      el('td', {}, timeText(e.t)), el('td', {}, e.k), el('td', {}, e.ch),
      el('td', {}, e.user || '(anonymous)'), el('td', {}, e.client),
      el('td', {}, e.reason || '')));
  }
  body.prepend(frag);
  while (body.rows.length > LOG_ROWS) body.deleteRow(-1);
  if (events.length) renderChannels();
  if (selectedTouched) {
    const s = state.channels.get(state.selected) || { nc: 0, nu: 0 };
    showSelectedStats(s.nc, s.nu);
    scheduleMembers(100);
  }
}

function onTick(tick) {
  const s = tick.sample;
  $('t-connections').textContent = s.connections;
  $('t-clients').textContent = s.clients;
  $('t-memberships').textContent = s.memberships;
  $('t-channels').textContent = s.channels;
  state.channels = new Map(tick.channels.map((c) => [c.ch, { nc: c.nc, nu: c.nu }]));
  state.channelCount = tick.channel_count;
  renderChannels();
  state.history.push(s);
  if (state.history.length > state.historyLen) state.history.shift();
  drawChart();
}

// ---- channels ---------------------------------------------------------------------

// Rows are only rebuilt when what they show changed, and clicks are
// taken on the table body, so a row is clickable however often the
// counts move.
let channelsShown = '';
$('channels').tBodies[0].addEventListener('click', (ev) => {
  const tr = ev.target.closest('tr[data-channel]');
  if (tr) selectChannel(tr.dataset.channel);
});

function renderChannels() {
  const rows = [...state.channels.entries()]
    .sort((a, b) => b[1].nc - a[1].nc || (a[0] < b[0] ? -1 : 1))
    .slice(0, CHANNEL_ROWS);
  const shown = JSON.stringify([rows, state.selected]);
  if (shown === channelsShown) return;
  channelsShown = shown;
  const body = $('channels').tBodies[0];
  const frag = document.createDocumentFragment();
  for (const [ch, s] of rows) {
    const tr = el('tr', { 'data-channel': ch }, el('td', {}, ch),
      el('td', { class: 'num' }, s.nc), el('td', { class: 'num' }, s.nu));
    if (ch === state.selected) tr.classList.add('selected');
    frag.append(tr);
  }
  body.textContent = '';
  body.append(frag);
  $('channels-empty').hidden = rows.length > 0;
  const total = Math.max(state.channelCount, state.channels.size);
  $('channel-count').textContent = total > rows.length
    ? `(the ${rows.length} largest of ${total})` : `(${total})`;
}

// ---- members -----------------------------------------------------------------------

function selectChannel(ch) {
  state.selected = ch;
  state.cursors = ['0'];
  $('sel-channel').textContent = ch;
  renderChannels();
  loadMembers();
}

function showSelectedStats(nc, nu) {
  $('sel-stats').textContent = `${nc} clients, ${nu} users`;
}

function scheduleMembers(delay) {
  if (!state.selected || state.membersTimer) return;
  state.membersTimer = setTimeout(() => {
    state.membersTimer = null;
    loadMembers();
  }, delay);
}

function markLeft(client) {
  const row = $('members').querySelector(`tr[data-client="${CSS.escape(client)}"]`);
  if (row) row.remove();
}

async function loadMembers() {
  if (!state.selected) return;
  if (state.membersLoading) { state.membersAgain = true; return; }
  state.membersLoading = true;
  const ch = state.selected;
  const cursor = state.cursors[state.cursors.length - 1];
  const q = new URLSearchParams({ channel: ch, cursor, limit: PAGE_SIZE });
  const r = await api('members?' + q);
  state.membersLoading = false;
  if (ch === state.selected && r.status === 200) renderMembers(r.data);
  else if (r.status !== 200) $('page-info').textContent = (r.data && r.data.error) || 'error';
  if (state.membersAgain) { state.membersAgain = false; loadMembers(); }
}

function renderMembers(page) {
  state.nextCursor = page.next_cursor || null;
  showSelectedStats(page.nc, page.nu);
  const body = $('members').tBodies[0];
  const frag = document.createDocumentFragment();
  for (const m of page.members) {
    frag.append(el('tr', { 'data-client': m.client, 'data-user': m.user },
      el('td', {}, m.client), el('td', {}, m.user || '(anonymous)'),
      el('td', { title: m.conn_info || '' }, m.conn_info || ''),
      el('td', {}, timeText(m.joined_at))));
  }
  body.textContent = '';
  body.append(frag);
  const n = state.cursors.length;
  const pages = Math.max(1, Math.ceil(page.nc / PAGE_SIZE));
  $('page-info').textContent = `page ${n} of about ${pages}, ${PAGE_SIZE} per page`;
  $('page-first').disabled = n === 1;
  $('page-prev').disabled = n === 1;
  $('page-next').disabled = !state.nextCursor;
}

$('page-next').addEventListener('click', () => {
  if (!state.nextCursor) return;
  state.cursors.push(state.nextCursor);
  loadMembers();
});
$('page-prev').addEventListener('click', () => {
  if (state.cursors.length > 1) state.cursors.pop();
  loadMembers();
});
$('page-first').addEventListener('click', () => {
  state.cursors = ['0'];
  loadMembers();
});

// ---- connect as a user: the client protocol over a WebSocket -----------------------

$('connect-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const user = $('connect-user').value.trim();
  const channel = $('connect-channel').value.trim();
  const r = await api('connect_token', { user, channel });
  if (r.status !== 200) {
    addOwn({ user, channel, status: 'refused: ' + ((r.data && r.data.error) || r.status) });
    return;
  }
  const scheme = location.protocol === 'https:' ? 'wss://' : 'ws://';
  const ws = new WebSocket(scheme + location.host + r.data.path);
  const conn = addOwn({ user, channel, status: 'connecting', ws });
  ws.onopen = () => {
    ws.send(JSON.stringify({ id: 1, connect: { token: r.data.token, name: 'admin page' } }));
  };
  ws.onmessage = (m) => {
    for (const line of String(m.data).split('\n')) {
      if (!line) continue;
      const reply = JSON.parse(line);
      if (Object.keys(reply).length === 0) { ws.send('{}'); continue; } // ping
      if (reply.id === 1 && reply.connect) {
        conn.client = reply.connect.client;
        ws.send(JSON.stringify({ id: 2, subscribe: { channel, token: r.data.sub_token } }));
      } else if (reply.id === 2) {
        updateOwn(conn, reply.error ? 'subscribe refused: ' + reply.error.message : 'in the channel');
      } else if (reply.error) {
        updateOwn(conn, 'error: ' + reply.error.message);
      }
    }
  };
  ws.onclose = (c) => updateOwn(conn, `closed (${c.code}${c.reason ? ' ' + c.reason : ''})`, true);
});

function addOwn(conn) {
  const li = el('li', { 'data-user': conn.user });
  conn.li = li;
  state.own.push(conn);
  $('own-connections').append(li);
  updateOwn(conn, conn.status, !conn.ws);
  return conn;
}

function updateOwn(conn, status, closed) {
  conn.status = status;
  conn.li.textContent = `${conn.user} in ${conn.channel}: ${status}` +
    (conn.client ? ` (client ${conn.client})` : '') + ' ';
  conn.li.dataset.status = closed ? 'closed' : status;
  if (!closed && conn.ws) {
    const b = el('button', { type: 'button' }, 'Disconnect');
    b.addEventListener('click', () => conn.ws.close(1000, 'admin page'));
    conn.li.append(b);
  }
}

// ---- test members -------------------------------------------------------------------

$('test-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const channel = $('test-channel').value.trim();
  const count = Number($('test-count').value);
  $('test-result').textContent = `adding ${count} members to ${channel}...`;
  const t0 = performance.now();
  const r = await api('test_members', { channel, count });
  const ms = Math.round(performance.now() - t0);
  $('test-result').textContent = r.status === 200
    ? `added ${r.data.added} members to ${channel} in ${ms} ms`
    : `failed: ${(r.data && r.data.error) || r.status}`;
});

$('test-remove').addEventListener('click', async () => {
  const channel = $('test-channel').value.trim();
  const r = await api('test_members', { channel, count: 0 });
  $('test-result').textContent = r.status === 200
    ? `removed ${r.data.removed} test members from ${channel}`
    : `failed: ${(r.data && r.data.error) || r.status}`;
});

// ---- chart ------------------------------------------------------------------------------

function drawChart() {
  const canvas = $('chart');
  const ratio = window.devicePixelRatio || 1;
  const w = canvas.clientWidth || 560;
  const h = canvas.clientHeight || 160;
  if (canvas.width !== Math.round(w * ratio)) {
    canvas.width = Math.round(w * ratio);
    canvas.height = Math.round(h * ratio);
  }
  const g = canvas.getContext('2d');
  g.setTransform(ratio, 0, 0, ratio, 0, 0);
  g.clearRect(0, 0, w, h);
  const data = state.history.slice(-state.historyLen);
  if (data.length === 0) return;
  const max = Math.max(1, ...data.map((s) => Math.max(s.connections, s.memberships)));
  const left = 48;
  const top = 8;
  const bottom = h - 18;
  // The last minute at least, growing to the whole history as it fills.
  const span = Math.min(state.historyLen, Math.max(60, data.length)) - 1;
  const x = (i) => left + (w - left - 8) * (span - (data.length - 1 - i)) / span;
  const y = (v) => bottom - (bottom - top) * v / max;
  g.strokeStyle = '#e5e7eb';
  g.fillStyle = '#6b7280';
  g.font = '11px system-ui, sans-serif';
  for (const v of [0, max / 2, max]) {
    g.beginPath(); g.moveTo(left, y(v)); g.lineTo(w - 8, y(v)); g.stroke();
    g.fillText(String(Math.round(v)), 4, y(v) + 4);
  }
  const ago = span + 1 >= 120 ? `${Math.round((span + 1) / 60)} min ago` : `${span + 1} s ago`;
  g.fillText(ago, left, h - 4);
  g.fillText('now', w - 30, h - 4);
  for (const [key, color] of [['connections', '#2563eb'], ['memberships', '#d97706']]) {
    g.strokeStyle = color;
    g.lineWidth = 2;
    g.beginPath();
    data.forEach((s, i) => (i ? g.lineTo(x(i), y(s[key])) : g.moveTo(x(i), y(s[key]))));
    g.stroke();
  }
  const last = data[data.length - 1];
  $('chart-range').textContent = `now: ${last.connections} connections, ${last.memberships} memberships`;
}
window.addEventListener('resize', drawChart);

// ---- start -------------------------------------------------------------------------------

(async () => {
  const r = await api('session');
  if (r.status === 200) start(); else showSignin();
})();
