'use strict';
// A real redis-server for the cluster tests, started by the tests on a free
// loopback port without persistence (so a restart loses every key, as a
// crashed cache would), and a minimal RESP client over node's net module to
// read what the nodes wrote.

const { spawn } = require('node:child_process');
const fs = require('node:fs');
const net = require('node:net');
const os = require('node:os');
const path = require('node:path');
const { freePort, waitFor } = require('./util');

const REDIS_SERVER = process.env.REDIS_SERVER || 'redis-server';

// ---- RESP ----------------------------------------------------------------

// A streaming RESP2 parser: feed() it bytes as they come; it calls
// onReply(value) for each complete reply. Token by token, with a stack for
// the arrays being filled, so that a reply of millions of elements costs
// O(its size) however it is split (bulk strings stay Buffers).
class RespParser {
  constructor(onReply) {
    this.onReply = onReply;
    this.buf = Buffer.alloc(0);
    this.stack = []; // { items, left }
  }

  feed(d) {
    this.buf = this.buf.length ? Buffer.concat([this.buf, d]) : d;
    let pos = 0;
    for (;;) {
      const eol = this.buf.indexOf('\r\n', pos);
      if (eol < 0) break;
      const type = String.fromCharCode(this.buf[pos]);
      const line = this.buf.toString('utf8', pos + 1, eol);
      let value;
      let next = eol + 2;
      if (type === '+') value = line;
      else if (type === '-') value = new RedisError(line);
      else if (type === ':') value = Number(line);
      else if (type === '$') {
        const len = Number(line);
        if (len < 0) value = null;
        else {
          if (this.buf.length < next + len + 2) break;
          value = this.buf.subarray(next, next + len);
          next += len + 2;
        }
      } else if (type === '*') {
        const n = Number(line);
        if (n > 0) {
          this.stack.push({ items: [], left: n });
          pos = next;
          continue;
        }
        value = n < 0 ? null : [];
      } else {
        throw new Error(`RESP: unexpected type byte ${JSON.stringify(type)}`);
      }
      pos = next;
      this.deliver(value);
    }
    this.buf = this.buf.subarray(pos);
  }

  deliver(value) {
    for (;;) {
      const top = this.stack[this.stack.length - 1];
      if (!top) {
        this.onReply(value);
        return;
      }
      top.items.push(value);
      if (--top.left > 0) return;
      this.stack.pop();
      value = top.items;
    }
  }
}

class RedisError extends Error {}

function encodeCommand(args) {
  const parts = [Buffer.from(`*${args.length}\r\n`)];
  for (const a of args) {
    const b = Buffer.isBuffer(a) ? a : Buffer.from(String(a));
    parts.push(Buffer.from(`$${b.length}\r\n`), b, Buffer.from('\r\n'));
  }
  return Buffer.concat(parts);
}

// A connection that answers commands in order: await client.call('GET', k).
class RedisClient {
  static connect(port, host = '127.0.0.1') {
    return new Promise((resolve, reject) => {
      const sock = net.createConnection({ port, host }, () => {
        sock.removeListener('error', reject);
        resolve(new RedisClient(sock));
      });
      sock.once('error', reject);
    });
  }

  constructor(sock) {
    this.sock = sock;
    this.waiting = [];
    this.parser = new RespParser((value) => {
      const w = this.waiting.shift();
      if (value instanceof RedisError) w.reject(value);
      else w.resolve(value);
    });
    sock.on('data', (d) => this.parser.feed(d));
    const fail = (err) => {
      for (const w of this.waiting.splice(0)) w.reject(err);
    };
    sock.on('error', fail);
    sock.on('close', () => fail(new Error('redis connection closed')));
  }

  call(...args) {
    return new Promise((resolve, reject) => {
      this.waiting.push({ resolve, reject });
      this.sock.write(encodeCommand(args));
    });
  }

  // Every key matching a glob pattern (SCAN, so the server never blocks).
  async scan(pattern) {
    const keys = [];
    let cursor = '0';
    do {
      const [next, batch] = await this.call('SCAN', cursor, 'MATCH', pattern, 'COUNT', 1000);
      cursor = next.toString();
      for (const k of batch) keys.push(k.toString());
    } while (cursor !== '0');
    return keys;
  }

  close() {
    this.sock.destroy();
  }
}

// ---- the server ----------------------------------------------------------

// Start redis-server on a free loopback port (or the given one, for a
// restart), in a directory of its own (a restart passes the same `dir`:
// nothing is saved there unless a test asks with SAVE), with any extra
// `args` (e.g. --requirepass). Resolves once it answers PING (or refuses
// it for want of a password).
async function startRedis({ port, dir, args: extra = [] } = {}) {
  port = port || await freePort();
  dir = dir || fs.mkdtempSync(path.join(os.tmpdir(), 'presence-cluster-redis-'));
  const args = ['--port', String(port), '--bind', '127.0.0.1', '--save', '',
    '--appendonly', 'no', '--daemonize', 'no', '--loglevel', 'warning',
    '--protected-mode', 'no', '--dir', dir, ...extra];
  const child = spawn(REDIS_SERVER, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout.on('data', (d) => { output += d; });
  child.stderr.on('data', (d) => { output += d; });
  const exited = new Promise((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
  let gone = false;
  exited.then(() => { gone = true; });
  await waitFor(async () => {
    if (gone) throw new Error(`redis-server exited:\n${output}`);
    const c = await RedisClient.connect(port);
    try {
      return (await c.call('PING')) === 'PONG';
    } catch (e) {
      if (e instanceof RedisError && /NOAUTH/.test(e.message)) return true;
      throw e;
    } finally {
      c.close();
    }
  }, { timeout: 10000, what: `redis-server on port ${port}` }).catch((e) => {
    child.kill('SIGKILL');
    throw new Error(`${e.message}\n${output}`);
  });
  return {
    port,
    url: `redis://127.0.0.1:${port}`,
    dir,
    child,
    output: () => output,
    // Stop it: SIGKILL by default (a crash; nothing is saved anyway). Its
    // directory goes too, unless kept for a restart on it.
    async stop(signal = 'SIGKILL', { keepDir = false } = {}) {
      if (!gone) child.kill(signal);
      await exited;
      if (!keepDir) fs.rmSync(dir, { recursive: true, force: true });
    },
    client: () => RedisClient.connect(port),
  };
}

module.exports = { startRedis, RedisClient, RedisError, RespParser };
