"""What to send (client.md §3.7).

`inspect_sources` classifies the command-line inputs — one regular file, one directory,
several paths, or ``-`` for stdin — into a `SendSource` that carries the Metadata fields
and opens a `SourceReader` whose ``read(n)`` returns full ``n``-byte pieces until the end
(so the transfer sends full 256 KiB chunks, W4). Where a received file lands is
`sp2p.fs.incoming`.
"""

from __future__ import annotations

import functools
import mimetypes
import os
import stat
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, BinaryIO, Final

from sp2p.errors import LocalIOError, UsageError
from sp2p.fs.fsutil import io_error
from sp2p.record import field, record

if TYPE_CHECKING:
    from sp2p.fs.archive import SourceReader

DEFAULT_STREAM_NAME: Final = "stdin"
OCTET_STREAM: Final = "application/octet-stream"
#: compressed-file suffixes Python's mimetypes reports as an "encoding" instead of a type
_ENCODING_TYPES: Final = {
    ".gz": "application/gzip",
    ".tgz": "application/gzip",
    ".bz2": "application/x-bzip2",
    ".xz": "application/x-xz",
    ".zst": "application/zstd",
    ".br": "application/x-brotli",
    ".z": "application/x-compress",
}


@functools.cache
def _builtin_types() -> dict[str, str]:
    # Python's built-in table only: /etc/mime.types differs between machines
    table = dict(mimetypes.MimeTypes(filenames=()).types_map[True])
    table.update({".js": "text/javascript", ".mjs": "text/javascript"})  # as Go (RFC 9239)
    return table


def mime_type(name: str) -> str:
    """MIME type from the extension, as Go's mime.TypeByExtension reports it.

    text/* gets ``; charset=utf-8`` (Go's convention); unknown → application/octet-stream.
    """
    ext = os.path.splitext(name)[1]
    if not ext:
        return OCTET_STREAM
    table = _builtin_types()
    guessed = table.get(ext) or table.get(ext.lower())
    if guessed is None:
        return _ENCODING_TYPES.get(ext.lower(), OCTET_STREAM)
    if guessed.startswith("text/"):
        return guessed + "; charset=utf-8"
    return guessed


@record(frozen=True)
class SendSource:
    """The classified input: Metadata fields plus a way to read the body."""

    name: str
    size: int  #: exact body length (0 for a stream)
    mime_type: str  #: "" for folders and streams
    is_folder: bool
    stream_mode: bool
    file_count: int  #: regular files in a folder (0 otherwise)
    opener: Callable[[], SourceReader] = field(repr=False, compare=False)
    notices: tuple[str, ...] = ()  #: skipped links/specials, for the CLI to print
    path: str | None = None  #: the resolved path of a single regular file (resume reads it again)

    def open(self) -> SourceReader:
        """Start reading the body; call once."""
        return self.opener()


class StreamReader:
    """``read(n)`` over a pipe/stdin that waits until `n` bytes or end of input."""

    def __init__(self, stream: BinaryIO) -> None:
        self._stream = stream
        self.position = 0

    def read(self, n: int) -> bytes:
        parts: list[bytes] = []
        want = n
        while want:
            try:
                piece = self._stream.read(want)
            except OSError as exc:
                raise io_error("reading standard input", exc) from None
            if not piece:
                break
            parts.append(piece)
            want -= len(piece)
        out = b"".join(parts)
        self.position += len(out)
        return out

    def close(self) -> None:
        """The caller owns the stream (stdin); nothing to release."""


def inspect_sources(
    paths: Sequence[str],
    *,
    stdin: BinaryIO | None = None,
    stream_name: str | None = None,
) -> SendSource:
    """Classify the inputs of ``sp2p send`` (client.md §3.7).

    Args:
        paths: the positional arguments; ``-`` means standard input and must be alone.
        stdin: the binary stream for ``-`` (default: ``sys.stdin.buffer``, if stdin is open).
        stream_name: the ``-name`` flag, announced for a stream (default ``stdin``).

    Raises:
        UsageError: no input, ``-`` mixed with paths, or duplicate names.
        LocalIOError: a missing/unreadable/special input, an unsendable tree, or ``-`` with
            standard input closed.
    """
    if not paths:
        raise UsageError("nothing to send", hint="give a file, a folder, or - for stdin")
    if "-" in paths:
        if len(paths) > 1:
            raise UsageError("'-' (standard input) must be the only input")
        source = stdin if stdin is not None else getattr(sys.stdin, "buffer", None)
        if source is None:  # closed at start (`<&-`): Python leaves sys.stdin None
            raise LocalIOError("cannot send -: standard input is closed",
                               hint="pipe or redirect the data into `sp2p send -`")
        return SendSource(
            name=stream_name or DEFAULT_STREAM_NAME,
            size=0,
            mime_type="",
            is_folder=False,
            stream_mode=True,
            file_count=0,
            opener=lambda: StreamReader(source),
        )
    if len(paths) == 1:
        single = _single_file(paths[0])
        if single is not None:
            return single
    from sp2p.fs.archive import plan_tar, top_level_name  # folders only: the tar writer

    plan = plan_tar(paths)
    name = top_level_name(paths[0]) if len(paths) == 1 else f"{len(paths)}-files"
    return SendSource(
        name=name,
        size=plan.size,
        mime_type="",
        is_folder=True,
        stream_mode=False,
        file_count=plan.file_count,
        notices=plan.notices,
        opener=plan.open,
    )


def _single_file(raw: str) -> SendSource | None:
    """A SendSource for one regular file, or None when `raw` is a directory."""
    from sp2p.fs.archive import PieceReader, kind_of, read_verified, stat_input, top_level_name

    path, st = stat_input(raw)
    if stat.S_ISDIR(st.st_mode):
        return None
    if not stat.S_ISREG(st.st_mode):
        raise LocalIOError(
            f"cannot send {raw}: it is a {kind_of(st.st_mode)}, not a file or folder",
            hint="to send a stream, pipe it into `sp2p send -`",
        )
    if not os.access(path, os.R_OK):
        raise LocalIOError(f"cannot send {raw}: permission denied")
    name = top_level_name(raw)
    return SendSource(
        name=name,
        size=st.st_size,
        mime_type=mime_type(name),
        is_folder=False,
        stream_mode=False,
        file_count=0,
        opener=lambda: PieceReader(read_verified(path, st), expected_size=st.st_size),
        path=path,
    )
