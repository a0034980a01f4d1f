'use strict';
// A node paused (SIGSTOP) for longer than its lease: the other nodes drop
// its members with "node_down" within the lease bound. Resumed (SIGCONT), it
// finds its lease gone, announces its members again (with what it was told
// to do while paused), catches up with what the others did meanwhile, and
// every view converges.

const { test } = require('node:test');
const assert = require('node:assert/strict');
const { monoNs, rng, sleep, testSeed } = require('./lib/util');
const {
  Model, churn, startCluster, waitConverged, assertEventsMatchViews,
} = require('./lib/cluster');

const LEASE_MS = 1000;
const BOUND_MS = LEASE_MS + LEASE_MS / 4;
const SLACK_MS = 150;

test('SIGSTOP past the lease, then SIGCONT: the members disappear, then return', { timeout: 60000 }, async (t) => {
  const seed = testSeed(t, 'sigstop');
  const rand = rng(seed);
  const cl = await startCluster({ n: 3, leaseMs: LEASE_MS, prefix: `stop${seed}` });
  const [n1, n2, n3] = cl.nodes;
  try {
    const model = new Model();
    await churn(rand, model, cl.nodes, { rounds: 8, perRound: 20, pauseMs: 10 });
    await n3.join('room-p', 'n3-paused', 'pu', 'before');
    model.join('n3', 'room-p', 'n3-paused', 'pu', 'before');
    await waitConverged(cl.nodes, cl.redis, cl.prefix, model.lines(['n1', 'n2', 'n3']));
    const n3Members = model.memberships(['n3']);

    const marks = [n1.events.length, n2.events.length];
    const stoppedAt = monoNs();
    n3.signal('SIGSTOP');
    for (const [i, node] of [n1, n2].entries()) {
      const evs = await node.waitEvents((e) => e.kind === 'leave' && e.node === 'n3', n3Members.length,
        { from: marks[i], timeout: BOUND_MS + 3000, what: 'leaves of n3' });
      assert.ok(evs.every((e) => e.reason === 'node_down'), `${node.id}: reasons are node_down`);
      const last = evs.reduce((m, e) => (e.tNs > m ? e.tNs : m), 0n);
      const ms = Number(last - stoppedAt) / 1e6;
      t.diagnostic(`${node.id}: n3's ${n3Members.length} members gone ${ms.toFixed(0)} ms after SIGSTOP`);
      assert.ok(ms <= BOUND_MS + SLACK_MS, `${node.id}: within the bound (${ms.toFixed(0)} ms)`);
    }
    await waitConverged([n1, n2], cl.redis, cl.prefix, model.lines(['n1', 'n2']));

    // While n3 sleeps: the others change, and n3 is told to change too (it
    // reads the commands when it wakes up).
    await churn(rand, model, [n1, n2], { rounds: 4, perRound: 10, pauseMs: 10 });
    const paused = [n3.ok('update room-p n3-paused during'), n3.ok('join room-q n3-late - -')];
    model.join('n3', 'room-p', 'n3-paused', 'pu', 'during');
    model.join('n3', 'room-q', 'n3-late', '', '');
    await sleep(300);

    const back = [n1.events.length, n2.events.length];
    n3.signal('SIGCONT');
    await Promise.all(paused);
    const views = await waitConverged(cl.nodes, cl.redis, cl.prefix, model.lines(['n1', 'n2', 'n3']),
      { timeout: 10000 });
    assertEventsMatchViews(cl.nodes, views);
    for (const [i, node] of [n1, n2].entries()) {
      const joins = node.events.slice(back[i]).filter((e) => e.kind === 'join' && e.node === 'n3');
      assert.equal(joins.length, model.memberships(['n3']).length, `${node.id}: n3's members joined again`);
    }
    const st = await n3.status();
    t.diagnostic(`n3 after SIGCONT: ${JSON.stringify(st)}`);
    const downOnN3 = n3.events.slice(0).filter((e) => e.reason === 'node_down');
    if (downOnN3.length > 0) {
      t.diagnostic(`n3 declared others down after waking: ${downOnN3.length} leaves`);
    }

    // And it goes on replicating in both directions.
    await churn(rand, model, cl.nodes, { rounds: 4, perRound: 12, pauseMs: 10 });
    await waitConverged(cl.nodes, cl.redis, cl.prefix, model.lines(['n1', 'n2', 'n3']));
  } finally {
    try { n3.signal('SIGCONT'); } catch { /* gone */ }
    await cl.stop();
  }
});
