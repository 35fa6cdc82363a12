// RTCDataChannel as a byte stream (client.md §4.8): message boundaries carry no meaning, except
// that each side's 32-byte key-confirmation MAC goes out as its own first message (§2.3).
// The message handler is installed in the constructor, i.e. in the same task that obtained the
// channel, so an early peer MAC can never be lost (W26).

import { MAX_DC_MESSAGE } from "./wire.js";

const HIGH_WATER = 8 * 1024 * 1024;
const LOW_WATER = 2 * 1024 * 1024;

export class ChannelClosed extends Error {}

export class ByteStream {
  constructor(dc, { maxMessage = MAX_DC_MESSAGE } = {}) {
    this.dc = dc;
    this.maxMessage = Math.min(MAX_DC_MESSAGE, maxMessage);
    this.chunks = [];
    this.head = 0; // offset into chunks[0]
    this.available = 0;
    this.want = 0;
    this.readWake = null;
    this.sendWake = null;
    this.closedError = null;
    this.lastActivity = Date.now(); // last sign of life from the peer (see session.js)
    this.received = 0;
    this.sent = 0; // bytes handed to the channel; sent - bufferedAmount = bytes that left
    dc.binaryType = "arraybuffer";
    dc.bufferedAmountLowThreshold = LOW_WATER;
    dc.addEventListener("message", (e) => {
      const bytes = typeof e.data === "string" ? new TextEncoder().encode(e.data) : new Uint8Array(e.data);
      this.lastActivity = Date.now();
      if (bytes.length === 0) return;
      this.chunks.push(bytes);
      this.available += bytes.length;
      this.received += bytes.length;
      if (this.readWake && this.available >= this.want) this._wakeRead();
    });
    const onClose = () => this._fail(new ChannelClosed("Connection closed by peer"));
    dc.addEventListener("close", onClose);
    dc.addEventListener("error", onClose);
    dc.addEventListener("bufferedamountlow", () => {
      this.lastActivity = Date.now();
      this._wakeSend();
    });
  }

  _wakeRead() {
    const w = this.readWake;
    this.readWake = null;
    if (w) w();
  }

  _wakeSend() {
    const w = this.sendWake;
    this.sendWake = null;
    if (w) w();
  }

  _fail(err) {
    if (!this.closedError) this.closedError = err;
    this._wakeRead();
    this._wakeSend();
  }

  /** Use the real limit the peer accepts (pc.sctp.maxMessageSize), never above 256 KiB. */
  setMaxMessage(n) {
    if (n > 0) this.maxMessage = Math.min(MAX_DC_MESSAGE, n);
  }

  /** Resolve to exactly n bytes (buffered data is delivered even after the channel closed). */
  async read(n) {
    while (this.available < n) {
      if (this.closedError) throw this.closedError;
      this.want = n;
      await new Promise((resolve) => {
        this.readWake = resolve;
      });
    }
    const first = this.chunks[0];
    if (first.length - this.head >= n) {
      const out = first.subarray(this.head, this.head + n);
      this.head += n;
      if (this.head === first.length) {
        this.chunks.shift();
        this.head = 0;
      }
      this.available -= n;
      return out;
    }
    const out = new Uint8Array(n);
    let off = 0;
    while (off < n) {
      const c = this.chunks[0];
      const take = Math.min(c.length - this.head, n - off);
      out.set(c.subarray(this.head, this.head + take), off);
      off += take;
      this.head += take;
      if (this.head === c.length) {
        this.chunks.shift();
        this.head = 0;
      }
    }
    this.available -= n;
    return out;
  }

  get bufferedAmount() {
    return this.dc.readyState === "open" ? this.dc.bufferedAmount : 0;
  }

  /** Send one message as is (the key-confirmation MAC). */
  sendMessage(bytes) {
    if (this.closedError) throw this.closedError;
    this.dc.send(bytes);
    this.sent += bytes.length;
  }

  /** Send bytes as ≤ maxMessage messages, waiting while too much is buffered. */
  async send(bytes) {
    for (let off = 0; off < bytes.length; off += this.maxMessage) {
      while (this.dc.bufferedAmount > HIGH_WATER) {
        if (this.closedError) throw this.closedError;
        await new Promise((resolve) => {
          this.sendWake = resolve;
        });
      }
      if (this.closedError) throw this.closedError;
      if (this.dc.readyState !== "open") throw new ChannelClosed("Connection closed");
      const piece = bytes.subarray(off, off + this.maxMessage);
      this.dc.send(piece);
      this.sent += piece.length;
    }
  }

  /** Bytes that actually left our buffer (the peer's transport accepted them). */
  get drained() {
    return this.sent - this.bufferedAmount;
  }

  /** Wait until everything queued has left (best effort, bounded). */
  async drain(timeoutMs = 5000) {
    const end = Date.now() + timeoutMs;
    while (this.dc.readyState === "open" && this.dc.bufferedAmount > 0 && Date.now() < end) {
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  close() {
    this._fail(new ChannelClosed("Connection closed"));
    try {
      this.dc.close();
    } catch {
      // already closed
    }
  }
}
