// Send page (/): pick or drop files/folders, share a link + QR + CLI command, then send.

import { formatCode, generateSeed, validSessionId } from "./base62.js";
import { toBase64, utf8 } from "./bytes.js";
import { cliReceiveCommand, curlReceiveCommand } from "./commands.js";
import { startPage, TransferPage } from "./controller.js";
import { encryptFileInfo } from "./crypto.js";
import { uniqueName } from "./names.js";
import { drawQr } from "./qr.js";
import { readPiece } from "./readfile.js";
import { TransferError } from "./session.js";
import { openSignaling } from "./signal.js";
import { planTar, tarPieces } from "./tar.js";
import { CHUNK, rechunk, sendTransfer } from "./transfer.js";
import { $, formatBytes, ProgressView, setStep, setText, show, showError } from "./ui.js";
import { FILE_INFO_KEEPALIVE_MS, SignalType } from "./wire.js";

const page = new TransferPage("sender", "receiver");
// a failed send also withdraws the link: it cannot be used any more
page.onFail = () => show($("#share"), false);

// ---- selection -------------------------------------------------------------------------------

/** Files from <input> (webkitRelativePath gives folder structure) -> [{path, file}]. */
function fromInput(fileList) {
  return Array.from(fileList, (file) => ({ path: file.webkitRelativePath || file.name, file }));
}

/** Files and folders from a drop, walking directories (readEntries returns batches). */
async function fromDrop(dataTransfer) {
  const entries = [];
  for (const item of dataTransfer.items) {
    const entry = item.webkitGetAsEntry ? item.webkitGetAsEntry() : null;
    if (entry) entries.push(entry);
  }
  if (entries.length === 0) return fromInput(dataTransfer.files);
  const out = [];
  const walk = async (entry, prefix) => {
    const path = prefix ? `${prefix}/${entry.name}` : entry.name;
    if (entry.isFile) {
      const file = await new Promise((res, rej) => entry.file(res, rej));
      out.push({ path, file });
    } else if (entry.isDirectory) {
      out.push({ path, dir: true });
      const reader = entry.createReader();
      for (;;) {
        const batch = await new Promise((res, rej) => reader.readEntries(res, rej));
        if (batch.length === 0) break;
        for (const child of batch) await walk(child, path);
      }
    }
  };
  for (const e of entries) await walk(e, "");
  return out;
}

/**
 * Decide what goes on the wire. One plain file is sent as itself; anything else becomes a tar
 * stream (folders keep their structure; loose files go in under unique base names).
 */
export async function describeSelection(items) {
  const files = items.filter((i) => !i.dir);
  if (items.length === 1 && files.length === 1 && !files[0].path.includes("/")) {
    const f = files[0].file;
    const meta = {
      name: f.name,
      size: f.size,
      type: f.type || "application/octet-stream",
      isFolder: false,
      streamMode: false,
    };
    return { meta, preview: { name: f.name, size: f.size, type: meta.type, isFolder: false, fileCount: 0 }, files: [f] };
  }
  const dirs = new Set();
  const taken = new Set();
  const entries = [];
  for (const it of items) {
    const parts = it.path.split("/").filter((p) => p && p !== "." && p !== "..");
    if (parts.length === 0) continue;
    if (!it.dir && parts.length === 1) {
      // a loose file: keep names unique, the receiver refuses duplicates
      const lower = (n) => taken.has(n.toLowerCase());
      parts[0] = await uniqueName(parts[0], lower);
    }
    for (let i = 1; i < parts.length; i++) dirs.add(parts.slice(0, i).join("/"));
    const path = parts.join("/");
    taken.add(parts[0].toLowerCase());
    if (it.dir) dirs.add(path);
    else entries.push({ path, file: it.file, mtime: Math.floor((it.file.lastModified || 0) / 1000) });
  }
  const now = Math.floor(Date.now() / 1000);
  for (const d of dirs) entries.push({ path: d, dir: true, mtime: now });
  entries.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  const roots = new Set(entries.map((e) => e.path.split("/")[0]));
  const fileCount = entries.filter((e) => !e.dir).length;
  const onlyRoot = roots.size === 1 && dirs.has([...roots][0]) ? [...roots][0] : null;
  const name = onlyRoot || `${fileCount}-files`;
  const plan = planTar(entries);
  const meta = { name, size: plan.size, type: "", isFolder: true, streamMode: false, fileCount };
  const preview = { name, size: plan.size, isFolder: true, fileCount };
  return { meta, preview, plan };
}

/** A file as CHUNK-sized views into larger reads (each arrayBuffer() is a trip to the browser). */
async function* fileChunks(file, size = CHUNK, read = 16 * CHUNK) {
  for (let off = 0; off < file.size; off += read) {
    const block = await readPiece(file, off, off + read);
    for (let at = 0; at < block.length; at += size) yield block.subarray(at, at + size);
  }
}

// ---- the send flow ---------------------------------------------------------------------------

async function start(items) {
  if (page.busy || items.length === 0) return;
  show($("#pick"), false);
  show($("#status"), true);
  show($("#error"), false);
  await page.run(async () => {
    const sendable = await describeSelection(items);
    const { meta, preview } = sendable;
    setText($("#sending-name"), meta.name);
    setText(
      $("#sending-size"),
      `${formatBytes(meta.size)}${meta.isFolder ? ` — ${meta.fileCount} file${meta.fileCount === 1 ? "" : "s"}` : ""}`,
    );
    setStep("connect", "active");
    const { sig, welcome } = await openSignaling("sender");
    page.sig = sig;
    const sessionId = String(welcome.sessionId || "");
    if (!validSessionId(sessionId)) throw new TransferError("The server sent an invalid session id");
    setStep("connect", "done");

    const seed = generateSeed();
    const code = formatCode(sessionId, seed);
    const blob = toBase64(await encryptFileInfo(seed, utf8(JSON.stringify(preview))));
    sig.send(SignalType.FileInfo, { data: blob });
    const keepalive = setInterval(() => {
      try {
        sig.send(SignalType.FileInfo, { data: blob });
      } catch {
        // the wait below reports the lost connection
      }
    }, FILE_INFO_KEEPALIVE_MS); // so the server does not reap a waiting session
    try {
      showShare(code);
      setStep("wait", "active");
      await sig.next([SignalType.PeerJoined]);
    } finally {
      clearInterval(keepalive);
    }
    show($("#share"), false);
    setStep("wait", "done");

    const session = await page.connect(sig, { welcome, seed, sessionId });

    setStep("transfer", "active");
    const progress = new ProgressView($("#progress"));
    show($("#progress"), true);
    progress.begin(meta.size);
    const chunks = sendable.plan ? rechunk(tarPieces(sendable.plan)) : fileChunks(sendable.files[0]);
    const done = await sendTransfer(session, { meta, chunks, progress: (n) => progress.update(n) });
    progress.update(done.totalBytes, true);
    setStep("transfer", "done");
    setText($("#done-name"), meta.name);
    setText($("#done-stats"), progress.summary(done.totalBytes));
    page.finish();
  });
}

function showShare(code) {
  const origin = location.origin;
  const url = `${origin}/r#${code}`;
  const link = $("#share-url");
  link.textContent = url;
  link.href = url;
  setText($("#share-cli"), cliReceiveCommand(origin, code));
  setText($("#share-curl"), curlReceiveCommand(origin, code));
  drawQr($("#qr"), url);
  $("#qr").setAttribute("aria-label", `QR code for ${url}`);
  show($("#share"), true);
}

// ---- wiring ----------------------------------------------------------------------------------

function init() {
  page.wire();
  const zone = $("#drop-zone");
  const filesInput = $("#file-input");
  const folderInput = $("#folder-input");
  $("#choose-files").addEventListener("click", () => filesInput.click());
  $("#choose-folder").addEventListener("click", () => folderInput.click());
  filesInput.addEventListener("change", () => start(fromInput(filesInput.files)));
  folderInput.addEventListener("change", () => {
    // a folder with nothing in it: the picker gives no entries at all, not even its name
    if (folderInput.files.length === 0 && !page.busy) {
      showError("That folder is empty: there is nothing to send.", "Choose a folder with at least one file in it.");
      return;
    }
    start(fromInput(folderInput.files));
  });
  zone.addEventListener("dragover", (e) => {
    e.preventDefault();
    zone.classList.add("dragging");
  });
  zone.addEventListener("dragleave", () => zone.classList.remove("dragging"));
  zone.addEventListener("drop", async (e) => {
    e.preventDefault();
    zone.classList.remove("dragging");
    if (page.busy) return;
    let items;
    try {
      items = await fromDrop(e.dataTransfer);
    } catch {
      showError("Could not read what you dropped.", "Drop it again, or use the Choose buttons.");
      return;
    }
    start(items);
  });
  $("#restart").addEventListener("click", () => location.reload());
}

startPage(init);
