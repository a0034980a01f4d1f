'use strict';
// The client protocol on the wire, with a raw WebSocket: exact reply and
// push shapes, batching, close codes, limits, ping/pong, token expiry.

const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const h = require('./lib/harness');

let srv;    // the usual config
let tight;  // small limits and fast heartbeats

before(async () => {
  srv = await h.startServer();
  tight = await h.startServer({
    config: h.baseConfig({
      client_channel_limit: 2,
      client_connection_limit: 3,
      websocket_message_size_limit: 1024,
      ping_interval: '1s',
      pong_timeout: '500ms',
    }),
  });
});
after(async () => {
  h.disconnectAll();
  await srv.stop();
  await tight.stop();
});

async function connected(server, user = 'raw', extra = {}, opts = {}) {
  const c = h.rawClient(server, opts);
  await c.opened;
  const reply = await c.call('connect', { token: h.userToken(server, user, extra) });
  return { c, id: reply.connect.client, reply };
}

test('connect, subscribe, presence, presence_stats, unsubscribe: exact shapes', async () => {
  const { c, id, reply } = await connected(srv, '42', { info: { name: 'Alice' } });
  assert.deepEqual(Object.keys(reply.connect).sort(), ['client', 'expires', 'ping', 'pong', 'ttl', 'version']);
  assert.equal(reply.connect.ping, 25);
  assert.equal(reply.connect.pong, true);
  assert.equal(reply.connect.expires, true);
  assert.ok(reply.connect.ttl > 3500 && reply.connect.ttl <= 3600);

  assert.deepEqual(await c.call('subscribe', { channel: 'public:wire', join_leave: true }), { id: 2, subscribe: {} });
  // The joiner's own join comes after its reply.
  const join = await c.next((m) => m.push);
  assert.deepEqual(join, { push: { channel: 'public:wire', join: {
    info: { user: '42', client: id, conn_info: { name: 'Alice' } } } } });
  assert.deepEqual(await c.call('presence', { channel: 'public:wire' }), { id: 3, presence: { presence: {
    [id]: { user: '42', client: id, conn_info: { name: 'Alice' } } } } });
  assert.deepEqual(await c.call('presence_stats', { channel: 'public:wire' }),
    { id: 4, presence_stats: { num_clients: 1, num_users: 1 } });

  const other = await connected(srv, '43');
  await other.c.call('subscribe', { channel: 'public:wire' });
  assert.deepEqual(await c.next((m) => m.push), { push: { channel: 'public:wire', join: {
    info: { user: '43', client: other.id } } } });
  assert.deepEqual(await other.c.call('unsubscribe', { channel: 'public:wire' }), { id: 3, unsubscribe: {} });
  assert.deepEqual(await c.next((m) => m.push), { push: { channel: 'public:wire', leave: {
    info: { user: '43', client: other.id } } } });
  // Unsubscribing from a channel one is not in is fine.
  assert.deepEqual(await other.c.call('unsubscribe', { channel: 'public:never' }), { id: 4, unsubscribe: {} });
  c.ws.close();
  other.c.ws.close();
});

test('commands batched in one frame, id last, are answered in order', async () => {
  const c = h.rawClient(srv);
  await c.opened;
  c.send([
    `{"connect":{"token":"${h.userToken(srv, 'batch')}","name":"js"},"id":1}`,
    '{"subscribe":{"channel":"public:batch","flag":1},"id":2}',
    '{"presence_stats":{"channel":"public:batch"},"id":3}',
  ].join('\n'));
  await h.waitFor(() => c.state.messages.length >= 3, { what: 'three replies' });
  assert.deepEqual(c.state.messages.map((m) => m.id), [1, 2, 3]);
  assert.deepEqual(c.state.messages[1], { id: 2, subscribe: {} });
  assert.deepEqual(c.state.messages[2], { id: 3, presence_stats: { num_clients: 1, num_users: 1 } });
  c.ws.close();
});

test('command errors: 105, 102, 107, 108, 103, 104-like methods', async () => {
  const { c } = await connected(srv, 'errs');
  await c.call('subscribe', { channel: 'public:e' });
  const err = async (method, params) => (await c.call(method, params)).error;
  assert.deepEqual(await err('subscribe', { channel: 'public:e' }), { code: 105, message: 'already subscribed' });
  assert.deepEqual(await err('subscribe', { channel: 'nosuchns:e' }), { code: 102, message: 'unknown channel' });
  assert.deepEqual(await err('subscribe', { channel: 'public:' + 'x'.repeat(300) }), { code: 107, message: 'bad request' });
  assert.deepEqual(await err('subscribe', { channel: 'private:e' }), { code: 103, message: 'permission denied' });
  assert.deepEqual(await err('presence', { channel: 'nosuchns:e' }), { code: 102, message: 'unknown channel' });
  assert.deepEqual(await err('presence', { channel: 'nopresence:e' }), { code: 108, message: 'not available' });
  assert.deepEqual(await err('presence_stats', { channel: 'public:other' }), { code: 103, message: 'permission denied' });
  assert.deepEqual(await err('publish', { channel: 'public:e', data: {} }), { code: 108, message: 'not available' });
  // A namespace without presence still takes subscriptions.
  assert.deepEqual(await c.call('subscribe', { channel: 'nopresence:e' }), { id: 11, subscribe: {} });
  assert.equal(c.state.closed, null);
  c.ws.close();
});

const closes = [
  ['a command before connect', (c) => c.send({ subscribe: { channel: 'public:x' }, id: 1 }), 3501, 'bad request'],
  ['an unknown command', (c) => c.send({ connect: {}, id: 1 }) || c.send({ frobnicate: {}, id: 2 }), 3501, 'bad request'],
  ['a frame that is not JSON', (c) => c.send('{"connect":'), 3501, 'bad request'],
  ['a JSON value that is not an object', (c) => c.send('[1]'), 3501, 'bad request'],
  ['a command without an id', (c) => c.send({ connect: {} }), 3501, 'bad request'],
  ['presence with an empty channel', (c) => c.send({ connect: {}, id: 1 }) || c.send({ presence: { channel: '' }, id: 2 }), 3501, 'bad request'],
  ['connect twice', (c) => c.send({ connect: {}, id: 1 }) || c.send({ connect: {}, id: 2 }), 3501, 'bad request'],
  ['an invalid token', (c) => c.send({ connect: { token: 'x.y.z' }, id: 1 }), 3500, 'invalid token'],
  ['a subscription token for another channel', (c) => c.send({ connect: {}, id: 1 }) ||
    c.send({ subscribe: { channel: 'private:a', token: h.makeToken(h.SECRET, { sub: '', channel: 'private:b' }) }, id: 2 }),
  3500, 'invalid token'],
];
for (const [what, act, code, reason] of closes) {
  test(`${what} closes with ${code} ${reason}; the server stays up`, async () => {
    const c = h.rawClient(srv);
    await c.opened;
    act(c);
    assert.deepEqual(await c.closed(), { code, reason });
    assert.equal((await h.api(srv, '/api/presence_stats', { channel: 'public:x' })).status, 200);
  });
}

test('no token and no anonymous access: 3501', async () => {
  const strict = await h.startServer({ config: h.baseConfig({ allow_anonymous_connect_without_token: false }) });
  try {
    const c = h.rawClient(strict);
    await c.opened;
    c.send({ connect: {}, id: 1 });
    assert.deepEqual(await c.closed(), { code: 3501, reason: 'bad request' });
  } finally {
    await strict.stop();
  }
});

test('an expired connection token: error 109, the connection stays open for a retry', async () => {
  const c = h.rawClient(srv);
  await c.opened;
  const r = await c.call('connect', { token: h.userToken(srv, 'x', { exp: Math.floor(Date.now() / 1000) - 1 }) });
  assert.deepEqual(r, { id: 1, error: { code: 109, message: 'token expired' } });
  const ok = await c.call('connect', { token: h.userToken(srv, 'x') });
  assert.ok(ok.connect.client);
  c.ws.close();
});

test('a token that expires closes the connection with 3005, unless refreshed', async () => {
  const soon = () => Math.floor(Date.now() / 1000) + 2;
  const a = await connected(srv, 'exp', { exp: soon() });
  const b = await connected(srv, 'exp', { exp: soon() });
  assert.equal(a.reply.connect.expires, true);
  const r = await b.c.call('refresh', { token: h.userToken(srv, 'exp') });
  assert.equal(r.refresh.client, b.id);
  assert.equal(r.refresh.expires, true);
  assert.deepEqual(await a.c.closed(5000), { code: 3005, reason: 'expired' });
  assert.equal(b.c.state.closed, null);
  // Refreshing with another user's token is refused.
  await b.c.call('refresh', { token: h.userToken(srv, 'someone-else') }).catch(() => {});
  assert.deepEqual(await b.c.closed(), { code: 3500, reason: 'invalid token' });
});

test('server pings are {}; a pong keeps the connection, no pong closes it with 3012', async () => {
  const polite = await connected(tight, 'polite');
  const rude = await connected(tight, 'rude', {}, { pong: false });
  assert.equal(polite.reply.connect.ping, 1);
  await rude.c.next((m) => Object.keys(m).length === 0, 'a ping', 3000);
  assert.deepEqual(await rude.c.closed(4000), { code: 3012, reason: 'no pong' });
  await h.sleep(1500);
  assert.equal(polite.c.state.closed, null);
  polite.c.ws.close();
});

test('limits: channels per connection (106), message size (1009), connections (3504)', async () => {
  const a = await connected(tight, 'lim');
  assert.deepEqual(await a.c.call('subscribe', { channel: 'public:1' }), { id: 2, subscribe: {} });
  assert.deepEqual(await a.c.call('subscribe', { channel: 'public:2' }), { id: 3, subscribe: {} });
  assert.deepEqual((await a.c.call('subscribe', { channel: 'public:3' })).error, { code: 106, message: 'limit exceeded' });

  const big = h.rawClient(tight);
  await big.opened;
  big.send({ connect: { data: 'x'.repeat(2000) }, id: 1 });
  assert.deepEqual(await big.closed(), { code: 1009, reason: 'message too big' });

  const b = await connected(tight, 'lim2');
  const c = await connected(tight, 'lim3');
  const d = h.rawClient(tight);
  await d.opened;
  d.send({ connect: { token: h.userToken(tight, 'lim4') }, id: 1 });
  assert.deepEqual(await d.closed(), { code: 3504, reason: 'connection limit' });
  // Once one goes, there is room again.
  a.c.ws.close();
  await h.waitFor(async () => {
    const e = h.rawClient(tight);
    await e.opened;
    try {
      const r = await e.call('connect', { token: h.userToken(tight, 'lim5') });
      return !!r.connect;
    } finally {
      e.ws.close();
    }
  }, { what: 'a free connection slot' });
  b.c.ws.close();
  c.c.ws.close();
});

test('client_user_connection_limit: one user\'s connection past it closes with 3504; others and anonymous ones are not held back', async () => {
  const limited = await h.startServer({
    config: h.baseConfig({ client_user_connection_limit: 2 }),
  });
  try {
    const a1 = await connected(limited, 'alice');
    const a2 = await connected(limited, 'alice');
    const a3 = h.rawClient(limited);
    await a3.opened;
    a3.send({ connect: { token: h.userToken(limited, 'alice') }, id: 1 });
    assert.deepEqual(await a3.closed(), { code: 3504, reason: 'connection limit' });
    const b = await connected(limited, 'bob');
    const anon = [];
    for (let i = 0; i < 3; i++) {
      const c = h.rawClient(limited);
      await c.opened;
      assert.ok((await c.call('connect', {})).connect.client);
      anon.push(c);
    }
    // The SDK sees 3504 as terminal: disconnected, no reconnect.
    const sdk = h.sdkClient(limited, { token: h.userToken(limited, 'alice') });
    const gone = new Promise((resolve) => sdk.once('disconnected', resolve));
    sdk.connect();
    const ctx = await gone;
    assert.equal(ctx.code, 3504);
    // Once one of alice's connections goes, she may connect again.
    a1.c.ws.close();
    await h.waitFor(async () => {
      const e = h.rawClient(limited);
      await e.opened;
      const r = await e.call('connect', { token: h.userToken(limited, 'alice') }).catch(() => ({}));
      e.ws.close();
      return !!r.connect;
    }, { what: 'room for alice again' });
    for (const c of [a2.c, b.c, ...anon]) c.ws.close();
  } finally {
    await limited.stop();
  }
});

test('without client_connection_limit (0), the open files are the limit: 2000 clients connect', { timeout: 120000 }, async () => {
  const config = h.baseConfig();
  delete config.client_connection_limit;
  const wide = await h.startServer({ config });
  const clients = [];
  try {
    const N = 2000;
    for (let i = 0; i < N; i += 200) {
      const batch = [];
      for (let k = i; k < i + 200; k++) {
        batch.push((async () => {
          const c = h.rawClient(wide);
          clients.push(c);
          await c.opened;
          return c.call('connect', {});
        })());
      }
      for (const r of await Promise.all(batch)) assert.ok(r.connect && r.connect.client, JSON.stringify(r));
    }
    assert.equal(clients.filter((c) => c.state.closed).length, 0);
  } finally {
    for (const c of clients) c.ws.terminate();
    await wide.stop();
  }
});

test('a transport that never sends connect is closed with 3502 stale', { timeout: 20000 }, async () => {
  const c = h.rawClient(srv);
  await c.opened;
  assert.deepEqual(await c.closed(15000), { code: 3502, reason: 'stale' });
});

test('a client close is answered with a close frame of the same code', async () => {
  const { c } = await connected(srv, 'closer');
  c.ws.close(4000, 'bye');
  assert.equal((await c.closed()).code, 4000);
});

test('a client that stops reading is closed with 3008 slow; the others go on', { timeout: 120000 }, async () => {
  const storm = await h.startServer({
    config: h.baseConfig({ client_queue_max_size: 65536, websocket_message_size_limit: 1 << 20 }),
  });
  try {
    const slow = h.rawClient(storm);
    await slow.opened;
    await slow.call('connect', { token: h.userToken(storm, 'slow') });
    await slow.call('subscribe', { channel: 'public:storm', join_leave: true });
    slow.ws._socket.pause(); // reads nothing more: socket buffers fill, then its queue
    const busy = h.rawClient(storm);
    await busy.opened;
    // A big conn_info makes every push to the slow reader big too.
    await busy.call('connect', { token: h.userToken(storm, 'busy', { info: { pad: 'x'.repeat(4000) } }) });
    // Join/leave storms aimed at the slow reader, 400 commands a frame (the
    // replies stay well below the busy client's own queue limit).
    let id = 100;
    for (let round = 0; round < 500 && !slow.state.closed; round++) {
      const lines = [];
      for (let i = 0; i < 200; i++) {
        lines.push(JSON.stringify({ subscribe: { channel: 'public:storm' }, id: id++ }));
        lines.push(JSON.stringify({ unsubscribe: { channel: 'public:storm' }, id: id++ }));
      }
      busy.send(lines.join('\n'));
      await busy.next((m) => m.id === id - 1, 'the end of a batch', 20000);
      busy.state.messages.length = 0;
      if (round % 5 === 4) {
        // Let the slow socket's close frame through, if it came.
        slow.ws._socket.resume();
        await h.sleep(50);
        if (!slow.state.closed) slow.ws._socket.pause();
      }
    }
    slow.ws._socket.resume();
    assert.deepEqual(await slow.closed(20000), { code: 3008, reason: 'slow' });
    assert.equal(busy.state.closed, null);
    assert.deepEqual(await h.httpStats(storm, 'public:storm'), { num_clients: 0, num_users: 0 });
  } finally {
    h.disconnectAll();
    await storm.stop();
  }
});
