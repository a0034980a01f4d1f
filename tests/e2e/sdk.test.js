'use strict';
// The real centrifuge SDK (5.x over ws) against presence-server: connect with
// tokens, subscribe, presence and stats that agree with the HTTP API,
// join/leave pushes, permissions, bad tokens, and a crowd.

const { test, before, after, afterEach } = require('node:test');
const assert = require('node:assert/strict');
const path = require('node:path');
const h = require('./lib/harness');

let srv;

before(async () => { srv = await h.startServer(); });
afterEach(() => h.disconnectAll());
after(async () => {
  h.disconnectAll();
  const { code } = await srv.stop();
  assert.equal(code, 0, 'the server exits cleanly on SIGTERM');
});

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

function recordJoinLeave(sub) {
  const events = [];
  sub.on('join', (ctx) => events.push({ kind: 'join', ...ctx.info, channel: ctx.channel }));
  sub.on('leave', (ctx) => events.push({ kind: 'leave', ...ctx.info, channel: ctx.channel }));
  return events;
}

test('clients with tokens connect and subscribe; presence shows user and conn_info', async () => {
  const token = h.userToken(srv, 'alice', { info: { name: 'Alice' } });
  const { sub, id } = await h.connectAndSubscribe(srv, { token, channel: 'public:t1' });
  assert.match(id, UUID);
  const p = await sub.presence();
  assert.deepEqual(Object.keys(p.clients), [id]);
  assert.equal(p.clients[id].user, 'alice');
  assert.equal(p.clients[id].client, id);
  assert.deepEqual(p.clients[id].connInfo, { name: 'Alice' });
  const s = await sub.presenceStats();
  assert.deepEqual(s, { numClients: 1, numUsers: 1 });
});

test('sub.presence() and sub.presenceStats() agree with the HTTP API', async () => {
  const ch = 'public:agree';
  const a = await h.connectAndSubscribe(srv, { token: h.userToken(srv, 'u1', { info: { n: 1 } }), channel: ch });
  const b = await h.connectAndSubscribe(srv, { token: h.userToken(srv, 'u2'), channel: ch });
  const c = await h.connectAndSubscribe(srv, { token: h.userToken(srv, 'u3'), channel: ch });
  const sdk = await b.sub.presence();
  const http = await h.httpPresence(srv, ch);
  assert.deepEqual(Object.keys(sdk.clients).sort(), [a.id, b.id, c.id].sort());
  assert.deepEqual(Object.keys(http).sort(), Object.keys(sdk.clients).sort());
  for (const [cid, info] of Object.entries(http)) {
    assert.equal(sdk.clients[cid].user, info.user);
    assert.deepEqual(sdk.clients[cid].conn_info, info.conn_info);
  }
  assert.deepEqual(http[a.id], { user: 'u1', client: a.id, conn_info: { n: 1 } });
  const sdkStats = await c.sub.presenceStats();
  const httpStats = await h.httpStats(srv, ch);
  assert.deepEqual(httpStats, { num_clients: 3, num_users: 3 });
  assert.deepEqual(sdkStats, { numClients: httpStats.num_clients, numUsers: httpStats.num_users });
});

test('join and leave on subscribe, unsubscribe, disconnect and a dropped socket', async () => {
  const ch = 'public:events';
  const watcher = await h.connectAndSubscribe(srv, {
    token: h.userToken(srv, 'watcher'), channel: ch, joinLeave: true,
  });
  const events = recordJoinLeave(watcher.sub);
  // The joiner sees its own join after its subscribe reply.
  await h.waitFor(() => events.length === 1, { what: 'own join' });
  assert.deepEqual(events[0], { kind: 'join', channel: ch, user: 'watcher', client: watcher.id });

  // subscribe -> join
  const bob = await h.connectAndSubscribe(srv, {
    token: h.userToken(srv, 'bob', { info: { role: 'guest' } }), channel: ch,
  });
  await h.waitFor(() => events.length === 2, { what: 'join of bob' });
  assert.deepEqual(events[1], {
    kind: 'join', channel: ch, user: 'bob', client: bob.id, connInfo: { role: 'guest' },
  });

  // unsubscribe -> leave
  bob.sub.unsubscribe();
  await h.waitFor(() => events.length === 3, { what: 'leave on unsubscribe' });
  assert.equal(events[2].kind, 'leave');
  assert.equal(events[2].client, bob.id);
  assert.deepEqual(events[2].connInfo, { role: 'guest' });

  // subscribe again, then disconnect -> join, leave
  bob.sub.subscribe();
  await bob.sub.ready(5000);
  await h.waitFor(() => events.length === 4, { what: 'join on resubscribe' });
  assert.equal(events[3].kind, 'join');
  bob.client.disconnect();
  await h.waitFor(() => events.length === 5, { what: 'leave on disconnect' });
  assert.deepEqual([events[4].kind, events[4].client], ['leave', bob.id]);

  // a raw socket that is dropped without a close frame -> leave
  const raw = h.rawClient(srv);
  await raw.opened;
  const connect = await raw.call('connect', { token: h.userToken(srv, 'dropper') });
  await raw.call('subscribe', { channel: ch });
  await h.waitFor(() => events.length === 6, { what: 'join of the raw client' });
  assert.equal(events[5].client, connect.connect.client);
  raw.ws.terminate(); // destroys the TCP socket, no close handshake
  await h.waitFor(() => events.length === 7, { what: 'leave of the dropped socket' });
  assert.deepEqual([events[6].kind, events[6].client], ['leave', connect.connect.client]);

  const left = await h.httpPresence(srv, ch);
  assert.deepEqual(Object.keys(left), [watcher.id]);
});

test('a killed client process leaves', async () => {
  const ch = 'public:killed';
  const watcher = await h.connectAndSubscribe(srv, {
    token: h.userToken(srv, 'watcher2'), channel: ch, joinLeave: true,
  });
  const events = recordJoinLeave(watcher.sub);
  // A separate node process with an SDK client, killed with SIGKILL: the
  // kernel resets its socket, the server sees the socket end.
  const script = `
    const { Centrifuge } = require('centrifuge');
    const WebSocket = require('ws');
    const c = new Centrifuge(${JSON.stringify(srv.wsUrl)}, { websocket: WebSocket, token: ${JSON.stringify(h.userToken(srv, 'victim'))} });
    const s = c.newSubscription(${JSON.stringify(ch)});
    s.on('subscribed', () => console.log('subscribed'));
    s.subscribe(); c.connect();
    setInterval(() => {}, 1000);`;
  const child = h.spawnCollected(process.execPath, ['-e', script], { cwd: path.join(__dirname) });
  await h.waitForOutput(child, /subscribed/, 10000);
  await h.waitFor(() => events.some((e) => e.kind === 'join' && e.user === 'victim'), { what: 'victim join' });
  child.kill('SIGKILL');
  await child.exited;
  await h.waitFor(() => events.some((e) => e.kind === 'leave' && e.user === 'victim'), { what: 'victim leave' });
  assert.deepEqual(await h.httpStats(srv, ch), { num_clients: 1, num_users: 1 });
});

test('one user with two connections counts once in num_users', async () => {
  const ch = 'public:twotabs';
  const t = h.userToken(srv, 'carol');
  const one = await h.connectAndSubscribe(srv, { token: t, channel: ch });
  const two = await h.connectAndSubscribe(srv, { token: t, channel: ch });
  await h.connectAndSubscribe(srv, { token: h.userToken(srv, 'dave'), channel: ch });
  assert.notEqual(one.id, two.id);
  assert.deepEqual(await one.sub.presenceStats(), { numClients: 3, numUsers: 2 });
  assert.deepEqual(await h.httpStats(srv, ch), { num_clients: 3, num_users: 2 });
  two.client.disconnect();
  await h.waitFor(async () => (await h.httpStats(srv, ch)).num_clients === 2, { what: 'two clients' });
  assert.deepEqual(await h.httpStats(srv, ch), { num_clients: 2, num_users: 2 });
});

test('force_push_join_leave pushes without asking; without it nothing is pushed', async () => {
  const forced = await h.connectAndSubscribe(srv, { token: h.userToken(srv, 'f1'), channel: 'forced:x' });
  const quiet = await h.connectAndSubscribe(srv, { token: h.userToken(srv, 'q1'), channel: 'public:quiet' });
  const fe = recordJoinLeave(forced.sub);
  const qe = recordJoinLeave(quiet.sub);
  await h.connectAndSubscribe(srv, { token: h.userToken(srv, 'f2'), channel: 'forced:x' });
  await h.connectAndSubscribe(srv, { token: h.userToken(srv, 'q2'), channel: 'public:quiet' });
  await h.waitFor(() => fe.some((e) => e.user === 'f2'), { what: 'forced join' });
  await h.sleep(200);
  assert.equal(qe.length, 0);
});

test('presence is denied to a client that is not subscribed', async () => {
  const { client } = await h.connectAndSubscribe(srv, { token: h.userToken(srv, 'eve') });
  await h.connectAndSubscribe(srv, { token: h.userToken(srv, 'member'), channel: 'public:secret' });
  await assert.rejects(client.presence('public:secret'), (e) => e.code === 103 && e.message === 'permission denied');
  await assert.rejects(client.presenceStats('public:secret'), (e) => e.code === 103);
  // allow_presence_for_client: any authenticated connection may look.
  await h.connectAndSubscribe(srv, { token: h.userToken(srv, 'member'), channel: 'open:lobby' });
  const p = await client.presence('open:lobby');
  assert.equal(Object.keys(p.clients).length, 1);
  assert.deepEqual(await client.presenceStats('open:lobby'), { numClients: 1, numUsers: 1 });
  // Anonymous connections need allow_presence_for_anonymous.
  const anon = await h.connectAndSubscribe(srv, {});
  await assert.rejects(anon.client.presence('open:lobby'), (e) => e.code === 103);
});

test('subscribe permissions: namespace rules, anonymous users, subscription tokens', async () => {
  const { client } = await h.connectAndSubscribe(srv, { token: h.userToken(srv, 'frank') });
  // private: no allow_subscribe_for_client
  const denied = client.newSubscription('private:room');
  const unsub = new Promise((resolve) => denied.once('unsubscribed', resolve));
  denied.on('error', () => {});
  denied.subscribe();
  const ctx = await unsub;
  assert.equal(ctx.code, 103);
  client.removeSubscription(denied);
  // a subscription token grants it, and its info becomes chan_info
  const granted = client.newSubscription('private:room', { token: h.makeToken(srv.secret, {
    sub: 'frank', channel: 'private:room', info: { seat: 7 }, exp: Math.floor(Date.now() / 1000) + 60,
  }) });
  granted.subscribe();
  await granted.ready(5000);
  const p = await granted.presence();
  assert.deepEqual(Object.values(p.clients)[0].chanInfo, { seat: 7 });
  assert.deepEqual((await h.httpPresence(srv, 'private:room'))[Object.keys(p.clients)[0]].chan_info, { seat: 7 });
  // anonymous connections subscribe only where allow_subscribe_for_anonymous
  const anon = await h.connectAndSubscribe(srv, {});
  const no = anon.client.newSubscription('public:anon-denied');
  const noCtx = new Promise((resolve) => no.once('unsubscribed', resolve));
  no.on('error', () => {});
  no.subscribe();
  assert.equal((await noCtx).code, 103);
  const yes = anon.client.newSubscription('anon:ok');
  yes.subscribe();
  await yes.ready(5000);
  const anonPresence = await yes.presence();
  assert.equal(Object.values(anonPresence.clients)[0].user, '');
});

test('a bad token closes with 3500 invalid token, and the SDK stops', async () => {
  const forged = [
    h.makeToken('wrong-secret', { sub: 'mallory' }),
    h.makeToken(srv.secret, { sub: 'mallory' }, { alg: 'HS512', typ: 'JWT' }),
    `${Buffer.from('{"alg":"none","typ":"JWT"}').toString('base64url')}.${
      Buffer.from('{"sub":"mallory"}').toString('base64url')}.`,
    'not-a-jwt',
  ];
  for (const token of forged) {
    const c = h.sdkClient(srv, { token });
    const disconnected = new Promise((resolve) => c.once('disconnected', resolve));
    c.connect();
    const ctx = await disconnected;
    assert.deepEqual({ code: ctx.code, reason: ctx.reason }, { code: 3500, reason: 'invalid token' }, token);
  }
});

test('an expired token gets 109 token expired; without getToken the SDK gives up', async () => {
  const token = h.userToken(srv, 'late', { exp: Math.floor(Date.now() / 1000) - 10 });
  const c = h.sdkClient(srv, { token });
  const errors = [];
  c.on('error', (ctx) => errors.push(ctx));
  const disconnected = new Promise((resolve) => c.once('disconnected', resolve));
  c.connect();
  const ctx = await disconnected;
  assert.equal(errors[0].error.code, 109);
  assert.equal(errors[0].error.message, 'token expired');
  assert.equal(ctx.code, 1); // unauthorized: no way to get a fresh token
  // With getToken, the SDK fetches a fresh one and connects.
  const fresh = h.sdkClient(srv, { token, getToken: async () => h.userToken(srv, 'late') });
  const ok = new Promise((resolve) => fresh.once('connected', resolve));
  fresh.connect();
  assert.match((await ok).client, UUID);
});

test('200 clients at once: exact counts, and nothing left after they go', async () => {
  const ch = 'public:crowd';
  const N = 200;
  const USERS = 50;
  const watcher = await h.connectAndSubscribe(srv, {
    token: h.userToken(srv, 'crowd-watcher'), channel: ch, joinLeave: true,
  });
  const events = recordJoinLeave(watcher.sub);
  const clients = await Promise.all(Array.from({ length: N }, (_, i) =>
    h.connectAndSubscribe(srv, { token: h.userToken(srv, `crowd-${i % USERS}`), channel: ch, joinLeave: i % 2 === 0 })));
  const ids = new Set(clients.map((c) => c.id));
  assert.equal(ids.size, N);
  assert.deepEqual(await h.httpStats(srv, ch), { num_clients: N + 1, num_users: USERS + 1 });
  const http = await h.httpPresence(srv, ch);
  assert.equal(Object.keys(http).length, N + 1);
  for (const id of ids) assert.ok(http[id], `client ${id} in presence`);
  assert.deepEqual(await clients[7].sub.presenceStats(), { numClients: N + 1, numUsers: USERS + 1 });
  await h.waitFor(() => events.filter((e) => e.kind === 'join').length === N + 1, { what: 'all joins', timeout: 10000 });

  for (const c of clients) c.client.disconnect();
  await h.waitFor(async () => (await h.httpStats(srv, ch)).num_clients === 1, { what: 'the crowd to leave', timeout: 15000 });
  await h.waitFor(() => events.filter((e) => e.kind === 'leave').length === N, { what: 'all leaves', timeout: 10000 });
  const leftIds = new Set(events.filter((e) => e.kind === 'leave').map((e) => e.client));
  assert.deepEqual([...leftIds].sort(), [...ids].sort());
  assert.deepEqual(await h.httpStats(srv, ch), { num_clients: 1, num_users: 1 });
  watcher.client.disconnect();
  await h.waitFor(async () => (await h.httpStats(srv, ch)).num_clients === 0, { what: 'an empty channel' });
  assert.deepEqual(await h.httpPresence(srv, ch), {});
});
