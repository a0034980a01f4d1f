'use strict';
// The README's demo, as a user runs it: scripts/demo.sh builds and starts the
// server on the embedded default config; the curl line it prints (the call
// from Centrifugo's presence docs) answers; `presence-server --token USER`,
// run separately, mints a token the running server accepts.

const { test } = require('node:test');
const assert = require('node:assert/strict');
const { execFile } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { promisify } = require('node:util');
const h = require('./lib/harness');

const run = promisify(execFile);

test('scripts/demo.sh starts the server and its curl line answers', { timeout: 600000 }, async () => {
  const state = fs.mkdtempSync(path.join(os.tmpdir(), 'presence-demo-'));
  const port = await h.freePort();
  const env = { ...process.env, BUILD_DIR: h.BUILD_DIR, PRESENCE_SERVER_STATE_DIR: state };
  const demo = h.spawnCollected(path.join(h.ROOT, 'scripts', 'demo.sh'), ['--port', String(port)], {
    cwd: h.ROOT, env, detached: true,
  });
  try {
    // The curl command, as printed: from "curl" to the URL line.
    const m = await Promise.race([
      h.waitForOutput(demo, /^curl [\s\S]*?\/api\n/m, 540000),
      demo.exited.then(({ code }) => { throw new Error(`demo.sh exited ${code}:\n${demo.out.stderr}`); }),
    ]);
    const curl = m[0];
    assert.match(curl, /--header "Authorization: apikey [0-9a-f-]{36}"/);
    assert.match(curl, /--data '\{"method": "presence", "params": \{"channel": "public:test"\}\}'/);
    assert.match(curl, new RegExp(`http://localhost:${port}/api\\n$`));

    // Paste it into a shell.
    let out = await run('bash', ['-c', curl]);
    assert.deepEqual(JSON.parse(out.stdout), { result: { presence: {} } });

    // A token minted by a separate invocation works against the running server.
    const token = (await run(h.SERVER_BIN, ['--token', 'demo-user', '--info', '{"name":"Demo"}'],
      { env })).stdout.trim();
    const srv = { wsUrl: `ws://127.0.0.1:${port}/connection/websocket` };
    const { sub, id } = await h.connectAndSubscribe(srv, { token, channel: 'public:test', joinLeave: true });
    out = await run('bash', ['-c', curl]);
    assert.deepEqual(JSON.parse(out.stdout), { result: { presence: {
      [id]: { user: 'demo-user', client: id, conn_info: { name: 'Demo' } } } } });
    assert.deepEqual(await sub.presenceStats(), { numClients: 1, numUsers: 1 });
    h.disconnectAll();
  } finally {
    h.disconnectAll();
    // demo.sh exec'd the server: its pid is the server's.
    const { code } = await h.stopProcess(demo, 'SIGINT');
    fs.rmSync(state, { recursive: true, force: true });
    assert.equal(code, 0, `the server exits cleanly on SIGINT\n${demo.out.stderr}`);
  }
});
