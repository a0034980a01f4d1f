'use strict';
// The command line and the config file: usage, overrides, validation that
// names the bad key, warnings for unknown keys, tokens, clean shutdown.

const { test } = require('node:test');
const assert = require('node:assert/strict');
const { execFile } = require('node:child_process');
const crypto = require('node:crypto');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { promisify } = require('node:util');
const h = require('./lib/harness');

const run = promisify(execFile);

// Run the binary to completion; resolves with { code, stdout, stderr }.
async function runServer(args, env = {}) {
  try {
    const r = await run(h.SERVER_BIN, args, { env: { ...process.env, ...env }, timeout: 10000 });
    return { code: 0, ...r };
  } catch (e) {
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

function tempConfig(obj) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'presence-cfg-'));
  const file = path.join(dir, 'config.json');
  fs.writeFileSync(file, typeof obj === 'string' ? obj : JSON.stringify(obj));
  return file;
}

test('--help prints the usage', async () => {
  const r = await runServer(['--help']);
  assert.equal(r.code, 0);
  assert.match(r.stdout, /Usage: presence-server \[--config FILE\] \[--address ADDR\] \[--port PORT\]/);
  assert.match(r.stdout, /--token USER/);
  const bad = await runServer(['--bogus']);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /unknown argument --bogus/);
});

test('an invalid config stops the server with a message that names the key', async () => {
  const cases = [
    ['{"namespaces": [', /config\.json:\d+:\d+:/],
    [{ namespaces: [{ name: 'room', presence: 'yes' }] }, /"namespaces\[0\]\.presence": expected true or false/],
    [{ namespaces: [{ name: 'x' }] }, /"namespaces\[0\]\.name"/],
    [{ namespaces: [{ name: 'room' }, { name: 'room' }] }, /"namespaces\[1\]\.name": namespace "room" defined twice/],
    [{ namespaces: [{ presence: true }] }, /"namespaces\[0\]\.name": missing/],
    [{ port: 70000 }, /"port"/],
    [{ api_key: 5 }, /"api_key": expected a string/],
    [{ join_leave: 1 }, /"join_leave": expected true or false/],
    [{ client_channel_limit: -1 }, /"client_channel_limit"/],
    [{ ping_interval: 'soon' }, /"ping_interval"/],
    [{ ping_interval: '5s', pong_timeout: '5s' }, /"pong_timeout": must be less than ping_interval/],
    [[1, 2], /top level must be a JSON object/],
  ];
  for (const [cfg, re] of cases) {
    const r = await runServer(['--config', tempConfig(cfg), '--port', String(await h.freePort())]);
    assert.equal(r.code, 1, JSON.stringify(cfg));
    assert.match(r.stderr, re);
  }
  const missing = await runServer(['--config', '/nonexistent/config.json']);
  assert.equal(missing.code, 1);
  assert.match(missing.stderr, /nonexistent/);
});

test('an unknown key is a warning, and the server starts', async () => {
  const srv = await h.startServer({ config: h.baseConfig({ history_size: 10, namespaces: [
    { name: 'room', presence: true, history_ttl: '5m' }] }) });
  try {
    assert.match(srv.child.out.stderr, /warning: config key "history_size" is not supported, ignored/);
    assert.match(srv.child.out.stderr, /warning: config key "namespaces\[0\]\.history_ttl" is not supported/);
    assert.deepEqual((await h.api(srv, '/api/presence_stats', { channel: 'room:1' })).json,
      { result: { num_clients: 0, num_users: 0 } });
  } finally {
    await srv.stop();
  }
});

test('--address and --port override the config; the config may give them too', async () => {
  const port = await h.freePort();
  const srv = await h.startServer({ config: h.baseConfig({ port: 1, address: '0.0.0.0' }),
    args: ['--address', '127.0.0.1', '--port', String(port)] });
  try {
    assert.match(srv.child.out.stdout, new RegExp(`listening on 127\\.0\\.0\\.1:${port}`));
  } finally {
    await srv.stop();
  }
  const cfgPort = await h.freePort();
  const file = tempConfig(h.baseConfig({ port: String(cfgPort) }));
  const child = h.spawnCollected(h.SERVER_BIN, ['--config', file]);
  try {
    await h.waitForOutput(child, new RegExp(`listening on 127\\.0\\.0\\.1:${cfgPort}`), 10000);
  } finally {
    await h.stopProcess(child);
  }
});

test('a port in use is a clear error', async () => {
  const srv = await h.startServer();
  try {
    const r = await runServer(['--config', tempConfig(h.baseConfig()), '--port', String(srv.port)]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /cannot listen on 127\.0\.0\.1:\d+/);
  } finally {
    await srv.stop();
  }
});

test('--token signs an HS256 token with the config\'s secret', async () => {
  const file = tempConfig(h.baseConfig());
  const r = await runServer(['--token', 'alice', '--config', file, '--ttl', '60', '--info', '{"name":"Alice"}']);
  assert.equal(r.code, 0);
  const [head, body, sig] = r.stdout.trim().split('.');
  assert.deepEqual(JSON.parse(Buffer.from(head, 'base64url')).alg, 'HS256');
  const claims = JSON.parse(Buffer.from(body, 'base64url'));
  assert.equal(claims.sub, 'alice');
  assert.deepEqual(claims.info, { name: 'Alice' });
  assert.ok(Math.abs(claims.exp - (Date.now() / 1000 + 60)) < 5);
  const expected = crypto.createHmac('sha256', h.SECRET).update(`${head}.${body}`).digest('base64url');
  assert.equal(sig, expected);
  const sub = await runServer(['--token', 'alice', '--config', file, '--channel', 'private:1', '--ttl', '0']);
  const subClaims = JSON.parse(Buffer.from(sub.stdout.trim().split('.')[1], 'base64url'));
  assert.deepEqual(subClaims, { sub: 'alice', channel: 'private:1' });
  const bad = await runServer(['--token', 'alice', '--config', file, '--info', '{oops']);
  assert.equal(bad.code, 1);
});

test('the default config keeps its secrets, so --token matches a running server', async () => {
  const srv = await h.startServer({ config: null });
  try {
    const secrets = JSON.parse(fs.readFileSync(path.join(srv.dir, 'default-secrets.json'), 'utf8'));
    assert.match(secrets.api_key, /^[0-9a-f-]{36}$/);
    assert.equal((fs.statSync(path.join(srv.dir, 'default-secrets.json')).mode & 0o777), 0o600);
    assert.ok(srv.child.out.stdout.includes(`apikey ${secrets.api_key}`));
    const r = await runServer(['--token', 'bob'], { PRESENCE_SERVER_STATE_DIR: srv.dir });
    const { sub } = await h.connectAndSubscribe({ wsUrl: srv.wsUrl }, { token: r.stdout.trim(), channel: 'public:test' });
    assert.deepEqual(await sub.presenceStats(), { numClients: 1, numUsers: 1 });
  } finally {
    h.disconnectAll();
    await srv.stop();
  }
});

// A WebSocket peer that connects and subscribes, then never answers
// anything, not even the close: what a hung or malicious client does.
function silentPeer(srv) {
  const net = require('node:net');
  return new Promise((resolve) => {
    const s = net.connect(srv.port, '127.0.0.1', () => {
      s.write('GET /connection/websocket HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n' +
        'Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n' +
        'Sec-WebSocket-Version: 13\r\n\r\n');
      const mask = Buffer.from([1, 2, 3, 4]);
      const payload = Buffer.from('{"connect":{},"id":1}\n{"subscribe":{"channel":"anon:hung"},"id":2}');
      const masked = Buffer.from(payload.map((b, k) => b ^ mask[k % 4]));
      s.write(Buffer.concat([Buffer.from([0x81, 0x80 | payload.length]), mask, masked]));
    });
    let got = '';
    s.on('data', (d) => { got += d.toString('latin1'); if (got.includes('"subscribe"')) resolve(s); });
    s.on('error', () => {});
  });
}

// From the signal to the process's exit, in ms.
async function timeToExit(srv, signal = 'SIGTERM') {
  const started = Date.now();
  srv.child.kill(signal);
  const { code } = await srv.child.exited;
  fs.rmSync(srv.dir, { recursive: true, force: true });
  return { code, ms: Date.now() - started };
}

test('SIGTERM stops the server within a second: idle, with clients, with a peer that never answers', async () => {
  // Idle: the listener of the thread-per-connection server used to notice
  // the stop only after its 2 s poll quantum.
  let srv = await h.startServer();
  let r = await timeToExit(srv);
  assert.equal(r.code, 0);
  assert.ok(r.ms < 1000, `idle: ${r.ms} ms`);
  // With clients that answer the close.
  srv = await h.startServer();
  const clients = [];
  for (let i = 0; i < 20; i++) {
    clients.push(await h.connectAndSubscribe(srv, { token: h.userToken(srv, `u${i}`), channel: 'public:stop' }));
  }
  r = await timeToExit(srv);
  assert.equal(r.code, 0);
  assert.ok(r.ms < 1000, `20 clients: ${r.ms} ms`);
  h.disconnectAll();
  // With a peer that answers nothing: the server gives up on it in time
  // and says so.
  srv = await h.startServer();
  const hung = await silentPeer(srv);
  r = await timeToExit(srv);
  hung.destroy();
  assert.equal(r.code, 0);
  assert.ok(r.ms < 1000, `a silent peer: ${r.ms} ms`);
  assert.match(srv.child.out.stderr, /connections still open \d+ ms after the shutdown closes/);
  // With an HTTP connection kept alive between two requests: closed at
  // once, not held for its idle time.
  srv = await h.startServer();
  const kept = await new Promise((resolve, reject) => {
    const s = require('node:net').connect(srv.port, '127.0.0.1', () => {
      s.write(`POST /api/info HTTP/1.1\r\nHost: x\r\nX-API-Key: ${srv.apiKey}\r\n` +
        'Content-Length: 2\r\n\r\n{}');
    });
    s.on('data', (d) => { if (/keep-alive/.test(d.toString())) resolve(s); });
    s.on('error', reject);
  });
  const closed = new Promise((resolve) => kept.on('close', resolve));
  r = await timeToExit(srv);
  await closed;
  assert.equal(r.code, 0);
  assert.ok(r.ms < 1000, `a kept-alive HTTP connection: ${r.ms} ms`);
  assert.doesNotMatch(srv.child.out.stderr, /connections still open/);
});

test('SIGINT and SIGTERM shut down cleanly, closing clients with 3001 shutdown', async () => {
  for (const signal of ['SIGINT', 'SIGTERM']) {
    const srv = await h.startServer();
    const c = h.rawClient(srv);
    await c.opened;
    await c.call('connect', { token: h.userToken(srv, 'bye') });
    await c.call('subscribe', { channel: 'public:bye' });
    const { code } = await h.stopProcess(srv.child, signal);
    assert.equal(code, 0, signal);
    assert.deepEqual(await c.closed(), { code: 3001, reason: 'shutdown' });
    assert.match(srv.child.out.stderr, /shutting down/);
    fs.rmSync(srv.dir, { recursive: true, force: true });
  }
});
