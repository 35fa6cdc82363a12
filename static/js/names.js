// Name policy for everything a peer names: what we save under, what we extract, what we display.
// Security cases B4 (download naming/spoofing), T4/T5 (traversal), T11 (portable names).

const CONTROL = /[\u0000-\u001f\u007f-\u009f]/gu;
const FORMAT = /\p{Cf}/gu; // bidi overrides/isolates, zero-width characters, ...
const FORBIDDEN = /[<>:"/\\|?*]/g;
const RESERVED = /^(con|prn|aux|nul|com[0-9¹²³]|lpt[0-9¹²³]|conin\$|conout\$)(\..*)?$/i;
const MAX_COMPONENT_BYTES = 255;

function byteLength(s) {
  return new TextEncoder().encode(s).length;
}

/** Make invisible or control characters visible, for showing peer-supplied text verbatim. */
export function visible(text) {
  return String(text).replace(CONTROL, escapeChar).replace(FORMAT, escapeChar);
}

function escapeChar(c) {
  return `\\u{${c.codePointAt(0).toString(16)}}`;
}

/** Truncate peer text for display (error messages etc.). */
export function shortText(text, max = 200) {
  const s = visible(text);
  return s.length > max ? `${s.slice(0, max)}…` : s;
}

/**
 * A safe single-component file name for saving: basename only, no control/format characters,
 * nothing Windows refuses, never empty, "." or "..". Keeps the extension visible and last.
 */
export function safeFileName(raw, fallback = "received-file") {
  const last = String(raw ?? "").split(/[/\\]/).pop();
  let name = portableComponent(last.replace(CONTROL, "").replace(FORMAT, "").replace(/^\s+/u, ""), fallback);
  while (byteLength(name) > MAX_COMPONENT_BYTES) {
    const dot = name.lastIndexOf(".");
    const ext = dot > 0 && name.length - dot <= 16 ? name.slice(dot) : "";
    name = name.slice(0, name.length - ext.length - 1) + ext;
  }
  return name;
}

/** Is this path component one an archive may not hold at all (structure, not spelling)? */
export function componentProblem(c) {
  if (c === "" || c === "." || c === "..") return "invalid path component";
  if (byteLength(c) > MAX_COMPONENT_BYTES) return "name component too long";
  return null;
}

/**
 * One archive path component as it is written to disk: what a portable file system cannot hold
 * is sanitised the way the CLI does it (sp2p/fs/names.py, T11), so a folder with "12:30.log" or
 * "CON.txt" in it extracts as "12_30.log" and "_CON.txt" instead of refusing the whole folder.
 */
export function portableComponent(c, fallback = "_") {
  let name = c.replace(CONTROL, "").replace(FORMAT, "").replace(FORBIDDEN, "_").replace(/[. ]+$/u, "");
  if (name === "" || name === "." || name === "..") name = fallback;
  if (RESERVED.test(name)) name = `_${name}`;
  return name;
}

/** Uniquify "name.ext" against a set/predicate: "name (1).ext", "name (2).ext", ... */
export async function uniqueName(name, taken, limit = 1000) {
  if (!(await taken(name))) return name;
  const dot = name.lastIndexOf(".");
  const base = dot > 0 ? name.slice(0, dot) : name;
  const ext = dot > 0 ? name.slice(dot) : "";
  for (let i = 1; i <= limit; i++) {
    const candidate = `${base} (${i})${ext}`;
    if (!(await taken(candidate))) return candidate;
  }
  throw new Error("could not find a free name");
}
