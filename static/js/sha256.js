// Incremental SHA-256 (WebCrypto only digests whole buffers): the vendored @noble/hashes.
import { sha256 } from "../vendor/noble/hashes/sha2.js";
import { toHex } from "./bytes.js";

export class Sha256 {
  constructor() {
    this.h = sha256.create();
  }

  update(bytes) {
    this.h.update(bytes);
    return this;
  }

  hex() {
    return toHex(this.h.digest());
  }
}
