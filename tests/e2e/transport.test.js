'use strict';
// The transport on raw sockets: RFC 6455 framing as the server enforces it
// (masking, RSV bits, control frames, UTF-8, pings answered with their
// payload), closes the server decides being enforced on peers that ignore
// them, slow readers (3008) and slow request senders (slowloris) that
// hold nobody else up.

const test = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const net = require('node:net');
const h = require('./lib/harness');

const WS_GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';

let srv;
test.before(async () => {
  srv = await h.startServer({
    config: h.baseConfig({
      ping_interval: '1s',
      pong_timeout: '500ms',
      client_queue_max_size: 65536,
    }),
  });
});
test.after(async () => {
  h.disconnectAll();
  await srv.stop();
});

const { encodeFrame: frame, decodeFrames } = require('../lib/ws_frames');

// The server's frames in buf; the rest stays for later.
function parseFrames(state) {
  decodeFrames(state, (f) => state.frames.push(f));
}

// A raw TCP client that upgrades to a WebSocket and keeps what comes back.
// It answers nothing by itself: no pong, no close echo.
async function rawWs(server, { headers = {}, expectStatus = 101 } = {}) {
  const sock = net.connect(server.port, '127.0.0.1');
  await new Promise((resolve, reject) => { sock.once('connect', resolve); sock.once('error', reject); });
  const key = crypto.randomBytes(16).toString('base64');
  const all = { Host: '127.0.0.1', Upgrade: 'websocket', Connection: 'Upgrade',
    'Sec-WebSocket-Key': key, 'Sec-WebSocket-Version': '13', ...headers };
  const lines = Object.entries(all).filter(([, v]) => v !== null).map(([k, v]) => `${k}: ${v}\r\n`);
  sock.write(`GET /connection/websocket HTTP/1.1\r\n${lines.join('')}\r\n`);
  const state = { buf: Buffer.alloc(0), head: null, frames: [], ended: null };
  const waiters = [];
  const wake = () => waiters.splice(0).forEach((w) => w());
  sock.on('data', (d) => {
    state.buf = Buffer.concat([state.buf, d]);
    if (state.head === null) {
      const end = state.buf.indexOf('\r\n\r\n');
      if (end < 0) return;
      state.head = state.buf.subarray(0, end).toString();
      state.buf = state.buf.subarray(end + 4);
    }
    parseFrames(state);
    wake();
  });
  sock.on('error', () => {});
  sock.on('close', () => { state.ended = Date.now(); wake(); });
  const until = async (pred, what, timeout = 5000) => {
    const deadline = Date.now() + timeout;
    for (;;) {
      const v = pred();
      if (v) return v;
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out waiting for ${what}`);
      await new Promise((resolve) => {
        const t = setTimeout(resolve, Math.min(left, 50));
        waiters.push(() => { clearTimeout(t); resolve(); });
      });
    }
  };
  await until(() => state.head !== null || state.ended, 'the handshake');
  const status = state.head ? Number(state.head.split(' ')[1]) : 0;
  assert.equal(status, expectStatus, state.head || 'no response');
  if (status === 101) {
    const accept = crypto.createHash('sha1').update(key + WS_GUID).digest('base64');
    assert.match(state.head, new RegExp(`Sec-WebSocket-Accept: ${accept.replace(/[+/]/g, '\\$&')}\r?(\n|$)`));
  }
  const self = {
    sock, state,
    send(buf) { sock.write(buf); },
    text(s) { sock.write(frame(1, s)); },
    frame(pred, what, timeout) {
      return until(() => state.frames.find(pred), what, timeout);
    },
    closeFrame(timeout) { return self.frame((f) => f.opcode === 8, 'a close frame', timeout); },
    ended(timeout) { return until(() => state.ended, 'the socket to close', timeout); },
    // The replies and pushes: every line of every text frame.
    messages() {
      return state.frames.filter((f) => f.opcode === 1)
        .flatMap((f) => f.payload.toString().split('\n')).filter((l) => l.trim() !== '')
        .map((l) => JSON.parse(l));
    },
    async call(cmd, id, timeout = 5000) {
      self.text(JSON.stringify({ ...cmd, id }));
      return until(() => self.messages().find((m) => m.id === id), `reply ${id}`, timeout);
    },
  };
  return self;
}

// A protocol error: the close frame with @code, then the socket goes,
// though the peer never answers the close.
async function expectProtocolClose(bytes, code) {
  const c = await rawWs(srv);
  c.send(bytes);
  const f = await c.closeFrame();
  assert.equal(f.code, code);
  await c.ended(3000);
}

test('handshake: Sec-WebSocket-Accept; version other than 13 is 426; no key is 400', async () => {
  const ok = await rawWs(srv);
  ok.sock.destroy();
  const old = await rawWs(srv, { headers: { 'Sec-WebSocket-Version': '8' }, expectStatus: 426 });
  assert.match(old.state.head, /Sec-WebSocket-Version: 13/);
  await rawWs(srv, { headers: { 'Sec-WebSocket-Key': null }, expectStatus: 400 });
});

test('subprotocols: the first offered is echoed, but never centrifuge-protobuf (JSON only), which alone is refused', async () => {
  const echoed = (c) => (/\r\nSec-WebSocket-Protocol: ([^\r]*)/.exec(c.state.head) || [])[1];
  const plain = await rawWs(srv);
  assert.equal(echoed(plain), undefined);
  plain.sock.destroy();
  const json = await rawWs(srv, { headers: { 'Sec-WebSocket-Protocol': 'centrifuge-json' } });
  assert.equal(echoed(json), 'centrifuge-json');
  json.sock.destroy();
  const both = await rawWs(srv, { headers: { 'Sec-WebSocket-Protocol': 'centrifuge-protobuf, centrifuge-json' } });
  assert.equal(echoed(both), 'centrifuge-json');
  both.sock.destroy();
  await rawWs(srv, { headers: { 'Sec-WebSocket-Protocol': 'centrifuge-protobuf' }, expectStatus: 400 });
});

test('a ping is answered with a pong carrying the same payload', async () => {
  const c = await rawWs(srv);
  const payload = Buffer.from('ping payload \u00e9 0123456789');
  c.send(frame(9, payload));
  const pong = await c.frame((f) => f.opcode === 10, 'a pong');
  assert.deepEqual(pong.payload, payload);
  // A 125-byte ping (the largest) too.
  const big = crypto.randomBytes(125);
  c.send(frame(9, big));
  await c.frame((f) => f.opcode === 10 && f.payload.equals(big), 'the 125-byte pong');
  c.sock.destroy();
});

test('an unmasked client frame closes with 1002', async () => {
  await expectProtocolClose(frame(1, '{"connect":{},"id":1}', { mask: false }), 1002);
});

test('RSV bits without a negotiated extension close with 1002', async () => {
  await expectProtocolClose(frame(1, '{}', { rsv: 4 }), 1002); // RSV1
  await expectProtocolClose(frame(1, '{}', { rsv: 1 }), 1002); // RSV3
});

test('a control frame over 125 bytes, or a fragmented one, closes with 1002', async () => {
  await expectProtocolClose(frame(9, Buffer.alloc(126, 1)), 1002);
  await expectProtocolClose(frame(9, 'part', { fin: false }), 1002);
});

test('invalid UTF-8 in a text message closes with 1007', async () => {
  await expectProtocolClose(frame(1, Buffer.from([0x7b, 0xff, 0xfe, 0x7d])), 1007);
  // Split across fragments: an overlong encoding in the second one.
  await expectProtocolClose(Buffer.concat([
    frame(1, '{"a":"', { fin: false }), frame(0, Buffer.from([0xc0, 0xaf, 0x22, 0x7d])),
  ]), 1007);
});

test('a close the server decides is enforced on a peer that ignores it: expiry (3005)', async () => {
  const c = await rawWs(srv);
  const exp = Math.floor(Date.now() / 1000) + 2;
  const r = await c.call({ connect: { token: h.userToken(srv, 'expiring', { exp }) } }, 1);
  assert.ok(r.connect.client);
  await c.call({ subscribe: { channel: 'public:enforced' } }, 2);
  assert.ok((await h.httpPresence(srv, 'public:enforced'))[r.connect.client]);
  // Answer pings, never the close.
  const pinger = setInterval(() => c.text('{}'), 300);
  try {
    const f = await c.closeFrame(6000);
    assert.deepEqual([f.code, f.reason], [3005, 'expired']);
    const closeAt = Date.now();
    await c.ended(2500);
    assert.ok(c.state.ended - closeAt < 2000, `closed ${c.state.ended - closeAt} ms after the close frame`);
  } finally {
    clearInterval(pinger);
  }
  assert.deepEqual(await h.httpPresence(srv, 'public:enforced'), {});
});

test('no pong (3012): the deadline runs from the ping, the socket goes, and so does the presence', async () => {
  const c = await rawWs(srv);
  const r = await c.call({ connect: { token: h.userToken(srv, 'mute') } }, 1);
  await c.call({ subscribe: { channel: 'public:mute' } }, 2);
  assert.ok((await h.httpPresence(srv, 'public:mute'))[r.connect.client]);
  const f = await c.closeFrame(4000);
  assert.deepEqual([f.code, f.reason], [3012, 'no pong']);
  await c.ended(2500);
  assert.deepEqual(await h.httpPresence(srv, 'public:mute'), {});
});

test('a WebSocket that never sends connect is closed with 3502 at 10 s, not before, and its socket goes', { timeout: 30000 }, async () => {
  const opened = Date.now();
  const c = await rawWs(srv);
  const f = await c.closeFrame(13000);
  const at = Date.now() - opened;
  assert.deepEqual([f.code, f.reason], [3502, 'stale']);
  assert.ok(at >= 9900 && at < 11500, `3502 after ${at} ms`);
  // The peer ignores the close: the close timeout (1 s) ends the socket.
  await c.ended(2500);
  assert.ok(c.state.ended - opened - at < 2000, `closed ${c.state.ended - opened - at} ms after the close frame`);
});

test('pings come every ping_interval to a client that answers them, and it stays', { timeout: 20000 }, async () => {
  const c = await rawWs(srv);
  await c.call({ connect: { token: h.userToken(srv, 'pinged') } }, 1);
  const connected = Date.now();
  const seen = [];
  const watch = setInterval(() => {
    const pings = c.messages().filter((m) => Object.keys(m).length === 0).length;
    while (seen.length < pings) {
      seen.push(Date.now() - connected);
      c.text('{}'); // the pong
    }
  }, 20);
  try {
    await h.waitFor(() => seen.length >= 3, { timeout: 6000, what: 'three pings' });
  } finally {
    clearInterval(watch);
  }
  // A ping is due an interval after the last one went (the tick may add
  // up to 100 ms to each); never sooner, never twice.
  const gaps = seen.map((t, i) => t - (i ? seen[i - 1] : 0));
  gaps.forEach((g, i) => {
    assert.ok(g >= 950 && g < 1500, `pings at ${seen.join(', ')} ms (gap ${i + 1}: ${g} ms)`);
  });
  assert.equal(c.state.frames.find((f) => f.opcode === 8), undefined, 'closed although it answered');
  assert.equal(c.state.ended, null);
  c.sock.destroy();
});

async function closes(code) {
  const r = await fetch(`${srv.httpUrl}/metrics`);
  const m = new RegExp(`presence_server_closes_total\\{code="${code}"\\} (\\d+)`).exec(await r.text());
  return m ? Number(m[1]) : 0;
}

test('a client that stops reading is closed with 3008 and holds nobody up', { timeout: 60000 }, async () => {
  const before = await closes(3008);
  const slow = await rawWs(srv);
  const pad = 'x'.repeat(8000);
  const r = await slow.call({ connect: { token: h.userToken(srv, 'slow', { info: { pad } }) } }, 1);
  await slow.call({ subscribe: { channel: 'public:slow' } }, 2);
  slow.sock.pause(); // reads nothing more: the kernel's buffers fill, then the server's queue
  // Each reply carries the 8 KB info: 4,000 of them are far more than the
  // socket buffers and client_queue_max_size hold.
  const cmds = [];
  for (let i = 0; i < 4000; i++) cmds.push(JSON.stringify({ presence: { channel: 'public:slow' }, id: 10 + i }));
  for (let i = 0; i < cmds.length; i += 40) slow.send(frame(1, cmds.slice(i, i + 40).join('\n')));
  // Meanwhile an unrelated client is answered at once.
  const other = h.rawClient(srv);
  await other.opened;
  for (let i = 0; i < 5; i++) {
    const t0 = Date.now();
    await other.call('connect', i === 0 ? { token: h.userToken(srv, 'other') } : {}).catch(() => {});
    assert.ok(Date.now() - t0 < 500, `a reply took ${Date.now() - t0} ms`);
  }
  await h.waitFor(async () => (await closes(3008)) > before, { timeout: 15000, what: 'a 3008 close' });
  await h.waitFor(async () => Object.keys(await h.httpPresence(srv, 'public:slow')).length === 0,
    { timeout: 15000, what: 'the slow client out of presence' });
  assert.ok(!(await h.httpPresence(srv, 'public:slow'))[r.connect.client]);
  slow.sock.destroy();
  other.ws.close();
});

test('slowloris: request headers sent slowly are cut at the request timeout, the API answers meanwhile', { timeout: 30000 }, async () => {
  const socks = [];
  for (let i = 0; i < 40; i++) {
    const s = net.connect(srv.port, '127.0.0.1');
    s.on('error', () => {});
    s.closedAt = null;
    s.on('close', () => { s.closedAt = Date.now(); });
    socks.push(s);
  }
  const started = Date.now();
  const header = 'POST /api HTTP/1.1\r\nHost: x\r\nX-Slow: ' + 'a'.repeat(200);
  let i = 0;
  const dribble = setInterval(() => {
    for (const s of socks) if (!s.closedAt) s.write(header[i % header.length]);
    i++;
  }, 200);
  try {
    for (let k = 0; k < 5; k++) {
      const t0 = Date.now();
      assert.equal((await h.api(srv, '/api/presence_stats', { channel: 'public:x' })).status, 200);
      assert.ok(Date.now() - t0 < 500, `the API took ${Date.now() - t0} ms`);
      await h.sleep(300);
    }
    await h.waitFor(() => socks.every((s) => s.closedAt), { timeout: 10000, what: 'the slow senders closed' });
  } finally {
    clearInterval(dribble);
    socks.forEach((s) => s.destroy());
  }
  const last = Math.max(...socks.map((s) => s.closedAt)) - started;
  assert.ok(last >= 4000 && last < 8000, `closed after ${last} ms`);
});
