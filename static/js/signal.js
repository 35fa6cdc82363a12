// Signalling over the WebSocket /ws of the page's own origin (client.md §4.1-4.4).
// Envelope {"type", "payload"}. Every message is buffered from the moment the socket opens, so a
// message that arrives before anyone waits for it is never lost (W12).

import { PROTOCOL_VERSION, SignalType } from "./wire.js";

const WELCOME_TIMEOUT_MS = 30000;

/** `code`: a server error code, or ours: "unreachable", "lost", "timeout", "aborted", "peer-left"... */
export class SignalError extends Error {
  constructor(message, code = "") {
    super(message);
    this.code = code;
  }
}

/** User-facing text for a server error (strings from server-web.md §2.6). */
export function friendlyServerError(code, message) {
  const m = String(message || "");
  if (code === "session_not_found" || m.includes("transfer session not found")) {
    return "Transfer session not found — the link may have expired or is invalid.";
  }
  if (code === "session_full" || m.includes("someone has already connected")) {
    return "Someone has already connected to this transfer session.";
  }
  if (code === "version_mismatch") return "The sender uses an incompatible sp2p version.";
  if (code === "rate_limited" || code === "server_busy") return "The server is busy — try again in a minute.";
  return `Server error: ${m || code || "unknown"}`;
}

export function signalingUrl(loc = location) {
  return `${loc.protocol === "https:" ? "wss" : "ws"}://${loc.host}/ws`;
}

export class Signaling {
  constructor(ws) {
    this.ws = ws;
    this.queue = [];
    this.waiters = [];
    this.closed = false;
    this.onclose = null;
    ws.addEventListener("message", (e) => this._onMessage(e.data));
    ws.addEventListener("close", () => {
      this.closed = true;
      for (const w of this.waiters.splice(0)) w.reject(lost());
      if (this.onclose) this.onclose();
    });
  }

  static connect(url = signalingUrl(), timeoutMs = 15000) {
    return new Promise((resolve, reject) => {
      let ws;
      try {
        ws = new WebSocket(url);
      } catch {
        reject(unreachable());
        return;
      }
      // Install the message handler now: the server may speak right after the handshake.
      const sig = new Signaling(ws);
      const timer = setTimeout(() => {
        ws.close();
        reject(unreachable());
      }, timeoutMs);
      ws.addEventListener("open", () => {
        clearTimeout(timer);
        resolve(sig);
      });
      ws.addEventListener("close", () => {
        clearTimeout(timer);
        reject(unreachable());
      });
    });
  }

  _onMessage(data) {
    if (typeof data !== "string") return;
    let msg;
    try {
      msg = JSON.parse(data);
    } catch {
      return; // unparseable messages are ignored by both sides
    }
    if (!msg || typeof msg !== "object" || typeof msg.type !== "string") return;
    const payload = msg.payload && typeof msg.payload === "object" ? msg.payload : {};
    const m = { type: msg.type, payload };
    const taker = this.waiters.findIndex((w) => w.types.includes(m.type));
    if (taker >= 0) {
      this.waiters.splice(taker, 1)[0].resolve(m);
      return;
    }
    // A failure event ends every wait that cares about it, and stays queued for later ones.
    const failing = this.waiters.filter((w) => w.failOn.includes(m.type));
    this.waiters = this.waiters.filter((w) => !w.failOn.includes(m.type));
    for (const w of failing) w.reject(failure(m));
    this.queue.push(m);
  }

  send(type, payload = {}) {
    if (this.closed || this.ws.readyState !== WebSocket.OPEN) throw lost();
    this.ws.send(JSON.stringify({ type, payload }));
  }

  /**
   * Take the first buffered or future message whose type is in `types`. A buffered or arriving
   * message of a type in `failOn` ("error", "peer-left" by default) rejects instead. An `abort`
   * signal withdraws the wait, so a finished connection attempt leaves no waiter behind that
   * would take the next attempt's messages.
   */
  next(
    types,
    { timeoutMs = 0, failOn = [SignalType.Error, SignalType.PeerLeft], timeoutMessage = "Timed out", abort = null } = {},
  ) {
    if (abort && abort.aborted) return Promise.reject(new SignalError("Wait withdrawn", "aborted"));
    for (let i = 0; i < this.queue.length; i++) {
      const m = this.queue[i];
      if (types.includes(m.type)) {
        this.queue.splice(i, 1);
        return Promise.resolve(m);
      }
      if (failOn.includes(m.type)) return Promise.reject(failure(m));
    }
    if (this.closed) return Promise.reject(lost());
    return new Promise((resolve, reject) => {
      const w = { types, failOn, resolve, reject };
      let timer = null;
      if (timeoutMs > 0) {
        timer = setTimeout(() => {
          const i = this.waiters.indexOf(w);
          if (i >= 0) this.waiters.splice(i, 1);
          w.reject(new SignalError(timeoutMessage, "timeout"));
        }, timeoutMs);
      }
      const withdraw = () => {
        const i = this.waiters.indexOf(w);
        if (i >= 0) this.waiters.splice(i, 1);
        w.reject(new SignalError("Wait withdrawn", "aborted"));
      };
      w.resolve = (m) => {
        clearTimeout(timer);
        if (abort) abort.removeEventListener("abort", withdraw);
        resolve(m);
      };
      w.reject = (e) => {
        clearTimeout(timer);
        if (abort) abort.removeEventListener("abort", withdraw);
        reject(e);
      };
      if (abort) abort.addEventListener("abort", withdraw);
      this.waiters.push(w);
    });
  }

  /** Remove and return every buffered message of one type (e.g. early ICE candidates). */
  drain(type) {
    const out = this.queue.filter((m) => m.type === type);
    this.queue = this.queue.filter((m) => m.type !== type);
    return out;
  }

  close() {
    this.closed = true;
    try {
      this.ws.close(1000);
    } catch {
      // ignore
    }
  }
}

/**
 * Open signalling and introduce ourselves: `hello` (sender) or `join` (receiver, with the session
 * id). Resolves {sig, welcome}; the socket is closed again when that fails.
 */
export async function openSignaling(role, sessionId = "") {
  const sig = await Signaling.connect();
  try {
    if (role === "sender") sig.send(SignalType.Hello, { version: PROTOCOL_VERSION, clientType: "browser" });
    else sig.send(SignalType.Join, { version: PROTOCOL_VERSION, sessionId, clientType: "browser" });
    const msg = await sig.next([SignalType.Welcome], {
      timeoutMs: WELCOME_TIMEOUT_MS,
      timeoutMessage: "The server did not answer",
    });
    return { sig, welcome: msg.payload };
  } catch (e) {
    sig.close();
    throw e;
  }
}

const unreachable = () => new SignalError("Could not reach the sp2p server.", "unreachable");
const lost = () => new SignalError("The connection to the sp2p server was lost.", "lost");

function failure(m) {
  if (m.type === SignalType.PeerLeft) return new SignalError("The other side left before the transfer started.", "peer-left");
  if (m.type === SignalType.RelayDenied) return new SignalError("The other side did not allow relaying through the server.", "relay-denied");
  if (m.type === SignalType.Decline) return new SignalError("The receiver declined the transfer.", "decline");
  const code = String(m.payload.code || "");
  return new SignalError(friendlyServerError(code, m.payload.message), code);
}
