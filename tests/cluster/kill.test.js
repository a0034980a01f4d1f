'use strict';
// A node that dies (kill -9) leaves every other node's view within the
// lease bound (lease_ms + lease_ms / 4), with "node_down" leave events; one
// that quits cleanly leaves at once.

const { test } = require('node:test');
const assert = require('node:assert/strict');
const { monoNs, rng, testSeed } = require('./lib/util');
const { ClusterNode } = require('./lib/node');
const {
  Model, churn, startCluster, waitConverged, assertEventsMatchViews, keys,
} = require('./lib/cluster');

const LEASE_MS = 1000;
const BOUND_MS = LEASE_MS + LEASE_MS / 4;
// Scheduling noise allowed on top of the bound (three processes and Redis
// on a possibly busy CI machine).
const SLACK_MS = 150;

// Wait on `node` for a leave event of every membership [node, ch, client]
// in `gone`, with `reason`; returns the latest event's time.
async function waitLeaves(node, gone, reason, from, timeout) {
  const want = new Set(gone.map(([, ch, client]) => `${ch} ${client}`));
  const evs = await node.waitEvents((e) => e.kind === 'leave' && want.has(`${e.channel} ${e.client}`),
    want.size, { from, timeout, what: `${reason} leaves` });
  for (const e of evs) {
    assert.equal(e.reason, reason, `leave reason on ${node.id}: ${e.line}`);
  }
  return evs.reduce((m, e) => (e.tNs > m ? e.tNs : m), 0n);
}

test('kill -9 of a node: its members leave the others within the lease bound', { timeout: 60000 }, async (t) => {
  const seed = testSeed(t, 'kill');
  const rand = rng(seed);
  const cl = await startCluster({ n: 3, leaseMs: LEASE_MS, prefix: `kill${seed}` });
  try {
    const model = new Model();
    await churn(rand, model, cl.nodes, { rounds: 10, perRound: 20, pauseMs: 10 });
    // Make sure the victim has members, one of them a user of its own.
    await cl.nodes[2].join('room-x', 'n3-only', 'solo', '-');
    model.join('n3', 'room-x', 'n3-only', 'solo', '');
    await waitConverged(cl.nodes, cl.redis, cl.prefix, model.lines(['n1', 'n2', 'n3']));

    const victim = cl.nodes[2];
    const survivors = cl.nodes.slice(0, 2);
    const gone = model.memberships(['n3']);
    const marks = survivors.map((n) => n.events.length);
    const killedAt = monoNs();
    await victim.kill();

    for (const [i, node] of survivors.entries()) {
      const last = await waitLeaves(node, gone, 'node_down', marks[i], BOUND_MS + 3000);
      const ms = Number(last - killedAt) / 1e6;
      t.diagnostic(`${node.id}: all ${gone.length} members of n3 gone ${ms.toFixed(0)} ms after kill -9`);
      assert.ok(ms <= BOUND_MS + SLACK_MS,
        `${node.id} dropped n3's members ${ms.toFixed(0)} ms after the kill (bound ${BOUND_MS} ms)`);
      const late = node.events.slice(marks[i]);
      assert.ok(late.some((e) => e.kind === 'user_leave' && e.user === 'solo' && e.reason === 'node_down'),
        `${node.id}: user_leave of n3's own user`);
      assert.ok(late.every((e) => e.node === 'n3'), `${node.id}: only n3's members changed`);
    }
    const views = await waitConverged(survivors, cl.redis, cl.prefix, model.lines(['n1', 'n2']));
    assertEventsMatchViews(survivors, views);
    for (const node of survivors) {
      const st = await node.status();
      assert.equal(st.nodes, 1, `${node.id} sees one other node`);
      assert.equal(st.nodes_down, 1, `${node.id} declared one node down`);
    }

    // A node that quits leaves at once, long before its lease would run out.
    const quitter = survivors[1];
    const mark = survivors[0].events.length;
    const gone2 = model.memberships(['n2']);
    const quitAt = monoNs();
    const { code } = await quitter.quit();
    assert.equal(code, 0, `n2 exits cleanly\n${quitter.stderr}`);
    if (gone2.length > 0) {
      const last = await waitLeaves(survivors[0], gone2, 'node_down', mark, 3000);
      const ms = Number(last - quitAt) / 1e6;
      t.diagnostic(`n1: n2's ${gone2.length} members gone ${ms.toFixed(0)} ms after it quit`);
      assert.ok(ms < LEASE_MS / 2, `a clean quit is seen at once (${ms.toFixed(0)} ms)`);
    }
    await waitConverged([survivors[0]], cl.redis, cl.prefix, model.lines(['n1']));
    // The dead node's keys are deleted by the others, the quitter's by itself.
    const c = await cl.redis.client();
    try {
      for (const id of ['n2', 'n3']) {
        for (const k of [keys.lease, keys.members, keys.log]) {
          assert.equal(await c.call('EXISTS', k(cl.prefix, id)), 0, `${k(cl.prefix, id)} is deleted`);
        }
        // Each announce stages into a hash of its own, renamed at its end.
        assert.deepEqual(await c.call('KEYS', `${keys.staging(cl.prefix, id)}*`), [],
          `no staging hash of ${id} is left`);
      }
    } finally {
      c.close();
    }
  } finally {
    await cl.stop();
  }
});

test('a node killed and restarted at once under the same id: the old members go, the new ones come', { timeout: 60000 }, async (t) => {
  const seed = testSeed(t, 'kill-restart');
  const rand = rng(seed);
  const cl = await startCluster({ n: 3, leaseMs: LEASE_MS, prefix: `kr${seed}` });
  try {
    const model = new Model();
    await churn(rand, model, cl.nodes, { rounds: 10, perRound: 20, pauseMs: 10 });
    await cl.nodes[2].join('room-x', 'n3-old', 'old', '-');
    model.join('n3', 'room-x', 'n3-old', 'old', '');
    await waitConverged(cl.nodes, cl.redis, cl.prefix, model.lines(['n1', 'n2', 'n3']));
    const marks = [cl.nodes[0].events.length, cl.nodes[1].events.length];

    // Crash and restart well within the lease: the old incarnation's lease
    // still holds when the new one announces.
    await cl.nodes[2].kill();
    model.nodes.set('n3', new Map());
    const n3 = await ClusterNode.start({ id: 'n3', redisPort: cl.redis.port, leaseMs: LEASE_MS, prefix: cl.prefix });
    cl.nodes[2] = n3;
    await n3.join('room-x', 'n3-new', 'new', 'fresh');
    model.join('n3', 'room-x', 'n3-new', 'new', 'fresh');
    await churn(rand, model, cl.nodes, { rounds: 5, perRound: 20, pauseMs: 10 });
    const views = await waitConverged(cl.nodes, cl.redis, cl.prefix, model.lines(['n1', 'n2', 'n3']));
    assertEventsMatchViews(cl.nodes, views);
    for (const [i, node] of cl.nodes.slice(0, 2).entries()) {
      const ev = node.events.slice(marks[i]).find((e) => e.kind === 'leave' && e.client === 'n3-old');
      assert.ok(ev, `${node.id}: n3-old left`);
      assert.ok(['resync', 'node_down'].includes(ev.reason), `${node.id}: n3-old left with ${ev.reason}`);
      t.diagnostic(`${node.id}: the old incarnation's member left with ${ev.reason}`);
    }
  } finally {
    await cl.stop();
  }
});
