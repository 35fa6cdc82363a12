// Receive page (/r#CODE): preview, confirmation, then stream the data to disk.

import { parseCode } from "./base62.js";
import { fromBase64, fromUtf8 } from "./bytes.js";
import { cliReceiveCommand, curlReceiveCommand } from "./commands.js";
import { startPage, TransferPage } from "./controller.js";
import { couldBeFileInfo, decryptFileInfo } from "./crypto.js";
import { explainFailure } from "./failures.js";
import { safeFileName, uniqueName, visible } from "./names.js";
import { TransferError } from "./session.js";
import { openSignaling } from "./signal.js";
import {
  DirectorySink,
  DownloadSink,
  FileHandleSink,
  MemorySink,
  registerDownloadWorker,
} from "./sinks.js";
import { receiveTransfer } from "./transfer.js";
import { $, ask, formatBytes, ProgressView, setStep, setText, show, showError } from "./ui.js";
import { MAX_FILE_INFO_BLOB, SignalType } from "./wire.js";

const page = new TransferPage("receiver", "sender");
let preview = null; // what fetchPreview() found, shown on the card and compared with Metadata

/** This tab opened a link before (the code itself is never stored): a reload finds no code. */
const OPENED_KEY = "sp2p-opened-a-link";

function remember(key) {
  try {
    sessionStorage.setItem(key, "1");
  } catch {
    // storage off: a reload then gets the plain "no code" message
  }
}

function recalls(key) {
  try {
    return sessionStorage.getItem(key) === "1";
  } catch {
    return false;
  }
}

/** Take the code from the fragment and erase it from the address bar at once. */
function takeCode() {
  const hash = location.hash.startsWith("#") ? location.hash.slice(1) : location.hash;
  if (hash) {
    history.replaceState(null, "", location.pathname + location.search);
    remember(OPENED_KEY);
  }
  try {
    return decodeURIComponent(hash);
  } catch {
    return hash;
  }
}

/**
 * Fetch and decrypt the preview: {status: "ok", info} | {status: "missing"} | {status: "wrong-code"}
 * (it does not open with this code's seed) | {status: "garbled"} (no sender wrote it, or it opens
 * but is no preview).
 */
async function fetchPreview(sessionId, seed) {
  for (let attempt = 0; attempt < 2; attempt++) {
    if (attempt) await new Promise((r) => setTimeout(r, 500));
    let res;
    try {
      res = await fetch(`/api/file-info/${encodeURIComponent(sessionId)}`, { cache: "no-store" });
    } catch {
      continue;
    }
    if (res.status === 404) continue;
    if (!res.ok) return { status: "missing" };
    let plain;
    try {
      const text = await res.text();
      if (text.length > 2 * MAX_FILE_INFO_BLOB) return { status: "garbled" };
      const blob = fromBase64(String(JSON.parse(text).data || ""));
      if (!couldBeFileInfo(blob)) return { status: "garbled" };
      try {
        plain = await decryptFileInfo(seed, blob);
      } catch {
        return { status: "wrong-code" }; // AES-GCM refused it: not this seed's preview
      }
      const info = JSON.parse(fromUtf8(plain));
      if (!info || typeof info !== "object") return { status: "garbled" };
      return { status: "ok", info };
    } catch {
      return { status: "garbled" };
    }
  }
  return { status: "missing" };
}

function describe(info) {
  const known = Number.isSafeInteger(info.size) && info.size >= 0 && info.streamMode !== true;
  const size = known ? formatBytes(info.size) : "Unknown size";
  const count = Number.isSafeInteger(info.fileCount) && info.fileCount > 0 ? ` (${info.fileCount} files)` : "";
  return size + count;
}

function showCard(preview, code) {
  const origin = location.origin;
  setText($("#share-cli"), cliReceiveCommand(origin, code));
  setText($("#share-curl"), curlReceiveCommand(origin, code));
  const folder = preview.status === "ok" ? !!preview.info.isFolder : false;
  if (preview.status === "ok") {
    const info = preview.info;
    setText($("#confirm-file"), String(info.name ?? ""));
    setText($("#confirm-size"), describe(info));
    setText($("#confirm-type"), folder ? "Folder (arrives as a tar archive)" : String(info.type || ""));
    const safe = safeFileName(info.name);
    if (safe !== String(info.name)) setText($("#confirm-note"), `Will be saved as: ${safe}${folder ? ".tar" : ""}`);
  } else {
    setText($("#confirm-file"), "Unknown file");
    setText($("#confirm-size"), "");
    setText($("#confirm-note"), "No preview is available. You will see the name once the transfer starts.");
  }
  $("#save-btn").textContent = folder ? "Save as .tar" : "Save file";
  const canExtract = typeof window.showDirectoryPicker === "function";
  show($("#extract-btn"), canExtract && (folder || preview.status !== "ok"));
  show($("#confirm"), true);
  $("#save-btn").focus();
}

// ---- sink choice (must happen in the click handler: pickers need the user gesture) ----------

async function pickFile(preview) {
  if (typeof window.showSaveFilePicker !== "function") return { kind: "download" };
  const folder = preview.status === "ok" && preview.info.isFolder;
  let name = preview.status === "ok" ? safeFileName(preview.info.name) : "received-file";
  if (folder && !name.endsWith(".tar")) name += ".tar";
  try {
    const handle = await window.showSaveFilePicker({ suggestedName: name });
    return { kind: "file", handle };
  } catch (e) {
    if (e && e.name === "AbortError") return null; // the user closed the picker
    return { kind: "download" };
  }
}

async function pickDirectory() {
  try {
    return { kind: "dir", dir: await window.showDirectoryPicker({ mode: "readwrite" }) };
  } catch {
    return null;
  }
}

async function openSink(choice, meta) {
  if (preview.status === "ok") {
    const p = preview.info;
    const differs = p.name !== meta.name || p.size !== meta.size || !!p.isFolder !== meta.isFolder;
    if (differs) {
      const go = await ask($("#mismatch-dialog"), () => {
        setText($("#mismatch-name"), visible(meta.name));
        setText($("#mismatch-size"), describe(meta));
      });
      if (!go) throw new TransferError("Cancelled: the file differs from the preview", { cancelled: true, local: true });
    }
  }
  let name = safeFileName(meta.name);
  if (meta.isFolder && !name.toLowerCase().endsWith(".tar")) name += ".tar";
  setText($("#receiving-name"), name);
  const exact = !meta.isFolder && !meta.streamMode;
  if (choice.kind === "file") return { sink: await new FileHandleSink(choice.handle).open(), where: choice.handle.name };
  if (choice.kind === "dir") {
    if (meta.isFolder) return { sink: new DirectorySink(choice.dir), where: `${choice.dir.name}/` };
    const free = await uniqueName(name, async (n) => {
      try {
        await choice.dir.getFileHandle(n);
        return true;
      } catch {
        return false;
      }
    });
    const handle = await choice.dir.getFileHandle(free, { create: true });
    return { sink: await new FileHandleSink(handle).open(), where: `${choice.dir.name}/${free}` };
  }
  const opts = { name, size: exact ? meta.size : 0, type: meta.type };
  if (DownloadSink.available()) {
    const reg = await navigator.serviceWorker.ready;
    return { sink: await new DownloadSink(reg.active, opts).open(), where: `your downloads (${name})` };
  }
  return { sink: await new MemorySink(opts).open(), where: `your downloads (${name})` };
}

// ---- the receive flow ------------------------------------------------------------------------

/** Say no: join (unless already joined), send `decline` and leave. The sender's page says the
 * receiver declined (docs/protocol-extensions.md §3); no keys were exchanged. */
async function decline(sessionId) {
  show($("#confirm"), false);
  try {
    if (!page.sig) ({ sig: page.sig } = await openSignaling("receiver", sessionId));
    page.sig.send(SignalType.Decline, {});
  } catch (e) {
    const why = explainFailure(e, { role: "receiver", peer: "sender" });
    showError(why.text, why.detail);
    return;
  } finally {
    if (page.sig) page.sig.close();
    page.sig = null;
  }
  show($("#declined"), true);
  $("#declined").focus();
}

function run(choice, sessionId, seed) {
  show($("#confirm"), false);
  show($("#status"), true);
  return page.run(async () => {
    setStep("connect", "active");
    if (!page.sig) ({ sig: page.sig, welcome: page.welcome } = await openSignaling("receiver", sessionId));
    setStep("connect", "done");
    setStep("join", "done");

    const session = await page.connect(page.sig, { welcome: page.welcome, seed, sessionId });

    setStep("transfer", "active");
    const progress = new ProgressView($("#progress"));
    let where = "";
    const result = await receiveTransfer(session, {
      openSink: async (meta) => {
        const opened = await openSink(choice, meta);
        where = opened.where;
        show($("#progress"), true);
        progress.begin(meta.isFolder || meta.streamMode ? 0 : meta.size);
        return opened.sink;
      },
      progress: (n) => progress.update(n),
    });
    progress.update(result.totalBytes, true);
    setStep("transfer", "done");
    const stats = progress.summary(result.totalBytes);
    setText($("#done-name"), safeFileName(result.meta.name));
    setText($("#done-stats"), `${stats}${result.meta.fileCount ? ` — ${result.meta.fileCount} files` : ""}`);
    setText($("#done-where"), `Saved to ${where}. SHA-256 verified: ${result.sha256}`);
    $("#done").dataset.sha256 = result.sha256;
    page.finish();
  });
}

/** No code in the link: a field to type or paste one (or the whole link). Opening it sets the
 * fragment, and the hashchange reload takes it from there like any link. */
function offerCodeEntry() {
  const input = $("#code-input");
  $("#code-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const text = input.value.includes("#") ? input.value.slice(input.value.lastIndexOf("#") + 1) : input.value;
    try {
      location.hash = parseCode(text).code;
    } catch (err) {
      showError(err.message, "Type the code exactly as the sender shows it, or paste their whole link.");
      input.focus();
    }
  });
  show($("#enter-code"), true);
}

async function init() {
  window.addEventListener("hashchange", () => location.reload());
  page.wire();
  const raw = takeCode();
  if (!raw && recalls(OPENED_KEY)) {
    showError(
      "This page was reloaded, and the link's code left the address bar when it first opened.",
      "Open the link again from the sender's message; if a transfer had started, ask the sender for a new link.",
    );
    offerCodeEntry();
    return;
  }
  if (!raw) {
    showError("No transfer code found in the link.", "Open the full link the sender shared, or type its code below.");
    offerCodeEntry();
    return;
  }
  let parsed;
  try {
    parsed = parseCode(raw);
  } catch (e) {
    showError(e.message, "Open the full link the sender shared, or type its code below.");
    offerCodeEntry();
    return;
  }
  const worker = registerDownloadWorker();
  setText($("#loading"), "Loading the file details…");
  preview = await fetchPreview(parsed.sessionId, parsed.seed);
  await worker;
  show($("#loading"), false);
  if (preview.status === "wrong-code") {
    // Refused before the join, so a mistyped or cut-off code does not use up the sender's link.
    // A server can also serve a wrong preview, which looks the same from here: the advice says so.
    showError(
      "This code does not open the sender's file details: it looks cut off or mistyped.",
      "Copy the whole link again (the sender is still waiting); if it is exactly what the sender shows, the server is serving wrong file details.",
    );
    offerCodeEntry();
    return;
  }
  if (preview.status === "missing") {
    // No preview: an unknown or expired code, or a sender that stores none. Joining tells them
    // apart at once, as the CLI does; the sender then waits for our key while the user decides.
    try {
      ({ sig: page.sig, welcome: page.welcome } = await openSignaling("receiver", parsed.sessionId));
    } catch (e) {
      if (e && e.code === "session_not_found") {
        showError(
          "This link is unknown or has expired: there is no transfer waiting for it.",
          "Ask the sender for a new link: each link works once, and only while the sender waits.",
        );
        offerCodeEntry();
      } else {
        const why = explainFailure(e, { role: "receiver", peer: "sender" });
        showError(why.text, why.detail);
      }
      return;
    }
  }
  showCard(preview, parsed.code);
  let picking = false;
  const onPick = (pick) => async () => {
    if (page.busy || picking) return;
    picking = true;
    try {
      const choice = await pick();
      if (choice) run(choice, parsed.sessionId, parsed.seed);
    } finally {
      picking = false;
    }
  };
  $("#save-btn").addEventListener("click", onPick(() => pickFile(preview)));
  $("#extract-btn").addEventListener("click", onPick(pickDirectory));
  $("#decline-btn").addEventListener("click", () => {
    if (page.busy || picking) return;
    picking = true; // no Save after a Decline
    decline(parsed.sessionId);
  });
}

startPage(init);
