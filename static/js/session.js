// The encrypted frame session over a ByteStream: key confirmation, ordered frame writes,
// heartbeats every 5 s, and liveness (client.md §2.3, §3.12).

import { fromUtf8, utf8 } from "./bytes.js";
import { ChannelClosed } from "./channel.js";
import { importAesKey, macsEqual } from "./crypto.js";
import { FrameReader, Sealer } from "./frames.js";
import {
  CancelReason,
  CONFIRM_BYTES,
  FRAME_OVERHEAD,
  HEARTBEAT_DEAD_AFTER_MS,
  HEARTBEAT_INTERVAL_MS,
  MAX_CONTROL_SIZE,
  MsgType,
} from "./wire.js";

const HEARTBEAT_FRAME_BYTES = FRAME_OVERHEAD; // a heartbeat has an empty body
const CONFIRM_TIMEOUT_MS = 15000;

/** `cancelled`: the transfer was called off, not broken; `local`: by our user, not the peer;
 * `hint`: what the user can do about it, when the page's usual advice does not fit. */
export class TransferError extends Error {
  constructor(message, { cancelled = false, local = false, hint = "" } = {}) {
    super(message);
    this.cancelled = cancelled;
    this.local = local;
    this.hint = hint;
  }
}

function withTimeout(promise, ms, message) {
  let timer;
  return Promise.race([
    promise,
    new Promise((_, reject) => {
      timer = setTimeout(() => reject(new TransferError(message)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

/**
 * Send our MAC as its own first message, then read exactly 32 bytes and compare in constant time.
 * The stream buffered everything since the channel appeared, so the peer's MAC cannot be lost.
 */
export async function confirmKeys(stream, ownMac, expectedPeerMac) {
  stream.sendMessage(ownMac);
  let peer;
  try {
    peer = await withTimeout(stream.read(CONFIRM_BYTES), CONFIRM_TIMEOUT_MS, "Key confirmation timed out");
  } catch (e) {
    // A CLI peer checks our MAC before it sends its own, and hangs up when it does not match.
    if (e instanceof ChannelClosed) {
      throw new TransferError(
        "Key confirmation failed — wrong code? The other side rejected our key and closed the connection.",
      );
    }
    throw e;
  }
  if (!macsEqual(peer, expectedPeerMac)) {
    throw new TransferError("Key confirmation failed — wrong code, or someone tampered with the connection.");
  }
}

export function jsonBody(obj) {
  const body = utf8(JSON.stringify(obj));
  if (body.length > MAX_CONTROL_SIZE) throw new TransferError("control message too large");
  return body;
}

export function parseControl(body, what) {
  if (body.length > MAX_CONTROL_SIZE) throw new TransferError(`${what} too large`);
  let v;
  try {
    v = JSON.parse(fromUtf8(body));
  } catch {
    throw new TransferError(`${what} (malformed)`);
  }
  if (!v || typeof v !== "object" || Array.isArray(v)) throw new TransferError(`${what} (malformed)`);
  return v;
}

export class FrameSession {
  /** role "sender" writes with s2r and reads with r2s; "receiver" the reverse. */
  static async create(stream, role, keys) {
    const s2r = await importAesKey(keys.s2r);
    const r2s = await importAesKey(keys.r2s);
    return new FrameSession(stream, role === "sender" ? s2r : r2s, role === "sender" ? r2s : s2r);
  }

  constructor(stream, writeKey, readKey) {
    this.stream = stream;
    this.sealer = new Sealer(writeKey);
    this.reader = new FrameReader(readKey, (n) => stream.read(n));
    this.chain = Promise.resolve();
    this.heartbeatTimer = null;
    this.lastDrained = 0;
    this.heartbeatBytes = 0;
    this.closed = false;
    this.onDead = null;
  }

  /** Queue a frame; frames leave in call order (seq reserved now, written after earlier ones). */
  sendFrame(type, body = new Uint8Array(0)) {
    const sealed = this.sealer.seal(type, body);
    const next = this.chain.then(async () => this.stream.send(await sealed));
    this.chain = next.catch(() => {});
    return next;
  }

  readFrame() {
    return this.reader.next();
  }

  /** Heartbeats every 5 s; declare the peer dead after 15 s without a sign of life from it. */
  startHeartbeat() {
    if (this.heartbeatTimer) return;
    this.heartbeatTimer = setInterval(() => {
      if (this.closed) return;
      // Only the peer's doing counts: its messages (incl. heartbeats), or our data leaving the
      // queue because it reads (Go peers send no heartbeats). Our own heartbeats prove nothing.
      const drained = this.stream.drained;
      if (drained - this.lastDrained > this.heartbeatBytes) this.stream.lastActivity = Date.now();
      this.lastDrained = drained;
      this.heartbeatBytes = HEARTBEAT_FRAME_BYTES;
      this.sendFrame(MsgType.Heartbeat).catch(() => {});
      if (Date.now() - this.stream.lastActivity > HEARTBEAT_DEAD_AFTER_MS && this.onDead) this.onDead();
    }, HEARTBEAT_INTERVAL_MS);
  }

  stopHeartbeat() {
    clearInterval(this.heartbeatTimer);
    this.heartbeatTimer = null;
  }

  /** Best-effort Cancel frame (0x01 user abort, 0x02 error), then wait briefly for it to leave. */
  async cancel(reason = CancelReason.InternalError) {
    if (this.closed) return;
    try {
      await withTimeout(this.sendFrame(MsgType.Cancel, Uint8Array.of(reason)), 2000, "cancel timed out");
      await this.stream.drain(2000);
    } catch {
      // best effort
    }
  }

  async sendError(message) {
    try {
      await withTimeout(this.sendFrame(MsgType.Error, jsonBody({ message })), 2000, "error timed out");
    } catch {
      // best effort
    }
  }

  close() {
    this.closed = true;
    this.stopHeartbeat();
    this.stream.close();
  }
}
