'use strict';
// A TCP proxy on a free loopback port in front of Redis, to cut one node
// off the network without killing anything: freeze() turns every current
// connection into a black hole (bytes are swallowed both ways, nothing is
// closed -- what a dropped NAT entry looks like), while new connections go
// through, unless `all` makes them black holes too (a partition); thaw()
// lets everything flow again.

const net = require('node:net');

async function startProxy(targetPort) {
  const conns = new Set();
  let freezeNew = null; // the freeze() options while new ones are frozen too
  const server = net.createServer((down) => {
    const up = net.createConnection({ port: targetPort, host: '127.0.0.1' });
    const c = { down, up, frozen: freezeNew !== null, drop: freezeNew?.drop, held: [] };
    conns.add(c);
    const forward = (from, to) => from.on('data', (d) => {
      if (c.frozen) c.held.push([to, d]);
      else to.write(d);
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
        if (!c.drop) for (const [to, d] of c.held) to.write(d);
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
