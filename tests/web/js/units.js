// Helpers that expose static/js building blocks to pytest with base64 in and out.
import { fromBase64, toBase64 } from "/static/js/bytes.js";
import { safeFileName, visible } from "/static/js/names.js";
import { Sha256 } from "/static/js/sha256.js";
import { TarReader, planTar, tarPieces } from "/static/js/tar.js";
import { decompressChunk } from "/static/js/zstd.js";

export async function buildTar(specs) {
  const entries = specs.map((s) =>
    s.dir
      ? { path: s.path, dir: true, mtime: s.mtime }
      : { path: s.path, file: new Blob([fromBase64(s.b64)]), mtime: s.mtime },
  );
  const plan = planTar(entries);
  const pieces = [];
  for await (const p of tarPieces(plan, 1000)) pieces.push(p);
  const all = new Uint8Array(await new Blob(pieces).arrayBuffer());
  return { planned: plan.size, b64: toBase64(all) };
}

/** Feed a tar in pieces of `step` bytes; returns the extracted tree or the error message. */
export async function readTar(b64, step) {
  const bytes = fromBase64(b64);
  const tree = {};
  const target = {
    async directory(parts) {
      tree[parts.join("/") + "/"] = "";
    },
    async file(parts, size) {
      const chunks = [];
      return {
        async write(b) {
          chunks.push(b);
        },
        async close() {
          tree[parts.join("/")] = toBase64(new Uint8Array(await new Blob(chunks).arrayBuffer()));
        },
      };
    },
  };
  const reader = new TarReader(target);
  try {
    for (let off = 0; off < bytes.length; off += step) await reader.push(bytes.slice(off, off + step));
    reader.finish();
    return { ok: true, tree };
  } catch (e) {
    return { ok: false, error: e.message, name: e.constructor.name };
  }
}

export function zstd(b64) {
  try {
    return { ok: true, b64: toBase64(decompressChunk(fromBase64(b64))) };
  } catch (e) {
    return { ok: false, error: e.message, name: e.constructor.name };
  }
}

export function names(list) {
  return list.map((n) => ({ safe: safeFileName(n), visible: visible(n) }));
}

/** Digest of bytes[0, n) for each n, fed `step` bytes per update. */
export function sha256Lengths(b64, lengths, step) {
  const bytes = fromBase64(b64);
  return lengths.map((n) => {
    const h = new Sha256();
    for (let off = 0; off < n; off += step) h.update(bytes.subarray(off, Math.min(n, off + step)));
    return h.hex();
  });
}

export function sha256Pieces(b64, step) {
  const bytes = fromBase64(b64);
  const h = new Sha256();
  for (let off = 0; off < bytes.length; off += step) h.update(bytes.subarray(off, off + step));
  return h.hex();
}

/**
 * W26: the peer writes its MAC and a frame the moment the channel opens; our side only starts
 * reading half a second later. Nothing may be lost: confirmKeys then the first frame succeed.
 */
export async function earlyMacIsKept() {
  const { ByteStream } = await import("/static/js/channel.js");
  const { confirmKeys } = await import("/static/js/session.js");
  const a = new RTCPeerConnection();
  const b = new RTCPeerConnection();
  a.onicecandidate = (e) => e.candidate && b.addIceCandidate(e.candidate);
  b.onicecandidate = (e) => e.candidate && a.addIceCandidate(e.candidate);
  const macA = crypto.getRandomValues(new Uint8Array(32));
  const macB = crypto.getRandomValues(new Uint8Array(32));
  const payload = new Uint8Array(300000);
  for (let off = 0; off < payload.length; off += 65536) {
    crypto.getRandomValues(payload.subarray(off, off + 65536));
  }
  let streamB = null;
  b.ondatachannel = (e) => {
    streamB = new ByteStream(e.channel); // attached in the same task, as the pages do
  };
  const dc = a.createDataChannel("sp2p");
  const streamA = new ByteStream(dc);
  dc.onopen = () => {
    streamA.sendMessage(macA); // eager peer: MAC and data at once, before B does anything
    streamA.send(payload);
  };
  await a.setLocalDescription();
  await b.setRemoteDescription(a.localDescription);
  await b.setLocalDescription();
  await a.setRemoteDescription(b.localDescription);
  await new Promise((r) => setTimeout(r, 1500)); // B is "busy" (key derivation, UI, ...)
  const before = streamB.available;
  await confirmKeys(streamB, macB, macA);
  const rest = await streamB.read(payload.length);
  const same = rest.every((x, i) => x === payload[i]);
  a.close();
  b.close();
  return { bufferedBeforeReading: before, same };
}

/**
 * A connection attempt that ended withdraws its signalling waits: the next attempt's first
 * candidate must reach the next attempt, not a waiter the first one left behind.
 */
export async function withdrawnWaitTakesNothing() {
  const { Signaling } = await import("/static/js/signal.js");
  const ws = new EventTarget();
  ws.readyState = 1;
  const sig = new Signaling(ws);
  const push = (type, payload) =>
    ws.dispatchEvent(new MessageEvent("message", { data: JSON.stringify({ type, payload }) }));
  const first = new AbortController();
  const stale = sig.next(["candidate"], { failOn: [], abort: first.signal });
  first.abort();
  const staleOutcome = await stale.then(() => "resolved", (e) => e.code);
  push("candidate", { candidate: "attempt-2" });
  const fresh = await sig.next(["candidate"], { failOn: [], timeoutMs: 1000 });
  return { staleOutcome, fresh: fresh.payload.candidate, waiting: sig.waiters.length };
}
