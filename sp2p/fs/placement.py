"""Commit (W5): move a finished staging directory's top-level entries into the output directory.

`plan_moves` picks a final name for every top-level entry *before* the receiver reports
Complete — ``name``, else ``name (1)`` … — so nothing existing is overwritten and nothing
received is dropped. `make_moves` renames with no-replace semantics; a name taken in between
gets the next free number. Everything is relative to directory fds (sp2p.fs.fsutil) and never
follows a link. The caller (sp2p.fs.extract) owns the fds, the staging directory and the
translation of OSError.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Final

from sp2p.errors import LocalIOError
from sp2p.fs.fsutil import rename_noreplace
from sp2p.fs.names import numbered_names
from sp2p.record import record
from sp2p.term.textsafe import ELLIPSIS

_NS: Final = 1_000_000_000


@record()
class OutputDir:
    path: Path  #: as the user named it, for messages and the returned paths
    fd: int  #: held open: every name below is resolved relative to it


@record()
class Move:
    staged: str  #: name inside the staging directory
    final: str  #: name chosen in the output directory
    is_file: bool  #: a file's number goes before its extension: ``a (1).txt``


def show_name(name: str) -> str:
    """A peer's name, cut for a message; escaped once, where the message is shown (cli.py)."""
    return name if len(name) <= 120 else name[:119] + ELLIPSIS


def free_name(
    staged: str, is_file: bool, out: OutputDir, taken: set[str], *, after: str | None = None
) -> str:
    """The first of ``staged``, ``staged (1)`` … (past `after`) neither in `taken` nor in `out`.

    Raises:
        LocalIOError: every numbered name is taken.
        OSError: from the stat of a candidate.
    """
    candidates = numbered_names(staged, split_extension=is_file)
    if after is not None:
        for candidate in candidates:
            if candidate == after:
                break
    for candidate in candidates:
        if candidate in taken:
            continue
        try:
            os.stat(candidate, dir_fd=out.fd, follow_symlinks=False)
        except FileNotFoundError:
            return candidate
    raise LocalIOError(f"no free name for {show_name(staged)} in {out.path}")


def plan_moves(top: Iterable[tuple[str, bool]], out: OutputDir) -> list[Move]:
    """A final name for each (staged name, is a file) top-level entry, in order."""
    chosen: set[str] = set()
    moves: list[Move] = []
    for staged, is_file in top:
        final = free_name(staged, is_file, out, chosen)
        chosen.add(final)
        moves.append(Move(staged=staged, final=final, is_file=is_file))
    return moves


def make_moves(
    moves: list[Move], staging_fd: int, out: OutputDir, dir_mtimes: Mapping[str, int]
) -> list[Path]:
    """Rename each staged entry to its final name, or the next free one if taken since planning.

    Args:
        dir_mtimes: mtimes of top-level directories, restored after the move.

    Returns:
        The paths created, in order. Raises OSError with what was moved left in place.
    """
    done: list[Path] = []
    taken = {move.final for move in moves}
    for move in moves:
        final = move.final
        while True:
            try:
                rename_noreplace(move.staged, staging_fd, final, out.fd)
                break
            except FileExistsError:  # taken since plan_moves: next number
                final = free_name(move.staged, move.is_file, out, taken, after=final)
                taken.add(final)
        mtime = dir_mtimes.get(move.staged)
        if mtime is not None:
            # moving a directory rewrites its ".." entry, which may touch its mtime
            with contextlib.suppress(OSError):
                os.utime(final, ns=(mtime * _NS, mtime * _NS), dir_fd=out.fd, follow_symlinks=False)
        done.append(out.path / final)
    return done
