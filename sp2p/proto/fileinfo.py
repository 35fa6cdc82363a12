"""The encrypted file-info preview blob (client.md §2.4).

K = HKDF-Expand(HMAC-SHA256("sp2p-file-info", seed), "sp2p-v1-file-info-key", 32)
blob = nonce[12] || AES-256-GCM(K, nonce, json, no AAD)  (ciphertext || tag)
"""

from __future__ import annotations

import json
import os
from typing import Any

from sp2p.errors import IntegrityError
from sp2p.proto.constants import NONCE_BYTES, TAG_BYTES
from sp2p.proto.primitives import AESGCM, InvalidTag, hkdf_expand_sha256
from sp2p.proto.sha import hmac_sha256
from sp2p.record import record

#: a preview is a few hundred bytes of JSON; anything bigger is refused unread
MAX_FILE_INFO_BLOB = 8192


def could_be_file_info(blob: bytes) -> bool:
    """Whether a sender could have written `blob`: a nonce, some ciphertext and the tag, within
    the cap. Anything else is the server's doing, whatever the code."""
    return NONCE_BYTES + TAG_BYTES < len(blob) <= MAX_FILE_INFO_BLOB


def file_info_key(seed: bytes) -> bytes:
    prk = hmac_sha256(b"sp2p-file-info", seed)
    return hkdf_expand_sha256(prk, b"sp2p-v1-file-info-key", 32)


def encrypt_file_info(seed: bytes, plaintext: bytes, *, nonce: bytes | None = None) -> bytes:
    nonce = os.urandom(NONCE_BYTES) if nonce is None else nonce
    return nonce + AESGCM(file_info_key(seed)).encrypt(nonce, plaintext, None)


def decrypt_file_info(seed: bytes, blob: bytes) -> bytes:
    if len(blob) < NONCE_BYTES + TAG_BYTES:
        raise IntegrityError("file-info blob too short")
    if len(blob) > MAX_FILE_INFO_BLOB:
        raise IntegrityError("file-info blob too large")
    try:
        return AESGCM(file_info_key(seed)).decrypt(blob[:NONCE_BYTES], blob[NONCE_BYTES:], None)
    except InvalidTag:
        raise IntegrityError("file-info blob failed authentication") from None


def metadata_preview(metadata: dict[str, Any]) -> bytes:
    """The JSON the sender encrypts: the Metadata object as known before the transfer."""
    return json.dumps(metadata, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


@record(frozen=True)
class Preview:
    """What the sender announced before the transfer: shown, never used as a save name (C16)."""

    name: str
    size: int
    file_count: int
    is_folder: bool
    stream: bool


def parse_preview(plaintext: bytes) -> Preview:
    """The decrypted file-info JSON (CLI: the Metadata object; browser: name/size/fileCount).

    Raises:
        ValueError: not a JSON object with a string name and a non-negative integer size.
    """
    data = json.loads(plaintext.decode("utf-8"))
    if not isinstance(data, dict):
        raise ValueError("not a JSON object")
    name, size, count = data.get("name"), data.get("size", 0), data.get("fileCount", 0)
    if not isinstance(name, str) or isinstance(size, bool) or not isinstance(size, int) or size < 0:
        raise ValueError("malformed preview")
    if isinstance(count, bool) or not isinstance(count, int) or count < 0:
        count = 0
    return Preview(name=name, size=size, file_count=count, is_folder=data.get("isFolder") is True,
                   stream=data.get("streamMode") is True)
