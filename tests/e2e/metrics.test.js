'use strict';
// Observability: GET /metrics in Prometheus text format (connections,
// subscriptions, memberships, commands and errors by kind, closes by code,
// queued bytes, the cluster's state with Redis) and GET /health.

const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const h = require('./lib/harness');

let srv;

before(async () => {
  srv = await h.startServer();
});
after(async () => {
  h.disconnectAll();
  await srv.stop();
});

// The samples of an exposition, { 'name{labels}': value }, checking that
// every line is a comment or a well-formed sample.
function parse(text) {
  const samples = {};
  for (const line of text.split('\n')) {
    if (line === '') continue;
    if (line.startsWith('# HELP ') || line.startsWith('# TYPE ')) continue;
    const m = /^([a-z_]+(?:\{[a-z_]+="[^"]*"(?:,[a-z_]+="[^"]*")*\})?) (\d+(?:\.\d+)?)$/.exec(line);
    assert.ok(m, `not a sample: ${line}`);
    samples[m[1]] = Number(m[2]);
  }
  return samples;
}

async function scrape(server = srv) {
  const res = await fetch(`${server.httpUrl}/metrics`);
  assert.equal(res.status, 200);
  assert.match(res.headers.get('content-type'), /^text\/plain; version=0\.0\.4/);
  return parse(await res.text());
}

test('/health answers {} with 200, as Centrifugo does; other methods 405', async () => {
  const res = await fetch(`${srv.httpUrl}/health`);
  assert.equal(res.status, 200);
  assert.equal(await res.text(), '{}');
  assert.equal((await fetch(`${srv.httpUrl}/health`, { method: 'POST' })).status, 405);
  assert.equal((await fetch(`${srv.httpUrl}/health/x`)).status, 404);
});

test('/metrics: gauges follow connections, subscriptions and presence; counters count commands, errors and closes', async () => {
  const base = await scrape();
  assert.equal(base.presence_server_connections, 0);
  assert.equal(base.presence_server_subscriptions, 0);
  assert.equal(base.presence_server_presence_memberships, 0);
  assert.equal(base.presence_server_queued_bytes, 0);
  assert.equal(base.presence_server_connection_limit, 400);
  assert.equal(base['presence_server_commands_total{method="connect"}'], 0);

  const a = await h.connectAndSubscribe(srv, { token: h.userToken(srv, 'ma'), channel: 'public:m' });
  const b = await h.connectAndSubscribe(srv, { token: h.userToken(srv, 'mb'), channel: 'public:m' });
  await b.sub.presenceStats();
  const raw = h.rawClient(srv);
  await raw.opened;
  await raw.call('connect', { token: h.userToken(srv, 'mc') });
  assert.equal((await raw.call('subscribe', { channel: 'nope:x' })).error.code, 102);
  assert.equal((await raw.call('presence', { channel: 'public:m' })).error.code, 103);
  await h.api(srv, '/api', { method: 'presence', params: { channel: 'nope:x' } });
  await h.api(srv, '/api/presence_stats', { channel: 'public:m' });

  let m = await scrape();
  assert.equal(m.presence_server_connections, 3);
  assert.equal(m.presence_server_transports, 3);
  assert.equal(m.presence_server_subscriptions, 2);
  assert.equal(m.presence_server_subscribed_channels, 1);
  assert.equal(m.presence_server_presence_memberships, 2);
  assert.equal(m.presence_server_presence_channels, 1);
  // Every connection has a presence handle; the third is in no channel.
  assert.equal(m.presence_server_presence_clients, 3);
  assert.equal(m.presence_server_presence_users, 3);
  assert.equal(m['presence_server_commands_total{method="connect"}'], 3);
  assert.equal(m['presence_server_commands_total{method="subscribe"}'], 3);
  assert.equal(m['presence_server_commands_total{method="presence"}'], 1);
  assert.equal(m['presence_server_commands_total{method="presence_stats"}'], 1);
  assert.equal(m['presence_server_command_errors_total{code="102"}'], 1);
  assert.equal(m['presence_server_command_errors_total{code="103"}'], 1);
  assert.equal(m['presence_server_api_commands_total{method="presence"}'], 1);
  assert.equal(m['presence_server_api_commands_total{method="presence_stats"}'], 1);
  assert.equal(m['presence_server_api_errors_total{code="102"}'], 1);
  // Every command run is timed, in cumulative buckets; so is every turn
  // of the event loop (its work, not its wait).
  assert.equal(m['presence_server_command_duration_seconds_count{method="connect"}'], 3);
  assert.equal(m['presence_server_command_duration_seconds_bucket{method="connect",le="+Inf"}'], 3);
  assert.ok(m['presence_server_command_duration_seconds_sum{method="connect"}'] > 0);
  const les = ['0.00005', '0.0001', '0.00025', '0.0005', '0.001', '0.0025', '0.005',
    '0.01', '0.025', '0.05', '0.1', '0.25', '+Inf'];
  const turns = les.map((le) => m[`presence_server_loop_busy_seconds_bucket{le="${le}"}`]);
  for (let i = 1; i < turns.length; i++) assert.ok(turns[i] >= turns[i - 1], `bucket ${les[i]}`);
  assert.ok(turns[turns.length - 1] > 0);
  assert.equal(m.presence_server_loop_busy_seconds_count, turns[turns.length - 1]);

  // A bad command closes with 3501; a client's own close is echoed (the
  // SDK's disconnect() sends a close without a code: 1005).
  raw.send('{"nonsense":{},"id":9}');
  assert.equal((await raw.closed()).code, 3501);
  a.client.disconnect();
  await h.waitFor(async () => (await scrape()).presence_server_connections === 1,
    { what: 'two clients gone' });
  m = await scrape();
  assert.equal(m['presence_server_closes_total{code="3501"}'], 1);
  assert.equal(m['presence_server_closes_total{code="1005"}'], 1);
  assert.equal(m.presence_server_subscriptions, 1);
  assert.equal(m.presence_server_presence_memberships, 1);
  assert.equal(m['presence_server_cluster_connected'], undefined); // memory engine
  b.client.disconnect();
});

const hasRedis = h.findRedisServer() && h.serverHasRedis();

test('/metrics with Redis: the cluster\'s state', { skip: !hasRedis && 'no redis-server or no Redis support' }, async () => {
  const redis = await h.startRedis();
  const args = (name) => ['--redis', redis.url, '--name', name, '--node-lease', '1000ms'];
  const a = await h.startServer({ args: args('metrics-a') });
  const b = await h.startServer({ args: args('metrics-b') });
  try {
    await h.waitFor(async () => {
      const m = await scrape(a);
      return m.presence_server_cluster_synced === 1 && m.presence_server_cluster_nodes === 1;
    }, { what: 'node a synced, seeing b' });
    const c = await h.connectAndSubscribe(b, { token: h.userToken(b, 'remote'), channel: 'public:r' });
    await h.waitFor(async () => (await scrape(a)).presence_server_presence_memberships === 1,
      { what: 'b\'s member counted on a' });
    const m = await scrape(a);
    assert.equal(m.presence_server_cluster_connected, 1);
    assert.ok(m.presence_server_cluster_applied_total >= 1);
    assert.ok(m.presence_server_cluster_connects_total >= 1);
    assert.equal(m.presence_server_connections, 0); // b's client, not a's
    c.client.disconnect();
  } finally {
    h.disconnectAll();
    await a.stop();
    await b.stop();
    await redis.stop();
  }
});
