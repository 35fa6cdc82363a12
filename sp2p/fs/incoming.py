"""Where a received single file or stream lands (client.md §3.9, W8, T13, T16, T17).

`IncomingFile` writes to a 0600 temp file ``.sp2p-recv-*`` in the output directory and,
once verified, places it under `sp2p.fs.names.safe_name` of the announced name — or
``base (1).ext`` … — with link-then-unlink (or RENAME_NOREPLACE) so an existing file is
never replaced, even by a racing process. The final mode is 0644 minus the umask.
`clean_stale` removes our own temp/staging leftovers older than a day;
`check_free_space` refuses a transfer that cannot fit. What to send is `sp2p.fs.outgoing`.
"""

from __future__ import annotations

import contextlib
import os
import stat
import time
from pathlib import Path
from typing import Final

from sp2p.errors import LocalIOError, LocalProtocolError, RemoteProtocolError
from sp2p.fs.fsutil import (
    STAGING_PREFIX,
    create_private_file,
    current_umask,
    io_error,
    open_output_dir,
    remove_tree,
    rename_noreplace,
    write_all,
)
from sp2p.fs.names import numbered_names, safe_name

TEMP_PREFIX: Final = ".sp2p-recv-"
STALE_AFTER: Final = 24 * 3600.0


def check_free_space(outdir: str | os.PathLike[str], needed: int) -> None:
    """Refuse a transfer that cannot fit in `outdir` (T13a).

    Raises:
        LocalIOError: fewer than `needed` bytes are available to us.
    """
    try:
        fs = os.statvfs(outdir)
    except OSError as exc:
        raise io_error(f"checking free space in {outdir}", exc) from None
    free = fs.f_bavail * fs.f_frsize
    if needed > free:
        raise LocalIOError(
            f"not enough free space in {outdir}: {needed} bytes needed, {free} available",
            hint="free some space or choose another folder with -output",
        )


class IncomingFile:
    """A received single file: temp file first, final name only after verification.

    Use as a context manager (aborts unless committed) or call `abort` on failure.
    """

    def __init__(self, outdir: str | os.PathLike[str], *, limit: int | None = None) -> None:
        """Create ``.sp2p-recv-*`` (0600) in the existing directory `outdir`.

        Args:
            outdir: the output directory; it must exist (it is never created).
            limit: the announced size; writing past it raises RemoteProtocolError
                (None for streams, whose size is unknown).

        Raises:
            LocalIOError: outdir missing or not writable.
        """
        self.outdir = Path(outdir)
        self._limit = limit
        self._out_fd = open_output_dir(self.outdir)
        try:
            self.temp_name, self._fd = create_private_file(TEMP_PREFIX, self._out_fd)
        except OSError as exc:
            os.close(self._out_fd)
            raise io_error(f"creating a file in {self.outdir}", exc) from None
        self._closed = False
        self._chosen: tuple[str, str] | None = None  # (wanted, free name) from prepare_commit
        self.written = 0
        #: a resumable partial stays on failure (sp2p.fs.partials); a temp file never does
        self.keep_on_abort = False

    @classmethod
    def adopt(
        cls, outdir: Path, out_fd: int, name: str, fd: int, *, written: int, limit: int
    ) -> IncomingFile:
        """Continue an existing file `name` (open for writing at `written`) under `out_fd`.

        Takes ownership of both descriptors; the file is kept on abort (a resumable partial).
        """
        self = cls.__new__(cls)
        self.outdir, self._limit, self._out_fd = outdir, limit, out_fd
        self.temp_name, self._fd = name, fd
        self._closed, self._chosen, self.written = False, None, written
        self.keep_on_abort = True
        return self

    @property
    def temp_path(self) -> Path:
        return self.outdir / self.temp_name

    def write(self, data: bytes | memoryview) -> None:
        """Append `data`.

        Raises:
            RemoteProtocolError: more bytes than the announced size (T2); aborted.
            LocalIOError: the write failed (disk full has its own message); aborted.
        """
        if self._closed:
            raise LocalProtocolError("write after commit/abort")
        if self._limit is not None and self.written + len(data) > self._limit:
            self.abort()
            raise RemoteProtocolError(f"the sender sent more than the announced {self._limit} bytes")
        try:
            write_all(self._fd, data)
        except OSError as exc:
            self.abort()
            raise io_error(f"writing into {self.outdir}", exc) from None
        self.written += len(data)

    def prepare_commit(self, name: str | bytes) -> Path:
        """The path `commit` will most likely use (for the summary before Complete)."""
        wanted = safe_name(name)
        self._chosen = (wanted, self._free_name(wanted))
        return self.outdir / self._chosen[1]

    def _free_name(self, wanted: str, after: str | None = None) -> str:
        candidates = numbered_names(wanted)
        if after is not None:
            for candidate in candidates:
                if candidate == after:
                    break
        for candidate in candidates:
            try:
                os.stat(candidate, dir_fd=self._out_fd, follow_symlinks=False)
            except FileNotFoundError:
                return candidate
        raise LocalIOError(f"no free name for {wanted} in {self.outdir}")  # escaped where shown

    def commit(self, name: str | bytes, *, mtime: float | None = None) -> Path:
        """Flush, set mode (0644 & ~umask) and mtime, and place under a free name.

        Args:
            name: the announced name; only its sanitised basename is used.
            mtime: modification time to set, when the sender sent one.

        Returns:
            The final path. An existing file is never replaced.
        """
        if self._closed:
            raise LocalProtocolError("commit after commit/abort")
        wanted = safe_name(name)
        if self._chosen is not None and self._chosen[0] == wanted:
            final = self._chosen[1]
        else:
            final = self._free_name(wanted)
        try:
            os.fsync(self._fd)
            os.fchmod(self._fd, 0o644 & ~current_umask())
            if mtime is not None:
                os.utime(self._fd, (mtime, mtime))
            os.close(self._fd)
            self._fd = -1
            while True:
                try:
                    rename_noreplace(self.temp_name, self._out_fd, final, self._out_fd)
                    break
                except FileExistsError:  # someone took the name meanwhile: next number
                    final = self._free_name(wanted, after=final)
        except OSError as exc:
            self.abort()
            raise io_error(f"saving into {self.outdir}", exc) from None
        except LocalIOError:
            self.abort()
            raise
        self._release()
        return self.outdir / final

    def abort(self) -> None:
        """Delete the temp file (unless `keep_on_abort`); idempotent."""
        if self._closed:
            return
        if not self.keep_on_abort:
            with contextlib.suppress(OSError):
                os.unlink(self.temp_name, dir_fd=self._out_fd)
        self._release()

    def _release(self) -> None:
        if self._fd >= 0:
            with contextlib.suppress(OSError):
                os.close(self._fd)
            self._fd = -1
        with contextlib.suppress(OSError):
            os.close(self._out_fd)
        self._closed = True

    def __enter__(self) -> IncomingFile:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.abort()


def clean_stale(
    outdir: str | os.PathLike[str], *, max_age: float = STALE_AFTER, now: float | None = None
) -> list[str]:
    """Remove our own ``.sp2p-recv-*`` / ``.sp2p-extract-*`` leftovers older than `max_age`.

    Only entries we could have made are touched: names with our prefixes that are
    regular files or directories owned by us; links are never followed. Errors are
    ignored (cleanup must not fail a transfer).

    Returns:
        The names removed.
    """
    now = time.time() if now is None else now
    removed: list[str] = []
    try:
        out_fd = open_output_dir(Path(outdir))
    except LocalIOError:
        return removed
    try:
        with os.scandir(out_fd) as scan:
            names = [e.name for e in scan if e.name.startswith((TEMP_PREFIX, STAGING_PREFIX))]
        for name in names:
            with contextlib.suppress(OSError):
                st = os.stat(name, dir_fd=out_fd, follow_symlinks=False)
                ours = st.st_uid == os.geteuid()
                is_file = name.startswith(TEMP_PREFIX) and stat.S_ISREG(st.st_mode)
                is_dir = name.startswith(STAGING_PREFIX) and stat.S_ISDIR(st.st_mode)
                if ours and (is_file or is_dir) and now - st.st_mtime > max_age:
                    remove_tree(name, out_fd)
                    removed.append(name)
    finally:
        os.close(out_fd)
    return removed
