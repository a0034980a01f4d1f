'use strict';
// Namespaces across nodes: a namespace with join_leave off is replicated
// all the same (without events); a change the other registry refuses (an
// unknown namespace there) is counted as rejected and does not stop the
// replication of what follows.

const { test } = require('node:test');
const assert = require('node:assert/strict');
const { startRedis } = require('./lib/redis');
const { ClusterNode } = require('./lib/node');
const { sleep, waitFor } = require('./lib/util');
const { Model, checkExits, redisView, waitConverged } = require('./lib/cluster');

async function withNodes(specs, fn) {
  const redis = await startRedis();
  const prefix = 'ns';
  const nodes = [];
  try {
    for (const [id, extraArgs] of specs) {
      nodes.push(await ClusterNode.start({ id, redisPort: redis.port, prefix, extraArgs }));
    }
    await Promise.all(nodes.map((n) => n.waitSynced(specs.length - 1)));
    await fn(nodes, redis, prefix);
  } finally {
    const exits = await Promise.all(nodes.map((n) => n.quit()));
    await redis.stop();
    checkExits(nodes, exits, nodes);
  }
}

const NS = ['--namespace', 'quiet:quiet', '--namespace', 'chat'];

test('a namespace without join/leave events is replicated, silently', { timeout: 30000 }, async () => {
  await withNodes([['a', NS], ['b', NS]], async ([a, b], redis, prefix) => {
    const model = new Model();
    await a.join('quiet:r1', 'qa', 'ua', 'q');
    await a.join('chat:r1', 'ca', 'ua', 'c');
    await b.join('quiet:r1', 'qb', 'ub', '-');
    model.join('a', 'quiet:r1', 'qa', 'ua', 'q');
    model.join('a', 'chat:r1', 'ca', 'ua', 'c');
    model.join('b', 'quiet:r1', 'qb', 'ub', '');
    await waitConverged([a, b], redis, prefix, model.lines(['a', 'b']));
    await a.leave('quiet:r1', 'qa');
    model.leave('a', 'quiet:r1', 'qa');
    await waitConverged([a, b], redis, prefix, model.lines(['a', 'b']));
    for (const n of [a, b]) {
      assert.deepEqual(n.events.filter((e) => e.channel.startsWith('quiet:')), [],
        `${n.id}: no events from the quiet namespace`);
    }
    assert.ok(b.events.some((e) => e.kind === 'join' && e.client === 'ca' && e.node === 'a'));
  });
});

test('a change the other node refuses is counted, and replication goes on', { timeout: 30000 }, async () => {
  await withNodes([['a', ['--namespace', 'chat']], ['b', []]], async ([a, b], redis, prefix) => {
    await a.join('chat:r1', 'ca', 'ua', '-');
    await a.join('room-1', 'ra', 'ua', '-');
    await b.waitEvents((e) => e.kind === 'join' && e.client === 'ra', 1, { what: 'the join after the refused one' });
    const st = await waitFor(async () => {
      const s = await b.status();
      return s.rejected >= 1 ? s : null;
    }, { what: 'b counting the refused change' });
    assert.equal(st.rejected, 1);
    assert.deepEqual(await b.dump(), ['member room-1 ra ua a - -']);
    assert.deepEqual((await redisView(redis, prefix)).lines,
      ['member chat:r1 ca ua a - -', 'member room-1 ra ua a - -'], 'Redis holds both');
    await a.leave('room-1', 'ra');
    await sleep(200);
    assert.deepEqual(await b.dump(), []);
  });
});

test('a channel closed on one node: its own members leave everywhere with "closed", the others\' only there',
  { timeout: 30000 }, async () => {
    await withNodes([['a', []], ['b', []]], async ([a, b], redis, prefix) => {
      await a.join('room-c', 'a1', 'ua', '-');
      await a.join('room-c', 'a2', 'ua', '-');
      await b.join('room-c', 'b1', 'ub', '-');
      await a.join('room-k', 'a1', 'ua', '-');
      const model = new Model();
      model.join('a', 'room-c', 'a1', 'ua', '');
      model.join('a', 'room-c', 'a2', 'ua', '');
      model.join('b', 'room-c', 'b1', 'ub', '');
      model.join('a', 'room-k', 'a1', 'ua', '');
      await waitConverged([a, b], redis, prefix, model.lines(['a', 'b']));
      assert.equal(await a.ok('close room-c'), 'ok 3');
      model.leave('a', 'room-c', 'a1');
      model.leave('a', 'room-c', 'a2');
      // b keeps its own member; a dropped it, there only (presence.h, Nodes).
      const evs = await b.waitEvents((e) => e.kind === 'leave' && e.node === 'a', 2, { what: "a's closed members" });
      assert.ok(evs.every((e) => e.reason === 'closed'), evs.map((e) => e.line).join('\n'));
      assert.deepEqual(await b.dump(), model.lines(['a', 'b']));
      assert.deepEqual(await a.dump(), ['member room-k a1 ua a - -']);
      assert.deepEqual((await redisView(redis, prefix)).lines, model.lines(['a', 'b']));
    });
  });
