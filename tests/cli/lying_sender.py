"""The real `sp2p send` whose transfer, after the real signaling, keys and key confirmation, is a
sender that sends the right bytes and then lies about them at the end (security cases T3, C6):

* `wrong-hash`: Done carries a SHA-256 other than that of the bytes sent;
* `no-done`: every byte, then the link closes without Done;
* `short-total`: Done counts fewer bytes than were sent, with their true SHA-256;
* `hostile-error`, `malformed-error` (C17): half the bytes, then an Error frame whose text would
  drive the terminal (escape sequences, carriage returns, bidi overrides, 3,000 characters), as
  JSON or as raw bytes that are not (invalid UTF-8).

It sends a 1 MiB file (`lie.bin`), or with `--folder` a folder `lie` of two files as a tar stream.
What the receiver answers (its Error frame) is printed as `peer error: TEXT`; the exit status is 6
once it answered with an error, 3 if it never did.

    python -m tests.cli.lying_sender --lie wrong-hash [--folder] -- send -server URL PATH
"""

from __future__ import annotations

import argparse
import hashlib
import io
import sys
import tarfile
from typing import Any

from sp2p.link.framed import FrameLink
from sp2p.proto.constants import MsgType
from sp2p.proto.messages import Metadata, Totals, error_body, parse_error_body

LIES = ("wrong-hash", "no-done", "short-total", "hostile-error", "malformed-error")
#: the Error text of `hostile-error`: a window title, a cleared screen, a line rewritten, a bidi flip
HOSTILE = "\x1b]0;pwned\x07\x1b[2J\rsp2p: transfer complete\u202e" + "A" * 3000
#: what the file or the folder's first member holds
CONTENT = bytes(range(256)) * 4096
CHUNK = 65536


def payload(folder: bool) -> tuple[Metadata, bytes]:
    if not folder:
        return Metadata(name="lie.bin", size=len(CONTENT)), CONTENT
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in (("lie/a.bin", CONTENT), ("lie/b.txt", b"second\n")):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    body = buf.getvalue()
    return Metadata(name="lie", size=len(body), is_folder=True, file_count=2), body


def lying_transfer(fc: FrameLink, lie: str, folder: bool) -> int:
    meta, body = payload(folder)
    fc.send_frame(MsgType.METADATA, meta.to_json())
    chunks = [body[i:i + CHUNK] for i in range(0, len(body), CHUNK)]
    if lie.endswith("-error"):
        for chunk in chunks[: len(chunks) // 2]:
            fc.send_frame(MsgType.DATA, chunk)
        raw = error_body(HOSTILE) if lie == "hostile-error" else b"\xff\xfe\x1b]0;pwned\x07\r not json"
        fc.send_frame(MsgType.ERROR, raw)
        fc.drain_incoming(5)
        return 6
    for chunk in chunks:
        fc.send_frame(MsgType.DATA, chunk)
    digest = hashlib.sha256(body).hexdigest()
    if lie == "no-done":
        fc.close()
        return 0
    if lie == "wrong-hash":
        fc.send_frame(MsgType.DONE, Totals(len(body), len(chunks), hashlib.sha256(b"other").hexdigest()).to_json())
    else:
        fc.send_frame(MsgType.DONE, Totals(len(body) - 1, len(chunks), digest).to_json())
    while True:
        try:
            frame = fc.recv_frame(timeout=30)
        except Exception:  # noqa: BLE001 - the receiver tore the link down without a word
            return 3
        if frame is None:
            return 3
        if frame.msg_type == MsgType.ERROR:
            print(f"peer error: {parse_error_body(frame.body)}", file=sys.stderr, flush=True)
            return 6
        if frame.msg_type == MsgType.COMPLETE:
            print("peer completed", file=sys.stderr, flush=True)
            return 0


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--lie", choices=LIES, required=True)
    ap.add_argument("--folder", action="store_true")
    ap.add_argument("argv", nargs=argparse.REMAINDER)
    ns = ap.parse_args()
    argv = ns.argv[1:] if ns.argv[:1] == ["--"] else ns.argv
    # the script owns the transfer: nothing may resume or heal it
    argv = [*argv[:1], "-no-resume", "-reconnect", "0", *argv[1:]]
    from sp2p.flow import send

    def transfer(fc: FrameLink, *args: Any) -> int:
        return lying_transfer(fc, ns.lie, ns.folder)

    send._transfer = transfer  # type: ignore[assignment]
    from sp2p.cli import main as cli_main

    return cli_main(argv)


if __name__ == "__main__":
    sys.exit(main())
