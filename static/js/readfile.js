// Reading what the user chose. A file moved, deleted, changed or made unreadable after it was
// chosen fails with one sentence naming it, instead of the browser's DOMException text.

import { visible } from "./names.js";
import { TransferError } from "./session.js";

export function unreadable(file) {
  return new TransferError(`Could not read “${visible(file.name)}”: it was moved, changed or deleted after you chose it.`, {
    hint: "Press Start over and choose it again.",
  });
}

/** Bytes [start, end) of `file`, all of them or an `unreadable` error. */
export async function readPiece(file, start, end) {
  let bytes;
  try {
    bytes = new Uint8Array(await file.slice(start, end).arrayBuffer());
  } catch {
    throw unreadable(file);
  }
  if (bytes.length !== Math.min(end, file.size) - start) throw unreadable(file);
  return bytes;
}
