// Seed <-> base62 text, and the transfer code "SESSIONID-SEED" (client.md §1.2-1.3).
// The seed is one big-endian integer written in base62 without padding; decoding left-pads to 16 bytes.

import { BASE62_ALPHABET as ALPHABET, MAX_SEED_CHARS, SEED_BYTES } from "./wire.js";

/** Session ids are opaque to clients (the server makes 8 lowercase alphanumerics); only keep them
 * URL- and HKDF-safe. */
export function validSessionId(id) {
  return /^[0-9A-Za-z]{1,32}$/.test(id);
}

export function encodeBase62(bytes) {
  let n = 0n;
  for (const b of bytes) n = (n << 8n) | BigInt(b);
  if (n === 0n) return "0";
  let out = "";
  while (n > 0n) {
    out = ALPHABET[Number(n % 62n)] + out;
    n /= 62n;
  }
  return out;
}

export function decodeBase62(text) {
  let n = 0n;
  for (const c of text) {
    const v = ALPHABET.indexOf(c);
    if (v < 0) throw new Error("invalid base62 character");
    n = n * 62n + BigInt(v);
  }
  const out = new Uint8Array(SEED_BYTES);
  for (let i = SEED_BYTES - 1; i >= 0; i--) {
    out[i] = Number(n & 0xffn);
    n >>= 8n;
  }
  if (n !== 0n) throw new Error("decoded seed too large");
  return out;
}

export function generateSeed() {
  return crypto.getRandomValues(new Uint8Array(SEED_BYTES));
}

export function formatCode(sessionId, seed) {
  return `${sessionId}-${encodeBase62(seed)}`;
}

/**
 * Parse "SESSIONID-SEED" (split at the first dash, both parts non-empty; the seed must be valid
 * base62 of at most 16 bytes). Whitespace anywhere is dropped: a pasted code may have been wrapped
 * across lines, and neither part can hold any. Returns {code, sessionId, seed} (`code` as cleaned)
 * or throws Error with a user-facing message.
 */
export function parseCode(code) {
  const text = (code || "").replace(/\s+/gu, "");
  const dash = text.indexOf("-");
  if (dash < 1 || dash === text.length - 1) {
    throw new Error("Invalid transfer code — expected SESSION_ID-SEED");
  }
  const sessionId = text.slice(0, dash);
  const seedText = text.slice(dash + 1);
  if (!validSessionId(sessionId) || seedText.length > MAX_SEED_CHARS) {
    throw new Error("Invalid transfer code — check that you copied it correctly");
  }
  let seed;
  try {
    seed = decodeBase62(seedText);
  } catch {
    throw new Error("Invalid transfer code — check that you copied it correctly");
  }
  return { code: text, sessionId, seed };
}
