'use strict';
// Small helpers shared by the cluster tests: ports, waiting, the monotonic
// clock the nodes print, and a seeded random generator.

const net = require('node:net');

function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

function sleep(ms) {
  return new Promise((r) => setTimeout(r, ms));
}

// Poll fn until it returns a truthy value (or a promise of one); the error
// names `what` and the last value (or a `describe()` of it).
async function waitFor(fn, { timeout = 5000, interval = 25, what = 'condition', describe } = {}) {
  const deadline = Date.now() + timeout;
  let last;
  for (;;) {
    try {
      last = await fn();
      if (last) return last;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline) {
      let detail = last instanceof Error ? last.message : JSON.stringify(last);
      if (describe) detail = await describe();
      throw new Error(`timed out after ${timeout} ms waiting for ${what}; last: ${detail}`);
    }
    await sleep(interval);
  }
}

// CLOCK_MONOTONIC in nanoseconds, as a BigInt: the clock the nodes print in
// their event lines (libuv's hrtime reads CLOCK_MONOTONIC on Linux).
function monoNs() {
  return process.hrtime.bigint();
}

// mulberry32: small, seeded, good enough to pick operations.
function rng(seed) {
  let a = seed >>> 0;
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  return {
    next,
    int: (n) => Math.floor(next() * n),
    pick: (arr) => arr[Math.floor(next() * arr.length)],
  };
}

// The seed of a test: $CLUSTER_TEST_SEED, else a fresh one; always printed
// so that a failure can be replayed.
function testSeed(t, name) {
  const seed = process.env.CLUSTER_TEST_SEED
    ? Number(process.env.CLUSTER_TEST_SEED) >>> 0
    : (Math.random() * 0x100000000) >>> 0;
  const msg = `${name}: seed ${seed} (replay with CLUSTER_TEST_SEED=${seed})`;
  console.log(msg);
  if (t && t.diagnostic) t.diagnostic(msg);
  return seed;
}

module.exports = { freePort, sleep, waitFor, monoNs, rng, testSeed };
