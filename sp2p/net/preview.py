"""Fetch the sender's encrypted file-info blob over HTTP(S) (`GET /api/file-info/<id>`).

Best-effort: any failure is "no preview", never an error; the caller says so and asks anyway.
"""

from __future__ import annotations

import base64
import binascii
import json
import urllib.error
import urllib.request
from urllib.parse import quote

from sp2p.log import get_logger
from sp2p.proto.fileinfo import MAX_FILE_INFO_BLOB

log = get_logger(__name__)

PREVIEW_TIMEOUT = 5.0
#: the JSON envelope around a base64 blob of at most MAX_FILE_INFO_BLOB bytes
_MAX_BODY = MAX_FILE_INFO_BLOB * 2


def fetch_file_info(base_url: str, session_id: str, *, timeout: float = PREVIEW_TIMEOUT) -> bytes | None:
    """The raw blob, or None when the server has none (404), is unreachable or answers junk."""
    url = f"{base_url.rstrip('/')}/api/file-info/{quote(session_id, safe='')}"
    if not url.startswith(("http://", "https://")):
        return None
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:  # noqa: S310 - http(s) only, checked above
            body = resp.read(_MAX_BODY + 1)
    except (OSError, urllib.error.URLError, ValueError) as exc:
        log.debug("no preview from %s: %s", url, exc)
        return None
    if len(body) > _MAX_BODY:
        return None
    try:
        data = json.loads(body)
        blob = base64.b64decode(data["data"], validate=True)
    except (ValueError, KeyError, TypeError, binascii.Error):
        return None
    return blob
