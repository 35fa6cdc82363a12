// Incremental SHA-256 (FIPS 180-4) over the transfer's plaintext. WebCrypto only digests whole
// buffers, and the transfer hashes a stream, so this is JavaScript; it was the pages' largest
// per-byte cost (more than AES-GCM, which WebCrypto runs natively). The eight state words stay in
// local variables across all the blocks of one update(): in Chromium that runs 2-3x faster than
// the vendored @noble/hashes it replaces, which stores them on the object after every block.
// Checked against Python's hashlib with every chunking and padding edge (tests/web/test_js_units.py).

import { toHex } from "./bytes.js";

const K = Int32Array.of(
  0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
  0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
  0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
  0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
  0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
  0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
  0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
  0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
);
const IV = Int32Array.of(0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19);

/** Compress every whole 64-byte block of p[pos, end) into `state`; returns where it stopped. */
function blocks(state, w, p, pos, end) {
  let h0 = state[0];
  let h1 = state[1];
  let h2 = state[2];
  let h3 = state[3];
  let h4 = state[4];
  let h5 = state[5];
  let h6 = state[6];
  let h7 = state[7];
  while (end - pos >= 64) {
    for (let i = 0; i < 16; i++, pos += 4) w[i] = (p[pos] << 24) | (p[pos + 1] << 16) | (p[pos + 2] << 8) | p[pos + 3];
    for (let i = 16; i < 64; i++) {
      const x = w[i - 2];
      const y = w[i - 15];
      const s1 = ((x >>> 17) | (x << 15)) ^ ((x >>> 19) | (x << 13)) ^ (x >>> 10);
      const s0 = ((y >>> 7) | (y << 25)) ^ ((y >>> 18) | (y << 14)) ^ (y >>> 3);
      w[i] = (s1 + w[i - 7] + s0 + w[i - 16]) | 0;
    }
    let a = h0;
    let b = h1;
    let c = h2;
    let d = h3;
    let e = h4;
    let f = h5;
    let g = h6;
    let h = h7;
    for (let i = 0; i < 64; i++) {
      const s1 = ((e >>> 6) | (e << 26)) ^ ((e >>> 11) | (e << 21)) ^ ((e >>> 25) | (e << 7));
      const t1 = (h + s1 + ((e & f) ^ (~e & g)) + K[i] + w[i]) | 0;
      const s0 = ((a >>> 2) | (a << 30)) ^ ((a >>> 13) | (a << 19)) ^ ((a >>> 22) | (a << 10));
      const t2 = (s0 + ((a & b) ^ (a & c) ^ (b & c))) | 0;
      h = g;
      g = f;
      f = e;
      e = (d + t1) | 0;
      d = c;
      c = b;
      b = a;
      a = (t1 + t2) | 0;
    }
    h0 = (h0 + a) | 0;
    h1 = (h1 + b) | 0;
    h2 = (h2 + c) | 0;
    h3 = (h3 + d) | 0;
    h4 = (h4 + e) | 0;
    h5 = (h5 + f) | 0;
    h6 = (h6 + g) | 0;
    h7 = (h7 + h) | 0;
  }
  state[0] = h0;
  state[1] = h1;
  state[2] = h2;
  state[3] = h3;
  state[4] = h4;
  state[5] = h5;
  state[6] = h6;
  state[7] = h7;
  return pos;
}

export class Sha256 {
  constructor() {
    this.state = IV.slice();
    this.w = new Int32Array(64);
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
      blocks(this.state, this.w, this.tail, 0, 64);
      this.fill = 0;
    }
    pos = blocks(this.state, this.w, bytes, pos, end);
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
    blocks(this.state, this.w, tail, 0, padded);
    const out = new Uint8Array(32);
    const outView = new DataView(out.buffer);
    for (let i = 0; i < 8; i++) outView.setInt32(i * 4, this.state[i]);
    return out;
  }

  hex() {
    return toHex(this.digest());
  }
}
