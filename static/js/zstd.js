// Bounded zstd decoding of one Data chunk (client.md §3.6, security case T14 / W10).
// Every frame header is checked before fzstd allocates anything (declared content size and window
// must be small), and output is counted while it is produced, so a bomb stops at the limit.

import { Decompress } from "../vendor/fzstd/fzstd.js";
import { MAX_CHUNK_SIZE, ZSTD_MAGIC_LE32 as ZSTD_MAGIC, ZSTD_MAX_WINDOW_SIZE as MAX_WINDOW } from "./wire.js";

export class ZstdError extends Error {}

function u32le(d, p) {
  return (d[p] | (d[p + 1] << 8) | (d[p + 2] << 16) | (d[p + 3] << 24)) >>> 0;
}

/** Walk frames and blocks without decoding; throw unless every header is within limits. */
export function checkFrames(d, maxOut = MAX_CHUNK_SIZE) {
  let pos = 0;
  let frames = 0;
  while (pos < d.length) {
    if (d.length - pos < 8) throw new ZstdError("truncated zstd frame");
    const magic = u32le(d, pos);
    if ((magic & 0xfffffff0) >>> 0 === 0x184d2a50) {
      pos += 8 + u32le(d, pos + 4); // skippable frame
      continue;
    }
    if (magic !== ZSTD_MAGIC) throw new ZstdError("invalid zstd data");
    const fhd = d[pos + 4];
    if (fhd & 0x08) throw new ZstdError("invalid zstd data");
    const single = (fhd >> 5) & 1;
    const fcsFlag = fhd >> 6;
    let p = pos + 5;
    let window = 0;
    if (!single) {
      const wd = d[p++];
      const base = 2 ** (10 + (wd >> 3));
      window = base + (base / 8) * (wd & 7);
    }
    p += [0, 1, 2, 4][fhd & 3]; // dictionary id (unused by sp2p)
    const fcsBytes = fcsFlag ? 1 << fcsFlag : single;
    let fcs = -1;
    if (fcsBytes) {
      fcs = 0;
      for (let i = fcsBytes - 1; i >= 0; i--) fcs = fcs * 256 + d[p + i];
      if (fcsFlag === 1) fcs += 256;
      p += fcsBytes;
    }
    if (single) window = fcs;
    if (fcs > maxOut) throw new ZstdError("decompressed chunk exceeds maximum size");
    if (window > MAX_WINDOW) throw new ZstdError("zstd window too large");
    for (;;) {
      if (p + 3 > d.length) throw new ZstdError("truncated zstd frame");
      const bh = d[p] | (d[p + 1] << 8) | (d[p + 2] << 16);
      const type = (bh >> 1) & 3;
      if (type === 3) throw new ZstdError("invalid zstd block type");
      p += 3 + (type === 1 ? 1 : bh >> 3);
      if (bh & 1) break;
    }
    if (fhd & 0x04) p += 4; // content checksum
    if (p > d.length) throw new ZstdError("truncated zstd frame");
    pos = p;
    frames++;
  }
  if (frames === 0) throw new ZstdError("empty zstd data");
}

/** Decompress one chunk; throws ZstdError past maxOut bytes or on malformed input. */
export function decompressChunk(data, maxOut = MAX_CHUNK_SIZE) {
  checkFrames(data, maxOut);
  const parts = [];
  let total = 0;
  const d = new Decompress((chunk) => {
    total += chunk.length;
    if (total > maxOut) throw new ZstdError("decompressed chunk exceeds maximum size");
    parts.push(chunk.slice());
  });
  try {
    d.push(data, true);
  } catch (e) {
    if (e instanceof ZstdError) throw e;
    throw new ZstdError(`decompression failed: ${e.message}`);
  }
  if (parts.length === 1) return parts[0];
  const out = new Uint8Array(total);
  let off = 0;
  for (const p of parts) {
    out.set(p, off);
    off += p.length;
  }
  return out;
}
