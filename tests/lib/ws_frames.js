'use strict';
// WebSocket frames on raw sockets, for the tests and tools that must send
// what a WebSocket library would refuse to (tests/e2e/transport.test.js)
// or cost nothing per connection (tests/load/hold.js). No dependencies.
const crypto = require('crypto');

// One client frame; masked unless told otherwise.
function encodeFrame(opcode, payload, { fin = true, mask = true, rsv = 0 } = {}) {
  const data = Buffer.from(payload);
  const len = data.length;
  let head;
  if (len < 126) {
    head = Buffer.from([0, len]);
  } else if (len < 65536) {
    head = Buffer.alloc(4);
    head[1] = 126;
    head.writeUInt16BE(len, 2);
  } else {
    head = Buffer.alloc(10);
    head[1] = 127;
    head.writeBigUInt64BE(BigInt(len), 2);
  }
  head[0] = (fin ? 0x80 : 0) | (rsv << 4) | opcode;
  if (!mask) return Buffer.concat([head, data]);
  head[1] |= 0x80;
  const key = crypto.randomBytes(4);
  for (let i = 0; i < len; i++) data[i] ^= key[i & 3];
  return Buffer.concat([head, key, data]);
}

// The server's frames at the start of state.buf (never masked), each
// given to onFrame({fin, opcode, payload, code, reason}); what is left of
// a frame not whole yet stays in state.buf for later.
function decodeFrames(state, onFrame) {
  for (;;) {
    const b = state.buf;
    if (b.length < 2) return;
    let len = b[1] & 0x7f;
    let off = 2;
    if (len === 126) {
      if (b.length < 4) return;
      len = b.readUInt16BE(2);
      off = 4;
    } else if (len === 127) {
      if (b.length < 10) return;
      len = Number(b.readBigUInt64BE(2));
      off = 10;
    }
    if (b.length < off + len) return;
    const f = { fin: (b[0] & 0x80) !== 0, opcode: b[0] & 0x0f, payload: b.subarray(off, off + len) };
    if (f.opcode === 8) {
      f.code = len >= 2 ? f.payload.readUInt16BE(0) : 1005;
      f.reason = f.payload.subarray(2).toString();
    }
    state.buf = b.subarray(off + len);
    onFrame(f);
  }
}

module.exports = { encodeFrame, decodeFrames };
