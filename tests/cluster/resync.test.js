'use strict';
// Loading another node's state: a node that starts late loads the others'
// snapshots; a node that falls behind a trimmed log loads the snapshot
// again, and the members that left meanwhile leave with "resync".

const { test } = require('node:test');
const assert = require('node:assert/strict');
const { ClusterNode } = require('./lib/node');
const { rng, sleep, testSeed } = require('./lib/util');
const {
  Model, churn, startCluster, waitConverged, assertEventsMatchViews,
} = require('./lib/cluster');

test('a node that starts late loads the state of the others', { timeout: 60000 }, async (t) => {
  const seed = testSeed(t, 'late-start');
  const rand = rng(seed);
  const cl = await startCluster({ n: 2, prefix: `late${seed}` });
  try {
    const model = new Model();
    await churn(rand, model, cl.nodes, { rounds: 10, perRound: 20, pauseMs: 5 });
    await waitConverged(cl.nodes, cl.redis, cl.prefix, model.lines(['n1', 'n2']));
    const n3 = await ClusterNode.start({ id: 'n3', redisPort: cl.redis.port, prefix: cl.prefix });
    cl.nodes.push(n3);
    await n3.waitSynced(2);
    // It joins in while the others keep changing.
    await churn(rand, model, cl.nodes, { rounds: 10, perRound: 20, pauseMs: 10 });
    const views = await waitConverged(cl.nodes, cl.redis, cl.prefix, model.lines(['n1', 'n2', 'n3']));
    assertEventsMatchViews(cl.nodes, views);
  } finally {
    await cl.stop();
  }
});

test('a node behind a trimmed log loads the snapshot; missed leaves are "resync"', { timeout: 60000 }, async (t) => {
  const seed = testSeed(t, 'trimmed-log');
  // A long lease, so that the pause below stays well inside it; a short
  // log, trimmed in small steps.
  const cl = await startCluster({ n: 2, leaseMs: 3000, prefix: `trim${seed}`,
    extraArgs: ['--log-max-len', '10'] });
  const [n1, n2] = cl.nodes;
  try {
    const c = await cl.redis.client();
    await c.call('CONFIG', 'SET', 'stream-node-max-entries', '4');
    c.close();
    const model = new Model();
    for (let i = 0; i < 20; i++) {
      await n1.join('room-t', `t${i}`, `u${i % 4}`, '-');
      model.join('n1', 'room-t', `t${i}`, `u${i % 4}`, '');
    }
    await waitConverged(cl.nodes, cl.redis, cl.prefix, model.lines(['n1', 'n2']));
    const before = await n2.status();

    n2.signal('SIGSTOP');
    try {
      // One change per log entry: each command waits for its reply, and
      // the node writes after each.
      for (let i = 0; i < 8; i++) {
        await n1.leave('room-t', `t${i}`);
        model.leave('n1', 'room-t', `t${i}`);
      }
      for (let i = 0; i < 60; i++) {
        await n1.join(`room-${i % 5}`, `x${i}`, '-', `v${i}`);
        model.join('n1', `room-${i % 5}`, `x${i}`, '', `v${i}`);
        if (i % 10 === 0) await sleep(5);
      }
      await sleep(100);
    } finally {
      n2.signal('SIGCONT');
    }
    const views = await waitConverged(cl.nodes, cl.redis, cl.prefix, model.lines(['n1', 'n2']));
    assertEventsMatchViews(cl.nodes, views);
    const after = await n2.status();
    t.diagnostic(`n2 before the pause ${JSON.stringify(before)}, after ${JSON.stringify(after)}`);
    assert.ok(after.snapshots > before.snapshots, 'n2 loaded a snapshot again');
    const leaves = n2.events.filter((e) => e.kind === 'leave' && e.channel === 'room-t');
    assert.equal(leaves.length, 8);
    // The first leave may reach n2 anyway: the reply to the XREAD it had
    // blocked in before the pause waits in its socket. The rest were
    // trimmed away before it could read them.
    const reasons = leaves.map((e) => e.reason);
    assert.ok(reasons.every((r) => r === 'resync' || r === 'explicit'), `leave reasons: ${reasons}`);
    assert.ok(reasons.filter((r) => r === 'resync').length >= 6, `missed leaves are resync: ${reasons}`);
    assert.equal(after.nodes_down, 0, 'no node was declared down');
  } finally {
    await cl.stop();
  }
});
