"""Resumable partial downloads kept in the output folder (docs/protocol-extensions.md §1.6).

    <outdir>/.sp2p-partial-<key>        the bytes received so far (0600, never the final name)
    <outdir>/.sp2p-partial-<key>.json   what they belong to: announced name and size, source identity

`key` hashes the announced name, size and the sender's source identity, so finding a
candidate needs no directory scan and a partial only ever serves the same file in the
same folder. Everything is opened relative to the folder's descriptor without following
links; a partial that is not a plain file of ours with one link, or is longer than the
announced size, or whose record does not match, is discarded, never offered.
"""

from __future__ import annotations

import contextlib
import json
import os
import stat
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

from sp2p.errors import LocalIOError
from sp2p.fs.fsutil import create_private_file, io_error, open_output_dir, write_all
from sp2p.fs.incoming import IncomingFile
from sp2p.proto.resume import SourceIdentity
from sp2p.proto.sha import sha256_bulk
from sp2p.record import record as plain_record

PARTIAL_PREFIX: Final = ".sp2p-partial-"
RECORD_SUFFIX: Final = ".json"
RECORD_VERSION: Final = 1
#: partials untouched this long are removed on the next receive into the folder
MAX_AGE: Final = 7 * 24 * 3600.0
_RECORD_MAX: Final = 16 * 1024
_HASH_BLOCK: Final = 1024 * 1024


def _record(name: str, size: int, source: SourceIdentity) -> dict[str, Any]:
    return {"version": RECORD_VERSION, "name": name, "size": size, "source": source.to_dict()}


class Partial:
    """One partial for (announced name, size, source) in one output folder."""

    def __init__(self, outdir: Path, name: str, size: int, source: SourceIdentity) -> None:
        self.outdir = outdir
        self.size = size
        self._record = _record(name, size, source)
        key = source.partial_key(name)
        self.file_name = PARTIAL_PREFIX + key
        self.record_name = self.file_name + RECORD_SUFFIX
        self._out_fd = open_output_dir(outdir)
        self._fd = -1
        #: bytes of a matching partial found on disk (0: none)
        self.held = 0
        try:
            self._find()
        except BaseException:
            self.close()
            raise

    # -- lookup -------------------------------------------------------------------------------
    def _find(self) -> None:
        if self._read_record() != self._record:
            self._remove()
            return
        try:
            fd = os.open(self.file_name, os.O_RDWR | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=self._out_fd)
        except OSError:
            self._remove()
            return
        st = os.fstat(fd)
        usable = stat.S_ISREG(st.st_mode) and st.st_uid == os.geteuid() and st.st_nlink == 1
        if not usable or st.st_size > self.size:
            os.close(fd)
            self._remove()
            return
        self._fd, self.held = fd, st.st_size

    def _read_record(self) -> Any:
        try:
            fd = os.open(self.record_name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=self._out_fd)
        except OSError:
            return None
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                return None
            data = os.read(fd, _RECORD_MAX + 1)
        except OSError:
            return None
        finally:
            os.close(fd)
        if len(data) > _RECORD_MAX:
            return None
        try:
            record = json.loads(data)
        except ValueError:
            return None
        if isinstance(record, dict):
            record.pop("created", None)
        return record

    def prefix_hash(self, length: int, tick: Callable[[], None] = lambda: None) -> Any:
        """SHA-256 over our first `length` bytes (`tick` is called between blocks)."""
        if length > self.held or self._fd < 0:
            raise LocalIOError("partial download shorter than its offer")
        sha = sha256_bulk()
        pos = 0
        try:
            while pos < length:
                block = os.pread(self._fd, min(_HASH_BLOCK, length - pos), pos)
                if not block:
                    raise LocalIOError("partial download shrank while it was read")
                sha.update(block)
                pos += len(block)
                tick()
        except OSError as exc:
            raise io_error(f"reading the partial download in {self.outdir}", exc) from None
        return sha

    # -- continuing -----------------------------------------------------------------------------
    def begin(self, offset: int) -> IncomingFile:
        """Write from `offset` on (0: start afresh); the record is on disk before any data byte.

        Returns:
            The file to write into; it is kept on failure and renamed into place on commit.
        """
        try:
            if offset == 0 or self._fd < 0:
                self._remove()
                self._fd = self._create()
                offset = 0
            os.ftruncate(self._fd, offset)
            os.lseek(self._fd, offset, os.SEEK_SET)
            self._write_record()
            self._drop_older_versions()
        except OSError as exc:
            raise io_error(f"preparing the partial download in {self.outdir}", exc) from None
        out = IncomingFile.adopt(
            self.outdir, os.dup(self._out_fd), self.file_name, self._fd, written=offset, limit=self.size
        )
        self._fd = -1  # owned by `out` now
        return out

    def _drop_older_versions(self) -> None:
        """Partials of the same announced name from another version of the source can never
        resume any more (the sender's file changed): remove them."""
        with os.scandir(self._out_fd) as scan:
            records = [
                e.name for e in scan
                if e.name.startswith(PARTIAL_PREFIX) and e.name.endswith(RECORD_SUFFIX)
                and e.name != self.record_name
            ]  # fmt: skip
        for record in records:
            if _announced_name(record, self._out_fd) == self._record["name"]:
                for name in (record[: -len(RECORD_SUFFIX)], record):
                    with contextlib.suppress(OSError):
                        os.unlink(name, dir_fd=self._out_fd)

    def _create(self) -> int:
        flags = os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        return os.open(self.file_name, flags, 0o600, dir_fd=self._out_fd)

    def _write_record(self) -> None:
        body = json.dumps({**self._record, "created": int(time.time())}, sort_keys=True).encode()
        tmp, fd = create_private_file(self.record_name + ".", self._out_fd)
        try:
            write_all(fd, body)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, self.record_name, src_dir_fd=self._out_fd, dst_dir_fd=self._out_fd)

    def forget_record(self) -> None:
        """After the commit: the record has nothing left to describe."""
        with contextlib.suppress(OSError):
            os.unlink(self.record_name, dir_fd=self._out_fd)

    def discard(self) -> None:
        """Remove the partial and its record (nothing worth keeping was written)."""
        self._remove()

    def _remove(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        self.held = 0
        for name in (self.file_name, self.record_name):
            with contextlib.suppress(OSError):
                os.unlink(name, dir_fd=self._out_fd)

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        if self._out_fd >= 0:
            os.close(self._out_fd)
            self._out_fd = -1


@plain_record(frozen=True)
class Removed:
    name: str  #: the announced name from the record (peer text: escape before showing)
    size: int  #: bytes the partial held


def remove_stale(outdir: Path, *, max_age: float = MAX_AGE, now: float | None = None) -> list[Removed]:
    """Delete our partials (and their records) untouched for `max_age`; errors are ignored."""
    now = time.time() if now is None else now
    removed: list[Removed] = []
    try:
        out_fd = open_output_dir(outdir)
    except LocalIOError:
        return removed
    try:
        with os.scandir(out_fd) as scan:
            names = [e.name for e in scan if e.name.startswith(PARTIAL_PREFIX)]
        for name in names:
            if name.endswith(RECORD_SUFFIX) and name[: -len(RECORD_SUFFIX)] in names:
                continue  # handled with its data file
            with contextlib.suppress(OSError):
                st = os.stat(name, dir_fd=out_fd, follow_symlinks=False)
                if not stat.S_ISREG(st.st_mode) or st.st_uid != os.geteuid() or now - st.st_mtime <= max_age:
                    continue
                announced = _announced_name(name + RECORD_SUFFIX, out_fd)
                os.unlink(name, dir_fd=out_fd)
                with contextlib.suppress(OSError):
                    os.unlink(name + RECORD_SUFFIX, dir_fd=out_fd)
                if not name.endswith(RECORD_SUFFIX):
                    removed.append(Removed(announced, st.st_size))
    finally:
        os.close(out_fd)
    return removed


def _announced_name(record_name: str, out_fd: int) -> str:
    with contextlib.suppress(OSError, ValueError):
        fd = os.open(record_name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=out_fd)
        try:
            record = json.loads(os.read(fd, _RECORD_MAX))
        finally:
            os.close(fd)
        if isinstance(record, dict) and isinstance(record.get("name"), str):
            return str(record["name"])
    return "?"
