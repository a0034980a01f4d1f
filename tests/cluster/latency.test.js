'use strict';
// Replication latency, coarse bounds only (the figures are the bench's):
// a join on one node is an event on the other within 100 ms, once the
// cluster runs -- and right after both nodes report synced.

const { test } = require('node:test');
const assert = require('node:assert/strict');
const { startRedis } = require('./lib/redis');
const { ClusterNode } = require('./lib/node');
const { monoNs, sleep } = require('./lib/util');
const { checkExits } = require('./lib/cluster');

const BOUND_MS = 100;

async function twoNodes(prefix) {
  const redis = await startRedis();
  const a = await ClusterNode.start({ id: 'a', redisPort: redis.port, prefix, leaseMs: 3000 });
  const b = await ClusterNode.start({ id: 'b', redisPort: redis.port, prefix, leaseMs: 3000 });
  await Promise.all([a.waitSynced(1), b.waitSynced(1)]);
  return {
    a, b,
    async stop() {
      const exits = await Promise.all([a.quit(), b.quit()]);
      await redis.stop();
      checkExits([a, b], exits, [a, b]);
    },
  };
}

// Join `client` on a; the ms until b's event.
async function lagOf(a, b, client) {
  const t0 = monoNs();
  await a.join('room-l', client, 'u', '-');
  const [ev] = await b.waitEvents((e) => e.kind === 'join' && e.client === client, 1, { timeout: 5000 });
  return Number(ev.tNs - t0) / 1e6;
}

test('a join reaches the other node within 100 ms in a running cluster', { timeout: 30000 }, async (t) => {
  const cl = await twoNodes('lat');
  try {
    await lagOf(cl.a, cl.b, 'warm'); // past the start (see the next test)
    const lags = [];
    for (let i = 0; i < 20; i++) {
      lags.push(await lagOf(cl.a, cl.b, `c${i}`));
      await sleep(20);
    }
    t.diagnostic(`lags (ms): ${lags.map((l) => l.toFixed(2)).join(' ')}`);
    assert.ok(Math.max(...lags) < BOUND_MS, `max lag ${Math.max(...lags).toFixed(1)} ms`);
  } finally {
    await cl.stop();
  }
});

// A regression test: a node whose state was just loaded was not in the
// XREAD that the reader had blocked in already, so its first changes
// waited for that read to time out (~500 ms) while the status said synced.
test('the first join after both nodes report synced reaches the other within 100 ms', {
  timeout: 30000,
}, async (t) => {
  const cl = await twoNodes('lat0');
  try {
    const lag = await lagOf(cl.a, cl.b, 'first');
    t.diagnostic(`first join after synced: ${lag.toFixed(1)} ms`);
    assert.ok(lag < BOUND_MS, `lag ${lag.toFixed(1)} ms`);
  } finally {
    await cl.stop();
  }
});

// A batch delay (presence_cluster_config::batch_delay_ms) holds a change
// back that long, no longer: three joins made within it reach the other
// node together, the first of them after the delay; and leaving the
// cluster writes what waits at once.
test('a batch delay holds changes back that long, and a leaving node writes them first', {
  timeout: 30000,
}, async (t) => {
  const DELAY_MS = 300;
  const redis = await startRedis();
  const a = await ClusterNode.start({
    id: 'a', redisPort: redis.port, prefix: 'latd', leaseMs: 3000,
    extraArgs: ['--batch-delay-ms', String(DELAY_MS)],
  });
  const b = await ClusterNode.start({ id: 'b', redisPort: redis.port, prefix: 'latd', leaseMs: 3000 });
  try {
    await Promise.all([a.waitSynced(1), b.waitSynced(1)]);
    const t0 = monoNs();
    for (const client of ['d1', 'd2', 'd3']) await a.join('room-d', client, 'u', '-');
    const evs = await b.waitEvents((e) => e.kind === 'join' && e.client.startsWith('d'), 3,
      { timeout: 5000 });
    const lags = evs.map((e) => Number(e.tNs - t0) / 1e6);
    t.diagnostic(`lags with a ${DELAY_MS} ms delay (ms): ${lags.map((l) => l.toFixed(1)).join(' ')}`);
    assert.ok(Math.min(...lags) >= DELAY_MS - 5, `held back ${Math.min(...lags).toFixed(1)} ms`);
    assert.ok(Math.max(...lags) < DELAY_MS + BOUND_MS, `max lag ${Math.max(...lags).toFixed(1)} ms`);
    assert.ok(Math.max(...lags) - Math.min(...lags) < 50, 'the three came in one batch');
    // A join just before leaving still reaches b, then b drops a's members.
    await a.join('room-d', 'last', 'u', '-');
    const exitA = await a.quit();
    const [join] = await b.waitEvents((e) => e.kind === 'join' && e.client === 'last', 1,
      { timeout: 5000 });
    assert.equal(join.node, 'a');
    await b.waitEvents((e) => e.kind === 'leave' && e.client === 'last' && e.reason === 'node_down', 1,
      { timeout: 5000 });
    const exitB = await b.quit();
    checkExits([a, b], [exitA, exitB], [a, b]);
  } finally {
    a.kill(); // a failed check must not leave a node holding the test open
    b.kill();
    await redis.stop();
  }
});
