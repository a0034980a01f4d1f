// The libuv example server (uv_presence.c) over TCP, with node's own test
// runner and nothing from npm. meson runs it with UV_PRESENCE set to the
// built server:
//   UV_PRESENCE=build/examples/uv-presence/uv-presence \
//     node --test examples/uv-presence/uv_presence.test.mjs
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import net from 'node:net';

const SERVER = process.env.UV_PRESENCE;
const TTL_MS = 600; // the server's "ttl" namespace
const WAIT_MS = 10000; // for any one expected line (sanitizer builds are slow)

let server; // { proc, port, stderr(), exited }

before(async () => {
  assert.ok(SERVER, 'UV_PRESENCE must name the uv-presence executable');
  const proc = spawn(SERVER, ['--port', '0', '--ttl-ms', String(TTL_MS)], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  proc.stderr.on('data', (d) => { stderr += d; });
  const exited = new Promise((resolve) => {
    proc.on('exit', (code, signal) => resolve({ code, signal }));
  });
  const port = await new Promise((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error('no "listening" line')), WAIT_MS);
    proc.stdout.on('data', (d) => {
      out += d;
      const m = /listening on 127\.0\.0\.1:(\d+)/.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve(Number(m[1]));
      }
    });
    exited.then(({ code, signal }) => {
      clearTimeout(timer);
      reject(new Error(`server exited (${code ?? signal}): ${stderr}`));
    });
  });
  server = { proc, port, exited, stderr: () => stderr };
});

// The server must stop cleanly on SIGTERM: exit status 0 (under ASan a
// leak would make it non-zero) and nothing on stderr.
after(async () => {
  if (!server) return;
  server.proc.kill('SIGTERM');
  const timer = setTimeout(() => server.proc.kill('SIGKILL'), WAIT_MS);
  const { code, signal } = await server.exited;
  clearTimeout(timer);
  assert.equal(server.stderr(), '', 'server stderr');
  assert.equal(signal, null, 'server killed by a signal');
  assert.equal(code, 0, 'server exit status');
});

// One TCP connection: lines in arrival order, taken by what they match,
// so replies and pushes may interleave freely.
class Client {
  constructor(name) {
    this.name = name;
    this.lines = [];
    this.waiters = [];
    this.buf = '';
    this.closed = false;
  }

  async connect() {
    this.sock = net.connect(server.port, '127.0.0.1');
    this.sock.setEncoding('utf8');
    this.sock.on('data', (d) => {
      this.buf += d;
      let nl;
      while ((nl = this.buf.indexOf('\n')) >= 0) {
        this.lines.push(this.buf.slice(0, nl));
        this.buf = this.buf.slice(nl + 1);
      }
      this.wake();
    });
    this.sock.on('close', () => { this.closed = true; this.wake(); });
    await new Promise((resolve, reject) => {
      this.sock.once('connect', resolve);
      this.sock.once('error', reject);
    });
    return this;
  }

  wake() {
    for (const w of this.waiters.splice(0)) w();
  }

  // Take the first line matching re, waiting for it if need be.
  async take(re, what = String(re)) {
    const deadline = Date.now() + WAIT_MS;
    for (;;) {
      const i = this.lines.findIndex((l) => re.test(l));
      if (i >= 0) return this.lines.splice(i, 1)[0];
      const left = deadline - Date.now();
      if (left <= 0 || this.closed) {
        throw new Error(`${this.name}: no line ${what}; have ${JSON.stringify(this.lines)}`);
      }
      await new Promise((resolve) => {
        const t = setTimeout(resolve, left);
        this.waiters.push(() => { clearTimeout(t); resolve(); });
      });
    }
  }

  // Send a command, return its reply (OK/ERR line for that command).
  async cmd(line) {
    const verb = line.split(' ')[0];
    this.sock.write(line + '\n');
    const reply = verb === 'PING' ? /^(OK PONG|ERR PING)/ : new RegExp(`^(OK|ERR) ${verb}\\b`);
    return this.take(reply, `reply to ${line}`);
  }

  has(re) {
    return this.lines.some((l) => re.test(l));
  }

  close() {
    this.sock.destroy();
  }
}

async function hello(name, user) {
  const c = await new Client(name).connect();
  assert.equal(await c.cmd(`HELLO ${name} ${user}`), `OK HELLO ${name}`);
  return c;
}

// "OK JOIN ch joined clients=2 users=2 epoch=E seq=2" -> fields
function parseStats(line) {
  const m = /clients=(\d+) users=(\d+) epoch=(\d+) seq=(\d+)$/.exec(line);
  assert.ok(m, `no stats in ${line}`);
  return { clients: +m[1], users: +m[2], epoch: m[3], seq: +m[4] };
}

async function who(c, channel) {
  const ok = await c.cmd(`WHO ${channel}`);
  assert.match(ok, new RegExp(`^OK WHO ${channel} `));
  // Every MEMBER line of the reply came before its OK line.
  const members = [];
  while (c.has(new RegExp(`^MEMBER ${channel} `))) {
    members.push(await c.take(new RegExp(`^MEMBER ${channel} `)));
  }
  return { members: members.sort(), stats: parseStats(ok) };
}

test('commands before HELLO and bad commands are refused', async () => {
  const c = await new Client('x').connect();
  assert.equal(await c.cmd('JOIN room'), 'ERR JOIN HELLO first');
  assert.equal(await c.cmd('PING'), 'ERR PING HELLO first');
  assert.equal(await c.cmd('HELLO bad'), 'ERR HELLO usage: HELLO <client> <user>');
  assert.equal(await c.cmd(`HELLO ${'x'.repeat(300)} xavier`), 'ERR HELLO ERR_TOO_LONG');
  assert.equal(await c.cmd('HELLO x0 xavier'), 'OK HELLO x0');
  assert.equal(await c.cmd('HELLO x0 xavier'), 'ERR HELLO already');
  assert.equal(await c.cmd('NOPE'), 'ERR NOPE unknown command');
  assert.equal(await c.cmd('JOIN'), 'ERR JOIN usage: JOIN <channel> [info]');
  assert.equal(await c.cmd('JOIN nons:room'), 'ERR JOIN ERR_UNKNOWN_NAMESPACE');
  c.close();
});

test('two clients see each other join, WHO lists both, leave and disconnect push LEFT', async () => {
  const a = await hello('a1', 'alice');
  const b = await hello('b1', 'bob');

  const ja = await a.cmd('JOIN room hi there');
  assert.match(ja, /^OK JOIN room joined /);
  const sa = parseStats(ja);
  assert.deepEqual({ ...sa, epoch: undefined }, { clients: 1, users: 1, epoch: undefined, seq: 1 });
  assert.notEqual(sa.epoch, '0');

  const jb = await b.cmd('JOIN room');
  assert.match(jb, /^OK JOIN room joined /);
  assert.deepEqual(parseStats(jb), { clients: 2, users: 2, epoch: sa.epoch, seq: 2 });
  assert.equal(await a.take(/^JOINED room /), 'JOINED room b1 bob');

  // The same join again renews only; new info is an update (no push).
  assert.match(await a.cmd('JOIN room hi there'), /^OK JOIN room none clients=2 users=2 .* seq=2$/);
  assert.match(await a.cmd('JOIN room hello'), /^OK JOIN room updated clients=2 users=2 .* seq=3$/);

  const list = await who(b, 'room');
  assert.deepEqual(list.members, ['MEMBER room a1 alice hello', 'MEMBER room b1 bob']);
  assert.deepEqual(list.stats, { clients: 2, users: 2, epoch: sa.epoch, seq: 3 });

  // A third member leaves explicitly; both others are told.
  const c = await hello('c1', 'carol');
  await c.cmd('JOIN room');
  await a.take(/^JOINED room c1 /);
  await b.take(/^JOINED room c1 /);
  const lc = await c.cmd('LEAVE room');
  assert.match(lc, /^OK LEAVE room left clients=2 users=2 /);
  assert.equal(await a.take(/^LEFT room c1 /), 'LEFT room c1 carol explicit');
  assert.equal(await b.take(/^LEFT room c1 /), 'LEFT room c1 carol explicit');
  assert.equal(await c.cmd('LEAVE room'), 'ERR LEAVE ERR_NOT_FOUND');

  // The client id is taken while a1's connection is open.
  const dup = await new Client('dup').connect();
  assert.equal(await dup.cmd('HELLO a1 alice'), 'ERR HELLO ERR_CONFLICT');
  dup.close();

  // b's connection drops: a is told, the channel counts one.
  b.close();
  assert.equal(await a.take(/^LEFT room b1 /), 'LEFT room b1 bob disconnect');
  const after = await who(a, 'room');
  assert.deepEqual(after.members, ['MEMBER room a1 alice hello']);
  assert.equal(after.stats.clients, 1);

  // Nobody was told about their own join or leave.
  assert.ok(!a.has(/^(JOINED|LEFT) \S+ a1 /), `a saw itself: ${a.lines}`);
  assert.ok(!c.has(/^(JOINED|LEFT) \S+ c1 /), `c saw itself: ${c.lines}`);

  // a disconnects too: its client id is free again once the server has
  // seen the connection close.
  a.close();
  c.close();
  const deadline = Date.now() + WAIT_MS;
  for (;;) {
    const again = await new Client('again').connect();
    const reply = await again.cmd('HELLO a1 alice');
    again.close();
    if (reply === 'OK HELLO a1') break;
    assert.equal(reply, 'ERR HELLO ERR_CONFLICT');
    assert.ok(Date.now() < deadline, 'a1 still known after its disconnect');
    await new Promise((r) => setTimeout(r, 20));
  }
});

test('an idle member of a TTL channel expires: LEFT ... expired to the others', async () => {
  const a = await hello('a2', 'alice');
  const b = await hello('b2', 'bob');
  assert.match(await a.cmd('JOIN ttl:room'), /^OK JOIN ttl:room joined clients=1 /);
  const started = performance.now(); // b's join (and deadline) is later
  assert.match(await b.cmd('JOIN ttl:room'), /^OK JOIN ttl:room joined clients=2 /);
  await a.take(/^JOINED ttl:room b2 bob$/);

  // a keeps itself alive with PING; b says nothing and expires.
  const pinger = setInterval(() => a.sock.write('PING\n'), TTL_MS / 5);
  try {
    assert.equal(await a.take(/^LEFT ttl:room /), 'LEFT ttl:room b2 bob expired');
    // Not before its TTL (less the registry clock's millisecond rounding).
    const waited = performance.now() - started;
    assert.ok(waited >= TTL_MS - 2, `expired after ${waited} ms, TTL ${TTL_MS}`);
    const list = await who(a, 'ttl:room');
    assert.deepEqual(list.members, ['MEMBER ttl:room a2 alice']);

    // b's handle is still open, in no channel: it may join again.
    assert.match(await b.cmd('JOIN ttl:room'), /^OK JOIN ttl:room joined clients=2 /);
    assert.equal(await a.take(/^JOINED ttl:room /), 'JOINED ttl:room b2 bob');
  } finally {
    clearInterval(pinger);
  }
  // Without pings both expire; a's connection stays open and is told of b
  // or not, depending on who goes first; the channel ends empty.
  await new Promise((r) => setTimeout(r, TTL_MS * 3));
  const c = await hello('c2', 'carol');
  const empty = await who(c, 'ttl:room');
  assert.deepEqual(empty.members, []);
  assert.deepEqual(empty.stats, { clients: 0, users: 0, epoch: '0', seq: 0 });
  a.close();
  b.close();
  c.close();
});
