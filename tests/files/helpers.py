"""Shared helpers for the file-handling tests: tree snapshots and hand-made archives."""

from __future__ import annotations

import hashlib
import io
import os
import stat
import tarfile
from pathlib import Path

from sp2p.fs.extract import TarExtractor
from sp2p.fs.fsutil import STAGING_PREFIX
from sp2p.proto.tar import END_OF_ARCHIVE, encode_member_header, padding


def snapshot(root: Path) -> dict[str, tuple[object, ...]]:
    """Everything under `root` that a stray write would change (dir mtimes excluded)."""
    state: dict[str, tuple[object, ...]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            st = path.lstat()
            rel = str(path.relative_to(root))
            if stat.S_ISLNK(st.st_mode):
                state[rel] = ("link", os.readlink(path))
            elif stat.S_ISDIR(st.st_mode):
                state[rel] = ("dir", st.st_ino)
            else:
                digest = hashlib.sha256(path.read_bytes()).hexdigest()
                state[rel] = ("file", st.st_size, st.st_mtime_ns, st.st_ino, digest)
    return state


def member(name: str, data: bytes = b"", *, is_dir: bool = False, mode: int = 0o644,
           mtime: int = 1_700_000_000) -> bytes:
    """One member as sp2p's own encoder writes it."""
    header = encode_member_header(name, is_dir=is_dir, size=len(data), mode=mode, mtime=mtime)
    return header + data + padding(len(data))


def archive(*members: bytes) -> bytes:
    return b"".join(members) + END_OF_ARCHIVE


def python_tar(entries: list[tuple[tarfile.TarInfo, bytes | None]],
               fmt: int = tarfile.PAX_FORMAT) -> bytes:
    """An archive written by Python's tarfile (for member types sp2p never writes)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as tar:
        for info, data in entries:
            if data is not None:
                info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return buf.getvalue()


def info(name: str, kind: bytes = tarfile.REGTYPE, *, linkname: str = "",
         mode: int = 0o644, mtime: int = 1_700_000_000) -> tarfile.TarInfo:
    ti = tarfile.TarInfo(name)
    ti.type = kind
    ti.linkname = linkname
    ti.mode = mode
    ti.mtime = mtime
    return ti


def extract_all(outdir: Path, data: bytes, *, max_unpacked: int | None = None,
                piece: int = 4096, empty_name: str = "folder") -> list[Path]:
    """Feed `data` in pieces, finish, commit; returns the committed paths."""
    limit = len(data) if max_unpacked is None else max_unpacked
    with TarExtractor(outdir, max_unpacked=limit, empty_name=empty_name) as ex:
        for i in range(0, len(data), piece):
            ex.feed(data[i : i + piece])
        ex.finish()
        ex.prepare_commit()
        return ex.commit()


def drain(reader: object, n: int = 262144) -> list[bytes]:
    chunks = []
    while chunk := reader.read(n):  # type: ignore[attr-defined]
        chunks.append(chunk)
    return chunks


def staging_dirs(out: Path) -> list[str]:
    return [p.name for p in out.iterdir() if p.name.startswith(STAGING_PREFIX)]
