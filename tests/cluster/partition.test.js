'use strict';
// A node cut off from Redis by the network, not killed: its connections go
// through a proxy that turns them into black holes (no FIN, no RST).
// - A partition (new connections are black holes too): the others drop its
//   members with "node_down" within the lease bound, as for a dead node;
//   the node notices that its replies stopped, keeps trying, and comes back
//   when the network heals.
// - A dropped NAT entry (only the open connections are dead): the node
//   gives them up after half a lease without an answer and reconnects; it
//   may be back before its lease runs out (then the others never drop its
//   members) or just after (they drop them and take them back). Either way
//   every view converges.

const { test } = require('node:test');
const assert = require('node:assert/strict');
const { startRedis } = require('./lib/redis');
const { startProxy } = require('./lib/proxy');
const { ClusterNode } = require('./lib/node');
const { monoNs, rng, sleep, testSeed } = require('./lib/util');
const { Model, checkExits, churn, waitConverged, assertEventsMatchViews } = require('./lib/cluster');

const LEASE_MS = 1000;
const BOUND_MS = LEASE_MS + LEASE_MS / 4;
const SLACK_MS = 150;

// n1, n2 straight to Redis; n3 through the proxy.
async function partitionCluster(t, name, fn) {
  const seed = testSeed(t, name);
  const rand = rng(seed);
  const redis = await startRedis();
  const proxy = await startProxy(redis.port);
  const prefix = `part${seed}`;
  const nodes = [];
  try {
    for (const [id, port] of [['n1', redis.port], ['n2', redis.port], ['n3', proxy.port]]) {
      nodes.push(await ClusterNode.start({ id, redisPort: port, leaseMs: LEASE_MS, prefix }));
    }
    await Promise.all(nodes.map((n) => n.waitSynced(2)));
    await fn({ rand, redis, proxy, prefix, nodes });
  } finally {
    const exits = await Promise.all(nodes.map((n) => n.quit()));
    await proxy.close();
    await redis.stop();
    checkExits(nodes, exits, nodes);
  }
}

// Cut n3 off; check that n1 and n2 drop its members in time, while both
// sides keep changing; `heal` then brings it back (or not).
async function cutOff(t, { rand, redis, proxy, prefix, nodes }, { drop, all }, heal, timeout) {
  const [n1, n2, n3] = nodes;
  const model = new Model();
  await churn(rand, model, nodes, { rounds: 8, perRound: 15, pauseMs: 10 });
  await n3.join('room-z', 'n3-cut', 'cut', '-');
  model.join('n3', 'room-z', 'n3-cut', 'cut', '');
  await waitConverged(nodes, redis, prefix, model.lines(['n1', 'n2', 'n3']));
  const gone = model.memberships(['n3']).length;
  const marks = [n1.events.length, n2.events.length];
  const cutAt = monoNs();
  proxy.freeze({ drop, all });
  for (const [i, node] of all ? [n1, n2].entries() : []) {
    const evs = await node.waitEvents((e) => e.kind === 'leave' && e.node === 'n3', gone,
      { from: marks[i], timeout: BOUND_MS + 3000, what: "n3's leaves" });
    assert.ok(evs.every((e) => e.reason === 'node_down'), `${node.id}: node_down`);
    const ms = Number(evs.reduce((m, e) => (e.tNs > m ? e.tNs : m), 0n) - cutAt) / 1e6;
    t.diagnostic(`${node.id}: n3's ${gone} members gone ${ms.toFixed(0)} ms after the cut`);
    assert.ok(ms <= BOUND_MS + SLACK_MS, `${node.id}: within the bound (${ms.toFixed(0)} ms)`);
  }
  // Both sides go on changing while cut off.
  await churn(rand, model, nodes, { rounds: 4, perRound: 15, pauseMs: 10 });
  await heal();
  const healedAt = Date.now();
  const views = await waitConverged(nodes, redis, prefix, model.lines(['n1', 'n2', 'n3']), { timeout });
  t.diagnostic(`converged ${Date.now() - healedAt} ms after healing; n3: ${JSON.stringify(await n3.status())}`);
  assertEventsMatchViews(nodes, views);
}

test('a node cut off past its lease, then healed: its members leave, then return', { timeout: 60000 }, async (t) => {
  await partitionCluster(t, 'partition-heal', async (ctx) => {
    await cutOff(t, ctx, { drop: false, all: true }, async () => {
      await sleep(LEASE_MS);
      ctx.proxy.thaw();
    }, 10000);
  });
});

// A connection that stops answering without closing (a silent cut) must
// be given up: an unanswered lease renewal or log read past its deadline
// makes the node reconnect, on new connections that do get through.
test('a node whose connections stall for good gets back on new ones', {
  timeout: 60000,
}, async (t) => {
  await partitionCluster(t, 'partition-stall', async (ctx) => {
    // Nothing heals the old connections; new ones go through the proxy.
    await cutOff(t, ctx, { drop: true, all: false }, async () => {}, 8 * LEASE_MS);
  });
});
