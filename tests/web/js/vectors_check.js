// Runs the shared crypto vectors through static/js; every function returns plain data for pytest.
import { encodeBase62, decodeBase62 } from "/static/js/base62.js";
import { fromHex, toHex } from "/static/js/bytes.js";
import {
  confirmationMac,
  decryptFileInfo,
  deriveFileInfoKey,
  deriveSessionKeys,
  encryptFileInfo,
  generateKeyPair,
  importAesKey,
  importPrivateKey,
  sharedSecret,
} from "/static/js/crypto.js";
import { FrameReader, sealFrame } from "/static/js/frames.js";

export function base62(entries) {
  return entries.map((e) => ({
    encoded: encodeBase62(fromHex(e.rawHex)),
    decodedHex: toHex(decodeBase62(e.encoded)),
  }));
}

async function openFrame(keyRaw, frame) {
  let off = 0;
  const read = async (n) => {
    if (off + n > frame.length) throw new Error("short frame");
    const out = frame.subarray(off, off + n);
    off += n;
    return out;
  };
  const reader = new FrameReader(await importAesKey(keyRaw), read);
  const f = await reader.next();
  return { type: f.type, bodyHex: toHex(f.body), consumedAll: off === frame.length };
}

export async function keyDerivation(v) {
  const senderPriv = await importPrivateKey(fromHex(v.senderPrivateHex));
  const receiverPriv = await importPrivateKey(fromHex(v.receiverPrivateHex));
  const senderPub = fromHex(v.senderPublicHex);
  const receiverPub = fromHex(v.receiverPublicHex);
  const seed = fromHex(v.seedHex);
  const sharedS = await sharedSecret(senderPriv, receiverPub);
  const sharedR = await sharedSecret(receiverPriv, senderPub);
  const keys = await deriveSessionKeys(seed, sharedS, v.sessionId, senderPub, receiverPub);
  const out = {
    sharedFromSenderHex: toHex(sharedS),
    sharedFromReceiverHex: toHex(sharedR),
    s2rHex: toHex(keys.s2r),
    r2sHex: toHex(keys.r2s),
    confirmHex: toHex(keys.confirm),
    verifyCode: keys.verifyCode,
  };
  const tests = { s2r: [v.s2rFrameTest, keys.s2r], r2s: [v.r2sFrameTest, keys.r2s] };
  for (const [name, [t, key]] of Object.entries(tests)) {
    const frame = await sealFrame(await importAesKey(key), t.msgType, t.sequence, fromHex(t.plaintextHex));
    out[name + "FrameHex"] = toHex(frame);
    out[name + "Opened"] = await openFrame(key, fromHex(t.expectedFrameHex));
  }
  return out;
}

export async function confirmation(v) {
  const key = fromHex(v.confirmKeyHex);
  const s = fromHex(v.senderPubHex);
  const r = fromHex(v.receiverPubHex);
  return {
    senderHex: toHex(await confirmationMac(key, "sender", s, r)),
    receiverHex: toHex(await confirmationMac(key, "receiver", s, r)),
  };
}

export async function encryptedFrames(entries) {
  const out = [];
  for (const e of entries) {
    const key = await importAesKey(fromHex(e.keyHex));
    const frame = await sealFrame(key, e.msgType, e.sequence, fromHex(e.plaintextHex));
    // The reader needs the right expected sequence: feed it the preceding sequence numbers.
    const reader = new FrameReader(key, null);
    reader.expected = e.sequence;
    const wire = fromHex(e.expectedFrameHex);
    let off = 0;
    reader.read = async (n) => wire.subarray(off, (off += n));
    const opened = await reader.next();
    out.push({ frameHex: toHex(frame), type: opened.type, bodyHex: toHex(opened.body) });
  }
  return out;
}

export async function fileInfo(v) {
  const seed = fromHex(v.seedHex);
  const pt = await decryptFileInfo(seed, fromHex(v.encryptedHex));
  const again = await encryptFileInfo(seed, fromHex(v.plaintextHex));
  const roundTrip = await decryptFileInfo(seed, again);
  let tamperedRejected = false;
  const bad = fromHex(v.encryptedHex);
  bad[20] ^= 1;
  try {
    await decryptFileInfo(seed, bad);
  } catch {
    tamperedRejected = true;
  }
  return {
    keyHex: toHex(await deriveFileInfoKey(seed)),
    plaintextHex: toHex(pt),
    roundTripHex: toHex(roundTrip),
    freshNonce: toHex(again.subarray(0, 12)) !== v.encryptedHex.slice(0, 24),
    tamperedRejected,
  };
}

/** Two fresh key pairs agree; an all-zero (low-order) peer key is refused. */
export async function freshKeys() {
  const a = await generateKeyPair();
  const b = await generateKeyPair();
  const ab = toHex(await sharedSecret(a.privateKey, b.publicKey));
  const ba = toHex(await sharedSecret(b.privateKey, a.publicKey));
  const rejected = [];
  for (const bad of [new Uint8Array(32), new Uint8Array(31), Uint8Array.of(1, ...new Uint8Array(31))]) {
    try {
      await sharedSecret(a.privateKey, bad);
      rejected.push(false);
    } catch (e) {
      rejected.push(e.message === "invalid peer key");
    }
  }
  return { agree: ab === ba, pubLen: a.publicKey.length, rejected };
}
