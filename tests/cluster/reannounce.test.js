'use strict';
// A re-announce that meets a reap (issue 17, item 4). Node a holds
// thousands of memberships and reaches Redis through a slow link (16 KB
// every 5 ms each way), so that its announce -- the members staged chunk
// by chunk, then one script that makes them its state and takes the lease
// -- takes a good part of the other node's check interval. a is paused
// (SIGSTOP) until just past the end of its lease, then resumed: it finds
// its lease gone and announces again, while b, finding no lease, declares
// it down and reaps its keys. Whatever the order in which their commands
// reach Redis, b must end up with every one of a's memberships, and Redis
// with the same; an announce must never make a part of a's members its
// state.
//
// The second test deletes a's staging hash in the middle of an announce
// (what a reap did before the fix, and what an expiry could do): the
// announce must see that it did not get everything it staged, refuse, and
// be made again.

const { test } = require('node:test');
const assert = require('node:assert/strict');
const { startRedis } = require('./lib/redis');
const { startProxy } = require('./lib/proxy');
const { ClusterNode } = require('./lib/node');
const { rng, sleep, testSeed, waitFor } = require('./lib/util');
const { checkExits, keys } = require('./lib/cluster');

const LEASE_MS = 1000;
const CLIENTS = 40;
const CHANNELS = 300;
const SLOW_LINK = { bytes: 16384, everyMs: 5 };
const TRIES = Number(process.env.REANNOUNCE_TRIES || 12);

// Redis, a slow link in front of it for node a, node a (through it) and
// node b (straight); a's CLIENTS clients each in 100 to 128 channels, with
// chan_infos of 16 to 96 bytes. fn gets the pieces and a's total.
async function slowCluster(t, name, fn) {
  const seed = testSeed(t, name);
  const rand = rng(seed);
  const redis = await startRedis();
  const proxy = await startProxy(redis.port, { throttle: SLOW_LINK });
  const prefix = `rean${seed}`;
  const nodes = [];
  const rc = await redis.client();
  try {
    const opts = { leaseMs: LEASE_MS, prefix, extraArgs: ['--no-events'] };
    nodes.push(await ClusterNode.start({ id: 'a', redisPort: proxy.port, ...opts }));
    nodes.push(await ClusterNode.start({ id: 'b', redisPort: redis.port, ...opts }));
    const [a, b] = nodes;
    await Promise.all(nodes.map((n) => n.waitSynced(1)));
    const joins = [];
    for (let i = 0; i < CLIENTS; i++) {
      const n = 100 + rand.int(29);
      const first = rand.int(CHANNELS);
      for (let j = 0; j < n; j++) {
        const info = `i${j}-${'x'.repeat(16 + rand.int(81))}`;
        joins.push(a.join(`room-${(first + j) % CHANNELS}`, `a-c${i}`, `u${i % 7}`, info));
      }
    }
    await Promise.all(joins);
    const total = joins.length;
    await waitFor(async () => (await b.count()).memberships === total && (await a.status()).pending === 0,
      { timeout: 20000, interval: 100, what: `b holding a's ${total} memberships` });
    t.diagnostic(`a holds ${total} memberships of ${CLIENTS} clients`);
    await fn({ rand, redis, rc, prefix, a, b, total });
  } finally {
    rc.close();
    for (const n of nodes) {
      try { n.signal('SIGCONT'); } catch { /* gone */ }
    }
    const exits = await Promise.all(nodes.map((n) => n.quit()));
    await proxy.close();
    await redis.stop();
    checkExits(nodes, exits, nodes);
  }
}

// Pause a until `afterMs` past the end of its lease (read from Redis once
// a is stopped and what it had sent has landed), then resume it. While it
// sleeps, `during` (if any) runs once it is awake.
async function pastTheLease(ctx, afterMs) {
  const { a, rc, prefix } = ctx;
  a.signal('SIGSTOP');
  await sleep(30);
  const pttl = Number(await rc.call('PTTL', keys.lease(prefix, 'a')));
  await sleep(Math.max(pttl, 0) + afterMs);
  a.signal('SIGCONT');
  return pttl;
}

// After a's wake: wait until a holds a lease again and is synced, give b
// two of its checks to act on what it saw meanwhile, then b must hold all
// of a's memberships, and Redis too (with no expiry on a's members hash,
// and no staging hash left that would never expire).
async function assertWhole(ctx, what) {
  const { a, b, rc, prefix, total } = ctx;
  await waitFor(async () => (await a.status()).synced === 1 &&
      Number(await rc.call('PTTL', keys.lease(prefix, 'a'))) > 0,
  { timeout: 10000, interval: 20, what: `a back with a lease (${what})` });
  await sleep(LEASE_MS / 2);
  let last;
  try {
    await waitFor(async () => {
      last = await b.count();
      return last.memberships === total && (await b.status()).synced === 1;
    }, { timeout: 3 * LEASE_MS, interval: 50, what: `b holding all of a's memberships (${what})` });
  } catch (e) {
    const hlen = await rc.call('HLEN', keys.members(prefix, 'a'));
    throw new Error(`${e.message}: b holds ${last && last.memberships} of a's ${total}, ` +
      `Redis ${hlen}\n--- a stderr (tail):\n${a.stderr.slice(-3000)}\n--- b stderr (tail):\n${
        b.stderr.slice(-3000)}`);
  }
  assert.equal(await rc.call('HLEN', keys.members(prefix, 'a')), total, `Redis holds a's members (${what})`);
  assert.equal(await rc.call('PTTL', keys.members(prefix, 'a')), -1, `a's members hash does not expire (${what})`);
  for (const k of await rc.call('KEYS', `${keys.staging(prefix, 'a')}*`)) {
    assert.ok(Number(await rc.call('PTTL', k)) > 0, `staging hash ${k} expires (${what})`);
  }
}

test('a reap that meets a re-announce: the other node still gets every membership', {
  timeout: 100000,
}, async (t) => {
  await slowCluster(t, 'reannounce-reap', async (ctx) => {
    let reaps = 0;
    for (let i = 1; i <= TRIES; i++) {
      const before = await ctx.b.status();
      // Awake just past the lease: before b's next check (every quarter
      // of a lease), or during it.
      const after = ctx.rand.int(LEASE_MS / 4);
      const pttl = await pastTheLease(ctx, after);
      await assertWhole(ctx, `try ${i}, ${after} ms past a lease of ${pttl} ms left`);
      const st = await ctx.b.status();
      reaps += st.nodes_down > before.nodes_down ? 1 : 0;
    }
    t.diagnostic(`${TRIES} pauses past the lease; b declared a down (and reaped it) in ${reaps}`);
    assert.ok(reaps > 0, 'b reaped a at least once: the race was run');
  });
});

test('an announce whose staging hash lost members is refused and made again', {
  timeout: 60000,
}, async (t) => {
  await slowCluster(t, 'reannounce-cut', async (ctx) => {
    const { a, rc, prefix } = ctx;
    let cut = null;
    for (let i = 1; i <= 5 && cut === null; i++) {
      const mark = a.stderr.length;
      const woke = pastTheLease(ctx, 0);
      // Watch for a's staging hash and delete it once it holds members.
      const until = Date.now() + 2 * LEASE_MS + 1500;
      while (cut === null && Date.now() < until) {
        for (const k of await rc.call('KEYS', `${keys.staging(prefix, 'a')}*`)) {
          if (Number(await rc.call('HLEN', k)) > 0 && Number(await rc.call('DEL', k)) === 1) {
            cut = { key: k, mark };
          }
        }
        await sleep(2);
      }
      await woke;
      await assertWhole(ctx, `pause ${i}`);
    }
    assert.ok(cut !== null, "a's staging hash was caught in the middle of an announce");
    t.diagnostic(`deleted ${cut.key} in the middle of a's announce`);
    assert.match(a.stderr.slice(cut.mark), /announce refused/, 'a said that it announces again');
  });
});
