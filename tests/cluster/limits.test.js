'use strict';
// The limits presence_cluster.h states: a key prefix of
// PRESENCE_CLUSTER_PREFIX_MAX (128) bytes and node ids of
// PRESENCE_CLUSTER_NODE_ID_MAX (64) bytes work end to end (every key of
// every node, as the others name it, fits); one byte more is refused at
// start.

const { test } = require('node:test');
const assert = require('node:assert/strict');
const { startRedis } = require('./lib/redis');
const { ClusterNode } = require('./lib/node');
const { Model, checkExits, waitConverged } = require('./lib/cluster');

const PREFIX_MAX = 128;
const NODE_ID_MAX = 64;

test('the longest prefix and node ids work; longer ones are refused', { timeout: 30000 }, async () => {
  const redis = await startRedis();
  const prefix = `p${'x'.repeat(PREFIX_MAX - 1)}`;
  const ids = ['a', 'b'].map((c) => c.repeat(NODE_ID_MAX));
  const nodes = [];
  try {
    for (const id of ids) {
      nodes.push(await ClusterNode.start({ id, redisPort: redis.port, prefix }));
    }
    await Promise.all(nodes.map((n) => n.waitSynced(1)));
    const [a, b] = nodes;
    const model = new Model();
    await a.join('room-1', 'ca', 'ua', 'from-a');
    model.join(ids[0], 'room-1', 'ca', 'ua', 'from-a');
    await b.join('room-1', 'cb', 'ub', 'from-b');
    model.join(ids[1], 'room-1', 'cb', 'ub', 'from-b');
    await waitConverged(nodes, redis, prefix, model.lines(ids));
    await a.leave('room-1', 'ca');
    model.leave(ids[0], 'room-1', 'ca');
    await waitConverged(nodes, redis, prefix, model.lines(ids));

    for (const [what, opts] of [
      ['prefix', { id: 'c', prefix: `${prefix}x` }],
      ['node id', { id: 'c'.repeat(NODE_ID_MAX + 1), prefix }],
    ]) {
      await assert.rejects(ClusterNode.start({ redisPort: redis.port, ...opts }),
        /presence_cluster_new/, `a ${what} one byte too long is refused`);
    }
  } finally {
    const exits = await Promise.all(nodes.map((n) => n.quit()));
    await redis.stop();
    checkExits(nodes, exits, nodes);
  }
});
