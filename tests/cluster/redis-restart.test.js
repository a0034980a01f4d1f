'use strict';
// redis-server killed and restarted empty in the middle of the churn (the
// nodes keep changing their members while it is down): the nodes reconnect,
// announce their members again, resynchronise, and converge on exactly what
// was done, in their views and in Redis: no ghost, no lost member.

const { test } = require('node:test');
const assert = require('node:assert/strict');
const { startRedis } = require('./lib/redis');
const { ClusterNode } = require('./lib/node');
const { rng, sleep, testSeed, waitFor } = require('./lib/util');
const {
  Model, checkExits, churn, startCluster, waitConverged, assertEventsMatchViews,
} = require('./lib/cluster');

const LEASE_MS = 1000;

for (const downMs of [300, 1500]) {
  test(`redis-server restarted during churn (down ${downMs} ms): the nodes converge`, { timeout: 60000 }, async (t) => {
    const seed = testSeed(t, `redis-restart-${downMs}`);
    const rand = rng(seed);
    const cl = await startCluster({ n: 3, leaseMs: LEASE_MS, prefix: `rr${seed}` });
    try {
      const model = new Model();
      const all = cl.nodes.map((n) => n.id);
      // Churn before, during and after the outage.
      await churn(rand, model, cl.nodes, { rounds: 10, perRound: 12, pauseMs: 20 });
      await cl.redis.stop('SIGKILL');
      const downAt = Date.now();
      while (Date.now() - downAt < downMs) {
        await churn(rand, model, cl.nodes, { rounds: 1, perRound: 12, pauseMs: 20 });
      }
      cl.redis = await startRedis({ port: cl.redis.port });
      t.diagnostic(`redis-server down for ${Date.now() - downAt} ms`);
      await churn(rand, model, cl.nodes, { rounds: 15, perRound: 12, pauseMs: 20 });
      const views = await waitConverged(cl.nodes, cl.redis, cl.prefix, model.lines(all), { timeout: 20000 });
      assertEventsMatchViews(cl.nodes, views);
      for (const node of cl.nodes) {
        const st = await waitFor(async () => {
          const s = await node.status();
          return s.synced === 1 && s.nodes === 2 && s.pending === 0 ? s : null;
        }, { what: `${node.id} synced again` });
        assert.ok(st.connects >= 2, `${node.id} reconnected (connects=${st.connects})`);
      }

      // Replication still works after the restart.
      await churn(rand, model, cl.nodes, { rounds: 5, perRound: 12, pauseMs: 10 });
      const after = await waitConverged(cl.nodes, cl.redis, cl.prefix, model.lines(all));
      assertEventsMatchViews(cl.nodes, after);
    } finally {
      await cl.stop();
    }
  });
}

test('redis-server restarted with 2000 members per node: announced again in full', { timeout: 60000 }, async (t) => {
  const seed = testSeed(t, 'redis-restart-big');
  const rand = rng(seed);
  const cl = await startCluster({ n: 3, leaseMs: LEASE_MS, prefix: `rrb${seed}` });
  try {
    const model = new Model();
    const all = cl.nodes.map((n) => n.id);
    await Promise.all(cl.nodes.map((node) => {
      const replies = [];
      for (let k = 0; k < 2000; k++) {
        const ch = `big-${k % 50}`;
        const client = `${node.id}-b${k}`;
        replies.push(node.join(ch, client, `bu${k % 100}`, `k${k}`));
        model.join(node.id, ch, client, `bu${k % 100}`, `k${k}`);
      }
      return Promise.all(replies);
    }));
    await waitConverged(cl.nodes, cl.redis, cl.prefix, model.lines(all), { timeout: 20000 });
    await cl.redis.stop('SIGKILL');
    await churn(rand, model, cl.nodes, { rounds: 5, perRound: 12, pauseMs: 20 });
    cl.redis = await startRedis({ port: cl.redis.port });
    await churn(rand, model, cl.nodes, { rounds: 10, perRound: 12, pauseMs: 20 });
    const views = await waitConverged(cl.nodes, cl.redis, cl.prefix, model.lines(all), { timeout: 20000 });
    assertEventsMatchViews(cl.nodes, views);
    t.diagnostic(`${views[0].length} memberships on every node and in Redis after the restart`);
  } finally {
    await cl.stop();
  }
});

test('nodes started while redis-server is down sync once it is up; quitting while it is down does not hang',
  { timeout: 30000 }, async (t) => {
    let redis = await startRedis();
    const port = redis.port;
    await redis.stop();
    const prefix = 'down';
    const nodes = [];
    try {
      for (const id of ['a', 'b']) nodes.push(await ClusterNode.start({ id, redisPort: port, prefix }));
      const [a, b] = nodes;
      const model = new Model();
      await a.join('room-1', 'a1', 'ua', 'x');
      await b.join('room-1', 'b1', 'ub', 'y');
      model.join('a', 'room-1', 'a1', 'ua', 'x');
      model.join('b', 'room-1', 'b1', 'ub', 'y');
      await sleep(300);
      const st = await a.status();
      assert.equal(st.connected, 0);
      assert.equal(st.synced, 0);
      redis = await startRedis({ port });
      await Promise.all(nodes.map((n) => n.waitSynced(1)));
      await waitConverged(nodes, redis, prefix, model.lines(['a', 'b']));

      await redis.stop();
      const t0 = Date.now();
      const { code } = await b.quit(10000);
      const ms = Date.now() - t0;
      t.diagnostic(`quit with redis-server down took ${ms} ms`);
      assert.equal(code, 0);
      assert.ok(ms < 2500, `quit took ${ms} ms (connect_timeout_ms is 1000)`);
    } finally {
      const exits = await Promise.all(nodes.map((n) => n.quit()));
      await redis.stop();
      checkExits(nodes, exits, nodes.filter((n, i) => exits[i].signal === null));
    }
  });
