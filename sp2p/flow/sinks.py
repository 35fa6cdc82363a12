"""Where received bytes go: a verified single file, a streamed folder extraction, or stdout."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import BinaryIO

from sp2p.errors import LocalIOError
from sp2p.extract import TarExtractor
from sp2p.files import IncomingFile, check_free_space
from sp2p.proto.messages import Metadata


class FileSink:
    """Temp file in the output folder, renamed to a free safe name once verified."""

    def __init__(self, outdir: Path, meta: Metadata) -> None:
        self._meta = meta
        # a single file's size is exact: not one byte more may land on disk (T2)
        self._file = IncomingFile(outdir, limit=None if meta.stream_mode else meta.size)
        self.saved: list[Path] = []

    def write(self, data: bytes) -> None:
        self._file.write(data)

    def commit(self) -> None:
        self.saved = [self._file.commit(self._meta.name)]

    def abort(self) -> None:
        self._file.abort()


class FolderSink:
    """Streaming tar extraction into a private staging folder, moved into place once verified."""

    def __init__(self, outdir: Path, meta: Metadata) -> None:
        self._meta = meta
        self._ex = TarExtractor(outdir, max_unpacked=meta.size, empty_name=meta.name)
        self.saved: list[Path] = []

    def write(self, data: bytes) -> None:
        self._ex.feed(data)

    def commit(self) -> None:
        self._ex.finish(self._meta.file_count or None)
        self._ex.prepare_commit()
        self.saved = self._ex.commit()

    def abort(self) -> None:
        self._ex.abort()


class StdoutSink:
    """The payload only, straight to stdout (folders arrive as a raw tar stream)."""

    def __init__(self, stream: BinaryIO | None = None) -> None:
        self._out = stream if stream is not None else sys.stdout.buffer
        self.saved: list[Path] = []

    def write(self, data: bytes) -> None:
        try:
            self._out.write(data)
        except BrokenPipeError:
            raise LocalIOError("standard output was closed by the reader") from None
        except OSError as exc:
            raise LocalIOError(f"cannot write to standard output: {exc.strerror or exc}") from None

    def commit(self) -> None:
        try:
            self._out.flush()
        except OSError as exc:
            raise LocalIOError(f"cannot write to standard output: {exc.strerror or exc}") from None

    def abort(self) -> None:
        """Bytes already written cannot be taken back; the exit status says it failed."""


def make_sink(meta: Metadata, *, outdir: Path, to_stdout: bool) -> FileSink | FolderSink | StdoutSink:
    if to_stdout:
        return StdoutSink()
    if meta.size:
        check_free_space(outdir, meta.size)
    if meta.is_folder:
        return FolderSink(outdir, meta)
    return FileSink(outdir, meta)
