// WebCrypto implementation of the sp2p key schedule (client.md §2, server-web.md §5.5):
// X25519 key agreement, HKDF-SHA256 with salt = seed, key confirmation MACs, file-info preview blob.

import { concat, equalBytes, fromHex, toHex, utf8 } from "./bytes.js";
import { KEY_BYTES, MAX_FILE_INFO_BLOB, NONCE_BYTES, TAG_BYTES, VERIFY_BYTES } from "./wire.js";

const subtle = globalThis.crypto && globalThis.crypto.subtle;

export class CryptoError extends Error {}

/** A fresh X25519 key pair: {privateKey: CryptoKey, publicKey: Uint8Array(32)}. */
export async function generateKeyPair() {
  let pair;
  try {
    pair = await subtle.generateKey({ name: "X25519" }, true, ["deriveBits"]);
  } catch {
    throw new CryptoError("This browser cannot do X25519 key exchange — update it, or use the sp2p CLI.");
  }
  const pub = new Uint8Array(await subtle.exportKey("raw", pair.publicKey));
  return { privateKey: pair.privateKey, publicKey: pub };
}

/** Import a raw 32-byte X25519 private key (tests and vectors only; real keys are generated). */
export async function importPrivateKey(raw) {
  const pkcs8Prefix = fromHex("302e020100300506032b656e04220420");
  const key = await subtle.importKey("pkcs8", concat(pkcs8Prefix, raw), { name: "X25519" }, true, [
    "deriveBits",
  ]);
  return key;
}

/** X25519(my private, peer public); refuses wrong lengths and the all-zero (low-order) result. */
export async function sharedSecret(privateKey, peerPublic) {
  if (!(peerPublic instanceof Uint8Array) || peerPublic.length !== 32) {
    throw new CryptoError("invalid peer key");
  }
  let shared;
  try {
    const peer = await subtle.importKey("raw", peerPublic, { name: "X25519" }, false, []);
    shared = new Uint8Array(await subtle.deriveBits({ name: "X25519", public: peer }, privateKey, 256));
  } catch {
    // Browsers throw on low-order points themselves; same outcome as the explicit check below.
    throw new CryptoError("invalid peer key");
  }
  if (shared.every((b) => b === 0)) throw new CryptoError("invalid peer key");
  return shared;
}

async function hkdf(ikm, salt, info, length) {
  const key = await subtle.importKey("raw", ikm, "HKDF", false, ["deriveBits"]);
  const bits = await subtle.deriveBits({ name: "HKDF", hash: "SHA-256", salt, info }, key, length * 8);
  return new Uint8Array(bits);
}

/**
 * Session keys: each output is its own HKDF(salt=seed, ikm=shared, info=prefix||label) call with
 * prefix = "sp2p-v1" || sessionId || senderPub || receiverPub.
 */
export async function deriveSessionKeys(seed, shared, sessionId, senderPub, receiverPub) {
  const prefix = concat(utf8("sp2p-v1"), utf8(sessionId), senderPub, receiverPub);
  const derive = (label, n) => hkdf(shared, seed, concat(prefix, utf8(label)), n);
  const [s2r, r2s, confirm, verify] = await Promise.all([
    derive("sender-to-receiver", KEY_BYTES),
    derive("receiver-to-sender", KEY_BYTES),
    derive("key-confirm", KEY_BYTES),
    derive("sp2p-verify", VERIFY_BYTES),
  ]);
  return { s2r, r2s, confirm, verifyCode: toHex(verify) };
}

/** Import a 32-byte AES-256-GCM key for frame sealing/opening. */
export function importAesKey(raw) {
  return subtle.importKey("raw", raw, { name: "AES-GCM" }, false, ["encrypt", "decrypt"]);
}

/** MAC(role) = HMAC-SHA256(k_confirm, role || senderPub || receiverPub), role "sender"/"receiver". */
export async function confirmationMac(confirmKey, role, senderPub, receiverPub) {
  const key = await subtle.importKey("raw", confirmKey, { name: "HMAC", hash: "SHA-256" }, false, [
    "sign",
  ]);
  const mac = await subtle.sign("HMAC", key, concat(utf8(role), senderPub, receiverPub));
  return new Uint8Array(mac);
}

export function macsEqual(a, b) {
  return equalBytes(a, b);
}

// ---- file-info preview blob (nonce[12] || AES-GCM ciphertext || tag[16], no AAD) ----

export function deriveFileInfoKey(seed) {
  return hkdf(seed, utf8("sp2p-file-info"), utf8("sp2p-v1-file-info-key"), KEY_BYTES);
}

export async function encryptFileInfo(seed, plaintext, nonce = crypto.getRandomValues(new Uint8Array(NONCE_BYTES))) {
  const key = await importAesKey(await deriveFileInfoKey(seed));
  const ct = new Uint8Array(await subtle.encrypt({ name: "AES-GCM", iv: nonce }, key, plaintext));
  return concat(nonce, ct);
}

/** Whether a sender could have written `blob`: a nonce, some ciphertext and the tag, within the
 * cap. Anything else is the server's doing, whatever the code, so it is no verdict on the code. */
export function couldBeFileInfo(blob) {
  return blob.length > NONCE_BYTES + TAG_BYTES && blob.length <= MAX_FILE_INFO_BLOB;
}

export async function decryptFileInfo(seed, blob) {
  if (blob.length < NONCE_BYTES + TAG_BYTES || blob.length > MAX_FILE_INFO_BLOB) throw new CryptoError("invalid preview");
  const key = await importAesKey(await deriveFileInfoKey(seed));
  try {
    const pt = await subtle.decrypt({ name: "AES-GCM", iv: blob.subarray(0, NONCE_BYTES) }, key, blob.subarray(NONCE_BYTES));
    return new Uint8Array(pt);
  } catch {
    throw new CryptoError("invalid preview");
  }
}
