"""Small POSIX helpers for writing safely into a directory we hold open by fd.

Everything is relative to directory file descriptors and never follows a symbolic
link, so renaming or replacing the output path while we work cannot redirect writes.
Final placement never overwrites: `rename_noreplace` uses ``renameat2(RENAME_NOREPLACE)``
where the kernel and file system support it and falls back to link-then-unlink (files)
or mkdir-probe-then-rename (directories), both of which fail instead of replacing.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import os
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Final, cast

from sp2p.errors import LocalIOError

#: a folder's private staging directory (sp2p.fs.extract); stale ones are removed (sp2p.fs.incoming)
STAGING_PREFIX: Final = ".sp2p-extract-"
_RENAME_NOREPLACE: Final = 1
_DIR_FLAGS: Final = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC | os.O_NOFOLLOW
_DISK_FULL: Final = frozenset({errno.ENOSPC, errno.EDQUOT})
#: errors meaning "this file system cannot do that", which select a fallback
_UNSUPPORTED: Final = frozenset({errno.EINVAL, errno.ENOSYS, errno.ENOTSUP, errno.EPERM})


def io_error(action: str, exc: OSError) -> LocalIOError:
    """Translate an OSError into a one-line LocalIOError (disk full gets its own words)."""
    if exc.errno in _DISK_FULL:
        return LocalIOError(f"disk full while {action}", hint="free some space and try again")
    reason = exc.strerror or exc.__class__.__name__
    return LocalIOError(f"{action}: {reason}")


def output_dir_problem(path: Path) -> LocalIOError | None:
    """Why received files cannot go into `path`, or None. Asked before the join, so a bad
    -output fails at once and leaves the sender's code unused."""
    if not path.is_dir():
        what = "is not a folder" if path.exists() else "does not exist"
        return LocalIOError(
            f"output folder {path} {what}", hint="create it first, or choose another with -output"
        )
    with contextlib.suppress(OSError):
        if os.stat(path).st_nlink == 0:  # removed while open: e.g. the shell's current folder
            return LocalIOError(f"output folder {path} was deleted",
                                hint="change to an existing folder, or choose one with -output")
    if os.access(path, os.W_OK | os.X_OK):
        return None
    with contextlib.suppress(OSError):
        if os.statvfs(path).f_flag & os.ST_RDONLY:
            return LocalIOError(f"output folder {path} is on a read-only file system",
                                hint="choose another with -output")
    return LocalIOError(f"output folder {path} is not writable for you",
                        hint="choose another with -output, or change its permissions")


def open_output_dir(path: Path) -> int:
    """Open an existing output directory; a missing one is an error, never created.

    Raises:
        LocalIOError: the path does not exist, is not a directory or cannot be opened.
    """
    try:
        # the output dir itself may be a symlink the user chose; only what is below it
        # is opened without following links
        return os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except FileNotFoundError:
        raise LocalIOError(
            f"output directory {path} does not exist", hint="create it first or pick another"
        ) from None
    except NotADirectoryError:
        raise LocalIOError(f"output path {path} is not a directory") from None
    except OSError as exc:
        raise io_error(f"opening output directory {path}", exc) from None


def open_subdir(name: str, dir_fd: int) -> int:
    """Open directory `name` under `dir_fd` without following a link."""
    return os.open(name, _DIR_FLAGS, dir_fd=dir_fd)


def current_umask() -> int:
    """The process umask, read without changing it where the kernel exposes it."""
    status = Path("/proc/self/status")
    with contextlib.suppress(OSError, ValueError):
        for line in status.read_bytes().splitlines():  # bytes: no codec module to load
            if line.startswith(b"Umask:"):
                return int(line.split()[1], 8)
    # fallback: set-and-restore (briefly process-wide, hence only when /proc is missing)
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def write_all(fd: int, data: bytes | memoryview) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def make_private_dir(prefix: str, dir_fd: int) -> str:
    """Create a fresh 0700 directory named ``<prefix><random>`` under `dir_fd`."""
    for _ in range(100):
        name = prefix + os.urandom(6).hex()  # not secrets: it loads hmac, hashlib and OpenSSL
        try:
            os.mkdir(name, 0o700, dir_fd=dir_fd)
        except FileExistsError:
            continue
        return name
    raise LocalIOError("could not create a private staging directory")


def create_private_file(prefix: str, dir_fd: int) -> tuple[str, int]:
    """Create a fresh 0600 file named ``<prefix><random>``; returns (name, fd)."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    for _ in range(100):
        name = prefix + os.urandom(6).hex()
        try:
            return name, os.open(name, flags, 0o600, dir_fd=dir_fd)
        except FileExistsError:
            continue
    raise LocalIOError("could not create a temporary file")


_Renameat2 = Callable[[int, bytes, int, bytes, int], int]


@functools.cache
def _load_renameat2() -> _Renameat2 | None:
    """glibc's renameat2, looked up on first use: ctypes and a library search cost every start
    ~10 ms (issue 12); the process's own symbols hold libc's (dlopen(NULL))."""
    import ctypes

    try:
        func = ctypes.CDLL(None, use_errno=True).renameat2  # glibc >= 2.28
    except (OSError, AttributeError):
        return None
    func.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    func.restype = ctypes.c_int
    return cast(_Renameat2, func)


def _rename_noreplace_kernel(src: str, src_fd: int, dst: str, dst_fd: int) -> bool:
    """True when done; False when renameat2 is unavailable here. Raises OSError."""
    renameat2 = _load_renameat2()
    if renameat2 is None:
        return False
    rc = renameat2(src_fd, os.fsencode(src), dst_fd, os.fsencode(dst), _RENAME_NOREPLACE)
    if rc == 0:
        return True
    import ctypes  # loaded by _load_renameat2

    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP):
        return False
    raise OSError(err, os.strerror(err), dst)


def rename_noreplace(src: str, src_fd: int, dst: str, dst_fd: int) -> None:
    """Move `src` (under `src_fd`) to `dst` (under `dst_fd`) unless `dst` exists.

    A file: a hard link claims the name only if it is free, atomically, then the old name
    goes (no ctypes on a receive, issue 12); where the file system has no hard links, the
    kernel's renameat2(RENAME_NOREPLACE), else an exclusive create then rename. A directory:
    renameat2, else claim the name with mkdir and move onto that empty probe.

    Raises:
        FileExistsError: `dst` exists (nothing was changed).
        OSError: anything else.
    """
    st = os.stat(src, dir_fd=src_fd, follow_symlinks=False)
    if not stat.S_ISDIR(st.st_mode):
        try:
            os.link(src, dst, src_dir_fd=src_fd, dst_dir_fd=dst_fd, follow_symlinks=False)
        except OSError as exc:
            if exc.errno not in _UNSUPPORTED:
                raise
        else:
            os.unlink(src, dir_fd=src_fd)
            return
    if _rename_noreplace_kernel(src, src_fd, dst, dst_fd):
        return
    if stat.S_ISDIR(st.st_mode):
        # POSIX rename replaces only an *empty* directory, i.e. our own probe
        os.mkdir(dst, 0o700, dir_fd=dst_fd)
        try:
            os.rename(src, dst, src_dir_fd=src_fd, dst_dir_fd=dst_fd)
        except OSError:
            with contextlib.suppress(OSError):
                os.rmdir(dst, dir_fd=dst_fd)
            raise
        return
    # neither hard links nor renameat2 (e.g. FAT): claim the name with an exclusive create
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    os.close(os.open(dst, flags, 0o600, dir_fd=dst_fd))
    os.rename(src, dst, src_dir_fd=src_fd, dst_dir_fd=dst_fd)


def remove_tree(name: str, dir_fd: int) -> None:
    """Remove `name` under `dir_fd` (file or directory) without following links."""
    with contextlib.suppress(FileNotFoundError):
        st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        if stat.S_ISDIR(st.st_mode):
            import shutil  # here only: it loads bz2, lzma and zlib

            # fd-based rmtree: immune to symlink races (shutil.rmtree.avoids_symlink_attacks)
            shutil.rmtree(name, dir_fd=dir_fd)
        else:
            os.unlink(name, dir_fd=dir_fd)
