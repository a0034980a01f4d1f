'use strict';
// Presence TTL across nodes: a membership expires on its own node, and the
// others see it leave with "expired"; a remote membership never expires on
// a node whose namespace has a TTL (its own node runs it).

const { test } = require('node:test');
const assert = require('node:assert/strict');
const { startRedis } = require('./lib/redis');
const { ClusterNode } = require('./lib/node');
const { sleep } = require('./lib/util');
const { Model, checkExits, waitConverged } = require('./lib/cluster');

test('an expiry on one node is a leave "expired" on the others', { timeout: 30000 }, async (t) => {
  const redis = await startRedis();
  const prefix = 'ttl';
  const nodes = [];
  try {
    // a: TTL 400 ms; b: no TTL.
    nodes.push(await ClusterNode.start({ id: 'a', redisPort: redis.port, prefix, ttlMs: 400 }));
    nodes.push(await ClusterNode.start({ id: 'b', redisPort: redis.port, prefix }));
    const [a, b] = nodes;
    await Promise.all(nodes.map((n) => n.waitSynced(1)));
    await a.join('room-1', 'a-gone', 'ua', '-');
    await a.join('room-1', 'a-kept', 'ua2', '-');
    await b.join('room-1', 'b-stays', 'ub', '-');
    const model = new Model();
    model.join('a', 'room-1', 'a-kept', 'ua2', '');
    model.join('b', 'room-1', 'b-stays', 'ub', '');
    // Keep a-kept alive by touching it, until the end; a-gone is left to
    // expire.
    let touching = true;
    const toucher = (async () => {
      while (touching) {
        await a.ok('touch a-kept');
        await sleep(100);
      }
    })();
    try {
      await sleep(1200);
      const [ev] = await b.waitEvents((e) => e.kind === 'leave' && e.client === 'a-gone', 1,
        { what: 'the leave of a-gone' });
      assert.equal(ev.reason, 'expired');
      assert.equal(ev.node, 'a');
      assert.equal(a.events.find((e) => e.kind === 'leave' && e.client === 'a-gone').reason, 'expired');
      // b's member is remote on a: it did not expire there despite a's TTL.
      await waitConverged(nodes, redis, prefix, model.lines(['a', 'b']));
      assert.equal(a.events.filter((e) => e.kind === 'leave' && e.client !== 'a-gone').length, 0,
        'nothing else left on a');
      // And b's member stays on a longer than a's TTL.
      await sleep(600);
      await waitConverged(nodes, redis, prefix, model.lines(['a', 'b']), { timeout: 1000 });
    } finally {
      touching = false;
      await toucher;
    }
  } finally {
    const exits = await Promise.all(nodes.map((n) => n.quit()));
    await redis.stop();
    checkExits(nodes, exits, nodes);
  }
});
