'use strict';
// Two presence servers on one Redis (--redis), with the real centrifuge SDK:
// a client connected to one is seen through the other's SDK calls and HTTP
// API, join and leave pushes cross in both directions, a server stopped
// cleanly takes its members away at once, and a server killed with SIGKILL
// loses them within its node lease.
//
// Starts its own redis-server ($REDIS_SERVER, else redis-server on the
// PATH) on a free loopback port, without persistence. Skipped, saying why,
// when there is no redis-server or the server was built without Redis
// support (no hiredis); a failure instead with PRESENCE_E2E_REQUIRE_REDIS=1.

const { test, describe, before, after, afterEach } = require('node:test');
const assert = require('node:assert/strict');
const { execFile } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { promisify } = require('node:util');
const h = require('./lib/harness');

const run = promisify(execFile);

// Short, so that the SIGKILL test is quick: the others notice a dead node
// within the lease plus a quarter of it (presence_cluster.h).
const LEASE_MS = 1000;
// Scheduling slack on a loaded CI machine, on top of that bound.
const SLACK_MS = 1500;
// How long a change may take to cross from one node to the other.
const CROSS_MS = 5000;

const hasRedisSupport = h.serverHasRedis();
const skip = !h.findRedisServer() ? 'no redis-server (apt-get install redis-server, or set REDIS_SERVER)'
  : !hasRedisSupport ? 'presence-server was built without Redis support (no hiredis)'
    : false;

// In CI, where redis-server is installed and the build has Redis support,
// PRESENCE_E2E_REQUIRE_REDIS=1 turns a skip into a failure.
test('the Redis tests can run', { skip: !skip || process.env.PRESENCE_E2E_REQUIRE_REDIS !== '1' }, () => {
  assert.fail(`PRESENCE_E2E_REQUIRE_REDIS=1, but ${skip}`);
});

function clusterArgs(redis, name, extra = []) {
  return ['--redis', redis.url, '--name', name, '--node-lease', `${LEASE_MS}ms`, ...extra];
}

function recordJoinLeave(sub) {
  const events = [];
  sub.on('join', (ctx) => events.push({ kind: 'join', at: Date.now(), ...ctx.info, channel: ctx.channel }));
  sub.on('leave', (ctx) => events.push({ kind: 'leave', at: Date.now(), ...ctx.info, channel: ctx.channel }));
  return events;
}

function waitEvent(events, kind, client, what, timeout = CROSS_MS) {
  return h.waitFor(() => events.find((e) => e.kind === kind && e.client === client),
    { timeout, what });
}

// Wait until a server's HTTP API lists exactly these clients in channel.
function waitHttpMembers(srv, channel, ids, what) {
  const want = [...ids].sort();
  return h.waitFor(async () => {
    const p = await h.httpPresence(srv, channel);
    const got = Object.keys(p).sort();
    return JSON.stringify(got) === JSON.stringify(want) ? p : false;
  }, { timeout: CROSS_MS, what });
}

// The Redis handle on a thread of its own (the default), then on the
// server's event loop ("redis_on_loop"): the same behaviour either way.
const MODES = [
  ['', () => h.baseConfig()],
  [' (redis_on_loop)', () => h.baseConfig({ redis_on_loop: true })],
];

for (const [mode, modeConfig] of MODES) describe(`two servers on one Redis${mode}`, { skip }, () => {
  let redis;
  let a;
  let b;
  const extra = []; // servers a test starts beyond a and b
  const start = (name, more = []) =>
    h.startServer({ config: modeConfig(), args: [...clusterArgs(redis, name), ...more] });

  before(async () => {
    redis = await h.startRedis();
    a = await start('node-a');
    b = await start('node-b');
  });
  afterEach(() => h.disconnectAll());
  after(async () => {
    h.disconnectAll();
    const all = [['a', a], ['b', b], ...extra.map((s, i) => [`extra ${i}`, s])].filter(([, s]) => s);
    const results = await Promise.all(all.map(([, s]) => s.stop()));
    if (redis) await redis.stop();
    // Every server but b (killed by its test) stops cleanly.
    results.forEach((r, i) => {
      const [name, s] = all[i];
      if (name !== 'b') assert.equal(r.code, 0, `server ${name} exits cleanly:\n${s.child.out.stderr}`);
    });
  });

  test('the banner names the node, the Redis address and the lease', () => {
    assert.match(a.child.out.stdout, /Engine: +redis 127\.0\.0\.1:\d+\/0, key prefix "presence"/);
    assert.match(a.child.out.stdout, new RegExp(`Node: +node-a \\(lease ${LEASE_MS} ms\\)`));
    assert.match(b.child.out.stdout, /Node: +node-b /);
    assert.doesNotMatch(a.child.out.stderr, /not reachable/);
  });

  test(mode ? 'no thread of its own for Redis' : 'Redis on a thread of its own', { skip: process.platform !== 'linux' }, () => {
    const dir = `/proc/${a.child.pid}/task`;
    const names = fs.readdirSync(dir).map((t) => fs.readFileSync(`${dir}/${t}/comm`, 'utf8').trim());
    assert.ok(names.includes('ps-loop'), names.join());
    assert.equal(names.includes('presence-redis'), !mode, names.join());
  });

  test('a client on A sees, through the SDK, a client connected to B', async () => {
    const ch = 'public:cross-sdk';
    const alice = await h.connectAndSubscribe(a, {
      token: h.userToken(a, 'alice', { info: { name: 'Alice' } }), channel: ch });
    const bob = await h.connectAndSubscribe(b, {
      token: h.userToken(b, 'bob', { info: { name: 'Bob' } }), channel: ch });

    const p = await h.waitFor(async () => {
      const r = await alice.sub.presence();
      return r.clients[bob.id] ? r : false;
    }, { timeout: CROSS_MS, what: 'bob in presence on A' });
    assert.deepEqual(Object.keys(p.clients).sort(), [alice.id, bob.id].sort());
    assert.equal(p.clients[bob.id].user, 'bob');
    assert.equal(p.clients[bob.id].client, bob.id);
    assert.deepEqual(p.clients[bob.id].connInfo, { name: 'Bob' });
    assert.deepEqual(await alice.sub.presenceStats(), { numClients: 2, numUsers: 2 });

    // And the other way round.
    const q = await h.waitFor(async () => {
      const r = await bob.sub.presence();
      return r.clients[alice.id] ? r : false;
    }, { timeout: CROSS_MS, what: 'alice in presence on B' });
    assert.deepEqual(q.clients[alice.id].connInfo, { name: 'Alice' });
    assert.deepEqual(await bob.sub.presenceStats(), { numClients: 2, numUsers: 2 });

    // One user on both servers counts once.
    const alice2 = await h.connectAndSubscribe(b, { token: h.userToken(b, 'alice'), channel: ch });
    await h.waitFor(async () => {
      const s = await alice.sub.presenceStats();
      return s.numClients === 3 ? s : false;
    }, { timeout: CROSS_MS, what: 'three clients on A' });
    assert.deepEqual(await alice.sub.presenceStats(), { numClients: 3, numUsers: 2 });
    alice2.client.disconnect();
    await h.waitFor(async () => (await alice.sub.presenceStats()).numClients === 2,
      { timeout: CROSS_MS, what: 'alice2 gone from A' });
  });

  test("A's HTTP API lists members connected to B", async () => {
    const ch = 'public:cross-http';
    const bob = await h.connectAndSubscribe(b, {
      token: h.userToken(b, 'bob', { info: { team: 'b' } }), channel: ch });
    const carol = await h.connectAndSubscribe(b, { token: h.userToken(b, 'carol'), channel: ch });
    const p = await waitHttpMembers(a, ch, [bob.id, carol.id], 'B members in A\'s /api/presence');
    assert.deepEqual(p[bob.id], { user: 'bob', client: bob.id, conn_info: { team: 'b' } });
    assert.deepEqual(p[carol.id], { user: 'carol', client: carol.id });
    assert.deepEqual(await h.httpStats(a, ch), { num_clients: 2, num_users: 2 });
    // The {"method", "params"} form agrees.
    const r = await h.api(a, '/api', { method: 'presence_stats', params: { channel: ch } });
    assert.deepEqual(r.json, { result: { num_clients: 2, num_users: 2 } });
    // B's own answer is the same.
    assert.deepEqual(await h.httpPresence(b, ch), p);

    carol.client.disconnect();
    await waitHttpMembers(a, ch, [bob.id], 'carol gone from A\'s /api/presence');
    bob.sub.unsubscribe();
    await waitHttpMembers(a, ch, [], 'bob gone from A\'s /api/presence');
    assert.deepEqual(await h.httpStats(a, ch), { num_clients: 0, num_users: 0 });
  });

  test('join and leave of a client on B reach a subscriber on A, and the other way', async () => {
    const ch = 'public:cross-joinleave';
    const watcherA = await h.connectAndSubscribe(a, {
      token: h.userToken(a, 'watch-a'), channel: ch, joinLeave: true });
    const watcherB = await h.connectAndSubscribe(b, {
      token: h.userToken(b, 'watch-b'), channel: ch, joinLeave: true });
    const onA = recordJoinLeave(watcherA.sub);
    const onB = recordJoinLeave(watcherB.sub);
    // Each watcher sees the other join first (it may already have).
    await h.waitFor(async () => Object.keys((await watcherA.sub.presence()).clients).length === 2,
      { timeout: CROSS_MS, what: 'both watchers on A' });

    // A client on B: its join and leave reach A.
    const dave = await h.connectAndSubscribe(b, {
      token: h.userToken(b, 'dave', { info: { n: 4 } }), channel: ch });
    const join = await waitEvent(onA, 'join', dave.id, 'dave\'s join on A');
    assert.equal(join.user, 'dave');
    assert.equal(join.channel, ch);
    assert.deepEqual(join.connInfo, { n: 4 });
    dave.sub.unsubscribe();
    const leave = await waitEvent(onA, 'leave', dave.id, 'dave\'s leave on A');
    assert.equal(leave.user, 'dave');
    assert.ok(leave.at >= join.at);

    // A client on A: its join and leave (a disconnect) reach B.
    const erin = await h.connectAndSubscribe(a, { token: h.userToken(a, 'erin'), channel: ch });
    assert.equal((await waitEvent(onB, 'join', erin.id, 'erin\'s join on B')).user, 'erin');
    erin.client.disconnect();
    assert.equal((await waitEvent(onB, 'leave', erin.id, 'erin\'s leave on B')).user, 'erin');

    // Each push once, on each side.
    await h.sleep(200);
    for (const [events, id] of [[onA, dave.id], [onB, erin.id]]) {
      assert.equal(events.filter((e) => e.client === id && e.kind === 'join').length, 1);
      assert.equal(events.filter((e) => e.client === id && e.kind === 'leave').length, 1);
    }
    // B's watcher saw dave locally, too: joined and left once.
    assert.equal(onB.filter((e) => e.client === dave.id).map((e) => e.kind).join(), 'join,leave');
  });

  test('a server stopped cleanly takes its members away at once', async () => {
    const ch = 'public:cross-stop';
    // A long lease: a leave that comes quickly is not the lease running out.
    const c = await start('node-c', ['--node-lease', '30s']);
    extra.push(c);
    const watcher = await h.connectAndSubscribe(a, {
      token: h.userToken(a, 'watch'), channel: ch, joinLeave: true });
    const events = recordJoinLeave(watcher.sub);
    const frank = await h.connectAndSubscribe(c, { token: h.userToken(c, 'frank'), channel: ch });
    await waitEvent(events, 'join', frank.id, 'frank\'s join on A');
    frank.client.disconnect();
    await waitEvent(events, 'leave', frank.id, 'frank\'s leave on A');

    const grace = await h.connectAndSubscribe(c, { token: h.userToken(c, 'grace'), channel: ch });
    await waitEvent(events, 'join', grace.id, 'grace\'s join on A');
    const t0 = Date.now();
    const { code } = await c.stop();
    assert.equal(code, 0, `node-c exits cleanly:\n${c.child.out.stderr}`);
    await waitEvent(events, 'leave', grace.id, 'grace\'s leave on A after SIGTERM', SLACK_MS);
    grace.client.disconnect();
    await waitHttpMembers(a, ch, [watcher.id], 'only the watcher left on A');
    assert.ok(Date.now() - t0 < SLACK_MS + 1000, `took ${Date.now() - t0} ms`);
  });

  test('when B is killed with SIGKILL, its members leave A within the lease', async (t) => {
    const ch = 'public:cross-kill';
    const watcher = await h.connectAndSubscribe(a, {
      token: h.userToken(a, 'watch'), channel: ch, joinLeave: true });
    const events = recordJoinLeave(watcher.sub);
    const henry = await h.connectAndSubscribe(b, { token: h.userToken(b, 'henry'), channel: ch });
    const ida = await h.connectAndSubscribe(b, { token: h.userToken(b, 'ida'), channel: 'public:cross-kill-2' });
    await waitEvent(events, 'join', henry.id, 'henry\'s join on A');
    await waitHttpMembers(a, 'public:cross-kill-2', [ida.id], 'ida in A\'s /api/presence');

    const t0 = Date.now();
    b.child.kill('SIGKILL');
    const { signal } = await b.child.exited;
    assert.equal(signal, 'SIGKILL');
    const bound = LEASE_MS + LEASE_MS / 4;
    const leave = await waitEvent(events, 'leave', henry.id, 'henry\'s leave on A', bound + SLACK_MS);
    const took = leave.at - t0;
    t.diagnostic(`leave on A ${took} ms after SIGKILL (bound ${bound} ms)`);
    assert.ok(took <= bound + SLACK_MS, `leave after ${took} ms (bound ${bound} ms)`);
    assert.equal(leave.user, 'henry');
    // Every member of B is gone from A, in every channel.
    await waitHttpMembers(a, ch, [watcher.id], 'B members gone from A');
    await waitHttpMembers(a, 'public:cross-kill-2', [], 'ida gone from A');
    assert.deepEqual(await watcher.sub.presenceStats(), { numClients: 1, numUsers: 1 });
    henry.client.disconnect();
    ida.client.disconnect();
  });
});

// ------------------------------------------------------------ the options

// Run the binary to completion; resolves with { code, stdout, stderr }.
async function runServer(args) {
  try {
    const r = await run(h.SERVER_BIN, args, { timeout: 10000 });
    return { code: 0, ...r };
  } catch (e) {
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

function tempConfig(obj) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'presence-cfg-'));
  const file = path.join(dir, 'config.json');
  fs.writeFileSync(file, JSON.stringify(obj));
  return file;
}

test('--version says whether Redis support is built in', async () => {
  const r = await runServer(['--version']);
  assert.equal(r.code, 0);
  assert.match(r.stdout, /^Redis support \(--redis, "engine": "redis"\): (built in|not built in)/m);
});

test('bad Redis options are refused with the reason, before anything starts', async () => {
  const port = String(await h.freePort());
  const cases = [
    [['--redis', 'rediss://127.0.0.1:6379'], 1, /key "redis_address": TLS \(rediss:\/\/\) is not supported/],
    [['--redis', 'redis://alice:pw@127.0.0.1'], 1, /Redis ACL users are not supported/],
    [['--redis', '127.0.0.1:0'], 1, /the port must be a number 1-65535/],
    [['--redis', 'redis://127.0.0.1/x'], 1, /the database must be a number/],
    [['--redis', 'h', '--name', 'a{b}'], 1, /key "name"/],
    [['--redis', 'h', '--redis-prefix', 'a b'], 1, /key "redis_prefix"/],
    [['--redis', 'h', '--node-lease', '10ms'], 2, /bad --node-lease 10ms/],
    [['--config', tempConfig({ engine: 'nats' })], 1, /key "engine": expected "memory" or "redis"/],
    [['--config', tempConfig({ engine: 'redis', redis_address: ['a:1', 'b:1'] })], 1,
      /key "redis_address": one address only/],
    [['--config', tempConfig({ redis_user: 'bob' })], 1, /key "redis_user": Redis ACL users/],
  ];
  for (const [args, code, re] of cases) {
    const r = await runServer([...args, '--port', port]);
    assert.equal(r.code, code, `${args.join(' ')}: exit ${r.code}\n${r.stderr}`);
    assert.match(r.stderr, re, args.join(' '));
    assert.doesNotMatch(r.stdout, /listening on/);
  }
});

test('without Redis support, --redis is an error that says so', { skip: hasRedisSupport && 'built with Redis support' }, async () => {
  for (const args of [['--redis', 'redis://127.0.0.1:6379'],
    ['--config', tempConfig({ engine: 'redis' })]]) {
    const r = await runServer([...args, '--port', String(await h.freePort())]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /not supported by this build: hiredis was not found/);
  }
});

describe('Redis options end to end', { skip }, () => {
  afterEach(() => h.disconnectAll());

  test('config keys and URL forms: password, db, prefix, name, lease; other prefixes share nothing', async () => {
    const redis = await h.startRedis({ args: ['--requirepass', 's3cret'] });
    const servers = [];
    try {
      // One node from the config file (Centrifugo's keys)...
      const a = await h.startServer({ config: h.baseConfig({
        engine: 'redis', redis_address: `127.0.0.1:${redis.port}`, redis_password: 's3cret',
        redis_db: 3, redis_prefix: 'app1', name: 'cfg-node', node_lease: '2s' }) });
      servers.push(a);
      assert.match(a.child.out.stdout, new RegExp(`Engine: +redis 127\\.0\\.0\\.1:${redis.port}/3, key prefix "app1"`));
      assert.match(a.child.out.stdout, /Node: +cfg-node \(lease 2000 ms\)/);
      assert.doesNotMatch(a.child.out.stdout + a.child.out.stderr, /s3cret/, 'the password is never printed');
      // ...one from the command line, with the password and db in the URL...
      const b = await h.startServer({
        args: ['--redis', `redis://:s3cret@127.0.0.1:${redis.port}/3`, '--redis-prefix', 'app1'] });
      servers.push(b);
      assert.match(b.child.out.stdout, /Node: +[0-9a-f]+ \(lease 3000 ms\)/);
      // ...and one with another prefix: a separate cluster on the same Redis.
      const c = await h.startServer({
        args: ['--redis', `redis://:s3cret@127.0.0.1:${redis.port}/3`, '--redis-prefix', 'app2'] });
      servers.push(c);

      const ch = 'public:prefixes';
      const onA = await h.connectAndSubscribe(a, { token: h.userToken(a, 'a'), channel: ch });
      const onB = await h.connectAndSubscribe(b, { token: h.userToken(b, 'b'), channel: ch });
      const onC = await h.connectAndSubscribe(c, { token: h.userToken(c, 'c'), channel: ch });
      await waitHttpMembers(a, ch, [onA.id, onB.id], 'A and B share');
      await waitHttpMembers(b, ch, [onA.id, onB.id], 'B and A share');
      await h.sleep(300);
      assert.deepEqual(Object.keys(await h.httpPresence(c, ch)), [onC.id]);
      assert.deepEqual(Object.keys(await h.httpPresence(a, ch)).sort(), [onA.id, onB.id].sort());
      for (const s of [a, b, c]) {
        assert.doesNotMatch(s.child.out.stderr, /refused|failed/, s.child.out.stderr);
      }
    } finally {
      h.disconnectAll();
      const results = await Promise.all(servers.map((s) => s.stop()));
      await redis.stop();
      results.forEach((r, i) => assert.equal(r.code, 0, `server ${i} exits cleanly:\n${servers[i].child.out.stderr}`));
    }
  });

  for (const [mode, modeConfig] of MODES) test(`Redis restarted empty: both servers come back and share again${mode}`, async () => {
    const port = await h.freePort();
    const servers = [];
    let redis = await h.startRedis({ port });
    try {
      const a = await h.startServer({ config: modeConfig(), args: clusterArgs(redis, 'restart-a') });
      const b = await h.startServer({ config: modeConfig(), args: clusterArgs(redis, 'restart-b') });
      servers.push(a, b);
      const ch = 'public:redis-restart';
      const onA = await h.connectAndSubscribe(a, { token: h.userToken(a, 'before'), channel: ch, joinLeave: true });
      const events = recordJoinLeave(onA.sub);
      const early = await h.connectAndSubscribe(b, { token: h.userToken(b, 'early'), channel: ch });
      await waitHttpMembers(a, ch, [onA.id, early.id], 'B\'s member on A before the restart');

      await redis.stop();
      await h.sleep(300);
      redis = await h.startRedis({ port }); // empty: each server announces itself again
      // Both reconnect (backoff of at most a second) and load each other.
      await waitHttpMembers(a, ch, [onA.id, early.id], 'B\'s member on A after the restart');
      await waitHttpMembers(b, ch, [onA.id, early.id], 'A\'s member on B after the restart');
      const late = await h.connectAndSubscribe(b, { token: h.userToken(b, 'late'), channel: ch });
      await waitEvent(events, 'join', late.id, 'a join from B on A after the restart');
      await waitHttpMembers(a, ch, [onA.id, early.id, late.id], 'the new member on A');
    } finally {
      h.disconnectAll();
      const results = await Promise.all(servers.map((s) => s.stop()));
      await redis.stop();
      results.forEach((r, i) => assert.equal(r.code, 0, `server ${i} exits cleanly:\n${servers[i].child.out.stderr}`));
    }
  });

  for (const [mode, modeConfig] of MODES) test(`a server started before Redis serves alone, then shares once Redis is up${mode}`, async () => {
    const port = await h.freePort();
    const servers = [];
    let redis;
    try {
      const a = await h.startServer({ config: modeConfig(),
        args: ['--redis', `redis://127.0.0.1:${port}`, '--node-lease', '1s'] });
      servers.push(a);
      assert.match(a.child.out.stderr, /redis: not reachable yet at 127\.0\.0\.1:\d+\/0; serving anyway/);
      const ch = 'public:late-redis';
      const alone = await h.connectAndSubscribe(a, { token: h.userToken(a, 'early'), channel: ch, joinLeave: true });
      const events = recordJoinLeave(alone.sub);
      assert.deepEqual(Object.keys(await h.httpPresence(a, ch)), [alone.id]);

      redis = await h.startRedis({ port });
      const b = await h.startServer({ config: modeConfig(), args: clusterArgs(redis, 'late-b') });
      servers.push(b);
      const late = await h.connectAndSubscribe(b, { token: h.userToken(b, 'late'), channel: ch });
      // A reconnects (backoff of at most a second) and both see both.
      await waitHttpMembers(b, ch, [alone.id, late.id], 'A\'s early member on B');
      await waitHttpMembers(a, ch, [alone.id, late.id], 'B\'s member on A');
      await waitEvent(events, 'join', late.id, 'the join from B on A');
    } finally {
      h.disconnectAll();
      const results = await Promise.all(servers.map((s) => s.stop()));
      if (redis) await redis.stop();
      results.forEach((r, i) => assert.equal(r.code, 0, `server ${i} exits cleanly:\n${servers[i].child.out.stderr}`));
    }
  });
});
