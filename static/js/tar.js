// USTAR/PAX tar writer (browser sender) and a validating streaming reader (folder extraction).
// Output ends exactly after two zero blocks, with no record padding: Go's receiver fails on
// trailing bytes (client.md §3.8-3.9). Long or non-ASCII names get a PAX "path" record, as Go does.

import { utf8, fromUtf8 } from "./bytes.js";
import { componentProblem, portableComponent } from "./names.js";
import { readPiece } from "./readfile.js";

export const BLOCK = 512;
const MAX_OCTAL_SIZE = 8 ** 11 - 1;
export const LIMITS = Object.freeze({ entries: 100000, pathBytes: 4096, depth: 100 });

export class TarError extends Error {}

function octal(n, width) {
  // width includes the trailing NUL
  return n.toString(8).padStart(width - 1, "0") + "\0";
}

function writeField(block, offset, width, text) {
  const bytes = typeof text === "string" ? utf8(text) : text;
  block.set(bytes.subarray(0, width), offset);
}

function isAscii(s) {
  return /^[\x20-\x7e]*$/.test(s);
}

/** Split a name over USTAR prefix(155)/name(100); null if it does not fit. */
function ustarSplit(name) {
  if (!isAscii(name)) return null;
  if (name.length <= 100) return { prefix: "", name };
  for (let i = name.length - 1; i > 0; i--) {
    if (name[i] !== "/") continue;
    const prefix = name.slice(0, i);
    const rest = name.slice(i + 1);
    if (prefix.length <= 155 && rest.length > 0 && rest.length <= 100) return { prefix, name: rest };
  }
  return null;
}

function rawHeader({ name, prefix = "", size, mtime, typeflag, mode }) {
  const b = new Uint8Array(BLOCK);
  writeField(b, 0, 100, name);
  writeField(b, 100, 8, octal(mode, 8));
  writeField(b, 108, 8, octal(0, 8));
  writeField(b, 116, 8, octal(0, 8));
  writeField(b, 124, 12, octal(size, 12));
  writeField(b, 136, 12, octal(mtime, 12));
  b.fill(0x20, 148, 156);
  b[156] = typeflag.charCodeAt(0);
  writeField(b, 257, 6, "ustar\0");
  writeField(b, 263, 2, "00");
  writeField(b, 329, 8, octal(0, 8));
  writeField(b, 337, 8, octal(0, 8));
  writeField(b, 345, 155, prefix);
  let sum = 0;
  for (const x of b) sum += x;
  writeField(b, 148, 8, sum.toString(8).padStart(6, "0") + "\0 ");
  return b;
}

function paxRecord(key, value) {
  const body = utf8(` ${key}=${value}\n`);
  let len = body.length + 1;
  while (String(len).length + body.length !== len) len = String(len).length + body.length;
  return utf8(`${len}${new TextDecoder().decode(body)}`);
}

function padding(size) {
  return (BLOCK - (size % BLOCK)) % BLOCK;
}

/** Header block(s) for one entry: [pax header + pax data + padding +] ustar header. */
export function entryHeader(path, { size = 0, mtime = 0, dir = false } = {}) {
  const typeflag = dir ? "5" : "0";
  const mode = dir ? 0o755 : 0o644;
  const split = ustarSplit(path);
  const records = [];
  if (!split) records.push(paxRecord("path", path));
  if (size > MAX_OCTAL_SIZE) records.push(paxRecord("size", String(size)));
  const ustarSize = size > MAX_OCTAL_SIZE ? 0 : size;
  const fallback = split || { prefix: "", name: path.replace(/[^\x20-\x7e]/g, "_").slice(-100) };
  const main = rawHeader({ ...fallback, size: ustarSize, mtime, typeflag, mode });
  if (records.length === 0) return main;
  let paxLen = 0;
  for (const r of records) paxLen += r.length;
  const base = path.split("/").pop().replace(/[^\x20-\x7e]/g, "_");
  const paxName = `PaxHeaders.0/${base}`.slice(0, 100);
  const out = new Uint8Array(BLOCK + paxLen + padding(paxLen) + BLOCK);
  out.set(rawHeader({ name: paxName, size: paxLen, mtime, typeflag: "x", mode: 0o644 }), 0);
  let off = BLOCK;
  for (const r of records) {
    out.set(r, off);
    off += r.length;
  }
  out.set(main, BLOCK + paxLen + padding(paxLen));
  return out;
}

/**
 * Plan an archive from [{path, file?: Blob, dir?: true, mtime}] (paths with "/" separators).
 * Returns {size, parts: [{header, file?, size}]}; `size` is the exact archive length.
 */
export function planTar(entries) {
  const parts = [];
  let size = 2 * BLOCK;
  for (const e of entries) {
    const fileSize = e.dir ? 0 : e.file.size;
    const header = entryHeader(e.path, { size: fileSize, mtime: e.mtime || 0, dir: !!e.dir });
    parts.push({ header, file: e.dir ? null : e.file, size: fileSize });
    size += header.length + fileSize + padding(fileSize);
  }
  return { size, parts };
}

/** Yield the archive as byte pieces (headers, file slices of at most `slice` bytes, padding). */
export async function* tarPieces(plan, slice = 1 << 20) {
  for (const part of plan.parts) {
    yield part.header;
    if (!part.file) continue;
    let done = 0;
    while (done < part.size) {
      const n = Math.min(slice, part.size - done);
      yield await readPiece(part.file, done, done + n);
      done += n;
    }
    const pad = padding(part.size);
    if (pad) yield new Uint8Array(pad);
  }
  yield new Uint8Array(2 * BLOCK);
}

// ---------------------------------------------------------------------------------------------
// Reader

function parseOctal(b, off, width) {
  // GNU base-256 (high bit set) is only used for huge values; accept it too.
  if (b[off] & 0x80) {
    let n = b[off] & 0x7f;
    for (let i = 1; i < width; i++) n = n * 256 + b[off + i];
    return n;
  }
  let s = "";
  for (let i = off; i < off + width; i++) {
    if (b[i] === 0) break;
    s += String.fromCharCode(b[i]);
  }
  s = s.trim();
  if (s === "") return 0;
  if (!/^[0-7]+$/.test(s)) throw new TarError("invalid tar header number");
  return parseInt(s, 8);
}

function cString(b, off, width) {
  let end = off;
  while (end < off + width && b[end] !== 0) end++;
  return fromUtf8(b.subarray(off, end));
}

function parsePax(bytes) {
  const out = {};
  let off = 0;
  while (off < bytes.length) {
    let sp = off;
    while (sp < bytes.length && bytes[sp] !== 0x20) sp++;
    const len = parseInt(new TextDecoder().decode(bytes.subarray(off, sp)), 10);
    if (!(len > 0) || off + len > bytes.length) throw new TarError("invalid PAX header");
    const rec = fromUtf8(bytes.subarray(sp + 1, off + len - 1));
    const eq = rec.indexOf("=");
    if (eq < 0) throw new TarError("invalid PAX header");
    out[rec.slice(0, eq)] = rec.slice(eq + 1);
    off += len;
  }
  return out;
}

/** Validate an archive member path; returns its components or throws TarError. */
export function memberPath(raw) {
  if (utf8(raw).length > LIMITS.pathBytes) throw new TarError("path too long in archive");
  if (raw.startsWith("/") || /^[a-zA-Z]:/.test(raw) || raw.includes("\\")) {
    throw new TarError(`unsafe path in archive: ${raw}`);
  }
  const parts = raw.split("/").filter((p) => p !== "" && p !== ".");
  if (parts.length === 0) throw new TarError("empty path in archive");
  if (parts.length > LIMITS.depth) throw new TarError("path too deep in archive");
  for (const p of parts) {
    const problem = componentProblem(p);
    if (problem) throw new TarError(`unsafe path in archive (${problem}): ${raw}`);
  }
  return parts.map(portableComponent);
}

/**
 * Streaming tar parser. `push(bytes)` feeds any amount; callbacks on the target:
 *   await target.directory(parts)          await target.file(parts, size) -> writer {write, close}
 * Links, devices, FIFOs, sparse and unknown members reject the whole archive, as do unsafe or
 * duplicate paths (case- and Unicode-normalisation-insensitive). `finish()` requires the end marker.
 */
export class TarReader {
  constructor(target) {
    this.target = target;
    this.buf = new Uint8Array(0);
    this.state = "header";
    this.remaining = 0;
    this.pad = 0;
    this.writer = null;
    this.pax = null;
    this.longName = null;
    this.paxCollect = null;
    this.entries = 0;
    this.seen = new Map(); // folded path -> "file" | "dir"
    this.ended = false;
    this.zeroBlocks = 0;
  }

  _take(n) {
    const out = this.buf.subarray(0, n);
    this.buf = this.buf.subarray(n);
    return out;
  }

  async push(bytes) {
    if (this.buf.length === 0) this.buf = bytes;
    else {
      const merged = new Uint8Array(this.buf.length + bytes.length);
      merged.set(this.buf);
      merged.set(bytes, this.buf.length);
      this.buf = merged;
    }
    for (;;) {
      if (this.ended) {
        if (this.buf.some((x) => x !== 0)) throw new TarError("data after end of archive");
        this.buf = new Uint8Array(0);
        return;
      }
      if (this.state === "header") {
        if (this.buf.length < BLOCK) return;
        await this._header(this._take(BLOCK).slice());
      } else if (this.state === "data" || this.state === "meta") {
        if (this.remaining > 0) {
          if (this.buf.length === 0) return;
          const n = Math.min(this.remaining, this.buf.length);
          const piece = this._take(n);
          this.remaining -= n;
          if (this.state === "data") await this.writer.write(piece.slice());
          else this.paxCollect.push(piece.slice());
        }
        if (this.remaining === 0) {
          if (this.state === "data") await this.writer.close();
          else this._finishMeta();
          this.writer = null;
          this.state = "pad";
        }
      } else if (this.state === "pad") {
        const n = Math.min(this.pad, this.buf.length);
        this._take(n);
        this.pad -= n;
        if (this.pad > 0) return;
        this.state = "header";
      }
    }
  }

  _finishMeta() {
    let n = 0;
    for (const p of this.paxCollect) n += p.length;
    const all = new Uint8Array(n);
    let off = 0;
    for (const p of this.paxCollect) {
      all.set(p, off);
      off += p.length;
    }
    if (this.metaKind === "x") this.pax = parsePax(all);
    else if (this.metaKind === "L") this.longName = fromUtf8(all).replace(/\0+$/, "");
    this.paxCollect = null;
  }

  async _header(block) {
    if (block.every((x) => x === 0)) {
      this.zeroBlocks++;
      if (this.zeroBlocks === 2) this.ended = true;
      return;
    }
    if (this.zeroBlocks) throw new TarError("invalid tar stream");
    let sum = 0;
    for (let i = 0; i < BLOCK; i++) sum += i >= 148 && i < 156 ? 0x20 : block[i];
    if (parseOctal(block, 148, 8) !== sum) throw new TarError("tar header checksum error");
    const typeflag = String.fromCharCode(block[156] || 0x30);
    let size = parseOctal(block, 124, 12);
    if (typeflag === "x" || typeflag === "L" || typeflag === "g") {
      if (size > 1 << 20) throw new TarError("tar extended header too large");
      this.metaKind = typeflag;
      this.paxCollect = [];
      this.remaining = size;
      this.pad = padding(size);
      this.state = "meta";
      return;
    }
    if (++this.entries > LIMITS.entries) throw new TarError("too many entries in archive");
    let name = cString(block, 0, 100);
    const magic = cString(block, 257, 6);
    if (magic === "ustar") {
      const prefix = cString(block, 345, 155);
      if (prefix) name = `${prefix}/${name}`;
    }
    if (this.longName !== null) name = this.longName;
    if (this.pax && this.pax.path !== undefined) name = this.pax.path;
    if (this.pax && this.pax.size !== undefined) size = parseInt(this.pax.size, 10);
    this.pax = null;
    this.longName = null;
    if (!Number.isSafeInteger(size) || size < 0) throw new TarError("invalid size in archive");
    const parts = memberPath(name);
    if (typeflag === "5") {
      if (size) throw new TarError("directory with data in archive");
      this._claim(parts, "dir");
      await this.target.directory(parts);
      return;
    }
    if (typeflag !== "0") throw new TarError(`unsupported member type '${typeflag}' in archive: ${name}`);
    this._claim(parts, "file");
    this.writer = await this.target.file(parts, size);
    this.remaining = size;
    this.pad = padding(size);
    this.state = "data";
    if (size === 0) {
      await this.writer.close();
      this.writer = null;
      this.state = "header";
    }
  }

  /** Record a path; parents become directories; clashes reject the archive (T9). */
  _claim(parts, kind) {
    const fold = (p) => p.normalize("NFC").toLowerCase();
    for (let i = 1; i < parts.length; i++) {
      const key = parts.slice(0, i).map(fold).join("/");
      const have = this.seen.get(key);
      if (have === "file") throw new TarError(`path conflict in archive: ${parts.join("/")}`);
      this.seen.set(key, "dir");
    }
    const key = parts.map(fold).join("/");
    const have = this.seen.get(key);
    if (have === "file" || (have === "dir" && kind === "file")) {
      throw new TarError(`duplicate path in archive: ${parts.join("/")}`);
    }
    this.seen.set(key, kind);
  }

  finish() {
    if (!this.ended) throw new TarError("archive ended without end-of-archive marker");
  }
}
