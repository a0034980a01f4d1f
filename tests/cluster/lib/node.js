'use strict';
// One presence-cluster-node process and its line protocol (see the comment
// at the top of cluster_node.c): commands on stdin, one reply each, in
// order, on stdout, with event lines interleaved.
//
// The binary is $PRESENCE_CLUSTER_NODE, else $PRESENCE_BUILD_DIR/tests/
// cluster/presence-cluster-node, else ../../build/tests/cluster/... .

const { spawn } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');
const readline = require('node:readline');
const { waitFor } = require('./util');

const ROOT = path.resolve(__dirname, '..', '..', '..');
const BUILD_DIR = path.resolve(process.env.PRESENCE_BUILD_DIR || path.join(ROOT, 'build'));
const NODE_BIN = path.resolve(process.env.PRESENCE_CLUSTER_NODE ||
  path.join(BUILD_DIR, 'tests', 'cluster', 'presence-cluster-node'));

// "event KIND REASON CH CLIENT USER NODE SEQ T_NS"
function parseEvent(line) {
  const w = line.split(' ');
  return {
    kind: w[1], reason: w[2], channel: w[3], client: w[4], user: w[5],
    node: w[6], seq: Number(w[7]), tNs: BigInt(w[8]), line,
  };
}

class ClusterNode {
  // Start a node and wait for its "ready" line.
  static async start({ id, redisPort, leaseMs = 1000, prefix = 'ptest', ttlMs = 0, extraArgs = [] }) {
    if (!fs.existsSync(NODE_BIN)) {
      throw new Error(`no presence-cluster-node at ${NODE_BIN}: build it, or set PRESENCE_BUILD_DIR`);
    }
    const args = ['--port', String(redisPort), '--node', id, '--lease-ms', String(leaseMs),
      '--prefix', prefix, ...extraArgs];
    if (ttlMs) args.push('--ttl-ms', String(ttlMs));
    const node = new ClusterNode(id, spawn(NODE_BIN, args, { stdio: ['pipe', 'pipe', 'pipe'] }));
    await Promise.race([
      node.ready,
      node.exited.then(({ code, signal }) => {
        throw new Error(`node ${id} exited (${code ?? signal}) before ready:\n${node.stderr}`);
      }),
    ]);
    return node;
  }

  constructor(id, child) {
    this.id = id;
    this.child = child;
    this.pid = child.pid;
    this.stderr = '';
    this.events = [];       // every event line seen, parsed
    this.pending = [];      // commands waiting for their reply
    this.dumpLines = null;  // member lines of the dump being received
    this.exitInfo = null;
    child.stderr.on('data', (d) => { this.stderr += d; });
    child.stdin.on('error', () => {}); // a dead node: the exit says it
    this.exited = new Promise((resolve) => child.on('exit', (code, signal) => {
      this.exitInfo = { code, signal };
      for (const p of this.pending.splice(0)) {
        p.reject(new Error(`node ${this.id} exited (${code ?? signal}) before answering ${p.cmd}`));
      }
      resolve(this.exitInfo);
    }));
    let readyResolve;
    this.ready = new Promise((r) => { readyResolve = r; });
    const rl = readline.createInterface({ input: child.stdout });
    rl.on('line', (line) => {
      if (line.startsWith('ready ')) readyResolve();
      else if (line.startsWith('event ')) this.events.push(parseEvent(line));
      else this.onReply(line);
    });
  }

  onReply(line) {
    if (line.startsWith('member ')) {
      (this.dumpLines ||= []).push(line);
      return;
    }
    const p = this.pending.shift();
    if (!p) {
      if (line !== 'bye') this.stderr += `unexpected output: ${line}\n`;
      return;
    }
    if (line.startsWith('end ')) {
      const lines = this.dumpLines || [];
      this.dumpLines = null;
      p.resolve(lines);
    } else {
      p.resolve(line);
    }
  }

  // Send one command line; resolves with its reply line (a dump: its
  // member lines).
  send(cmd) {
    return new Promise((resolve, reject) => {
      if (this.exitInfo) {
        reject(new Error(`node ${this.id} is gone, cannot send ${cmd}`));
        return;
      }
      this.pending.push({ cmd, resolve, reject });
      this.child.stdin.write(`${cmd}\n`);
    });
  }

  // A command that must answer "ok" (or "ok N").
  async ok(cmd) {
    const r = await this.send(cmd);
    if (!r.startsWith('ok')) throw new Error(`node ${this.id}: "${cmd}" answered "${r}"`);
    return r;
  }

  join(channel, client, user = '-', info = '-') {
    return this.ok(`join ${channel} ${client} ${user} ${info}`);
  }

  leave(channel, client) {
    return this.ok(`leave ${channel} ${client}`);
  }

  disconnect(client) {
    return this.ok(`disconnect ${client}`);
  }

  // The full view: sorted "member CH CLIENT USER NODE CHANINFO" lines.
  async dump() {
    const r = await this.send('dump');
    if (!Array.isArray(r)) throw new Error(`node ${this.id}: dump answered "${r}"`);
    return r;
  }

  // Memberships held (all nodes'), cheaply: { memberships, clients, channels }.
  async count() {
    const [, memberships, clients, channels] = (await this.ok('count')).split(' ').map(Number);
    return { memberships, clients, channels };
  }

  async status() {
    const r = await this.send('status');
    if (!r.startsWith('status ')) throw new Error(`node ${this.id}: status answered "${r}"`);
    const st = {};
    for (const kv of r.slice(7).split(' ')) {
      const [k, v] = kv.split('=');
      st[k] = Number(v);
    }
    return st;
  }

  // Wait until the node is connected, synced and sees `nodes` other nodes.
  waitSynced(nodes, timeout = 10000) {
    let last;
    return waitFor(async () => {
      last = await this.status();
      return last.synced === 1 && last.nodes === nodes;
    }, { timeout, what: `node ${this.id} synced with ${nodes} other nodes`,
      describe: () => JSON.stringify(last) });
  }

  // Events seen so far that match pred.
  eventsWhere(pred) {
    return this.events.filter(pred);
  }

  // Wait until `count` events (from index `from` on) match pred.
  waitEvents(pred, count, { timeout = 5000, from = 0, what = 'events' } = {}) {
    return waitFor(() => {
      const got = this.events.slice(from).filter(pred);
      return got.length >= count ? got : null;
    }, { timeout, interval: 10, what: `${count} ${what} on node ${this.id}`,
      describe: () => `${this.events.slice(from).filter(pred).length} seen` });
  }

  // Sanitizer reports (AddressSanitizer, LeakSanitizer, UBSan) the node
  // printed: a build with -Db_sanitize=... makes them fail the tests.
  sanitizerReports() {
    return this.stderr.split('\n').filter((l) =>
      /ERROR: (Address|Leak|Thread)Sanitizer|runtime error:|WARNING: ThreadSanitizer/.test(l));
  }

  signal(sig) {
    process.kill(this.pid, sig);
  }

  kill() {
    if (!this.exitInfo) this.child.kill('SIGKILL');
    return this.exited;
  }

  // Leave the cluster cleanly ("quit"), or kill it after `timeout`.
  async quit(timeout = 5000) {
    if (this.exitInfo) return this.exitInfo;
    this.child.stdin.write('quit\n');
    const timer = setTimeout(() => this.child.kill('SIGKILL'), timeout);
    const r = await this.exited;
    clearTimeout(timer);
    return r;
  }
}

module.exports = { ClusterNode, NODE_BIN, BUILD_DIR, ROOT, parseEvent };
