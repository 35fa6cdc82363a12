"""Sender side of folder transfers: walk the inputs, then stream them as one tar.

`plan_tar` walks once, up front: it decides every member, checks that the receiver's
name policy will accept the tree (`sp2p.fs.names`), collects notices for what it skips,
and computes the *exact* archive length (headers, PAX headers, padding, end marker),
so Metadata.size is exact. `TarPlan.open()` then produces the bytes (client.md §3.8):
ustar/PAX headers from `sp2p.proto.tar`, lexical walk order, directories as typeflag 5
without a trailing slash, no entry for a non-empty root, two zero blocks at the end and
no record padding.

Never read outside the chosen tree: symbolic links, devices, FIFOs and sockets inside a
tree are skipped with a notice and never followed (W6, T18); each file is opened with
O_NOFOLLOW and must still be the same inode, type and size as when it was planned, and
must not grow, shrink or change while it is read — otherwise LocalIOError, never a
corrupt archive.

The receiving half (streaming extraction) lives in `sp2p.fs.extract`, which the sending side
never loads.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator, Sequence
from typing import Final, Protocol

from sp2p.errors import LocalIOError, LocalProtocolError, UsageError
from sp2p.fs.names import MAX_PATH_BYTES, UnsafeNameError, collision_key, member_components
from sp2p.proto.tar import END_OF_ARCHIVE, encode_member_header, padded_size, padding
from sp2p.record import field, record

__all__ = [
    "MAX_ENTRIES",
    "PieceReader",
    "SourceReader",
    "TarPlan",
    "plan_tar",
    "kind_of",
    "read_verified",
    "top_level_name",
]

#: the receiver's limit (client.md Appendix A); refusing up front beats failing at the end
MAX_ENTRIES: Final = 100_000
_READ_SIZE: Final = 256 * 1024
_OPEN_FLAGS: Final = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK


class SourceReader(Protocol):
    """What the transfer reads from: full `n`-byte pieces until the last, then b""."""

    def read(self, n: int) -> bytes: ...

    def close(self) -> None: ...


@record(frozen=True)
class _Entry:
    arcname: str
    path: str  #: file-system path (for messages and opening)
    is_dir: bool
    size: int
    mode: int
    mtime: int  #: whole seconds, as written into the header
    snapshot: os.stat_result  #: lstat at planning time; the file must still match it

    def header(self) -> bytes:
        return encode_member_header(
            self.arcname, is_dir=self.is_dir, size=self.size, mode=self.mode, mtime=self.mtime
        )


@record(frozen=True)
class TarPlan:
    """Every member of the archive, decided before the first byte is sent."""

    entries: tuple[_Entry, ...]
    size: int  #: exact length of the stream `open()` produces
    file_count: int  #: regular files (Metadata.fileCount)
    notices: tuple[str, ...] = field(default=())  #: what was skipped, for the CLI to print

    def open(self) -> PieceReader:
        """A reader over the archive bytes; LocalIOError if a file changed meanwhile."""
        return PieceReader(self._pieces(), expected_size=self.size)

    def _pieces(self) -> Iterator[bytes]:
        for entry in self.entries:
            yield entry.header()
            if not entry.is_dir:
                yield from read_verified(entry.path, entry.snapshot)
                yield padding(entry.size)
        yield END_OF_ARCHIVE


class PieceReader:
    """Turns an iterator of byte pieces into ``read(n)`` returning full pieces until EOF."""

    def __init__(self, pieces: Iterator[bytes], *, expected_size: int | None = None) -> None:
        self._pieces: Iterator[bytes] | None = pieces
        self._buf = bytearray()
        self._expected = expected_size
        self.position = 0  #: bytes handed out so far

    def read(self, n: int) -> bytes:
        if n <= 0:
            raise ValueError("read size must be positive")
        if not self._buf:
            piece = self._next_piece()
            if len(piece) == n:  # the common case (whole-chunk file pieces): no copies
                self.position += n
                return piece
            self._buf += piece
        while len(self._buf) < n and self._pieces is not None:
            self._buf += self._next_piece()
        out = bytes(self._buf[:n])
        del self._buf[:n]
        self.position += len(out)
        return out

    def _next_piece(self) -> bytes:
        """The next piece, b"" at the end (where the total is checked against the plan)."""
        if self._pieces is None:
            return b""
        try:
            return next(self._pieces)
        except StopIteration:
            self._pieces = None
            if self._expected is not None and self.position + len(self._buf) != self._expected:
                raise LocalProtocolError("tar stream length differs from its plan") from None
            return b""

    def close(self) -> None:
        if self._pieces is not None and hasattr(self._pieces, "close"):
            self._pieces.close()  # runs the generator's finally: closes an open file
        self._pieces = None
        self._buf.clear()


def read_verified(path: str, snapshot: os.stat_result) -> Iterator[bytes]:
    """Yield the bytes of regular file `path`, which must still match `snapshot`.

    Raises:
        LocalIOError: the file vanished, was replaced (other inode or no longer a
            regular file, e.g. swapped for a link or FIFO), or changed size or content
            (grew, shrank, modified) before or while it was read.
    """
    try:
        fd = os.open(path, _OPEN_FLAGS)
    except OSError as exc:
        raise LocalIOError(f"cannot read {path}: {exc.strerror}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or (st.st_dev, st.st_ino) != (
            snapshot.st_dev,
            snapshot.st_ino,
        ):
            raise LocalIOError(f"{path} was replaced after it was scanned; nothing was sent")
        remaining = snapshot.st_size
        if st.st_size != remaining:
            raise _changed(path, "changed size")
        while remaining:
            try:
                chunk = os.read(fd, min(remaining, _READ_SIZE))
            except OSError as exc:
                raise LocalIOError(f"cannot read {path}: {exc.strerror}") from None
            if not chunk:
                raise _changed(path, "shrank")
            remaining -= len(chunk)
            yield chunk
        if os.read(fd, 1):
            raise _changed(path, "grew")
        after = os.fstat(fd)
        if after.st_size != snapshot.st_size or after.st_mtime_ns != snapshot.st_mtime_ns:
            raise _changed(path, "was modified")
    finally:
        os.close(fd)


def _changed(path: str, how: str) -> LocalIOError:
    return LocalIOError(
        f"{path} {how} while being sent; the transfer was stopped",
        hint="send it again once nothing is writing to it",
    )


def not_utf8_error(path: str) -> LocalIOError:
    """The error for an input whose name has bytes that are not UTF-8 (receivers and the
    wire want UTF-8); the name is shown with U+FFFD where those bytes are."""
    shown = os.fsencode(path).decode("utf-8", "replace")
    return LocalIOError(f"cannot send {shown}: its name is not valid UTF-8",
                        hint="rename it (a single file can also be sent with -name)")


def stat_input(raw: str | os.PathLike[str]) -> tuple[str, os.stat_result]:
    """The resolved path of a command-line input and its stat (links followed: the user named it).

    Raises:
        LocalIOError: it does not exist or cannot be reached.
    """
    path = os.path.realpath(raw)
    try:
        return path, os.stat(path)
    except OSError as exc:
        raise LocalIOError(f"cannot send {raw}: {exc.strerror}") from exc


def top_level_name(path: str | os.PathLike[str]) -> str:
    """The name an input path is sent under: its last component after normalisation."""
    name = os.path.basename(os.path.normpath(os.path.abspath(path)))
    if not name:
        raise UsageError(f"cannot send {path}: it has no name (the file system root?)")
    return name


class _Planner:
    def __init__(self) -> None:
        self.entries: list[_Entry] = []
        self.notices: list[str] = []
        self.keys: dict[tuple[str, ...], str] = {}
        self.size = len(END_OF_ARCHIVE)
        self.file_count = 0

    def add(self, arcname: str, path: str, st: os.stat_result) -> None:
        if len(self.entries) >= MAX_ENTRIES:
            raise LocalIOError(f"too many entries to send (more than {MAX_ENTRIES})")
        self._check_name(arcname, path)
        is_dir = stat.S_ISDIR(st.st_mode)
        if not is_dir and not os.access(path, os.R_OK):
            # refuse before sending rather than stop half-way (T18)
            raise LocalIOError(f"cannot send {path}: permission denied")
        entry = _Entry(
            arcname=arcname,
            path=path,
            is_dir=is_dir,
            size=0 if is_dir else st.st_size,
            mode=st.st_mode & 0o777,
            mtime=st.st_mtime_ns // 1_000_000_000,
            snapshot=st,
        )
        self.entries.append(entry)
        self.size += len(entry.header()) + padded_size(entry.size)
        if not is_dir:
            self.file_count += 1

    def _check_name(self, arcname: str, path: str) -> None:
        try:
            encoded = arcname.encode("utf-8")
        except UnicodeEncodeError:
            raise not_utf8_error(path) from None
        if len(encoded) > MAX_PATH_BYTES:
            raise LocalIOError(f"cannot send {path}: path longer than {MAX_PATH_BYTES} bytes")
        try:
            parts = member_components(arcname)
        except UnsafeNameError as exc:
            raise LocalIOError(f"cannot send {path}: {exc} (receivers refuse it)") from None
        key = tuple(collision_key(part) for part in parts)
        other = self.keys.setdefault(key, arcname)
        if other != arcname:
            raise LocalIOError(
                f"cannot send both {other!r} and {arcname!r}: their names clash on "
                "case-insensitive or Unicode-normalising file systems",
                hint="rename one of them",
            )

    def walk(self, directory: str, prefix: str) -> int:
        """Add every descendant of `directory` in lexical order; returns how many."""
        try:
            with os.scandir(directory) as scan:
                children = sorted(scan, key=lambda e: e.name)
        except OSError as exc:
            raise LocalIOError(f"cannot read directory {directory}: {exc.strerror}") from None
        added = 0
        for child in children:
            arcname = f"{prefix}/{child.name}"
            try:
                st = child.stat(follow_symlinks=False)
            except FileNotFoundError:
                continue  # vanished between listing and stat: it was never part of the tree
            except OSError as exc:
                raise LocalIOError(f"cannot read {child.path}: {exc.strerror}") from None
            if stat.S_ISDIR(st.st_mode):
                self.add(arcname, child.path, st)
                added += 1 + self.walk(child.path, arcname)
            elif stat.S_ISREG(st.st_mode):
                self.add(arcname, child.path, st)
                added += 1
            else:
                self.notices.append(f"skipped {kind_of(st.st_mode)} {arcname}")
        return added


def kind_of(mode: int) -> str:
    """Words for a non-regular, non-directory file type (for notices and errors)."""
    if stat.S_ISLNK(mode):
        return "symbolic link"
    if stat.S_ISFIFO(mode):
        return "FIFO"
    if stat.S_ISSOCK(mode):
        return "socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "device"
    return "special file"


def plan_tar(paths: Sequence[str | os.PathLike[str]]) -> TarPlan:
    """Plan one archive from input paths (client.md §3.7, §3.8).

    A directory contributes ``<name>/<relative path>`` for every descendant (an empty
    directory contributes itself, so it is not lost); a regular file contributes
    ``<name>``. Links given on the command line are followed (the user named them);
    links inside a tree never are.

    Raises:
        UsageError: two inputs share a name.
        LocalIOError: an input is missing, unreadable or special, or the tree breaks a
            receiver limit (entries, name length, depth, portable-name clash).
    """
    planner = _Planner()
    seen: dict[str, tuple[str, str]] = {}  # collision key -> (where the input leads, as given)
    for raw in paths:
        name = top_level_name(raw)
        where = os.path.realpath(raw)  # `d`, `./d/` and a link to d are one input (links are followed)
        other = seen.get(collision_key(name))
        if other is not None:  # a receiver would refuse the archive with the name twice in it
            if other[0] == where:
                same = f"{other[1]} and {raw} are the same input" if other[1] != str(raw) else None
                raise UsageError(same or f"{raw} is given twice", hint="name each input once")
            raise UsageError(
                f"two inputs would both be sent as {name!r}: {other[1]} and {raw}",
                hint="rename one, or send them in separate transfers",
            )
        seen[collision_key(name)] = (where, str(raw))
        path, st = stat_input(raw)
        if stat.S_ISREG(st.st_mode):
            planner.add(name, path, st)
        elif stat.S_ISDIR(st.st_mode):
            if planner.walk(path, name) == 0:
                # an empty folder gets its root entry, or it would arrive as nothing
                planner.add(name, path, st)
        else:
            raise LocalIOError(
                f"cannot send {raw}: it is a {kind_of(st.st_mode)}, not a file or folder",
                hint="to send a stream, pipe it into `sp2p send -`",
            )
    return TarPlan(
        entries=tuple(planner.entries),
        size=planner.size,
        file_count=planner.file_count,
        notices=tuple(planner.notices),
    )
