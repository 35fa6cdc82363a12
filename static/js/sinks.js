// Where received bytes go. Every sink streams: {write(bytes), close() = commit, abort(err)}.
// write() may take ownership of `bytes` (the caller must not touch them afterwards).
//  - FileHandleSink: File System Access file handle (picked at the user's click); the browser
//    writes to a swap file and only replaces the target on close, so abort leaves nothing.
//  - DirectorySink: extracts a tar stream into a picked directory (validated, see tar.js);
//    top-level names never overwrite (uniquified), and everything created is removed on abort.
//  - DownloadSink: a streamed download through the service worker (/sw.js); abort fails the
//    download, so the browser discards the partial file.
//  - MemorySink: last resort when nothing streams (e.g. private windows without service workers).

import { uniqueName } from "./names.js";
import { TarReader } from "./tar.js";

export class SinkError extends Error {}

export class FileHandleSink {
  constructor(handle) {
    this.handle = handle;
    this.writable = null;
  }

  async open() {
    this.writable = await this.handle.createWritable({ keepExistingData: false });
    return this;
  }

  async write(bytes) {
    await this.writable.write(bytes);
  }

  async close() {
    await this.writable.close();
  }

  async abort() {
    if (this.writable) await this.writable.abort().catch(() => {});
  }

  get savedName() {
    return this.handle.name;
  }
}

async function exists(dir, name) {
  for (const get of [(n) => dir.getFileHandle(n), (n) => dir.getDirectoryHandle(n)]) {
    try {
      await get(name);
      return true;
    } catch (e) {
      if (e && e.name === "TypeMismatchError") return true;
    }
  }
  return false;
}

export class DirectorySink {
  constructor(root) {
    this.root = root;
    this.topLevel = new Map(); // name in archive -> name on disk (fresh, ours)
    this.created = [];
    this.dirs = new Map(); // "a/b" -> handle
    this.files = 0;
    this.reader = new TarReader({
      directory: (parts) => this._dir(parts),
      file: (parts, size) => this._file(parts, size),
    });
    this.openWriter = null;
  }

  async _top(name) {
    if (!this.topLevel.has(name)) {
      const onDisk = await uniqueName(name, (n) => exists(this.root, n));
      this.topLevel.set(name, onDisk);
      this.created.push(onDisk);
    }
    return this.topLevel.get(name);
  }

  async _dir(parts) {
    let dir = this.root;
    for (let i = 0; i < parts.length; i++) {
      const key = parts.slice(0, i + 1).join("/");
      if (this.dirs.has(key)) {
        dir = this.dirs.get(key);
        continue;
      }
      const name = i === 0 ? await this._top(parts[0]) : parts[i];
      dir = await dir.getDirectoryHandle(name, { create: true });
      this.dirs.set(key, dir);
    }
    return dir;
  }

  async _file(parts, size) {
    const parent = parts.length > 1 ? await this._dir(parts.slice(0, -1)) : this.root;
    const name = parts.length > 1 ? parts[parts.length - 1] : await this._top(parts[0]);
    const handle = await parent.getFileHandle(name, { create: true });
    const writable = await handle.createWritable({ keepExistingData: false });
    this.files++;
    const self = this;
    self.openWriter = writable;
    return {
      async write(bytes) {
        await writable.write(bytes);
      },
      async close() {
        await writable.close();
        self.openWriter = null;
      },
    };
  }

  async write(bytes) {
    await this.reader.push(bytes);
  }

  async close() {
    this.reader.finish();
  }

  async abort() {
    if (this.openWriter) await this.openWriter.abort().catch(() => {});
    for (const name of this.created) {
      await this.root.removeEntry(name, { recursive: true }).catch(() => {});
    }
  }

  get savedName() {
    return this.created.join(", ");
  }
}

// ---- service-worker streamed download ----

const WINDOW_BYTES = 4 * 1024 * 1024;
let swRegistration = null;

/** Register /sw.js early (page load); resolves to the registration or null when unavailable. */
export async function registerDownloadWorker() {
  if (!("serviceWorker" in navigator)) return null;
  try {
    await navigator.serviceWorker.register("/sw.js", { scope: "/" });
    swRegistration = await Promise.race([
      navigator.serviceWorker.ready,
      new Promise((r) => setTimeout(() => r(null), 5000)),
    ]);
  } catch {
    swRegistration = null;
  }
  return swRegistration;
}

export class DownloadSink {
  constructor(worker, { name, size, type }) {
    this.worker = worker;
    this.name = name;
    this.size = size;
    this.type = type;
    this.inflight = 0;
    this.waiters = [];
    this.failed = null;
    this.iframe = null;
    this.keepAlive = null;
  }

  static available() {
    return !!(swRegistration && swRegistration.active);
  }

  async open() {
    const channel = new MessageChannel();
    this.port = channel.port1;
    const ready = new Promise((resolve, reject) => {
      this.port.onmessage = (e) => {
        const m = e.data || {};
        if (m.type === "ready") resolve(m.url);
        else if (m.type === "ack") {
          this.inflight -= m.bytes;
          this._wake();
        } else if (m.type === "cancelled") {
          this.failed = new SinkError("The download was cancelled in the browser");
          this._wake();
        }
      };
      setTimeout(() => reject(new SinkError("The download helper did not answer")), 5000);
    });
    this.worker.postMessage(
      { type: "sp2p-download", name: this.name, size: this.size, mime: this.type },
      [channel.port2],
    );
    const url = await ready;
    // A hidden same-origin frame starts the download; the worker answers it with the stream.
    this.iframe = document.createElement("iframe");
    this.iframe.hidden = true;
    this.iframe.src = url;
    document.body.appendChild(this.iframe);
    // Messages keep the worker alive during long downloads.
    this.keepAlive = setInterval(() => this.worker.postMessage({ type: "sp2p-keepalive" }), 10000);
    return this;
  }

  _wake() {
    for (const w of this.waiters.splice(0)) w();
  }

  /** Takes ownership of `bytes`: a chunk that fills its own buffer moves to the worker uncopied. */
  async write(bytes) {
    if (this.failed) throw this.failed;
    const whole = bytes.byteOffset === 0 && bytes.byteLength === bytes.buffer.byteLength;
    const chunk = whole ? bytes : bytes.slice();
    this.inflight += chunk.length;
    this.port.postMessage({ type: "chunk", chunk }, [chunk.buffer]);
    while (this.inflight > WINDOW_BYTES && !this.failed) {
      await new Promise((r) => this.waiters.push(r));
    }
    if (this.failed) throw this.failed;
  }

  async close() {
    this.port.postMessage({ type: "end" });
    this._cleanup(60000);
  }

  async abort() {
    if (this.port) this.port.postMessage({ type: "abort" });
    this._cleanup(1000);
  }

  _cleanup(delayMs) {
    clearInterval(this.keepAlive);
    const frame = this.iframe;
    // Removing the frame too early can cut the download short in some browsers.
    setTimeout(() => frame && frame.remove(), delayMs);
  }

  get savedName() {
    return this.name;
  }
}

export class MemorySink {
  static LIMIT = 2 * 1024 * 1024 * 1024;

  constructor({ name, type }) {
    this.name = name;
    this.type = type || "application/octet-stream";
    this.parts = [];
    this.size = 0;
  }

  async open() {
    return this;
  }

  async write(bytes) {
    this.size += bytes.length;
    if (this.size > MemorySink.LIMIT) {
      throw new SinkError("File too large to hold in this browser — use Chrome/Edge, or the sp2p CLI");
    }
    this.parts.push(bytes); // ours now (see write() above); the Blob copies at the end
  }

  async close() {
    const url = URL.createObjectURL(new Blob(this.parts, { type: this.type }));
    this.parts = [];
    const a = document.createElement("a");
    a.href = url;
    a.download = this.name;
    a.hidden = true;
    document.body.appendChild(a);
    a.click();
    // Revoking at once can break large downloads (W-28); give the browser time.
    setTimeout(() => {
      URL.revokeObjectURL(url);
      a.remove();
    }, 60000);
  }

  async abort() {
    this.parts = [];
  }

  get savedName() {
    return this.name;
  }
}
