'use strict';
// Centrifugo's HTTP server API, presence part: every route, both auth
// headers, wrong keys, methods, bodies and every error code.

const { test, before, after, afterEach } = require('node:test');
const assert = require('node:assert/strict');
const h = require('./lib/harness');

let srv;
let member; // a client in public:room, so that presence is not empty

before(async () => {
  srv = await h.startServer();
  member = await h.connectAndSubscribe(srv, {
    token: h.userToken(srv, '42', { info: { name: 'Alice' } }), channel: 'public:room',
  });
});
after(async () => {
  h.disconnectAll();
  await srv.stop();
});

const expectedPresence = () => ({
  [member.id]: { user: '42', client: member.id, conn_info: { name: 'Alice' } },
});

test('POST /api/presence and /api/presence_stats', async () => {
  let r = await h.api(srv, '/api/presence', { channel: 'public:room' });
  assert.equal(r.status, 200);
  assert.match(r.headers.get('content-type'), /application\/json/);
  assert.deepEqual(r.json, { result: { presence: expectedPresence() } });
  r = await h.api(srv, '/api/presence_stats', { channel: 'public:room' });
  assert.deepEqual(r.json, { result: { num_clients: 1, num_users: 1 } });
  // An empty channel: an empty map and zero counts, both keys present.
  r = await h.api(srv, '/api/presence', { channel: 'public:nobody' });
  assert.equal(r.text, '{"result":{"presence":{}}}');
  r = await h.api(srv, '/api/presence_stats', { channel: 'public:nobody' });
  assert.equal(r.text, '{"result":{"num_clients":0,"num_users":0}}');
});

test('POST /api/user_presence: a user across channels (an extension)', async () => {
  let r = await h.api(srv, '/api/user_presence', { user: '42' });
  assert.equal(r.status, 200);
  assert.deepEqual(r.json, {
    result: { user: '42', online: true, connections: 1, clients: expectedPresence() },
  });
  r = await h.api(srv, '/api/user_presence', { user: 'nobody' });
  assert.deepEqual(r.json, {
    result: { user: 'nobody', online: false, connections: 0, clients: {} },
  });
  r = await h.api(srv, '/api/user_presence', { user: 7 });
  assert.equal(r.status, 400);
  r = await h.api(srv, '/api/user_presence', { user: 'bad\u0001' });
  assert.deepEqual(r.json.error, { code: 107, message: 'bad request' });
});

test('POST /api, the legacy {method, params} form', async () => {
  let r = await h.api(srv, '/api', { method: 'presence', params: { channel: 'public:room' } });
  assert.deepEqual(r.json, { result: { presence: expectedPresence() } });
  r = await h.api(srv, '/api', { method: 'presence_stats', params: { channel: 'public:room' } });
  assert.deepEqual(r.json, { result: { num_clients: 1, num_users: 1 } });
  // Method names are case-insensitive, or given by number (4, 5); ids echo.
  r = await h.api(srv, '/api', { id: 7, method: 'PRESENCE_STATS', params: { channel: 'public:room' } });
  assert.deepEqual(r.json, { id: 7, result: { num_clients: 1, num_users: 1 } });
  r = await h.api(srv, '/api', { method: 4, params: { channel: 'public:room' } });
  assert.deepEqual(r.json, { result: { presence: expectedPresence() } });
  r = await h.api(srv, '/api', { method: 5, params: { channel: 'public:room' } });
  assert.deepEqual(r.json, { result: { num_clients: 1, num_users: 1 } });
  // Several commands, one per line; replies one per line, in order.
  const body = [
    { id: 1, method: 'presence_stats', params: { channel: 'public:room' } },
    { id: 2, method: 'presence_stats', params: { channel: 'nope:x' } },
    { id: 3, method: 'publish', params: { channel: 'public:room', data: {} } },
  ].map((c) => JSON.stringify(c)).join('\n');
  r = await h.api(srv, '/api', body);
  assert.deepEqual(r.text.split('\n').map((l) => JSON.parse(l)), [
    { id: 1, result: { num_clients: 1, num_users: 1 } },
    { id: 2, error: { code: 102, message: 'unknown channel' } },
    { id: 3, error: { code: 104, message: 'method not found' } },
  ]);
});

test('auth: X-API-Key, Authorization: apikey, ?api_key; anything else is 401 with an empty body', async () => {
  const body = { channel: 'public:room' };
  assert.equal((await h.api(srv, '/api/presence_stats', body, { auth: 'x-api-key' })).status, 200);
  assert.equal((await h.api(srv, '/api/presence_stats', body, { auth: 'apikey' })).status, 200);
  assert.equal((await h.api(srv, '/api/presence_stats', body, {
    auth: 'none', headers: { Authorization: `APIKEY ${srv.apiKey}` } })).status, 200);
  assert.equal((await h.api(srv, `/api/presence_stats?api_key=${srv.apiKey}`, body, { auth: 'none' })).status, 200);
  for (const headers of [
    {},
    { 'X-API-Key': 'wrong' },
    { 'X-API-Key': '' },
    { Authorization: 'apikey wrong' },
    { Authorization: `Bearer ${srv.apiKey}` },
    { Authorization: srv.apiKey },
  ]) {
    for (const route of ['/api', '/api/presence', '/api/presence_stats']) {
      const r = await h.api(srv, route, { method: 'presence', params: body, ...body }, { auth: 'none', headers });
      assert.equal(r.status, 401, `${route} ${JSON.stringify(headers)}`);
      assert.equal(r.text, '');
    }
  }
});

test('anything but POST is 405', async () => {
  for (const method of ['GET', 'PUT', 'DELETE', 'PATCH']) {
    for (const route of ['/api', '/api/presence', '/api/presence_stats']) {
      const r = await h.api(srv, route, method === 'GET' ? undefined : { channel: 'public:room' }, { method });
      assert.equal(r.status, 405, `${method} ${route}`);
    }
  }
});

test('a body that is not JSON is 400 Bad Request', async () => {
  for (const route of ['/api', '/api/presence', '/api/presence_stats']) {
    for (const body of ['{"channel":', 'not json', '[1,2]', '"x"']) {
      const r = await h.api(srv, route, body);
      assert.equal(r.status, 400, `${route} ${body}`);
      assert.equal(r.text, 'Bad Request\n');
    }
  }
  const r = await h.api(srv, '/api/presence', { channel: 5 });
  assert.equal(r.status, 400);
});

test('error codes: 107 bad request, 102 unknown channel, 108 not available, 104 method not found', async () => {
  const cases = [
    [{ channel: '' }, 107, 'bad request'],
    [{}, 107, 'bad request'],
    [{ channel: 'public:' + 'x'.repeat(300) }, 107, 'bad request'],
    [{ channel: 'public:bad\u0001name' }, 107, 'bad request'],
    [{ channel: 'nosuchns:room' }, 102, 'unknown channel'],
    [{ channel: 'nopresence:room' }, 108, 'not available'],
    // top-level channels: presence is off there in this config
    [{ channel: 'lobby' }, 108, 'not available'],
  ];
  for (const [body, code, message] of cases) {
    for (const route of ['/api/presence', '/api/presence_stats']) {
      const r = await h.api(srv, route, body);
      assert.equal(r.status, 200, `${route} ${JSON.stringify(body)}`);
      assert.deepEqual(r.json, { error: { code, message } }, `${route} ${JSON.stringify(body)}`);
    }
    for (const method of ['presence', 'presence_stats']) {
      const r = await h.api(srv, '/api', { method, params: body });
      assert.deepEqual(r.json, { error: { code, message } });
    }
  }
  for (const method of ['publish', 'nonsense', 99, null]) {
    const r = await h.api(srv, '/api', { method, params: { channel: 'public:room' } });
    assert.deepEqual(r.json, { error: { code: 104, message: 'method not found' } });
  }
  const r = await h.api(srv, '/api', { method: 'presence', params: 'public:room' });
  assert.deepEqual(r.json, { error: { code: 107, message: 'bad request' } });
});

test('transport error mode: the bare error with the mapped HTTP status', async () => {
  const headers = { 'X-Centrifugo-Error-Mode': 'transport' };
  for (const [channel, status, code] of [['', 400, 107], ['nosuchns:a', 404, 102], ['nopresence:a', 400, 108]]) {
    const r = await h.api(srv, '/api/presence', { channel }, { headers });
    assert.equal(r.status, status);
    assert.equal(r.json.code, code);
  }
  const ok = await h.api(srv, '/api/presence_stats', { channel: 'public:room' }, { headers });
  assert.deepEqual(ok.json, { result: { num_clients: 1, num_users: 1 } });
});

test('unknown routes under /api are 404', async () => {
  for (const route of ['/api/publish', '/api/presence/x', '/api/presencestats']) {
    assert.equal((await h.api(srv, route, { channel: 'public:room' })).status, 404, route);
  }
});

test('presence follows a client that leaves', async () => {
  const extra = await h.connectAndSubscribe(srv, { token: h.userToken(srv, '43'), channel: 'public:room' });
  assert.deepEqual(await h.httpStats(srv, 'public:room'), { num_clients: 2, num_users: 2 });
  extra.client.disconnect();
  await h.waitFor(async () => (await h.httpStats(srv, 'public:room')).num_clients === 1, { what: 'leave' });
  assert.deepEqual((await h.api(srv, '/api/presence', { channel: 'public:room' })).json,
    { result: { presence: expectedPresence() } });
});

test('an empty api_key lets nobody in; api_insecure lets everybody in', async () => {
  const closed = await h.startServer({ config: h.baseConfig({ api_key: '' }) });
  const open = await h.startServer({ config: h.baseConfig({ api_key: '', api_insecure: true }) });
  try {
    let r = await h.api(closed, '/api/presence_stats', { channel: 'public:a' }, { headers: { 'X-API-Key': '' } });
    assert.equal(r.status, 401);
    r = await h.api(open, '/api/presence_stats', { channel: 'public:a' }, { auth: 'none' });
    assert.deepEqual(r.json, { result: { num_clients: 0, num_users: 0 } });
  } finally {
    await closed.stop();
    await open.stop();
  }
});

// The server's resident memory in kB (Linux), for the batch test below.
function rssKb(pid) {
  const status = require('node:fs').readFileSync(`/proc/${pid}/status`, 'utf8');
  return Number(/VmRSS:\s+(\d+)/.exec(status)[1]);
}

test('a 1 MiB batch of commands: linear time, bounded memory, exactly 1 MiB allowed', async () => {
  // 349,525 lines of "{}" (no method: 104 each) and one space: exactly
  // 1,048,576 bytes, the limit, which is allowed; one byte more is 413.
  const body = '{}\n'.repeat(349525) + ' ';
  assert.equal(Buffer.byteLength(body), 1048576);
  const before = rssKb(srv.child.pid);
  for (let i = 0; i < 3; i++) {
    const started = Date.now();
    const r = await h.api(srv, '/api', body);
    assert.equal(r.status, 200);
    const lines = r.text.split('\n');
    assert.equal(lines.length, 349525);
    assert.equal(lines[0], '{"error":{"code":104,"message":"method not found"}}');
    assert.equal(lines[349524], lines[0]);
    // Was 12-22 s on a slow machine (a realloc per reply); well under
    // a second now.
    assert.ok(Date.now() - started < 5000, `took ${Date.now() - started} ms`);
  }
  // Was ~300 MB more per request (every reply held as a JSON object);
  // now the body and 64 KiB of replies at a time.
  const grown = rssKb(srv.child.pid) - before;
  assert.ok(grown < 64 * 1024, `RSS grew by ${grown} kB`);
  // Small batches keep their Content-Length; large ones are streamed.
  const small = await h.api(srv, '/api', '{}\n{}');
  assert.equal(small.headers.get('content-length'), String(small.text.length));
  const large = await h.api(srv, '/api', '{}\n'.repeat(5000));
  assert.equal(large.headers.get('transfer-encoding'), 'chunked');
  assert.equal(large.text.split('\n').length, 5000);
  // An HTTP/1.0 client cannot take chunks: the body ends with the
  // connection.
  const raw = await new Promise((resolve, reject) => {
    const net = require('node:net');
    const batch = '{}\n'.repeat(5000);
    const s = net.connect(srv.port, '127.0.0.1', () => {
      s.end(`POST /api HTTP/1.0\r\nX-API-Key: ${srv.apiKey}\r\n` +
        `Content-Length: ${batch.length}\r\n\r\n${batch}`);
    });
    let got = '';
    s.on('data', (d) => { got += d; });
    s.on('end', () => resolve(got));
    s.on('error', reject);
  });
  const [head, text] = raw.split('\r\n\r\n');
  assert.match(head, /^HTTP\/1\.1 200 OK/);
  assert.doesNotMatch(head, /Transfer-Encoding|Content-Length/i);
  assert.equal(text.split('\n').length, 5000);
  assert.equal(text.split('\n')[4999], '{"error":{"code":104,"message":"method not found"}}');
  const over = await h.api(srv, '/api', body + ' ');
  assert.equal(over.status, 413);
  // A bad line anywhere is still a 400 for the whole batch.
  const bad = await h.api(srv, '/api', '{}\n'.repeat(100000) + 'nope\n');
  assert.equal(bad.status, 400);
});

// Raw HTTP on one socket: write @p text, collect what comes until the
// peer ends, or until @p until(got) says enough.
function rawExchange(srv, text, until = () => false) {
  const net = require('node:net');
  return new Promise((resolve, reject) => {
    let got = '';
    let ended = false;
    const s = net.connect(srv.port, '127.0.0.1', () => s.write(text));
    s.on('data', (d) => {
      got += d;
      if (until(got)) resolve({ got, ended, socket: s });
    });
    s.on('end', () => { ended = true; resolve({ got, ended, socket: s }); });
    s.on('error', reject);
  });
}

const presenceRequest = (srv, extra = '') => {
  const body = JSON.stringify({ channel: 'public:room' });
  return `POST /api/presence_stats HTTP/1.1\r\nHost: x\r\nX-API-Key: ${srv.apiKey}\r\n` +
    `Content-Type: application/json\r\n${extra}Content-Length: ${body.length}\r\n\r\n${body}`;
};
const responses = (got) => got.split('HTTP/1.1 ').length - 1;

test('HTTP keep-alive: requests one after another on one connection', async () => {
  const first = await rawExchange(srv, presenceRequest(srv), (g) => g.endsWith('}}'));
  assert.equal(first.ended, false);
  assert.match(first.got, /^HTTP\/1\.1 200 OK/);
  assert.match(first.got, /\r\nConnection: keep-alive\r\nKeep-Alive: timeout=5\r\n/);
  // The same socket takes the next request, and the one after.
  for (let i = 0; i < 2; i++) {
    const next = await new Promise((resolve) => {
      let got = '';
      const onData = (d) => {
        got += d;
        if (got.endsWith('}}')) { first.socket.off('data', onData); resolve(got); }
      };
      first.socket.on('data', onData);
      first.socket.write(presenceRequest(srv));
    });
    assert.match(next, /^HTTP\/1\.1 200 OK/);
    assert.match(next, /"num_clients":1/);
  }
  first.socket.destroy();
  // fetch reuses its connection: the server sees one more at most.
  const before = await h.api(srv, '/api/presence_stats', { channel: 'public:room' });
  assert.equal(before.headers.get('connection'), 'keep-alive');
});

test('HTTP keep-alive: "Connection: close", HTTP/1.0 and pipelined requests end the connection', async () => {
  const close = await rawExchange(srv, presenceRequest(srv, 'Connection: close\r\n'));
  assert.equal(close.ended, true);
  assert.match(close.got, /\r\nConnection: close\r\n/);
  const old = await rawExchange(srv, presenceRequest(srv).replace('HTTP/1.1\r\n', 'HTTP/1.0\r\n'));
  assert.equal(old.ended, true);
  assert.match(old.got, /\r\nConnection: close\r\n/);
  // Two requests in one write: the first is answered and the connection
  // closes (the client sends the second again on a new one).
  const two = await rawExchange(srv, presenceRequest(srv) + presenceRequest(srv));
  assert.equal(two.ended, true);
  assert.equal(responses(two.got), 1);
  assert.match(two.got, /\r\nConnection: close\r\n/);
  // A refused request (404) closes as well.
  const lost = await rawExchange(srv, 'GET /nowhere HTTP/1.1\r\nHost: x\r\n\r\n');
  assert.equal(lost.ended, true);
  assert.match(lost.got, /^HTTP\/1\.1 404/);
});

test('HTTP keep-alive: an idle connection is closed after its 5 s', async () => {
  const t0 = Date.now();
  const r = await rawExchange(srv, presenceRequest(srv));
  const waited = Date.now() - t0;
  assert.equal(r.ended, true);
  assert.equal(responses(r.got), 1);
  assert.ok(waited >= 4900 && waited < 8000, `closed after ${waited} ms`);
});
