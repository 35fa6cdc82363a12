// Transfer state machines over a FrameSession (client.md §3.3-3.5):
//   sender:   Metadata, Data*, Done, then Complete -> FinAck
//   receiver: Metadata, Data* (optionally zstd), Done -> Complete, then one more frame (FinAck)
// SHA-256 and counts are over the uncompressed bytes. The sender also reads while sending, so a
// receiver's Error or Cancel stops it at once (W9).

import { fromUtf8 } from "./bytes.js";
import { ChannelClosed } from "./channel.js";
import { jsonBody, parseControl, TransferError } from "./session.js";
import { Sha256 } from "./sha256.js";
import { shortText } from "./names.js";
import { CancelReason, FRAME_OVERHEAD, MAX_CHUNK_SIZE, MAX_DC_MESSAGE, MsgType } from "./wire.js";
import { decompressChunk } from "./zstd.js";

/** What the browser puts in one Data frame: the sealed frame then fills exactly one data-channel
 * message, so no frame is split across two messages (half of them 29 bytes) and the receiver
 * reads each frame in place instead of joining pieces. Any size up to MAX_CHUNK_SIZE is valid. */
export const CHUNK = MAX_DC_MESSAGE - FRAME_OVERHEAD;
const FINACK_WAIT_MS = 5000;
/** How long a sender whose channel closed waits for the peer's last frame (a Cancel, an Error). */
const PEER_REASON_WAIT_MS = 1000;

function peerErrorText(body) {
  try {
    const v = JSON.parse(fromUtf8(body));
    if (v && typeof v.message === "string") return shortText(v.message);
  } catch {
    // fall through
  }
  return `(malformed): ${shortText(new TextDecoder().decode(body))}`;
}

/** The peer's Cancel frame: reason 0x01 is its user's choice (or its page closing), else an error. */
function peerCancelled(peer, body) {
  const text =
    body.length > 0 && body[0] === CancelReason.UserAbort
      ? `The ${peer} cancelled the transfer.`
      : `The ${peer} stopped the transfer after an error on its side.`;
  return new TransferError(text, { cancelled: true });
}

function doneFields(v, what) {
  const ok =
    Number.isSafeInteger(v.totalBytes) &&
    v.totalBytes >= 0 &&
    Number.isSafeInteger(v.chunkCount) &&
    v.chunkCount >= 0 &&
    typeof v.sha256 === "string";
  if (!ok) throw new TransferError(`${what} (malformed)`);
  return { totalBytes: v.totalBytes, chunkCount: v.chunkCount, sha256: v.sha256.toLowerCase() };
}

/** Re-chunk a stream of byte pieces into exactly `size`-byte chunks (the last may be shorter). */
export async function* rechunk(pieces, size = CHUNK) {
  let buf = new Uint8Array(size);
  let fill = 0;
  for await (const piece of pieces) {
    let off = 0;
    while (off < piece.length) {
      const n = Math.min(size - fill, piece.length - off);
      buf.set(piece.subarray(off, off + n), fill);
      fill += n;
      off += n;
      if (fill === size) {
        yield buf;
        buf = new Uint8Array(size);
        fill = 0;
      }
    }
  }
  if (fill) yield buf.subarray(0, fill);
}

/**
 * Send. `meta` is the Metadata object, `chunks` an async iterable of ≤ 256 KiB Uint8Arrays.
 * `progress(sentBytes)` is called as data leaves; `abortSignal` cancels.
 */
export async function sendTransfer(session, { meta, chunks, progress = () => {}, abortSignal }) {
  let failure = null;
  let complete = null;
  let wakeComplete = null;
  // Background reader: Complete ends the transfer; Error/Cancel abort it immediately.
  const reader = (async () => {
    for (;;) {
      const f = await session.readFrame();
      if (f.type === MsgType.Heartbeat) continue;
      if (f.type === MsgType.Complete) {
        complete = doneFields(parseControl(f.body, "complete"), "complete");
        break;
      }
      if (f.type === MsgType.Cancel) throw peerCancelled("receiver", f.body);
      if (f.type === MsgType.Error) throw new TransferError(`Receiver error: ${peerErrorText(f.body)}`);
      throw new TransferError(`unexpected message type: 0x${f.type.toString(16).padStart(2, "0")}`);
    }
  })().then(
    () => wakeComplete && wakeComplete(),
    (e) => {
      failure = e;
      if (wakeComplete) wakeComplete();
    },
  );

  const check = () => {
    if (abortSignal && abortSignal.aborted) throw new TransferError("Cancelled", { cancelled: true });
    if (failure) throw failure;
  };

  let done;
  let total = 0;
  try {
    await session.sendFrame(MsgType.Metadata, jsonBody(meta));
    session.startHeartbeat();
    const hash = new Sha256();
    let count = 0;
    // A few frames in flight so encryption, file reads and sending overlap.
    const inflight = [];
    for await (const chunk of chunks) {
      check();
      hash.update(chunk);
      total += chunk.length;
      count++;
      inflight.push(session.sendFrame(MsgType.Data, chunk));
      if (inflight.length >= 4) await inflight.shift();
      progress(Math.max(0, total - session.stream.bufferedAmount));
    }
    for (const p of inflight.splice(0)) await p;
    check();
    done = { totalBytes: total, chunkCount: count, sha256: hash.hex() };
    await session.sendFrame(MsgType.Done, jsonBody(done));
    while (!complete && !failure) {
      progress(Math.max(0, total - session.stream.bufferedAmount));
      await new Promise((resolve) => {
        wakeComplete = resolve;
        setTimeout(resolve, 250);
      });
      check();
    }
  } catch (e) {
    // A peer that cancels sends Cancel and closes: our send can see the close before the
    // reader has decrypted the Cancel still buffered. The peer's reason beats "closed".
    if (!(e instanceof ChannelClosed)) throw e;
    await Promise.race([reader, new Promise((resolve) => setTimeout(resolve, PEER_REASON_WAIT_MS))]);
    throw failure && !(failure instanceof ChannelClosed) ? failure : e;
  }
  check();
  if (complete.totalBytes !== done.totalBytes || complete.chunkCount !== done.chunkCount) {
    throw new TransferError(
      `verification mismatch: sent ${done.totalBytes} bytes/${done.chunkCount} chunks, ` +
        `receiver got ${complete.totalBytes}/${complete.chunkCount}`,
    );
  }
  if (complete.sha256 !== done.sha256) throw new TransferError("integrity mismatch: receiver SHA-256 differs");
  await session.sendFrame(MsgType.FinAck);
  await session.stream.drain(3000);
  void reader;
  progress(total);
  return done;
}

/** Validate peer Metadata (T1); returns a normalised copy or throws TransferError. */
export function validateMetadata(v) {
  const bad = (why) => new TransferError(`invalid metadata: ${why}`);
  if (typeof v.name !== "string" || v.name.length === 0 || v.name.length > 4096) throw bad("name");
  if (!Number.isSafeInteger(v.size) || v.size < 0) throw bad("size");
  if (v.type !== undefined && typeof v.type !== "string") throw bad("type");
  if (v.isFolder !== undefined && typeof v.isFolder !== "boolean") throw bad("isFolder");
  if (v.streamMode !== undefined && typeof v.streamMode !== "boolean") throw bad("streamMode");
  if (v.fileCount !== undefined && (!Number.isSafeInteger(v.fileCount) || v.fileCount < 0)) throw bad("fileCount");
  const compression = v.compression === undefined ? "" : v.compression;
  if (compression !== "" && compression !== "zstd") throw new TransferError("Unsupported compression");
  return {
    name: v.name,
    size: v.size,
    type: v.type || "",
    isFolder: !!v.isFolder,
    streamMode: !!v.streamMode,
    fileCount: v.fileCount || 0,
    compression,
  };
}

/**
 * Receive. `openSink(meta)` returns {write(bytes), close(), abort()} (it may ask the user).
 * `progress(bytes, meta)` reports plaintext bytes written.
 */
export async function receiveTransfer(session, { openSink, progress = () => {}, abortSignal }) {
  session.startHeartbeat();
  let f = await session.readFrame();
  while (f.type === MsgType.Heartbeat) f = await session.readFrame(); // lenient with browsers
  if (f.type === MsgType.Cancel) throw peerCancelled("sender", f.body);
  if (f.type === MsgType.Error) throw new TransferError(`Sender error: ${peerErrorText(f.body)}`);
  if (f.type !== MsgType.Metadata) {
    throw new TransferError(`expected metadata (0x01), got 0x${f.type.toString(16).padStart(2, "0")}`);
  }
  const meta = validateMetadata(parseControl(f.body, "metadata"));
  const exactSize = !meta.isFolder && !meta.streamMode;
  const sink = await openSink(meta);
  const hash = new Sha256();
  let total = 0;
  let count = 0;
  try {
    for (;;) {
      if (abortSignal && abortSignal.aborted) throw new TransferError("Cancelled", { cancelled: true });
      f = await session.readFrame();
      if (f.type === MsgType.Heartbeat) continue;
      if (f.type === MsgType.Data) {
        let chunk = f.body;
        if (meta.compression === "zstd") {
          try {
            chunk = decompressChunk(chunk);
          } catch (e) {
            await session.sendError(`decompression failed: ${e.message}`);
            throw new TransferError(`decompression failed: ${e.message}`);
          }
        } else if (chunk.length > MAX_CHUNK_SIZE) {
          await session.sendError("decompressed chunk exceeds maximum size");
          throw new TransferError("chunk exceeds maximum size");
        }
        if (exactSize && total + chunk.length > meta.size) {
          await session.sendError("received more data than announced");
          throw new TransferError("The sender sent more data than announced");
        }
        hash.update(chunk);
        total += chunk.length;
        count++;
        await sink.write(chunk);
        progress(total, meta);
        continue;
      }
      if (f.type === MsgType.Done) {
        const done = doneFields(parseControl(f.body, "done"), "done");
        if (done.totalBytes !== total || done.chunkCount !== count) {
          const msg =
            `verification mismatch: expected ${done.totalBytes} bytes/${done.chunkCount} chunks, ` +
            `got ${total}/${count}`;
          await session.sendError(msg);
          throw new TransferError(msg);
        }
        const mine = hash.hex();
        if (done.sha256 !== mine) {
          const msg = `integrity check failed: sender SHA-256 ${done.sha256}, receiver SHA-256 ${mine}`;
          await session.sendError(msg);
          throw new TransferError("Integrity check failed: SHA-256 mismatch");
        }
        if (exactSize && total !== meta.size) {
          await session.sendError("transfer incomplete");
          throw new TransferError(`Transfer incomplete: ${total} of ${meta.size} bytes`);
        }
        // Commit before confirming: a save that fails must not be reported as Complete.
        await sink.close();
        await session.sendFrame(MsgType.Complete, jsonBody({ totalBytes: total, chunkCount: count, sha256: mine }));
        try {
          // One more frame is the FinAck; anything (or nothing) is fine now.
          await Promise.race([session.readFrame(), new Promise((r) => setTimeout(r, FINACK_WAIT_MS))]);
        } catch {
          // EOF after Complete counts as FinAck
        }
        return { meta, totalBytes: total, chunkCount: count, sha256: mine };
      }
      if (f.type === MsgType.Cancel) throw peerCancelled("sender", f.body);
      if (f.type === MsgType.Error) throw new TransferError(`Sender error: ${peerErrorText(f.body)}`);
      throw new TransferError(`unexpected message type: 0x${f.type.toString(16).padStart(2, "0")}`);
    }
  } catch (e) {
    await sink.abort(e).catch(() => {});
    throw e;
  }
}
