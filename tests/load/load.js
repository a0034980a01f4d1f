'use strict';
// Load and churn generator for the presence server (scripts/load-test.sh).
//
// Holds N WebSocket connections (client protocol v2, raw JSON over ws),
// each subscribed to several channels, and churns subscribe, unsubscribe,
// clean disconnect and abrupt socket death (the TCP socket destroyed, no
// close frame) at a bounded rate for a bounded time, while presence and
// presence_stats are queried over the HTTP API. It keeps what it believes
// every channel's presence is, and at the end checks, for every channel,
// that the server's presence (HTTP) is exactly that: no ghost, no loss.
// Also: every command and every HTTP request got its answer, the server's
// RSS came back to within 10% of its level after a warm-up (a full cycle
// of connections and a few seconds of churn) once everyone left, and the server exits cleanly on SIGTERM (a sanitizer build
// then reports no error and no leak).
//
//   node load.js --server BIN [--connections N] [--seconds S] [--rate R]
//                [--channels C] [--per-connection K] [--query-rate Q]
//                [--sanitizer] [--json FILE]
//
// Prints a summary and exits non-zero when a check fails. The open-file
// limit is the caller's to raise (scripts/load-test.sh does).

const { spawn } = require('node:child_process');
const crypto = require('node:crypto');
const fs = require('node:fs');
const http = require('node:http');
const net = require('node:net');
const os = require('node:os');
const path = require('node:path');
const WebSocket = require('ws');

// ------------------------------------------------------------ arguments

function parseArgs(argv) {
  const o = {
    server: null, connections: 5000, seconds: 60, rate: 200, channels: 0,
    perConnection: 4, queryRate: 40, sanitizer: false, json: null,
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const v = () => argv[++i];
    if (a === '--server') o.server = v();
    else if (a === '--connections') o.connections = +v();
    else if (a === '--seconds') o.seconds = +v();
    else if (a === '--rate') o.rate = +v();
    else if (a === '--channels') o.channels = +v();
    else if (a === '--per-connection') o.perConnection = +v();
    else if (a === '--query-rate') o.queryRate = +v();
    else if (a === '--sanitizer') o.sanitizer = true;
    else if (a === '--json') o.json = v();
    else throw new Error(`unknown argument ${a}`);
  }
  if (!o.server) throw new Error('--server BIN is required');
  if (!o.channels) o.channels = Math.max(20, Math.round(o.connections / 10));
  return o;
}

const opts = parseArgs(process.argv.slice(2));
const SECRET = 'load-secret';
const API_KEY = 'load-api-key';
const NS = 'load';

// ------------------------------------------------------------ helpers

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const now = () => Date.now();
const rand = (n) => Math.floor(Math.random() * n);
const log = (...a) => console.log('[load]', ...a);

function token(user) {
  const b64 = (v) => Buffer.from(JSON.stringify(v)).toString('base64url');
  const signing = `${b64({ alg: 'HS256', typ: 'JWT' })}.${b64({ sub: user })}`;
  return `${signing}.${crypto.createHmac('sha256', SECRET).update(signing).digest('base64url')}`;
}

function percentile(sorted, p) {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))];
}

function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

function rssKb(pid) {
  const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  const m = /VmRSS:\s+(\d+) kB/.exec(status);
  return m ? +m[1] : 0;
}

function threadsOf(pid) {
  const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  const m = /Threads:\s+(\d+)/.exec(status);
  return m ? +m[1] : 0;
}

// ------------------------------------------------------------ the server

let port;
let server;
let serverErr = '';
let serverExit = null;

async function startServer() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'presence-load-'));
  port = await freePort();
  const config = {
    token_hmac_secret_key: SECRET,
    api_key: API_KEY,
    // Room for the churn's reconnections while old connections close.
    client_connection_limit: connectionLimit(),
    namespaces: [{
      name: NS, presence: true, join_leave: true,
      allow_subscribe_for_client: true, allow_presence_for_subscriber: true,
    }],
  };
  const file = path.join(dir, 'config.json');
  fs.writeFileSync(file, JSON.stringify(config));
  const env = { ...process.env, PRESENCE_SERVER_STATE_DIR: dir };
  if (opts.sanitizer) {
    env.ASAN_OPTIONS = 'detect_leaks=1:halt_on_error=0:log_path=' + path.join(dir, 'asan');
    env.UBSAN_OPTIONS = 'print_stacktrace=1:halt_on_error=0:log_path=' + path.join(dir, 'ubsan');
  }
  server = spawn(opts.server, ['--config', file, '--port', String(port)],
    { stdio: ['ignore', 'pipe', 'pipe'], env });
  server.dir = dir;
  let out = '';
  server.stdout.on('data', (d) => { out += d; });
  server.stderr.on('data', (d) => { serverErr += d; });
  server.exited = new Promise((resolve) => server.on('exit', (code, signal) => {
    serverExit = { code, signal };
    resolve(serverExit);
  }));
  const deadline = now() + 60000;
  while (!/listening on/.test(out)) {
    if (serverExit) throw new Error(`the server did not start:\n${serverErr}`);
    if (now() > deadline) throw new Error('the server did not start in 60 s');
    await sleep(50);
  }
}

// ------------------------------------------------------------ HTTP API

const httpAgent = new http.Agent({ keepAlive: false, maxSockets: 64 });
const stats = {
  httpRequests: 0, httpAnswered: 0, httpFailures: [],
  presenceLatencies: [], statsLatencies: [],
  commands: 0, replies: 0, errorReplies: [], unexpectedCloses: [],
  ops: { subscribe: 0, unsubscribe: 0, disconnect: 0, abrupt: 0 },
  opsDone: 0,
};

function api(route, body) {
  stats.httpRequests++;
  const data = JSON.stringify(body);
  return new Promise((resolve, reject) => {
    const req = http.request({
      host: '127.0.0.1', port, path: route, method: 'POST', agent: httpAgent,
      headers: { 'Content-Type': 'application/json', 'X-API-Key': API_KEY,
        'Content-Length': Buffer.byteLength(data) },
      timeout: 30000,
    }, (res) => {
      let text = '';
      res.on('data', (d) => { text += d; });
      res.on('end', () => {
        let json;
        try { json = JSON.parse(text); } catch { json = undefined; }
        if (res.statusCode !== 200 || !json || !json.result) {
          reject(new Error(`${route}: ${res.statusCode} ${text.slice(0, 200)}`));
          return;
        }
        stats.httpAnswered++;
        resolve(json.result);
      });
    });
    req.on('timeout', () => req.destroy(new Error(`${route}: no answer in 30 s`)));
    req.on('error', reject);
    req.end(data);
  });
}

// ------------------------------------------------------------ clients

const channelName = (i) => `${NS}:ch${i}`;
const connectionLimit = () => opts.connections + 64;
// What the generator believes: channel -> Map(client id -> user).
const belief = new Map();
for (let i = 0; i < opts.channels; i++) belief.set(channelName(i), new Map());

const clients = new Set();
let userSeq = 0;

class Client {
  constructor() {
    // Users have one or two connections: num_users is tested too.
    this.user = `u${(userSeq++) % Math.max(1, Math.floor(opts.connections * 0.7))}`;
    this.id = null;
    this.subs = new Set();
    this.pending = new Map(); // command id -> { resolve, reject }
    this.nextId = 1;
    this.busy = false;
    this.leaving = false;
  }

  open() {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(`ws://127.0.0.1:${port}/connection/websocket`,
        { perMessageDeflate: false, handshakeTimeout: 60000 });
      this.ws = ws;
      ws.on('message', (data) => this.onMessage(data.toString()));
      ws.on('close', (code, reason) => this.onClose(code, reason.toString()));
      ws.on('error', (e) => { if (!this.id) reject(e); });
      ws.once('open', resolve);
    });
  }

  onMessage(text) {
    for (const line of text.split('\n')) {
      if (line === '') continue;
      if (line === '{}') { // server ping: pong
        if (this.ws.readyState === WebSocket.OPEN) this.ws.send('{}');
        continue;
      }
      const m = JSON.parse(line);
      if (m.id) {
        const p = this.pending.get(m.id);
        if (!p) continue;
        this.pending.delete(m.id);
        stats.replies++;
        if (m.error) {
          stats.errorReplies.push({ user: this.user, error: m.error });
          p.reject(new Error(JSON.stringify(m.error)));
        } else {
          p.resolve(m);
        }
      }
    }
  }

  onClose(code, reason) {
    if (!this.leaving) {
      stats.unexpectedCloses.push({ user: this.user, code, reason });
    }
    for (const p of this.pending.values()) p.reject(new Error(`closed ${code}`));
    this.pending.clear();
    clients.delete(this);
  }

  call(method, params) {
    const id = this.nextId++;
    stats.commands++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.ws.send(JSON.stringify({ [method]: params, id }));
    });
  }

  // Connected and subscribed before anyone may pick it for churn.
  async connect(channels) {
    this.busy = true;
    await this.open();
    const r = await this.call('connect', { token: token(this.user) });
    this.id = r.connect.client;
    for (const ch of channels) await this.subscribe(ch);
    clients.add(this);
    this.busy = false;
  }

  async subscribe(ch) {
    // One subscription in ten asks for join/leave pushes.
    await this.call('subscribe', { channel: ch, join_leave: rand(10) === 0 });
    if (!this.leaving) {
      this.subs.add(ch);
      belief.get(ch).set(this.id, this.user);
    }
  }

  async unsubscribe(ch) {
    this.subs.delete(ch);
    belief.get(ch).delete(this.id);
    await this.call('unsubscribe', { channel: ch });
  }

  forget() {
    for (const ch of this.subs) belief.get(ch).delete(this.id);
    this.subs.clear();
    clients.delete(this);
  }

  leaveCleanly() {
    this.leaving = true;
    this.forget();
    this.ws.close(1000, 'bye');
  }

  die() {
    this.leaving = true;
    this.forget();
    const sock = this.ws._socket;
    // Half with a FIN, half with an RST: neither sends a close frame.
    if (sock && rand(2) === 0 && typeof sock.resetAndDestroy === 'function') sock.resetAndDestroy();
    else if (sock) sock.destroy();
    else this.ws.terminate();
  }
}

function randomChannels(k) {
  const set = new Set();
  while (set.size < Math.min(k, opts.channels)) set.add(channelName(rand(opts.channels)));
  return [...set];
}

async function connectMany(n) {
  const started = now();
  let next = 0;
  let failed = 0;
  const wave = 100;
  const worker = async () => {
    while (next < n) {
      next++;
      const c = new Client();
      try {
        await c.connect(randomChannels(opts.perConnection));
      } catch (e) {
        failed++;
        if (failed <= 5) log('connect failed:', e.message);
      }
    }
  };
  await Promise.all(Array.from({ length: wave }, worker));
  if (failed) throw new Error(`${failed} connections failed`);
  return (now() - started) / 1000;
}

async function leaveAll() {
  for (const c of [...clients]) {
    if (rand(2) === 0) c.leaveCleanly(); else c.die();
  }
}

// ------------------------------------------------------------ checks

async function waitPresenceMatches(timeoutMs) {
  const deadline = now() + timeoutMs;
  let diff;
  for (;;) {
    diff = await comparePresence();
    if (diff.ghosts.length === 0 && diff.lost.length === 0 && diff.badStats.length === 0) return diff;
    if (now() > deadline) return diff;
    await sleep(500);
  }
}

async function comparePresence() {
  const ghosts = [];
  const lost = [];
  const badStats = [];
  const names = [...belief.keys()];
  let next = 0;
  const worker = async () => {
    while (next < names.length) {
      const ch = names[next++];
      const want = belief.get(ch);
      const [p, s] = await Promise.all([
        api('/api/presence', { channel: ch }),
        api('/api/presence_stats', { channel: ch })]);
      const got = p.presence;
      for (const [id, info] of Object.entries(got)) {
        if (!want.has(id)) ghosts.push({ ch, id });
        else if (want.get(id) !== info.user) lost.push({ ch, id, user: info.user });
      }
      for (const id of want.keys()) if (!(id in got)) lost.push({ ch, id });
      const users = new Set(want.values()).size;
      if (s.num_clients !== want.size || s.num_users !== users) {
        badStats.push({ ch, got: s, want: { num_clients: want.size, num_users: users } });
      }
    }
  };
  await Promise.all(Array.from({ length: 16 }, worker));
  return { ghosts, lost, badStats };
}

// ------------------------------------------------------------ the run

async function churn(seconds) {
  const started = now();
  const end = started + seconds * 1000;
  const inflight = new Set();
  let budget = 0;
  let last = started;
  // HTTP queries at their own rate, latencies recorded.
  let queriesRunning = true;
  const queries = (async () => {
    const interval = 1000 / Math.max(1, opts.queryRate);
    const running = new Set();
    while (queriesRunning) {
      const ch = channelName(rand(opts.channels));
      const t0 = process.hrtime.bigint();
      const isStats = rand(2) === 0;
      const q = api(isStats ? '/api/presence_stats' : '/api/presence', { channel: ch })
        .then(() => {
          const ms = Number(process.hrtime.bigint() - t0) / 1e6;
          (isStats ? stats.statsLatencies : stats.presenceLatencies).push(ms);
        })
        .catch((e) => stats.httpFailures.push(e.message))
        .finally(() => running.delete(q));
      running.add(q);
      await sleep(interval);
    }
    await Promise.all(running);
  })();

  const pick = () => {
    const all = [...clients];
    for (let tries = 0; tries < 20; tries++) {
      const c = all[rand(all.length)];
      if (c && !c.busy && !c.leaving) return c;
    }
    return null;
  };
  const op = async (c) => {
    c.busy = true;
    const r = rand(100);
    try {
      if (r < 35) {
        const free = randomChannels(opts.perConnection + 2).filter((ch) => !c.subs.has(ch));
        if (free.length) { stats.ops.subscribe++; await c.subscribe(free[0]); }
      } else if (r < 70) {
        const mine = [...c.subs];
        if (mine.length) { stats.ops.unsubscribe++; await c.unsubscribe(mine[rand(mine.length)]); }
      } else {
        if (r < 85) { stats.ops.disconnect++; c.leaveCleanly(); } else { stats.ops.abrupt++; c.die(); }
        const fresh = new Client();
        await fresh.connect(randomChannels(opts.perConnection));
      }
      stats.opsDone++;
    } catch (e) {
      if (!c.leaving) stats.unexpectedCloses.push({ user: c.user, error: e.message });
    } finally {
      c.busy = false;
    }
  };
  while (now() < end) {
    const t = now();
    budget += ((t - last) / 1000) * opts.rate;
    last = t;
    while (budget >= 1) {
      budget--;
      const c = pick();
      if (!c) break;
      const p = op(c).finally(() => inflight.delete(p));
      inflight.add(p);
    }
    await sleep(10);
  }
  await Promise.all(inflight);
  queriesRunning = false;
  await queries;
  return (now() - started) / 1000;
}

async function main() {
  const report = { options: opts, checks: {} };
  const fail = [];
  await startServer();
  const pid = server.pid;
  report.rssFreshKb = rssKb(pid);
  report.serverThreads = threadsOf(pid);
  log(`server pid ${pid} on 127.0.0.1:${port}, ${report.serverThreads} threads, RSS ${report.rssFreshKb} kB`);

  // Warm-up: a whole cycle with as many connections as the server takes,
  // so that the server's tables, buffers and the allocator's arenas have
  // grown once. "Start" is the RSS
  // after it: what a server that has served its full load once holds.
  log(`warm-up: ${connectionLimit()} connections, ${opts.perConnection} channels each`);
  report.warmupConnectSeconds = await connectMany(connectionLimit());
  // ... and a few seconds of the churn itself with N of them, so that the
  // allocator has seen the run's pattern of allocations once.
  for (const c of [...clients].slice(0, connectionLimit() - opts.connections)) c.leaveCleanly();
  await waitPresenceMatches(30000);
  await churn(Math.min(5, Math.max(1, opts.seconds / 4)));
  await leaveAll();
  let diff = await waitPresenceMatches(30000);
  if (diff.ghosts.length || diff.lost.length) fail.push('warm-up left presence behind');
  await sleep(1000);
  report.rssStartKb = rssKb(pid);
  log(`after warm-up: RSS ${report.rssStartKb} kB (the start)`);

  log(`holding ${opts.connections} connections`);
  report.connectSeconds = await connectMany(opts.connections);
  report.connectionsHeld = clients.size;
  report.rssLoadedKb = rssKb(pid);
  log(`connected in ${report.connectSeconds.toFixed(1)} s; RSS ${report.rssLoadedKb} kB; churning ${opts.seconds} s at ${opts.rate} ops/s`);
  const opsBefore = stats.opsDone;
  const kindsBefore = { ...stats.ops };
  stats.presenceLatencies.length = 0;
  stats.statsLatencies.length = 0;
  const churnSeconds = await churn(opts.seconds);
  report.churnSeconds = churnSeconds;
  report.opsPerSecond = (stats.opsDone - opsBefore) / churnSeconds;
  report.ops = Object.fromEntries(Object.entries(stats.ops).map(([k, v]) => [k, v - kindsBefore[k]]));
  report.rssPeakKb = rssKb(pid);
  report.connectionsAtEnd = clients.size;

  // Exact presence for every channel.
  diff = await waitPresenceMatches(20000);
  report.checks.ghosts = diff.ghosts.length;
  report.checks.lost = diff.lost.length;
  report.checks.badStats = diff.badStats.length;
  if (diff.ghosts.length) fail.push(`${diff.ghosts.length} ghost memberships, e.g. ${JSON.stringify(diff.ghosts.slice(0, 3))}`);
  if (diff.lost.length) fail.push(`${diff.lost.length} lost memberships, e.g. ${JSON.stringify(diff.lost.slice(0, 3))}`);
  if (diff.badStats.length) fail.push(`${diff.badStats.length} channels with wrong stats, e.g. ${JSON.stringify(diff.badStats.slice(0, 2))}`);
  report.memberships = [...belief.values()].reduce((n, m) => n + m.size, 0);

  // Everyone leaves.
  await leaveAll();
  diff = await waitPresenceMatches(30000);
  report.checks.leftoverAfterLeave = diff.ghosts.length;
  if (diff.ghosts.length) fail.push(`${diff.ghosts.length} memberships left after everyone left`);
  await sleep(2000);
  report.rssEndKb = rssKb(pid);
  report.rssEndVsStart = report.rssEndKb / report.rssStartKb;
  log(`everyone left: RSS ${report.rssEndKb} kB (${(100 * report.rssEndVsStart).toFixed(1)}% of the start)`);
  if (!opts.sanitizer && report.rssEndVsStart > 1.10) {
    fail.push(`RSS ${report.rssEndKb} kB is more than 110% of the start (${report.rssStartKb} kB)`);
  }

  // Every request got its answer.
  report.commands = stats.commands;
  report.replies = stats.replies;
  report.httpRequests = stats.httpRequests;
  report.httpAnswered = stats.httpAnswered;
  if (stats.replies !== stats.commands) fail.push(`${stats.commands - stats.replies} commands without a reply`);
  if (stats.httpAnswered !== stats.httpRequests) fail.push(`${stats.httpRequests - stats.httpAnswered} HTTP requests without an answer: ${stats.httpFailures.slice(0, 3)}`);
  if (stats.errorReplies.length) fail.push(`${stats.errorReplies.length} error replies, e.g. ${JSON.stringify(stats.errorReplies.slice(0, 3))}`);
  if (stats.unexpectedCloses.length) fail.push(`${stats.unexpectedCloses.length} connections closed by the server, e.g. ${JSON.stringify(stats.unexpectedCloses.slice(0, 3))}`);

  const lat = stats.presenceLatencies.sort((a, b) => a - b);
  const slat = stats.statsLatencies.sort((a, b) => a - b);
  report.presenceQueries = lat.length;
  report.presenceP50ms = percentile(lat, 0.5);
  report.presenceP99ms = percentile(lat, 0.99);
  report.statsQueries = slat.length;
  report.statsP50ms = percentile(slat, 0.5);
  report.statsP99ms = percentile(slat, 0.99);

  // A clean shutdown; with a sanitizer build, its reports.
  server.kill('SIGTERM');
  const exit = await Promise.race([server.exited, sleep(60000).then(() => null)]);
  if (!exit) {
    server.kill('SIGKILL');
    fail.push('the server did not stop within 60 s of SIGTERM');
  } else if (exit.code !== 0) {
    fail.push(`the server exited with ${JSON.stringify(exit)}`);
  }
  report.serverExit = exit;
  if (opts.sanitizer) {
    const logs = fs.readdirSync(server.dir).filter((f) => /^(asan|ubsan)\./.test(f));
    const text = logs.map((f) => fs.readFileSync(path.join(server.dir, f), 'utf8')).join('\n') + serverErr;
    const errors = text.split('\n').filter((l) => /ERROR: (Address|Leak)Sanitizer|runtime error:|SUMMARY: /.test(l));
    report.sanitizerReports = errors.length;
    if (errors.length) fail.push(`sanitizer reports:\n${text.slice(0, 4000)}`);
  }
  fs.rmSync(server.dir, { recursive: true, force: true });

  report.failures = fail;
  console.log(JSON.stringify(report, null, 1));
  if (opts.json) fs.writeFileSync(opts.json, JSON.stringify(report, null, 1));
  log(`${report.connectionsHeld} connections held; ${report.opsPerSecond.toFixed(1)} churn ops/s; ` +
    `presence p50 ${report.presenceP50ms.toFixed(2)} ms p99 ${report.presenceP99ms.toFixed(2)} ms ` +
    `(${report.presenceQueries} queries); ${report.memberships} memberships checked in ${opts.channels} channels`);
  if (fail.length) {
    for (const f of fail) console.error('[load] FAIL:', f);
    console.log(`0 passed, ${fail.length} failed`);
    process.exit(1);
  }
  console.log('1 passed, 0 failed');
  process.exit(0);
}

main().catch((e) => {
  console.error('[load] error:', e && e.stack ? e.stack : e);
  if (server && serverExit === null) server.kill('SIGKILL');
  if (serverErr) console.error(serverErr.slice(-4000));
  process.exit(1);
});
