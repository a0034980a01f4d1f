'use strict';
// A burst: one node makes 150,000 changes at once (lease 1000 ms). The
// other node gets them all, and -- the lease being about liveness, not
// load -- no healthy node is declared down meanwhile.

const { test } = require('node:test');
const assert = require('node:assert/strict');
const { startRedis } = require('./lib/redis');
const { ClusterNode } = require('./lib/node');
const { waitFor } = require('./lib/util');
const { checkExits, redisView } = require('./lib/cluster');

const N = 150000;

async function burstCluster(fn) {
  const redis = await startRedis();
  const nodes = [];
  try {
    for (const id of ['a', 'b']) {
      nodes.push(await ClusterNode.start({ id, redisPort: redis.port, prefix: 'load', leaseMs: 1000,
        extraArgs: ['--no-events'] }));
    }
    await Promise.all(nodes.map((n) => n.waitSynced(1)));
    await fn(nodes, redis);
  } finally {
    const exits = await Promise.all(nodes.map((n) => n.quit()));
    await redis.stop();
    checkExits(nodes, exits, nodes);
  }
}

test(`a burst of ${N} joins reaches the other node`, { timeout: 60000 }, async (t) => {
  await burstCluster(async ([a, b], redis) => {
    assert.equal(await a.send(`burst x ${N} 1000`), `ok ${N}`);
    // Poll cheaply: a dump of 150k members stalls a node's loop for a while.
    await waitFor(async () => (await b.count()).memberships === N && (await a.status()).pending === 0,
      { timeout: 30000, interval: 200, what: `b holding a's ${N} memberships` });
    const view = await b.dump();
    assert.equal(view[0], 'member x-ch0 x-0 u0 a - -');
    assert.equal((await redisView(redis, 'load')).lines.length, N);
    t.diagnostic(`a: ${JSON.stringify(await a.status())}`);
    t.diagnostic(`b: ${JSON.stringify(await b.status())}`);
  });
});

// A regression test: a's batches were all pipelined at once on the
// connection that also renews its lease, so the renewal waited behind them
// in Redis and arrived after the lease ran out; b then dropped a's members
// as node_down, a announced again, b reloaded...
test(`a burst of ${N} joins declares no healthy node down`, { timeout: 60000 }, async (t) => {
  await burstCluster(async ([a, b]) => {
    assert.equal(await a.send(`burst x ${N} 1000`), `ok ${N}`);
    await waitFor(async () => (await b.count()).memberships === N && (await a.status()).pending === 0,
      { timeout: 30000, interval: 200, what: `b holding a's ${N} memberships` });
    const sa = await a.status();
    const sb = await b.status();
    t.diagnostic(`a: ${JSON.stringify(sa)}\nb: ${JSON.stringify(sb)}\n${a.stderr}${b.stderr}`);
    assert.equal(sb.nodes_down, 0, 'b declared a down');
    assert.equal(sa.nodes_down, 0, 'a declared b down');
    assert.equal(sa.sent, N, 'every change went through the log, none by a re-announce');
  });
});
