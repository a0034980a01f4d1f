'use strict';
// Shared helpers for the end-to-end tests: start a presence-server binary on
// a free loopback port with a given config, call its HTTP API, mint tokens,
// make SDK and raw WebSocket clients, and wait for things.
//
// The binary is $PRESENCE_SERVER, else $PRESENCE_BUILD_DIR/examples/
// presence-server/presence-server, else ../../build/examples/... (the
// README's build directory).

const { spawn } = require('node:child_process');
const crypto = require('node:crypto');
const fs = require('node:fs');
const net = require('node:net');
const os = require('node:os');
const path = require('node:path');
const { Centrifuge } = require('centrifuge');
const WebSocket = require('ws');
// Ports, sleeping and polling: the same helpers as the cluster tests'.
const { freePort, sleep, waitFor } = require('../../cluster/lib/util');

const ROOT = path.resolve(__dirname, '..', '..', '..');
const BUILD_DIR = path.resolve(process.env.PRESENCE_BUILD_DIR || path.join(ROOT, 'build'));
const SERVER_BIN = path.resolve(process.env.PRESENCE_SERVER ||
  path.join(BUILD_DIR, 'examples', 'presence-server', 'presence-server'));

const SECRET = 'e2e-token-secret';
const API_KEY = 'e2e-api-key';

// The config most tests use: one namespace per permission model.
function baseConfig(extra = {}) {
  return {
    token_hmac_secret_key: SECRET,
    api_key: API_KEY,
    allow_anonymous_connect_without_token: true,
    client_connection_limit: 400,
    namespaces: [
      { name: 'public', presence: true, join_leave: true,
        allow_subscribe_for_client: true, allow_presence_for_subscriber: true },
      { name: 'open', presence: true, join_leave: true,
        allow_subscribe_for_client: true, allow_presence_for_client: true },
      { name: 'anon', presence: true, join_leave: true,
        allow_subscribe_for_client: true, allow_subscribe_for_anonymous: true,
        allow_presence_for_subscriber: true, allow_presence_for_anonymous: true },
      { name: 'forced', presence: true, join_leave: true, force_push_join_leave: true,
        allow_subscribe_for_client: true, allow_presence_for_subscriber: true },
      { name: 'private', presence: true, join_leave: true,
        allow_presence_for_subscriber: true },
      { name: 'nopresence', presence: false, allow_subscribe_for_client: true },
    ],
    ...extra,
  };
}

// Wait until a child process has printed text matching re on stdout.
function waitForOutput(proc, re, timeout = 60000) {
  return waitFor(() => re.exec(proc.out.stdout), { timeout, what: `output ${re}` });
}

// Every process the tests started and that still runs: killed when the test
// process exits, whatever way it exits (a failed assertion, a timeout), so
// that no server or redis-server outlives its test file.
const running = new Set();
process.on('exit', () => {
  for (const child of running) {
    try { child.kill('SIGKILL'); } catch { /* gone */ }
  }
});

// Spawn a process with collected output; `exited` resolves with its code.
function spawnCollected(cmd, args, opts) {
  const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], ...opts });
  child.out = { stdout: '', stderr: '' };
  child.stdout.on('data', (d) => { child.out.stdout += d; });
  child.stderr.on('data', (d) => { child.out.stderr += d; });
  running.add(child);
  child.exited = new Promise((resolve) => child.on('exit', (code, signal) => {
    running.delete(child);
    resolve({ code, signal });
  }));
  return child;
}

async function stopProcess(child, signal = 'SIGTERM', timeout = 10000) {
  if (child.exitCode !== null || child.signalCode !== null) return child.exited;
  child.kill(signal);
  const timer = setTimeout(() => child.kill('SIGKILL'), timeout);
  const result = await child.exited;
  clearTimeout(timer);
  return result;
}

// Start the server. config: an object written to a temp file (--config), or
// null for the embedded default. Resolves once it listens.
async function startServer({ config = baseConfig(), args = [], env = {} } = {}) {
  if (!fs.existsSync(SERVER_BIN)) {
    throw new Error(`no presence-server binary at ${SERVER_BIN}: build it, or set PRESENCE_SERVER`);
  }
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'presence-e2e-'));
  const argv = [];
  if (config) {
    const file = path.join(dir, 'config.json');
    fs.writeFileSync(file, JSON.stringify(config, null, 2));
    argv.push('--config', file);
  }
  const port = await freePort();
  argv.push('--port', String(port), ...args);
  const child = spawnCollected(SERVER_BIN, argv, {
    env: { ...process.env, PRESENCE_SERVER_STATE_DIR: dir, ...env },
  });
  const started = await Promise.race([
    waitForOutput(child, /listening on/, 15000).then(() => true),
    child.exited.then(() => false),
  ]);
  if (!started) {
    throw new Error(`presence-server did not start:\n${child.out.stderr}`);
  }
  return makeHandle(child, port, dir, config);
}

function makeHandle(child, port, dir, config) {
  return {
    child, port, dir, config,
    apiKey: config ? config.api_key : undefined,
    secret: config ? config.token_hmac_secret_key : undefined,
    wsUrl: `ws://127.0.0.1:${port}/connection/websocket`,
    httpUrl: `http://127.0.0.1:${port}`,
    async stop() {
      const result = await stopProcess(child);
      fs.rmSync(dir, { recursive: true, force: true });
      return result;
    },
  };
}

// ---------------------------------------------------------------- Redis

// The redis-server binary: $REDIS_SERVER, else redis-server on the PATH
// (Debian: apt-get install redis-server). null when there is none.
function findRedisServer() {
  const candidates = process.env.REDIS_SERVER ? [process.env.REDIS_SERVER]
    : (process.env.PATH || '').split(path.delimiter).map((d) => path.join(d, 'redis-server'));
  for (const file of candidates) {
    try {
      fs.accessSync(file, fs.constants.X_OK);
      return file;
    } catch { /* next */ }
  }
  return null;
}

// Whether this presence-server binary was built with Redis support (its
// --version says so).
function serverHasRedis() {
  const { spawnSync } = require('node:child_process');
  const r = spawnSync(SERVER_BIN, ['--version'], { encoding: 'utf8' });
  return /Redis support .*: built in/.test(r.stdout || '');
}

// A throwaway redis-server on a free loopback port (or on port), without
// persistence: the cluster tests' starter (tests/cluster/lib/redis.js),
// which needs nothing but node itself. Resolves with { port, url, child,
// stop() } once it answers.
const { startRedis } = require('../../cluster/lib/redis');

// ---------------------------------------------------------------- tokens

function b64url(data) {
  return Buffer.from(data).toString('base64url');
}

// An HS256 JWT, built here so that tests can also forge bad ones.
function makeToken(secret, claims, header = { alg: 'HS256', typ: 'JWT' }) {
  const signing = `${b64url(JSON.stringify(header))}.${b64url(JSON.stringify(claims))}`;
  const sig = crypto.createHmac('sha256', secret).update(signing).digest('base64url');
  return `${signing}.${sig}`;
}

function userToken(srv, user, extra = {}) {
  return makeToken(srv.secret, { sub: user, exp: Math.floor(Date.now() / 1000) + 3600, ...extra });
}

// ---------------------------------------------------------------- HTTP API

async function api(srv, route, body, { headers = {}, method = 'POST', auth = 'x-api-key' } = {}) {
  const h = { 'Content-Type': 'application/json', ...headers };
  if (auth === 'x-api-key') h['X-API-Key'] = srv.apiKey;
  if (auth === 'apikey') h.Authorization = `apikey ${srv.apiKey}`;
  const init = { method, headers: h };
  if (method !== 'GET' && method !== 'HEAD' && body !== undefined) {
    init.body = typeof body === 'string' ? body : JSON.stringify(body);
  }
  const res = await fetch(`${srv.httpUrl}${route}`, init);
  const text = await res.text();
  let json;
  try { json = JSON.parse(text); } catch { json = undefined; }
  return { status: res.status, text, json, headers: res.headers };
}

async function httpPresence(srv, channel) {
  const r = await api(srv, '/api/presence', { channel });
  if (!r.json || !r.json.result) throw new Error(`presence failed: ${r.status} ${r.text}`);
  return r.json.result.presence;
}

async function httpStats(srv, channel) {
  const r = await api(srv, '/api/presence_stats', { channel });
  if (!r.json || !r.json.result) throw new Error(`presence_stats failed: ${r.status} ${r.text}`);
  return r.json.result;
}

// ---------------------------------------------------------------- clients

const open = new Set();

function sdkClient(srv, opts = {}) {
  const c = new Centrifuge(srv.wsUrl, {
    websocket: WebSocket,
    timeout: 5000,
    minReconnectDelay: 100,
    maxReconnectDelay: 500,
    ...opts,
  });
  c.on('error', () => {}); // asserted where it matters; no unhandled noise
  open.add(c);
  return c;
}

// Connect a client and subscribe it; resolves with { client, sub, id }.
async function connectAndSubscribe(srv, { token, channel, joinLeave = false, subOpts = {} } = {}) {
  const client = sdkClient(srv, token ? { token } : {});
  const connected = new Promise((resolve) => client.once('connected', resolve));
  let sub = null;
  if (channel) {
    sub = client.newSubscription(channel, { joinLeave, ...subOpts });
    sub.on('error', () => {});
    sub.subscribe();
  }
  client.connect();
  const ctx = await connected;
  if (sub) await sub.ready(5000);
  return { client, sub, id: ctx.client };
}

function disconnectAll() {
  for (const c of open) {
    try { c.disconnect(); } catch { /* already gone */ }
  }
  open.clear();
}

// A raw protocol client: send commands, read replies and pushes, see the
// close code. Messages are split on newlines, as the protocol batches them.
// It answers server pings ({}) unless pong is false.
function rawClient(srv, { pong = true, ...wsOpts } = {}) {
  const ws = new WebSocket(srv.wsUrl, wsOpts);
  const state = { messages: [], closed: null };
  const waiters = [];
  const wake = () => waiters.splice(0).forEach((w) => w());
  ws.on('message', (data) => {
    for (const line of data.toString().split('\n')) {
      if (line.trim() === '') continue;
      if (line === '{}' && pong && ws.readyState === WebSocket.OPEN) ws.send('{}');
      state.messages.push(JSON.parse(line));
    }
    wake();
  });
  ws.on('close', (code, reason) => { state.closed = { code, reason: reason.toString() }; wake(); });
  ws.on('error', () => {});
  const opened = new Promise((resolve, reject) => { ws.once('open', resolve); ws.once('error', reject); });
  let nextId = 1;
  const self = {
    ws, state, opened,
    send(obj) { ws.send(typeof obj === 'string' ? obj : JSON.stringify(obj)); },
    // Send a command with a fresh id; resolves with its reply.
    async call(method, params = {}) {
      const id = nextId++;
      self.send({ [method]: params, id });
      return self.next((m) => m.id === id, `reply ${id} to ${method}`);
    },
    // The first message (reply or push) matching pred, waiting for it.
    async next(pred, what = 'message', timeout = 5000) {
      const deadline = Date.now() + timeout;
      for (;;) {
        const i = state.messages.findIndex(pred);
        if (i >= 0) return state.messages.splice(i, 1)[0];
        if (state.closed) throw new Error(`closed (${state.closed.code} ${state.closed.reason}) before ${what}`);
        const left = deadline - Date.now();
        if (left <= 0) throw new Error(`timed out waiting for ${what}`);
        await new Promise((resolve) => {
          const t = setTimeout(resolve, left);
          waiters.push(() => { clearTimeout(t); resolve(); });
        });
      }
    },
    async closed(timeout = 5000) {
      await waitFor(() => state.closed, { timeout, what: 'close' });
      return state.closed;
    },
    pushes(kind, channel) {
      return state.messages.filter((m) => m.push && m.push[kind] && (!channel || m.push.channel === channel));
    },
  };
  return self;
}

module.exports = {
  ROOT, BUILD_DIR, SERVER_BIN, SECRET, API_KEY,
  baseConfig, startServer, spawnCollected, stopProcess, waitForOutput,
  findRedisServer, serverHasRedis, startRedis,
  makeToken, userToken, api, httpPresence, httpStats,
  sdkClient, connectAndSubscribe, disconnectAll, rawClient,
  sleep, waitFor, freePort,
};
