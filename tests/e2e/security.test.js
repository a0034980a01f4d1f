'use strict';
// Security over the wire: tokens must be HS256 with our secret (alg none,
// HS384/HS512 under the same secret, other names refused), exp and nbf are
// honoured; JSON depth and size limits on WebSocket frames and HTTP bodies
// give clear closes and statuses; and every combination of the presence
// permission options (allow_presence_for_subscriber / _for_client /
// _for_anonymous) x (user or anonymous) x (subscribed or not) is checked
// for presence, presence_stats and join/leave pushes: no presence reaches a
// client that may not read it.

const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const h = require('./lib/harness');

// One namespace per combination of the three presence options.
const COMBOS = [];
for (const S of [false, true]) {
  for (const C of [false, true]) {
    for (const A of [false, true]) {
      COMBOS.push({ S, C, A, ns: `perm-s${+S}-c${+C}-a${+A}` });
    }
  }
}

let srv;

before(async () => {
  srv = await h.startServer({
    config: h.baseConfig({
      websocket_message_size_limit: 1 << 20,
      namespaces: [
        ...h.baseConfig().namespaces,
        ...COMBOS.map(({ S, C, A, ns }) => ({
          name: ns, presence: true, join_leave: true,
          allow_subscribe_for_client: true, allow_subscribe_for_anonymous: true,
          allow_presence_for_subscriber: S, allow_presence_for_client: C,
          allow_presence_for_anonymous: A,
        })),
      ],
    }),
  });
});
after(async () => {
  h.disconnectAll();
  const { code } = await srv.stop();
  assert.equal(code, 0);
});

const now = () => Math.floor(Date.now() / 1000);
const b64 = (v) => Buffer.from(typeof v === 'string' ? v : JSON.stringify(v)).toString('base64url');

// A JWT with any header, signed with HMAC-<hash> (or unsigned).
function jwt(header, claims, { secret = h.SECRET, hash = 'sha256', sig } = {}) {
  const signing = `${b64(header)}.${b64(claims)}`;
  const s = sig !== undefined ? sig : crypto.createHmac(hash, secret).update(signing).digest('base64url');
  return `${signing}.${s}`;
}

async function connectRaw(token) {
  const c = h.rawClient(srv);
  await c.opened;
  const reply = await c.call('connect', token === undefined ? {} : { token });
  return { c, reply };
}

// ------------------------------------------------------------------ tokens

const HS256 = { alg: 'HS256', typ: 'JWT' };
const claims = () => ({ sub: 'mallory', exp: now() + 600 });
const forged = {
  'alg none, no signature': () => jwt({ alg: 'none', typ: 'JWT' }, claims(), { sig: '' }),
  'alg none with an HS256 signature': () => {
    const good = jwt(HS256, claims());
    return `${b64({ alg: 'none', typ: 'JWT' })}.${good.split('.').slice(1).join('.')}`;
  },
  'alg NONE': () => jwt({ alg: 'NONE' }, claims(), { sig: '' }),
  'HS384 with our secret': () => jwt({ alg: 'HS384', typ: 'JWT' }, claims(), { hash: 'sha384' }),
  'HS512 with our secret': () => jwt({ alg: 'HS512', typ: 'JWT' }, claims(), { hash: 'sha512' }),
  'alg hs256 (lower case)': () => jwt({ alg: 'hs256', typ: 'JWT' }, claims()),
  'alg RS256 with an HMAC signature': () => jwt({ alg: 'RS256', typ: 'JWT' }, claims()),
  'no alg': () => jwt({ typ: 'JWT' }, claims()),
  'another secret': () => jwt(HS256, claims(), { secret: 'not-the-secret' }),
  'payload swapped after signing': () => {
    const [head, , sig] = jwt(HS256, { sub: 'mallory' }).split('.');
    return `${head}.${b64({ sub: 'admin' })}.${sig}`;
  },
  'nbf in the future': () => jwt(HS256, { sub: 'mallory', nbf: now() + 600 }),
  'exp not a number': () => jwt(HS256, { sub: 'mallory', exp: String(now() + 600) }),
  'sub not a string': () => jwt(HS256, { sub: 42 }),
  // A subscription token is not a connection token (Centrifugo: "connection
  // JWT can not contain channel claim"), expired or not.
  'a subscription token (channel claim)': () =>
    jwt(HS256, { sub: 'mallory', channel: 'public:x', exp: now() + 600 }),
  'an expired subscription token': () =>
    jwt(HS256, { sub: 'mallory', channel: 'public:x', exp: now() - 1 }),
};

for (const [what, make] of Object.entries(forged)) {
  test(`connect token refused: ${what} -> close 3500`, async () => {
    const c = h.rawClient(srv);
    await c.opened;
    c.send({ connect: { token: make() }, id: 1 });
    assert.deepEqual(await c.closed(), { code: 3500, reason: 'invalid token' });
  });
}

test('HS256 tokens: accepted, exp honoured (109), nbf in the past accepted', async () => {
  const ok = await connectRaw(jwt(HS256, { sub: 'ok', nbf: now() - 5, exp: now() + 60 }));
  assert.ok(ok.reply.connect.client);
  const expired = await connectRaw(jwt(HS256, { sub: 'late', exp: now() - 1 }));
  assert.deepEqual(expired.reply.error, { code: 109, message: 'token expired' });
  ok.c.ws.close();
  expired.c.ws.close();
});

test('exp: absent is no expiry; 0 and negative are expired (109), as in Centrifugo', async () => {
  const forever = await connectRaw(jwt(HS256, { sub: 'forever' }));
  assert.ok(forever.reply.connect.client);
  assert.equal(forever.reply.connect.expires, undefined);
  for (const exp of [0, -1, -1e9, 0.5]) {
    const r = await connectRaw(jwt(HS256, { sub: 'zero', exp }));
    assert.deepEqual(r.reply.error, { code: 109, message: 'token expired' }, `exp ${exp}`);
    r.c.ws.close();
  }
  // The same for subscription tokens and refresh.
  const sub = await forever.c.call('subscribe', { channel: 'private:x',
    token: jwt(HS256, { sub: 'forever', channel: 'private:x', exp: 0 }) });
  assert.deepEqual(sub.error, { code: 109, message: 'token expired' });
  const refresh = await forever.c.call('refresh', { token: jwt(HS256, { sub: 'forever', exp: 0 }) });
  assert.deepEqual(refresh.error, { code: 109, message: 'token expired' });
  forever.c.ws.close();
});

test('refresh with a subscription token closes with 3500', async () => {
  const { c } = await connectRaw(h.userToken(srv, 'refresher'));
  c.send({ refresh: { token: jwt(HS256, { sub: 'refresher', channel: 'public:x', exp: now() + 600 }) }, id: 2 });
  assert.deepEqual(await c.closed(), { code: 3500, reason: 'invalid token' });
});

test('subscription and refresh tokens get the same checks', async () => {
  for (const [what, token, code] of [
    ['none', jwt({ alg: 'none' }, { sub: 'subber', channel: 'private:x' }, { sig: '' }), 3500],
    ['HS512', jwt({ alg: 'HS512' }, { sub: 'subber', channel: 'private:x' }, { hash: 'sha512' }), 3500],
    ['nbf ahead', jwt(HS256, { sub: 'subber', channel: 'private:x', nbf: now() + 600 }), 3500],
  ]) {
    const { c } = await connectRaw(h.userToken(srv, 'subber'));
    c.send({ subscribe: { channel: 'private:x', token }, id: 2 });
    assert.deepEqual(await c.closed(), { code, reason: 'invalid token' }, what);
  }
  const { c } = await connectRaw(h.userToken(srv, 'subber'));
  const expired = await c.call('subscribe', { channel: 'private:x',
    token: jwt(HS256, { sub: 'subber', channel: 'private:x', exp: now() - 1 }) });
  assert.deepEqual(expired.error, { code: 109, message: 'token expired' });
  c.send({ refresh: { token: jwt({ alg: 'none' }, { sub: 'subber' }, { sig: '' }) }, id: 9 });
  assert.deepEqual(await c.closed(), { code: 3500, reason: 'invalid token' });
  assert.deepEqual(await h.httpStats(srv, 'private:x'), { num_clients: 0, num_users: 0 });
});

// ------------------------------------------------------------------ limits

const nested = (depth) => '['.repeat(depth) + ']'.repeat(depth);

test('WebSocket: JSON nested deeper than 64 closes with 3501 "bad request: too deep"', async () => {
  // 64 levels in all is fine: the command object, connect's params, 62 arrays.
  const fine = h.rawClient(srv);
  await fine.opened;
  fine.send(`{"connect":{"data":${nested(62)}},"id":1}`);
  assert.ok((await fine.next((m) => m.id === 1)).connect.client);
  fine.ws.close();
  const deep = h.rawClient(srv);
  await deep.opened;
  deep.send(`{"connect":{"data":${nested(63)}},"id":1}`);
  assert.deepEqual(await deep.closed(), { code: 3501, reason: 'bad request: too deep' });
  // A deep line after a good one in the same frame: the first still runs.
  const mixed = h.rawClient(srv);
  await mixed.opened;
  mixed.send(`{"connect":{},"id":1}\n${nested(100000)}`);
  assert.ok((await mixed.next((m) => m.id === 1)).connect.client);
  assert.deepEqual(await mixed.closed(), { code: 3501, reason: 'bad request: too deep' });
  assert.equal((await h.api(srv, '/api/presence_stats', { channel: 'public:x' })).status, 200);
});

test('HTTP API: deep JSON is 400, a body over 1 MiB is 413, each with a message', async () => {
  const deep = await h.api(srv, '/api/presence', `{"channel":"public:x","x":${nested(65)}}`);
  assert.equal(deep.status, 400);
  assert.equal(deep.text, 'Bad Request: JSON nested deeper than 64 levels\n');
  const ok = await h.api(srv, '/api/presence', `{"channel":"public:x","x":${nested(60)}}`);
  assert.deepEqual(ok.json, { result: { presence: {} } });
  const big = await h.api(srv, '/api/presence', `{"channel":"public:x","pad":"${'x'.repeat(1 << 20)}"}`);
  assert.equal(big.status, 413);
  assert.equal(big.text, 'Payload Too Large: the limit is 1048576 bytes\n');
  const legacyDeep = await h.api(srv, '/api', `{"method":"presence","params":${nested(70)}}`);
  assert.equal(legacyDeep.status, 400);
  // The server is still there, and a wrong key of the right length is 401.
  assert.equal((await h.api(srv, '/api/presence_stats', { channel: 'public:x' })).status, 200);
  const wrong = h.API_KEY.slice(0, -1) + (h.API_KEY.endsWith('y') ? 'z' : 'y');
  assert.equal((await h.api(srv, '/api/presence', { channel: 'public:x' },
    { auth: 'none', headers: { 'X-API-Key': wrong } })).status, 401);
});

// ------------------------------------------------------ presence permissions

function allowed({ S, C, A }, { anon, subscribed }) {
  const userOk = !anon || A;
  return (C && userOk) || (S && subscribed && userOk);
}

const OBSERVERS = [
  { name: 'user, subscribed', anon: false, subscribed: true },
  { name: 'user, not subscribed', anon: false, subscribed: false },
  { name: 'anonymous, subscribed', anon: true, subscribed: true },
  { name: 'anonymous, not subscribed', anon: true, subscribed: false },
];

test('presence permissions: every combination, presence, stats and pushes', { timeout: 60000 }, async () => {
  // A member in every channel, so that there is presence to leak.
  const member = await connectRaw(h.userToken(srv, 'member', { info: { secret: 'member-info' } }));
  for (const { ns } of COMBOS) {
    assert.deepEqual((await member.c.call('subscribe', { channel: `${ns}:room` })).subscribe, {});
  }
  const observers = [];
  for (const o of OBSERVERS) {
    const { c } = await connectRaw(o.anon ? undefined : h.userToken(srv, 'observer'));
    if (o.subscribed) {
      for (const { ns } of COMBOS) {
        const r = await c.call('subscribe', { channel: `${ns}:room`, join_leave: true });
        assert.deepEqual(r.subscribe, {}, `${o.name} subscribes to ${ns}`);
      }
    }
    observers.push({ ...o, c });
  }
  // Queries.
  let checked = 0;
  for (const combo of COMBOS) {
    for (const o of observers) {
      const may = allowed(combo, o);
      const what = `${o.name} in ${combo.ns}`;
      const p = await o.c.call('presence', { channel: `${combo.ns}:room` });
      const s = await o.c.call('presence_stats', { channel: `${combo.ns}:room` });
      if (may) {
        const clients = Object.values(p.presence.presence);
        assert.ok(clients.some((m) => m.user === 'member'), what);
        // The member and the two subscribed observers.
        assert.equal(s.presence_stats.num_clients, 3, what);
      } else {
        assert.deepEqual(p, { id: p.id, error: { code: 103, message: 'permission denied' } }, what);
        assert.deepEqual(s, { id: s.id, error: { code: 103, message: 'permission denied' } }, what);
        assert.ok(!JSON.stringify(p).includes('member-info'), what);
      }
      checked++;
    }
  }
  assert.equal(checked, 32);
  // Pushes: a joiner comes and goes in every channel; a subscribed observer
  // that asked for join/leave sees it exactly where it may read presence.
  const joiner = await connectRaw(h.userToken(srv, 'joiner', { info: { secret: 'joiner-info' } }));
  const joinerId = joiner.reply.connect.client;
  for (const { ns } of COMBOS) {
    await joiner.c.call('subscribe', { channel: `${ns}:room` });
    await joiner.c.call('unsubscribe', { channel: `${ns}:room` });
  }
  const expected = [];
  for (const combo of COMBOS) {
    for (const o of observers.filter((x) => x.subscribed)) {
      if (allowed(combo, o)) expected.push([o, combo]);
    }
  }
  const about = (o, ns, kind) => o.c.state.messages.filter((m) =>
    m.push && m.push.channel === `${ns}:room` && m.push[kind] && m.push[kind].info.client === joinerId);
  await h.waitFor(() => expected.every(([o, { ns }]) =>
    about(o, ns, 'join').length === 1 && about(o, ns, 'leave').length === 1), { what: 'the allowed pushes' });
  await h.sleep(300); // any push that should not come has had its chance
  for (const combo of COMBOS) {
    for (const o of observers) {
      const n = about(o, combo.ns, 'join').length + about(o, combo.ns, 'leave').length;
      const may = o.subscribed && allowed(combo, o);
      assert.equal(n, may ? 2 : 0, `pushes to ${o.name} in ${combo.ns}`);
    }
  }
  for (const o of observers) {
    const leaked = o.c.state.messages.filter((m) => m.push &&
      !allowed(COMBOS.find((x) => m.push.channel === `${x.ns}:room`), o));
    assert.deepEqual(leaked, [], `no push to ${o.name} where it may not read presence`);
    o.c.ws.close();
  }
  member.c.ws.close();
  joiner.c.ws.close();
});
