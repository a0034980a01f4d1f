'use strict';
// A TCP proxy on a free loopback port in front of Redis, to cut one node
// off the network without killing anything: freeze() turns every current
// connection into a black hole (bytes are swallowed both ways, nothing is
// closed -- what a dropped NAT entry looks like), while new connections go
// through, unless `all` makes them black holes too (a partition); thaw()
// lets everything flow again.
//
// With `throttle: { bytes, everyMs }` it is also a slow link: each
// direction carries at most `bytes` every `everyMs` milliseconds, shared
// by all the connections through it (one node's link to Redis), in the
// order the bytes came.

const net = require('node:net');

// One direction of a slow link: a queue of [socket, bytes] drained by a
// timer, `bytes` per tick.
function slowLane({ bytes, everyMs }) {
  const queue = [];
  let timer = null;
  const tick = () => {
    let budget = bytes;
    while (budget > 0 && queue.length > 0) {
      const [to, d] = queue[0];
      const part = d.length <= budget ? d : d.subarray(0, budget);
      if (!to.destroyed) to.write(part);
      budget -= part.length;
      if (part.length === d.length) queue.shift();
      else queue[0][1] = d.subarray(part.length);
    }
    if (queue.length === 0) {
      clearInterval(timer);
      timer = null;
    }
  };
  return (to, d) => {
    queue.push([to, d]);
    if (timer === null) {
      timer = setInterval(tick, everyMs);
      timer.unref();
    }
  };
}

async function startProxy(targetPort, { throttle = null } = {}) {
  const conns = new Set();
  let freezeNew = null; // the freeze() options while new ones are frozen too
  const lanes = throttle ? { up: slowLane(throttle), down: slowLane(throttle) } : null;
  const server = net.createServer((down) => {
    const up = net.createConnection({ port: targetPort, host: '127.0.0.1' });
    const c = { down, up, frozen: freezeNew !== null, drop: freezeNew?.drop, held: [] };
    conns.add(c);
    const send = (lane) => (to, d) => (lane ? lane(to, d) : to.write(d));
    c.send = new Map([[up, send(lanes?.up)], [down, send(lanes?.down)]]);
    const forward = (from, to) => from.on('data', (d) => {
      if (c.frozen) c.held.push([to, d]);
      else c.send.get(to)(to, d);
    });
    forward(down, up);
    forward(up, down);
    const close = () => {
      conns.delete(c);
      down.destroy();
      up.destroy();
    };
    down.on('error', close);
    up.on('error', close);
    down.on('close', close);
    up.on('close', close);
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: server.address().port,
    // Black-hole the connections open now; `drop` forgets what they carry
    // instead of holding it for thaw().
    freeze({ drop = false, all = false } = {}) {
      for (const c of conns) {
        c.frozen = true;
        c.drop = drop;
      }
      freezeNew = all ? { drop } : null;
    },
    thaw() {
      freezeNew = null;
      for (const c of conns) {
        c.frozen = false;
        if (!c.drop) for (const [to, d] of c.held) c.send.get(to)(to, d);
        c.held = [];
      }
    },
    connections: () => conns.size,
    close() {
      for (const c of conns) {
        c.down.destroy();
        c.up.destroy();
      }
      return new Promise((resolve) => server.close(resolve));
    },
  };
}

module.exports = { startProxy };
