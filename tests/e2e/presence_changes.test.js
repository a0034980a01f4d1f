'use strict';
// The presence_changes API method (an extension beside Centrifugo's
// presence): the presence with its version first, then the joins, leaves
// and updates since, or the presence again when the channel's log
// (presence_history_size) no longer reaches back.

const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const h = require('./lib/harness');

let srv;

before(async () => {
  const config = h.baseConfig();
  config.namespaces.push({
    name: 'hist', presence: true, join_leave: true, presence_history_size: 4,
    allow_subscribe_for_client: true, allow_presence_for_subscriber: true,
  });
  srv = await h.startServer({ config });
});
after(async () => {
  h.disconnectAll();
  await srv.stop();
});

const changes = (body) => h.api(srv, '/api/presence_changes', body);

test('POST /api/presence_changes: presence, then the changes since', async () => {
  const a = await h.connectAndSubscribe(srv, {
    token: h.userToken(srv, 'u1'), channel: 'hist:room',
  });
  let r = await changes({ channel: 'hist:room' });
  assert.equal(r.status, 200);
  const first = r.json.result;
  assert.equal(first.recovered, false);
  assert.deepEqual(Object.keys(first.presence), [a.id]);
  assert.match(first.epoch, /^[0-9]+$/);
  assert.equal(first.offset, 1);

  const b = await h.connectAndSubscribe(srv, {
    token: h.userToken(srv, 'u2'), channel: 'hist:room',
  });
  a.client.disconnect();
  await h.waitFor(async () => {
    const s = await h.api(srv, '/api/presence_stats', { channel: 'hist:room' });
    return s.json.result.num_clients === 1;
  });
  r = await changes({ channel: 'hist:room', epoch: first.epoch, offset: first.offset });
  const next = r.json.result;
  assert.equal(next.recovered, true);
  assert.equal(next.epoch, first.epoch);
  assert.equal(next.offset, 3);
  assert.deepEqual(next.changes.map((c) => [c.type, c.offset, c.info.client, c.reason]),
    [['join', 2, b.id, undefined], ['leave', 3, a.id, 'disconnect']]);

  // Another epoch: the presence again.
  r = await changes({ channel: 'hist:room', epoch: '1', offset: 3 });
  assert.equal(r.json.result.recovered, false);
  assert.deepEqual(Object.keys(r.json.result.presence), [b.id]);

  // Bad parameters: 107.
  r = await changes({ channel: 'hist:room', epoch: 5 });
  assert.deepEqual(r.json.error, { code: 107, message: 'bad request' });
  r = await changes({ channel: 'nope:room' });
  assert.equal(r.json.error.code, 102);
});
