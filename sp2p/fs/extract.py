"""Receiver side of folder transfers: streaming, all-or-nothing tar extraction.

One state machine over the parser's events: every hostile-archive rule (security-cases
T5–T12) is a check inside it, kept together so that list stays in one place; moving the
result into the output directory is sp2p.fs.placement's.

The transfer feeds decrypted bytes as they arrive (`feed`), then calls `finish` at end of
data. Members are written only inside a fresh 0700 staging directory
``.sp2p-extract-*`` in the output directory, using directory-fd-relative calls with
O_NOFOLLOW/O_EXCL, so no link — planted in the archive, pre-existing in the output
directory or swapped in during extraction — is ever followed (T6, T8).

Policy (client.md §3.9 plus security-cases T5–T9, T11, T12): only regular files and
directories; links, devices, FIFOs, contiguous and sparse members reject the *whole*
archive, as do unsafe names (`sp2p.fs.names.member_components`), duplicates and
case/Unicode collisions, more than 100 000 entries, and file data beyond the caller's
cap (the announced size). Files get 0644, or 0755 when the sender set any x bit;
directories 0755; the umask applies; no setuid/sticky, owners or xattrs; mtimes are
restored, clamped to 1970..2100. On any rejection the staging directory is removed.

Commit (W5, sp2p.fs.placement): `prepare_commit` picks a final name for every top-level
entry *before* the receiver reports Complete, so nothing existing is overwritten and
nothing received is dropped; `commit` renames with no-replace semantics and removes the
staging directory. An empty archive commits as an empty directory named after the
announced name.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Final

from sp2p.errors import LocalIOError, LocalProtocolError, RemoteProtocolError
from sp2p.fs.fsutil import (
    STAGING_PREFIX,
    io_error,
    make_private_dir,
    open_output_dir,
    open_subdir,
    remove_tree,
    write_all,
)
from sp2p.fs.names import UnsafeNameError, collision_key, member_components, safe_name
from sp2p.fs.placement import Move, OutputDir, make_moves, plan_moves, show_name
from sp2p.proto.tar import (
    NEED_DATA,
    ArchiveEnd,
    MemberData,
    MemberEnd,
    MemberHeader,
    MemberKind,
    TarParser,
)
from sp2p.record import record

MAX_ENTRIES: Final = 100_000
_MTIME_MAX: Final = 4_102_444_800  # 2100-01-01: later mtimes are nonsense, clamp
_FILE_FLAGS: Final = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
_NS: Final = 1_000_000_000


class ArchiveRejected(RemoteProtocolError):
    """The peer's archive broke the extraction policy; nothing was extracted."""


@record()
class _Node:
    kind: MemberKind  #: FILE or DIRECTORY
    parts: tuple[str, ...]  #: real (sanitised) path components inside staging
    explicit: bool  #: a member named it (False: created as a parent of one)


class TarExtractor:
    """Extract one tar stream into a staging directory, then commit it atomically.

    Use as a context manager, or call `abort` on every failure path; `feed` and
    `finish` abort by themselves when they raise.
    """

    def __init__(
        self,
        outdir: str | os.PathLike[str],
        *,
        max_unpacked: int,
        empty_name: str = "received-folder",
        max_entries: int = MAX_ENTRIES,
    ) -> None:
        """
        Args:
            outdir: existing output directory (LocalIOError if missing).
            max_unpacked: cap on the sum of regular-file sizes, normally Metadata.size
                (Go's estimate and our exact size are both at least that sum).
            empty_name: announced name, used when the archive holds no entry at all.
            max_entries: member limit (100 000, as Go).
        """
        self.outdir = Path(outdir)
        self._max_unpacked = max_unpacked
        self._max_entries = max_entries
        self._empty_name = safe_name(empty_name, fallback="received-folder")
        self._out_fd = open_output_dir(self.outdir)
        self._out = OutputDir(path=self.outdir, fd=self._out_fd)
        try:
            self.staging_name = make_private_dir(STAGING_PREFIX, self._out_fd)
            self._staging_fd = open_subdir(self.staging_name, self._out_fd)
        except OSError as exc:
            os.close(self._out_fd)
            raise io_error(f"creating a staging directory in {self.outdir}", exc) from None
        self._parser = TarParser()
        self._nodes: dict[tuple[str, ...], _Node] = {}
        self._top: list[str] = []  # real names of top-level entries, first-seen order
        self._dir_mtimes: list[tuple[tuple[str, ...], int]] = []
        self._cached: tuple[tuple[str, ...], int] | None = None
        self._file_fd: int | None = None
        self._file_mtime = 0
        self._plan: list[Move] | None = None
        self._closed = False
        self.entries = 0  #: members accepted so far
        self.file_count = 0  #: regular files among them
        self.unpacked = 0  #: sum of regular-file sizes
        self.finished = False

    # ------------------------------------------------------------------ feeding

    def feed(self, data: bytes) -> None:
        """Extract what `data` completes. Raises ArchiveRejected or LocalIOError."""
        self._guard(lambda: self._run(data))

    def finish(self, expected_file_count: int | None = None) -> None:
        """End of data: the end-of-archive marker must have arrived.

        Args:
            expected_file_count: Metadata.fileCount when announced; a different number
                of regular files rejects the archive.
        """
        self._guard(lambda: self._finish(expected_file_count))

    def _guard(self, step: Callable[[], None]) -> None:
        if self._closed:
            raise LocalProtocolError("extractor already closed")
        try:
            step()
        except (RemoteProtocolError, LocalIOError):
            self.abort()
            raise
        except OSError as exc:
            self.abort()
            raise io_error(f"extracting into {self.outdir}", exc) from None

    def _run(self, data: bytes) -> None:
        self._parser.receive_data(data)
        while True:
            event = self._parser.next_event()
            if event is NEED_DATA:
                return
            if isinstance(event, MemberHeader):
                self._start(event)
            elif isinstance(event, MemberData):
                if self._file_fd is None:
                    raise LocalProtocolError("tar data outside a regular file")
                write_all(self._file_fd, event.data)
            elif isinstance(event, MemberEnd):
                self._end_member()
            elif isinstance(event, ArchiveEnd):
                self.finished = True

    def _finish(self, expected_file_count: int | None) -> None:
        self._run(b"")
        if not self.finished:
            raise LocalProtocolError("tar parser ended without an end marker")
        if expected_file_count is not None and expected_file_count != self.file_count:
            raise ArchiveRejected(
                f"archive holds {self.file_count} files, the sender announced "
                f"{expected_file_count}"
            )
        self._close_cached()
        # directory mtimes last: creating their contents changed them; deepest first
        for parts, mtime in sorted(self._dir_mtimes, key=lambda item: -len(item[0])):
            self._utime(parts, mtime)

    # ------------------------------------------------------------------ members

    def _reject(self, what: str) -> ArchiveRejected:
        return ArchiveRejected(f"refusing the received folder: {what}")

    def _start(self, member: MemberHeader) -> None:
        self.entries += 1
        if self.entries > self._max_entries:
            raise self._reject(f"more than {self._max_entries} entries")
        if member.kind not in (MemberKind.FILE, MemberKind.DIRECTORY):
            raise self._reject(
                f"{show_name(member.name)} is a {member.kind.value}; only regular files and "
                "directories are accepted"
            )
        try:
            parts = member_components(member.name)
        except UnsafeNameError as exc:
            raise self._reject(f"unsafe member name {show_name(member.name)}: {exc}") from None
        is_dir = member.kind is MemberKind.DIRECTORY
        if not parts:
            if is_dir:
                return  # "./": the archive root itself
            raise self._reject("a file member without a name")
        keys = tuple(collision_key(p) for p in parts)
        self._ensure_parents(parts, keys, member.name)
        mtime = min(max(member.mtime, 0), _MTIME_MAX)
        existing = self._nodes.get(keys)
        if existing is not None:
            if is_dir and existing.kind is MemberKind.DIRECTORY and not existing.explicit:
                if existing.parts != parts:
                    raise self._clash(member.name, existing.parts)
                existing.explicit = True  # an implicit parent, now named: only its mtime
                self._dir_mtimes.append((parts, mtime))
                return
            raise self._clash(member.name, existing.parts)
        parent_fd = self._dir_fd(parts[:-1])
        if is_dir:
            os.mkdir(parts[-1], 0o755, dir_fd=parent_fd)
            self._dir_mtimes.append((parts, mtime))
        else:
            if self.unpacked + member.size > self._max_unpacked:
                raise self._reject(
                    f"it unpacks to more than the announced {self._max_unpacked} bytes"
                )
            self.unpacked += member.size
            self.file_count += 1
            mode = 0o755 if member.mode & 0o111 else 0o644
            self._file_fd = os.open(parts[-1], _FILE_FLAGS, mode, dir_fd=parent_fd)
            self._file_mtime = mtime
        self._record(parts, keys, member.kind, explicit=True)

    def _clash(self, name: str, other: tuple[str, ...]) -> ArchiveRejected:
        first = "/".join(other)
        if first == "/".join(member_components(name)):
            return self._reject(f"{show_name(name)} appears twice")
        return self._reject(
            f"{show_name(name)} clashes with {show_name(first)} (same name ignoring case or "
            "Unicode normalisation, or a file and a directory)"
        )

    def _ensure_parents(self, parts: tuple[str, ...], keys: tuple[str, ...], name: str) -> None:
        for depth in range(1, len(parts)):
            node = self._nodes.get(keys[:depth])
            if node is None:
                os.mkdir(parts[depth - 1], 0o755, dir_fd=self._dir_fd(parts[: depth - 1]))
                self._record(parts[:depth], keys[:depth], MemberKind.DIRECTORY, explicit=False)
            elif node.kind is not MemberKind.DIRECTORY or node.parts != parts[:depth]:
                raise self._clash(name, node.parts)

    def _record(
        self, parts: tuple[str, ...], keys: tuple[str, ...], kind: MemberKind, *, explicit: bool
    ) -> None:
        self._nodes[keys] = _Node(kind=kind, parts=parts, explicit=explicit)
        if len(parts) == 1:
            self._top.append(parts[0])

    def _end_member(self) -> None:
        if self._file_fd is None:
            return
        fd, self._file_fd = self._file_fd, None
        try:
            os.utime(fd, ns=(self._file_mtime * _NS, self._file_mtime * _NS))
        finally:
            os.close(fd)

    def _dir_fd(self, parts: tuple[str, ...]) -> int:
        """An fd for staging/<parts>, opened link by link without following links."""
        if not parts:
            return self._staging_fd
        if self._cached is not None and self._cached[0] == parts:
            return self._cached[1]
        self._close_cached()
        fd = self._staging_fd
        for part in parts:
            next_fd = open_subdir(part, fd)
            if fd != self._staging_fd:
                os.close(fd)
            fd = next_fd
        self._cached = (parts, fd)
        return fd

    def _close_cached(self) -> None:
        if self._cached is not None:
            os.close(self._cached[1])
            self._cached = None

    def _utime(self, parts: tuple[str, ...], mtime: int) -> None:
        os.utime(
            parts[-1],
            ns=(mtime * _NS, mtime * _NS),
            dir_fd=self._dir_fd(parts[:-1]),
            follow_symlinks=False,
        )

    # ------------------------------------------------------------------ commit

    def prepare_commit(self) -> list[Path]:
        """Choose final, non-clashing names for the top-level entries (before Complete).

        Returns:
            The output paths `commit` will create, unless something takes a name in
            between (then the next free ``(n)`` name is used).
        """
        if not self.finished or self._closed:
            raise LocalProtocolError("prepare_commit before finish")
        if self._plan is not None:
            return [self.outdir / move.final for move in self._plan]
        try:
            if not self._top:
                os.mkdir(self._empty_name, 0o755, dir_fd=self._staging_fd)
                self._record(
                    (self._empty_name,),
                    (collision_key(self._empty_name),),
                    MemberKind.DIRECTORY,
                    explicit=False,
                )
            plan = plan_moves(((name, self._is_file(name)) for name in self._top), self._out)
        except OSError as exc:
            self.abort()
            raise io_error(f"preparing the output in {self.outdir}", exc) from None
        self._plan = plan
        return [self.outdir / move.final for move in plan]

    def _is_file(self, staged: str) -> bool:
        node = self._nodes.get((collision_key(staged),))
        return node is not None and node.kind is MemberKind.FILE

    def commit(self) -> list[Path]:
        """Move every top-level entry into the output directory; never overwrites.

        Returns:
            The paths created, in archive order.
        """
        if self._plan is None:
            self.prepare_commit()
        if self._plan is None:
            raise LocalProtocolError("no commit plan")
        top_mtimes = {parts[0]: mtime for parts, mtime in self._dir_mtimes if len(parts) == 1}
        try:
            done = make_moves(self._plan, self._staging_fd, self._out, top_mtimes)
            os.rmdir(self.staging_name, dir_fd=self._out_fd)
        except OSError as exc:
            # what was moved stays (complete and verified); the rest stays in staging
            self._close_fds()
            raise io_error(
                f"moving received files into {self.outdir} (kept in {self.staging_name})", exc
            ) from None
        self._close_fds()
        return done

    def abort(self) -> None:
        """Remove the staging directory and everything in it; idempotent."""
        if self._closed:
            return
        if self._file_fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._file_fd)
            self._file_fd = None
        with contextlib.suppress(OSError):
            remove_tree(self.staging_name, self._out_fd)
        self._close_fds()

    def _close_fds(self) -> None:
        with contextlib.suppress(OSError):
            self._close_cached()
        for fd in (self._staging_fd, self._out_fd):
            with contextlib.suppress(OSError):
                os.close(fd)
        self._closed = True

    def __enter__(self) -> TarExtractor:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.abort()  # no-op after commit
