'use strict';
// Leave grace and warm restart with the real centrifuge SDK: a user whose
// connection drops and who reconnects (a new client id) within the
// namespace's presence_leave_grace keeps its place and the others are
// pushed nothing; one who does not come back is pushed as leaving when
// the grace ends; and a server restarted with a state_file comes back
// with its members, who take their places again without a storm.

const { test, after, afterEach } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const h = require('./lib/harness');

const GRACE_MS = 1500;
const stateDir = fs.mkdtempSync(path.join(os.tmpdir(), 'presence-grace-e2e-'));
const stateFile = path.join(stateDir, 'registry.state');

function graceConfig() {
  const config = h.baseConfig({ state_file: stateFile });
  config.namespaces.push({
    name: 'grace', presence: true, join_leave: true,
    allow_subscribe_for_client: true, allow_presence_for_subscriber: true,
    presence_leave_grace: `${GRACE_MS}ms`,
  });
  return config;
}

function recordJoinLeave(sub) {
  const events = [];
  sub.on('join', (ctx) => events.push({ kind: 'join', user: ctx.info.user, client: ctx.info.client }));
  sub.on('leave', (ctx) => events.push({ kind: 'leave', user: ctx.info.user, client: ctx.info.client }));
  return events;
}

afterEach(() => h.disconnectAll());

// The server's connected clients, from its /metrics gauge.
async function connections(srv) {
  const text = await (await fetch(`${srv.httpUrl}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith('presence_server_connections '));
  return line === undefined ? NaN : Number(line.split(' ')[1]);
}
after(() => fs.rmSync(stateDir, { recursive: true, force: true }));

test('a reconnect within the grace pushes nothing; a user gone for good leaves at its end', async () => {
  const srv = await h.startServer({ config: graceConfig() });
  try {
    const ch = 'grace:room';
    const watcher = await h.connectAndSubscribe(srv, {
      token: h.userToken(srv, 'watcher'), channel: ch, joinLeave: true,
    });
    const events = recordJoinLeave(watcher.sub);
    await h.waitFor(() => events.length === 1, { what: 'own join' });
    const alice = await h.connectAndSubscribe(srv, { token: h.userToken(srv, 'alice'), channel: ch });
    await h.waitFor(() => events.length === 2, { what: 'join of alice' });

    alice.client.disconnect();
    // The reconnect comes on another TCP connection: under load the server
    // could read its subscribe before the old one's close, and then there
    // is no member in grace yet for it to take the place of.
    await h.waitFor(async () => (await connections(srv)) === 1, { what: 'the old connection gone' });
    const again = await h.connectAndSubscribe(srv, { token: h.userToken(srv, 'alice'), channel: ch });
    assert.notEqual(again.id, alice.id);
    await h.sleep(GRACE_MS + 700);
    assert.equal(events.length, 2, `nothing pushed: ${JSON.stringify(events.slice(2))}`);
    const present = await h.httpPresence(srv, ch);
    assert.deepEqual(Object.keys(present).sort(), [watcher.id, again.id].sort());

    again.client.disconnect();
    await h.sleep(GRACE_MS / 3);
    assert.equal(events.length, 2, 'still in grace');
    assert.deepEqual(await h.httpStats(srv, ch), { num_clients: 2, num_users: 2 });
    await h.waitFor(() => events.length === 3, { what: 'leave at the end of the grace', timeout: 5000 });
    assert.deepEqual(events[2], { kind: 'leave', user: 'alice', client: again.id });
  } finally {
    h.disconnectAll();
    await srv.stop();
  }
});

test('warm restart: saved on SIGTERM, loaded at start, places taken back without a storm', async () => {
  const ch = 'grace:restart';
  let srv = await h.startServer({ config: graceConfig() });
  await h.connectAndSubscribe(srv, { token: h.userToken(srv, 'bob'), channel: ch });
  await h.connectAndSubscribe(srv, { token: h.userToken(srv, 'carol'), channel: ch });
  assert.deepEqual(await h.httpStats(srv, ch), { num_clients: 2, num_users: 2 });
  const { code } = await srv.stop();
  assert.equal(code, 0);
  h.disconnectAll();
  assert.ok(fs.statSync(stateFile).size > 0, 'the state was saved');

  srv = await h.startServer({ config: graceConfig() });
  try {
    assert.deepEqual(await h.httpStats(srv, ch), { num_clients: 2, num_users: 2 });
    const bob = await h.connectAndSubscribe(srv, {
      token: h.userToken(srv, 'bob'), channel: ch, joinLeave: true,
    });
    const events = recordJoinLeave(bob.sub);
    await h.connectAndSubscribe(srv, { token: h.userToken(srv, 'carol'), channel: ch });
    await h.sleep(GRACE_MS + 700);
    assert.deepEqual(events, [], 'no join or leave for places taken back');
    assert.deepEqual(await h.httpStats(srv, ch), { num_clients: 2, num_users: 2 });
  } finally {
    h.disconnectAll();
    await srv.stop();
  }
});
