'use strict';
// Seeded chaos: churn on three nodes while faults strike one after the
// other -- a short pause (inside the lease), a long pause (past it),
// redis-server killed and restarted empty, a node killed and restarted
// under the same id, connections to Redis cut (CLIENT KILL) one at a time,
// redis-server paused (SIGSTOP) past the lease.
// At the end every view equals the model and Redis's.

const { test } = require('node:test');
const { startRedis } = require('./lib/redis');
const { ClusterNode } = require('./lib/node');
const { rng, testSeed } = require('./lib/util');
const {
  Model, churn, startCluster, waitConverged, assertEventsMatchViews,
} = require('./lib/cluster');

const LEASE_MS = 1000;
const FAULTS = ['pause-short', 'pause-long', 'redis-restart', 'redis-pause', 'crash', 'conn-kill'];

// Cut `count` random client connections of Redis (the nodes' command and
// reader connections), one every ~100 ms, while the churn goes on.
async function killConnections(rand, redis, count) {
  const c = await redis.client();
  try {
    const self = await c.call('CLIENT', 'ID');
    for (let k = 0; k < count; k++) {
      const ids = (await c.call('CLIENT', 'LIST')).toString().split('\n')
        .map((l) => /^id=(\d+) /.exec(l)).filter(Boolean).map((m) => Number(m[1]))
        .filter((id) => id !== self);
      if (ids.length > 0) await c.call('CLIENT', 'KILL', 'ID', String(rand.pick(ids)));
      await new Promise((r) => setTimeout(r, 50 + rand.int(100)));
    }
  } finally {
    c.close();
  }
}

// Churn on `nodes` until `ms` have passed.
async function churnFor(rand, model, nodes, ms) {
  const until = Date.now() + ms;
  while (Date.now() < until) {
    await churn(rand, model, nodes, { rounds: 1, perRound: 8, pauseMs: 20 });
  }
}

test('churn under seeded faults converges', { timeout: 90000 + 5000 * Number(process.env.CLUSTER_CHAOS_EXTRA || 0) }, async (t) => {
  const seed = testSeed(t, 'chaos');
  const rand = rng(seed);
  const killRand = rng(seed + 1); // apart, as it runs beside the churn
  const cl = await startCluster({ n: 3, leaseMs: LEASE_MS, prefix: `chaos${seed}` });
  try {
    const model = new Model();
    const all = cl.nodes.map((n) => n.id);
    // Every kind once, in a seeded order, then more at random
    // ($CLUSTER_CHAOS_EXTRA, default 2: longer runs find more).
    const faults = [...FAULTS];
    for (let k = faults.length - 1; k > 0; k--) {
      const j = rand.int(k + 1);
      [faults[k], faults[j]] = [faults[j], faults[k]];
    }
    const extra = Number(process.env.CLUSTER_CHAOS_EXTRA || 2);
    for (let k = 0; k < extra; k++) faults.push(rand.pick(FAULTS));
    for (const fault of faults) {
      await churn(rand, model, cl.nodes, { rounds: 5, perRound: 12, pauseMs: 15 });
      const i = rand.int(cl.nodes.length);
      const victim = cl.nodes[i];
      const others = cl.nodes.filter((n) => n !== victim);
      t.diagnostic(`fault: ${fault}${fault.startsWith('redis') || fault === 'conn-kill' ? '' : ` on ${victim.id}`}`);
      if (fault === 'pause-short' || fault === 'pause-long') {
        victim.signal('SIGSTOP');
        try {
          await churnFor(rand, model, others, fault === 'pause-short' ? 300 : LEASE_MS + 800);
        } finally {
          victim.signal('SIGCONT');
        }
      } else if (fault === 'redis-pause') {
        // Redis hangs (SIGSTOP) for longer than the lease, then resumes.
        cl.redis.child.kill('SIGSTOP');
        try {
          await churnFor(rand, model, cl.nodes, LEASE_MS + 500);
        } finally {
          cl.redis.child.kill('SIGCONT');
        }
      } else if (fault === 'conn-kill') {
        await Promise.all([killConnections(killRand, cl.redis, 6), churnFor(rand, model, cl.nodes, 800)]);
      } else if (fault === 'redis-restart') {
        await cl.redis.stop('SIGKILL');
        await churnFor(rand, model, cl.nodes, 200 + rand.int(1300));
        cl.redis = await startRedis({ port: cl.redis.port });
      } else {
        await victim.kill();
        model.nodes.set(victim.id, new Map());
        cl.nodes[i] = await ClusterNode.start({ id: victim.id, redisPort: cl.redis.port,
          leaseMs: LEASE_MS, prefix: cl.prefix });
      }
    }
    await churn(rand, model, cl.nodes, { rounds: 5, perRound: 12, pauseMs: 15 });
    const views = await waitConverged(cl.nodes, cl.redis, cl.prefix, model.lines(all), { timeout: 20000 });
    assertEventsMatchViews(cl.nodes, views);
  } finally {
    for (const n of cl.nodes) {
      try { n.signal('SIGCONT'); } catch { /* gone */ }
    }
    await cl.stop();
  }
});
