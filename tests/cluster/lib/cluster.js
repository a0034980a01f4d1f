'use strict';
// Cluster-level helpers: start Redis and N nodes, drive seeded random churn
// against a model of what each node holds, read Redis's view of the
// cluster, and wait until every view equals the expected one.

const assert = require('node:assert/strict');
const { startRedis } = require('./redis');
const { ClusterNode } = require('./node');
const { sleep, waitFor } = require('./util');

// The key layout (docs/CLUSTER.md): P the prefix, N a node id.
//   {P:N}.lease    string with N's incarnation, expires (PX lease_ms)
//   {P:N}.members  hash, field "<channel>\t<client>", value three
//                  netstrings "<len>:<bytes>": user id, conn_info, chan_info
//   {P}.nodes      hash, node id -> incarnation (the directory)
//   {P:N}.staging.<inc>  hash, the members of an announce being written
const keys = {
  members: (prefix, node) => `{${prefix}:${node}}.members`,
  lease: (prefix, node) => `{${prefix}:${node}}.lease`,
  log: (prefix, node) => `{${prefix}:${node}}.log`,
  staging: (prefix, node, inc = '') => `{${prefix}:${node}}.staging.${inc}`,
  nodes: (prefix) => `{${prefix}}.nodes`,
};

// "<len>:<bytes>" fields, as Buffers.
function decodeNetstrings(buf) {
  const out = [];
  let pos = 0;
  while (pos < buf.length) {
    const colon = buf.indexOf(':', pos);
    if (colon < 0) throw new Error(`bad netstring value ${JSON.stringify(buf.toString())}`);
    const len = Number(buf.toString('latin1', pos, colon));
    out.push(buf.subarray(colon + 1, colon + 1 + len));
    pos = colon + 1 + len;
  }
  return out;
}

const dash = (s) => (s === '' ? '-' : s);

// An info (a latin1 string or a Buffer) as the node's protocol writes it:
// "-" for none, %XX for bytes outside '!'..'~', for '%' and a lone '-'.
function encodeInfo(info) {
  const b = Buffer.isBuffer(info) ? info : Buffer.from(info, 'latin1');
  if (b.length === 0) return '-';
  let out = '';
  for (const c of b) {
    const plain = c > 0x20 && c < 0x7f && c !== 0x25 && !(b.length === 1 && c === 0x2d);
    out += plain ? String.fromCharCode(c) : `%${c.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}

const memberLine = (ch, client, user, node, info, conn = '') =>
  `member ${ch} ${client} ${dash(user)} ${node} ${encodeInfo(info)} ${encodeInfo(conn)}`;

// Redis's view: { lines, leased }: the members of every node of the
// directory whose lease is held, as sorted dump lines, and those nodes'
// ids. A node without a lease is dead to the others, whatever it left.
async function redisView(redis, prefix) {
  const c = await redis.client();
  try {
    const lines = [];
    const leased = [];
    const dir = await c.call('HGETALL', keys.nodes(prefix));
    for (let i = 0; i < dir.length; i += 2) {
      const id = dir[i].toString();
      if (!(await c.call('EXISTS', keys.lease(prefix, id)))) continue;
      leased.push(id);
      const flat = await c.call('HGETALL', keys.members(prefix, id));
      for (let j = 0; j < flat.length; j += 2) {
        const field = flat[j].toString();
        const tab = field.indexOf('\t');
        const [user, conn, info] = decodeNetstrings(flat[j + 1]);
        lines.push(memberLine(field.slice(0, tab), field.slice(tab + 1),
          user.toString(), id, info, conn));
      }
    }
    return { lines: lines.sort(), leased: leased.sort() };
  } finally {
    c.close();
  }
}

// What the nodes should hold: node -> client -> { user, channels: Map(ch -> info) }.
class Model {
  constructor() {
    this.nodes = new Map();
  }

  node(id) {
    if (!this.nodes.has(id)) this.nodes.set(id, new Map());
    return this.nodes.get(id);
  }

  join(node, ch, client, user, info, conn = '') {
    const clients = this.node(node);
    if (!clients.has(client)) clients.set(client, { user, conn, channels: new Map() });
    clients.get(client).channels.set(ch, info);
  }

  leave(node, ch, client) {
    const c = this.node(node).get(client);
    c.channels.delete(ch);
    if (c.channels.size === 0) this.node(node).delete(client);
  }

  disconnect(node, client) {
    this.node(node).delete(client);
  }

  // Every membership, as [node, ch, client, user, info, conn].
  memberships(nodeIds = [...this.nodes.keys()]) {
    const out = [];
    for (const id of nodeIds) {
      for (const [client, c] of this.node(id)) {
        for (const [ch, info] of c.channels) out.push([id, ch, client, c.user, info, c.conn]);
      }
    }
    return out;
  }

  // The dump lines every node should print, given the live nodes.
  lines(nodeIds) {
    return this.memberships(nodeIds)
      .map(([id, ch, client, user, info, conn]) => memberLine(ch, client, user, id, info, conn))
      .sort();
  }
}

const CHANNELS = 6;
const CLIENTS_PER_NODE = 12;
const USERS = 8;
// Infos that a careless encoding would break: netstring look-alikes,
// separators, escapes, a lone dash, bytes outside ASCII, a long one.
const TRICKY_INFOS = ['1:', '3:abc', '0:', 'x\ty', 'a b', '%', '-', '10:short', ':::', '\u00e9\u00ff\u0001',
  '{"name":"Al"}', 'z'.repeat(3000)];

function randomInfo(rand) {
  const r = rand.next();
  if (r < 0.25) return '';
  if (r < 0.4) return rand.pick(TRICKY_INFOS);
  return `i${rand.int(1000)}`;
}

// One random operation on one node, applied to the model; returns the
// command line. A client's user and conn_info are fixed (seeded by its
// number), as the registry wants them to stay the same while it is in any
// channel.
function randomOp(rand, model, nodeId) {
  const clients = model.node(nodeId);
  const roll = rand.next();
  const members = [];
  for (const [client, c] of clients) for (const ch of c.channels.keys()) members.push([ch, client]);
  if (roll < 0.5 || members.length === 0) {
    const i = rand.int(CLIENTS_PER_NODE);
    const client = `${nodeId}-c${i}`;
    const user = i % 3 === 0 ? '' : `u${(i * 7 + nodeId.length) % USERS}`;
    const conn = i % 4 === 0 ? '' : TRICKY_INFOS[(i + nodeId.length) % TRICKY_INFOS.length];
    const ch = `room-${rand.int(CHANNELS)}`;
    const info = randomInfo(rand);
    model.join(nodeId, ch, client, user, info, conn);
    return `join ${ch} ${client} ${dash(user)} ${encodeInfo(info)} ${encodeInfo(conn)}`;
  }
  const [ch, client] = rand.pick(members);
  if (roll < 0.75) {
    model.leave(nodeId, ch, client);
    return `leave ${ch} ${client}`;
  }
  if (roll < 0.88) {
    const info = randomInfo(rand);
    const c = clients.get(client);
    model.join(nodeId, ch, client, c.user, info, c.conn);
    return `update ${ch} ${client} ${encodeInfo(info)}`;
  }
  model.disconnect(nodeId, client);
  return `disconnect ${client}`;
}

// Churn: `rounds` rounds of `perRound` random operations spread over the
// nodes, sent pipelined, with a pause between rounds so that replication
// interleaves with the changes. Every command must answer ok.
async function churn(rand, model, nodes, { rounds = 20, perRound = 15, pauseMs = 20, onRound } = {}) {
  for (let r = 0; r < rounds; r++) {
    const replies = [];
    for (let i = 0; i < perRound; i++) {
      const node = rand.pick(nodes);
      const cmd = randomOp(rand, model, node.id);
      replies.push(node.ok(cmd));
    }
    await Promise.all(replies);
    if (onRound) await onRound(r);
    await sleep(pauseMs);
  }
}

// Wait until every node's dump, and Redis's view, equal the expected lines.
// Redis's view must come from the live nodes' leases: exactly `nodes`.
async function waitConverged(nodes, redis, prefix, expected, { timeout = 15000 } = {}) {
  const ids = nodes.map((n) => n.id).sort();
  let views;
  let rview;
  try {
    await waitFor(async () => {
      views = await Promise.all(nodes.map((n) => n.dump()));
      rview = await redisView(redis, prefix);
      return views.every((v) => sameLines(v, expected)) && sameLines(rview.lines, expected) &&
        sameLines(rview.leased, ids);
    }, { timeout, interval: 100, what: 'convergence' });
  } catch (e) {
    // Say what differs, view by view.
    const report = nodes.map((n, i) => `node ${n.id}: ${diff(views && views[i], expected)}`);
    report.push(`redis: ${diff(rview && rview.lines, expected)}; nodes holding a lease: ${
      JSON.stringify(rview && rview.leased)}, expected ${JSON.stringify(ids)}`);
    throw new Error(`${e.message}\n${report.join('\n')}\n${nodes.map((n) =>
      `--- ${n.id} stderr (tail):\n${n.stderr.slice(-2000)}`).join('\n')}`);
  }
  return views;
}

function checkExits(nodes, exits, running) {
  const problems = [];
  nodes.forEach((node, i) => {
    for (const l of node.sanitizerReports()) problems.push(`${node.id}: ${l}`);
    if (running.includes(node) && exits[i].code !== 0) {
      problems.push(`${node.id} exited with ${exits[i].code ?? exits[i].signal} on quit`);
    }
  });
  if (problems.length > 0) {
    throw new Error(`nodes did not end cleanly:\n${problems.join('\n')}\n${nodes.map((n) =>
      `--- ${n.id} stderr (tail):\n${n.stderr.slice(-3000)}`).join('\n')}`);
  }
}

function sameLines(a, b) {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

function diff(actual, expected) {
  if (!actual) return 'no view';
  const a = new Set(actual);
  const e = new Set(expected);
  const ghosts = actual.filter((x) => !e.has(x));
  const lost = expected.filter((x) => !a.has(x));
  if (ghosts.length === 0 && lost.length === 0) return 'equal';
  return `${ghosts.length} ghost(s) ${JSON.stringify(ghosts.slice(0, 5))}, ` +
    `${lost.length} missing ${JSON.stringify(lost.slice(0, 5))}`;
}

// Redis, then `n` nodes named <name>1..<name>n, all synced with each other.
async function startCluster({ n = 3, leaseMs = 1000, prefix = 'ptest', name = 'n', extraArgs = [] } = {}) {
  const redis = await startRedis();
  const nodes = [];
  try {
    for (let i = 1; i <= n; i++) {
      nodes.push(await ClusterNode.start({ id: `${name}${i}`, redisPort: redis.port, leaseMs, prefix, extraArgs }));
    }
    await Promise.all(nodes.map((node) => node.waitSynced(n - 1)));
  } catch (e) {
    await Promise.all(nodes.map((node) => node.kill()));
    await redis.stop();
    throw e;
  }
  return {
    redis, nodes, prefix, leaseMs,
    // Quit every node (a test may have replaced some), stop Redis (it may
    // have been restarted); a node that fails to quit cleanly, or printed
    // a sanitizer report, fails the test.
    async stop() {
      const running = this.nodes.filter((node) => !node.exitInfo);
      const exits = await Promise.all(this.nodes.map((node) => node.quit()));
      await this.redis.stop();
      checkExits(this.nodes, exits, running);
    },
  };
}

module.exports = {
  checkExits, encodeInfo, Model, randomOp, churn, waitConverged, redisView, startCluster, keys,
  decodeNetstrings, memberLine, sameLines, diff, assert,
};

// The memberships a node's event stream adds up to: every client join
// adds one, every client leave removes one, as "CH CLIENT NODE" keys. A
// node whose events are right ends with its view.
function replayEvents(node, upto = node.events.length) {
  const set = new Set();
  const problems = [];
  for (const ev of node.events.slice(0, upto)) {
    const key = `${ev.channel} ${ev.client} ${ev.node === '-' ? node.id : ev.node}`;
    if (ev.kind === 'join') {
      if (set.has(key)) problems.push(`second join without a leave: ${ev.line}`);
      set.add(key);
    } else if (ev.kind === 'leave') {
      if (!set.delete(key)) problems.push(`leave without a join: ${ev.line}`);
    }
  }
  return { set, problems };
}

// Assert that each node's events add up to its view.
function assertEventsMatchViews(nodes, views) {
  nodes.forEach((node, i) => {
    const { set, problems } = replayEvents(node);
    assert.deepEqual(problems, [], `node ${node.id}: events inconsistent`);
    const fromView = views[i].map((l) => {
      const w = l.split(' ');
      return `${w[1]} ${w[2]} ${w[4]}`;
    }).sort();
    assert.deepEqual([...set].sort(), fromView, `node ${node.id}: its events add up to its view`);
  });
}

module.exports.replayEvents = replayEvents;
module.exports.assertEventsMatchViews = assertEventsMatchViews;
