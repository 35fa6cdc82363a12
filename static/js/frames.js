// Encrypted frame stream (client.md §2.5, §3.1). Wire layout of every frame after key confirmation:
//   u32 BE L | type (1) | seq u64 BE (8) | AES-256-GCM(body) with 16-byte tag      L = 9 + len(ct)
// nonce = 00 00 00 00 || seq;  AAD = type || seq || 0x01.  Each direction counts from 0 on its own.

import { concat, u64be } from "./bytes.js";
import { AAD_VERSION, FRAME_OVERHEAD, MAX_FRAME_SIZE, MsgType, NONCE_LIMIT } from "./wire.js";

export class FrameError extends Error {}

function nonceFor(seq) {
  return concat(new Uint8Array(4), u64be(seq));
}

function aadFor(type, seq) {
  return concat(Uint8Array.of(type), u64be(seq), Uint8Array.of(AAD_VERSION));
}

/** Encrypt one frame with an explicit sequence number; returns the full wire bytes. */
export async function sealFrame(key, type, seq, body) {
  const ct = new Uint8Array(
    await crypto.subtle.encrypt({ name: "AES-GCM", iv: nonceFor(seq), additionalData: aadFor(type, seq) }, key, body),
  );
  const out = new Uint8Array(13 + ct.length);
  const view = new DataView(out.buffer);
  view.setUint32(0, 9 + ct.length);
  out[4] = type;
  out.set(u64be(seq), 5);
  out.set(ct, 13);
  return out;
}

/** Writer side: hands out sequence numbers synchronously so concurrent seals keep wire order. */
export class Sealer {
  constructor(key) {
    this.key = key;
    this.seq = 0;
  }

  /** Reserve the next sequence number now; the returned promise resolves to the wire frame. */
  seal(type, body = new Uint8Array(0)) {
    if (this.seq >= NONCE_LIMIT) throw new FrameError("nonce counter exhausted — transfer too large");
    if (body.length + FRAME_OVERHEAD - 4 > MAX_FRAME_SIZE) throw new FrameError("frame too large");
    const seq = this.seq++;
    return sealFrame(this.key, type, seq, body);
  }
}

/**
 * Reader side: pulls bytes with `read(n)` (resolves to exactly n bytes) and returns {type, body}.
 * Checks the length bounds before reading the body, the exact sequence (Cancel may jump ahead),
 * and the AEAD tag.
 */
export class FrameReader {
  constructor(key, read) {
    this.key = key;
    this.read = read;
    this.expected = 0;
  }

  async next() {
    if (this.expected >= NONCE_LIMIT) throw new FrameError("nonce counter exhausted");
    const head = await this.read(4);
    const len = new DataView(head.buffer, head.byteOffset, 4).getUint32(0);
    if (len < 9) throw new FrameError("frame too small");
    if (len > MAX_FRAME_SIZE) throw new FrameError("frame too large");
    const payload = await this.read(len);
    const type = payload[0];
    const view = new DataView(payload.buffer, payload.byteOffset + 1, 8);
    const seq = view.getUint32(0) * 2 ** 32 + view.getUint32(4);
    const jumpOk = type === MsgType.Cancel && seq > this.expected && seq < NONCE_LIMIT;
    if (seq !== this.expected && !jumpOk) {
      throw new FrameError(`sequence mismatch: got ${seq}, expected ${this.expected}`);
    }
    let body;
    try {
      body = new Uint8Array(
        await crypto.subtle.decrypt(
          { name: "AES-GCM", iv: nonceFor(seq), additionalData: aadFor(type, seq) },
          this.key,
          payload.subarray(9),
        ),
      );
    } catch {
      throw new FrameError("data integrity check failed — connection may be compromised");
    }
    this.expected = seq + 1;
    return { type, body };
  }
}
