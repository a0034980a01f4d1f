'use strict';
// Three nodes in three processes, one Redis: after seeded random churn on
// all of them, every node's full view equals the model of what was done,
// and so does Redis's; each node's join and leave events add up to its view.

const { test } = require('node:test');
const assert = require('node:assert/strict');
const { rng, testSeed } = require('./lib/util');
const {
  Model, churn, startCluster, waitConverged, assertEventsMatchViews,
} = require('./lib/cluster');

test('three nodes converge after random churn', { timeout: 60000 }, async (t) => {
  const seed = testSeed(t, 'converge');
  const rand = rng(seed);
  const cl = await startCluster({ n: 3, prefix: `conv${seed}` });
  try {
    const model = new Model();
    await churn(rand, model, cl.nodes, { rounds: 30, perRound: 20, pauseMs: 15 });
    const expected = model.lines(cl.nodes.map((n) => n.id));
    assert.ok(expected.length > 0, 'the churn leaves some members');
    const views = await waitConverged(cl.nodes, cl.redis, cl.prefix, expected);
    assertEventsMatchViews(cl.nodes, views);

    // Remote members carry their node's id; events of remote changes name it.
    const n1 = cl.nodes[0];
    const remote = n1.events.filter((e) => e.node !== '-');
    assert.ok(remote.length > 0, 'n1 received events of the other nodes');
    assert.ok(remote.every((e) => e.node === 'n2' || e.node === 'n3'), 'origins are n2 and n3');
    assert.ok(remote.filter((e) => e.kind === 'leave')
      .every((e) => ['explicit', 'disconnect'].includes(e.reason)),
    'remote leaves keep the reason their node gave');

    // A second burst from one node only, then everything leaves: empty views.
    await churn(rand, model, [cl.nodes[1]], { rounds: 5, perRound: 20, pauseMs: 5 });
    await waitConverged(cl.nodes, cl.redis, cl.prefix, model.lines(['n1', 'n2', 'n3']));
    for (const node of cl.nodes) {
      for (const client of [...model.node(node.id).keys()]) {
        await node.disconnect(client);
        model.disconnect(node.id, client);
      }
    }
    const empty = await waitConverged(cl.nodes, cl.redis, cl.prefix, []);
    assertEventsMatchViews(cl.nodes, empty);
    for (const node of cl.nodes) {
      const st = await node.status();
      assert.equal(st.rejected, 0, `node ${node.id} rejected no remote change`);
      assert.equal(st.nodes_down, 0, `node ${node.id} declared no node down`);
    }
  } finally {
    await cl.stop();
  }
});

test('eight nodes converge; two killed at once leave together', { timeout: 60000 }, async (t) => {
  const seed = testSeed(t, 'eight');
  const rand = rng(seed);
  const cl = await startCluster({ n: 8, prefix: `eight${seed}` });
  try {
    const model = new Model();
    const ids = () => cl.nodes.map((n) => n.id);
    await churn(rand, model, cl.nodes, { rounds: 20, perRound: 30, pauseMs: 10 });
    let views = await waitConverged(cl.nodes, cl.redis, cl.prefix, model.lines(ids()), { timeout: 20000 });
    assertEventsMatchViews(cl.nodes, views);
    const killed = cl.nodes.splice(6, 2);
    await Promise.all(killed.map((n) => n.kill()));
    for (const n of killed) model.nodes.set(n.id, new Map());
    await churn(rand, model, cl.nodes, { rounds: 5, perRound: 30, pauseMs: 10 });
    views = await waitConverged(cl.nodes, cl.redis, cl.prefix, model.lines(ids()), { timeout: 10000 });
    assertEventsMatchViews(cl.nodes, views);
    for (const node of cl.nodes) {
      const st = await node.status();
      assert.equal(st.nodes, 5, `${node.id} sees the 5 others`);
      assert.equal(st.nodes_down, 2, `${node.id} declared n7 and n8 down`);
    }
  } finally {
    await cl.stop();
  }
});
