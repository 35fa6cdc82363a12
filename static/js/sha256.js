// Incremental SHA-256 (FIPS 180-4) over the transfer's plaintext. WebCrypto only digests whole
// buffers, and the transfer hashes a stream, so this is JavaScript; it was the pages' largest
// per-byte cost (more than AES-GCM, which WebCrypto runs natively). The rounds (sha256_blocks.js,
// generated written out) keep the state and the message schedule in local variables across all
// the blocks of one update(): in Chromium ~3-4x the vendored @noble/hashes it replaces, which
// stores the state on the object after every block. Checked against Python's hashlib with every
// chunking and padding edge (tests/web/test_js_units.py).

import { toHex } from "./bytes.js";
import { blocks } from "./sha256_blocks.js";

const IV = Int32Array.of(0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19);

export class Sha256 {
  constructor() {
    this.state = IV.slice();
    this.tail = new Uint8Array(128); // a partial block between updates; room for the padding
    this.fill = 0;
    this.length = 0; // bytes hashed so far (a safe integer: 2^53 bytes is far beyond any transfer)
  }

  update(bytes) {
    const end = bytes.length;
    let pos = 0;
    this.length += end;
    if (this.fill > 0) {
      pos = Math.min(64 - this.fill, end);
      this.tail.set(bytes.subarray(0, pos), this.fill);
      this.fill += pos;
      if (this.fill < 64) return this;
      blocks(this.state, this.tail, 0, 64);
      this.fill = 0;
    }
    pos = blocks(this.state, bytes, pos, end);
    if (pos < end) {
      this.tail.set(bytes.subarray(pos), 0);
      this.fill = end - pos;
    }
    return this;
  }

  /** The 32-byte digest; the object is spent afterwards. */
  digest() {
    const tail = this.tail;
    let n = this.fill;
    tail[n++] = 0x80;
    const padded = n + 8 <= 64 ? 64 : 128;
    tail.fill(0, n, padded);
    const view = new DataView(tail.buffer);
    view.setUint32(padded - 8, Math.floor(this.length / 0x20000000)); // bits above 2^32
    view.setUint32(padded - 4, (this.length * 8) >>> 0);
    blocks(this.state, tail, 0, padded);
    const out = new Uint8Array(32);
    const outView = new DataView(out.buffer);
    for (let i = 0; i < 8; i++) outView.setInt32(i * 4, this.state[i]);
    return out;
  }

  hex() {
    return toHex(this.digest());
  }
}
