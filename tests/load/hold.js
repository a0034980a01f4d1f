'use strict';
// How many idle clients one presence-server process holds, what each
// costs in server memory, and how fast they connect:
//
//   node tests/load/hold.js --server BIN [--connections N] [--concurrency C]
//                           [--channels K] [--hold SECONDS] [--raw]
//
// Starts BIN on a free loopback port (client_connection_limit 0: the
// descriptors are the limit), reads its RSS, then opens N WebSockets on raw
// sockets (no WebSocket library: the client should cost little), each
// sending connect and K subscribes in one frame and waiting for their
// replies, C at a time. It answers the server's pings, holds everything for
// SECONDS, checks presence_stats over the HTTP API, and prints one JSON
// line: connected, refused, the ramp's rate and the server's CPU time for
// it, the server's RSS before and after and the bytes per connection. The client needs N descriptors too
// (ulimit -n).
//
// --raw: BIN is any WebSocket server that takes --port and says
// "listening on" when ready (tests/load/spike/lws_hold.c): each client
// upgrades, sends one text message, waits for any text back, and holds.

const { spawn } = require('node:child_process');
const crypto = require('node:crypto');
const fs = require('node:fs');
const net = require('node:net');
const os = require('node:os');
const path = require('node:path');

const args = process.argv.slice(2);
const opt = (name, def) => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : def;
};
const BIN = opt('--server');
const N = Number(opt('--connections', '1000'));
const CONCURRENCY = Number(opt('--concurrency', '200'));
const CHANNELS = Number(opt('--channels', '2'));
const HOLD_S = Number(opt('--hold', '5'));
const RAW = args.includes('--raw');
const API_KEY = 'hold-api-key';
if (!BIN) {
  console.error('usage: node hold.js --server BIN [--connections N] ...');
  process.exit(2);
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function freePort() {
  return new Promise((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

function rssKb(pid) {
  const m = /VmRSS:\s+(\d+)/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  return Number(m[1]);
}

// The process's CPU time (user + system), in seconds.
function cpuS(pid) {
  const f = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return (Number(f[11]) + Number(f[12])) / 100; // clock ticks; 100 a second on Linux
}

const { encodeFrame, decodeFrames } = require('../lib/ws_frames');

const frame = (text) => encodeFrame(1, text);

// Text frames of the server (unfragmented), from a buffer.
function takeFrames(state, onText) {
  decodeFrames(state, (f) => {
    if (f.opcode === 1) onText(f.payload.toString());
    if (f.opcode === 8) state.closed = true;
  });
}

function client(port, i, held) {
  return new Promise((resolve) => {
    const sock = net.connect(port, '127.0.0.1');
    const state = { buf: Buffer.alloc(0), upgraded: false, replies: 0, closed: false };
    const want = 1 + CHANNELS;
    let done = false;
    const finish = (ok) => {
      if (!done) {
        done = true;
        resolve(ok);
      }
    };
    sock.on('error', () => finish(false));
    sock.on('close', () => { held.delete(sock); finish(false); });
    sock.on('connect', () => {
      const key = crypto.randomBytes(16).toString('base64');
      sock.write(`GET /connection/websocket HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n` +
        `Connection: Upgrade\r\nSec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n\r\n`);
    });
    sock.on('data', (d) => {
      state.buf = state.buf.length ? Buffer.concat([state.buf, d]) : d;
      if (!state.upgraded) {
        const end = state.buf.indexOf('\r\n\r\n');
        if (end < 0) return;
        if (!state.buf.subarray(0, 12).toString().includes('101')) return finish(false);
        state.upgraded = true;
        state.buf = state.buf.subarray(end + 4);
        const cmds = [JSON.stringify({ connect: { name: 'hold' }, id: 1 })];
        for (let k = 0; k < CHANNELS; k++) {
          cmds.push(JSON.stringify({ subscribe: { channel: `public:c${(i * CHANNELS + k) % 1000}` }, id: 2 + k }));
        }
        sock.write(frame(RAW ? '{"id":1}' : cmds.join('\n')));
      }
      takeFrames(state, (text) => {
        for (const line of text.split('\n')) {
          if (line === '{}') {
            sock.write(frame('{}')); // the server's ping
          } else if (line.startsWith('{"id"')) {
            if (line.includes('"error"')) return finish(false);
            if (++state.replies === (RAW ? 1 : want)) {
              held.add(sock);
              finish(true);
            }
          }
        }
      });
      if (state.closed) finish(false);
    });
  });
}

async function api(port, method, params) {
  const r = await fetch(`http://127.0.0.1:${port}/api/${method}`, {
    method: 'POST', headers: { 'X-API-Key': API_KEY }, body: JSON.stringify(params),
  });
  return r.json();
}

async function main() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'presence-hold-'));
  const port = await freePort();
  const config = {
    api_key: API_KEY, token_hmac_secret_key: 'hold-secret',
    allow_anonymous_connect_without_token: true, client_connection_limit: 0,
    namespaces: [{ name: 'public', presence: true, join_leave: false,
      allow_subscribe_for_client: true, allow_subscribe_for_anonymous: true }],
  };
  fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify(config));
  const argv = RAW ? ['--port', String(port)]
    : ['--config', path.join(dir, 'config.json'), '--port', String(port)];
  const child = spawn(BIN, argv,
    { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, PRESENCE_SERVER_STATE_DIR: dir } });
  let out = '';
  child.stdout.on('data', (d) => { out += d; });
  child.stderr.on('data', (d) => { out += d; });
  while (!out.includes('listening on')) await sleep(20);
  await sleep(200);
  const rssBefore = rssKb(child.pid);

  const held = new Set();
  let next = 0;
  let ok = 0;
  let failed = 0;
  const started = process.hrtime.bigint();
  const cpuBefore = cpuS(child.pid);
  async function worker() {
    while (next < N) {
      const i = next++;
      if (await client(port, i, held)) ok++;
      else failed++;
    }
  }
  await Promise.all(Array.from({ length: Math.min(CONCURRENCY, N) }, worker));
  const rampS = Number(process.hrtime.bigint() - started) / 1e9;
  const rampCpuS = cpuS(child.pid) - cpuBefore;
  await sleep(HOLD_S * 1000);
  const rssAfter = rssKb(child.pid);
  let members = 0;
  for (let c = 0; !RAW && c < Math.min(1000, N * CHANNELS); c++) {
    const r = await api(port, 'presence_stats', { channel: `public:c${c}` });
    members += r.result.num_clients;
  }
  const result = {
    connections: N, channels_each: RAW ? 0 : CHANNELS, connected: ok, refused: failed,
    held_at_end: held.size, memberships: members,
    ramp_s: Number(rampS.toFixed(2)), connects_per_s: Math.round(ok / rampS),
    // What the server spent on the ramp: the rate one core of it would
    // sustain, whatever the client (one node process) manages.
    server_cpu_s_ramp: Number(rampCpuS.toFixed(2)),
    server_connects_per_cpu_s: rampCpuS > 0 ? Math.round(ok / rampCpuS) : null,
    server_rss_kb_before: rssBefore, server_rss_kb_after: rssAfter,
    server_bytes_per_connection: Math.round(((rssAfter - rssBefore) * 1024) / Math.max(ok, 1)),
  };
  // SIGTERM with every client still there, none of which answers the
  // server's close frame: how long the server takes to exit.
  const stopStarted = Date.now();
  child.kill('SIGTERM');
  await new Promise((r) => child.on('exit', r));
  result.sigterm_exit_ms = Date.now() - stopStarted;
  console.log(JSON.stringify(result));
  for (const s of held) s.destroy();
  fs.rmSync(dir, { recursive: true, force: true });
  process.exit(ok === N && (RAW || members === N * CHANNELS) ? 0 : 1);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
