"""Single-file receive: temp file, no-clobber placement, modes, cleanup (W8, T13a, T16, T17)."""

from __future__ import annotations

import errno
import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sp2p.errors import LocalIOError, RemoteProtocolError
from sp2p.fs import fsutil
from sp2p.fs.fsutil import current_umask, io_error, rename_noreplace, write_all
from sp2p.fs.incoming import TEMP_PREFIX, IncomingFile, check_free_space, clean_stale
from tests.files.helpers import snapshot

REPO = Path(__file__).resolve().parents[2]


def receive(out: Path, name: str | bytes, data: bytes = b"payload", **kw: float) -> Path:
    with IncomingFile(out) as incoming:
        incoming.write(data)
        return incoming.commit(name, **kw)


def leftovers(out: Path) -> list[str]:
    return [p.name for p in out.iterdir() if p.name.startswith(TEMP_PREFIX)]


def test_temp_file_is_private_and_final_mode_follows_umask(tmp_path: Path) -> None:
    with IncomingFile(tmp_path) as incoming:
        assert incoming.temp_path.name.startswith(TEMP_PREFIX)
        assert stat.S_IMODE(incoming.temp_path.stat().st_mode) == 0o600
        incoming.write(b"abc")
        final = incoming.commit("doc.txt")
    assert final == tmp_path / "doc.txt"
    assert final.read_bytes() == b"abc"
    assert stat.S_IMODE(final.stat().st_mode) == 0o644 & ~current_umask()
    assert leftovers(tmp_path) == []


def test_mtime_is_set_when_given(tmp_path: Path) -> None:
    final = receive(tmp_path, "old.txt", mtime=1_234_567_890.0)
    assert final.stat().st_mtime == 1_234_567_890.0


@pytest.mark.parametrize(
    ("announced", "saved"),
    [("../../etc/passwd", "passwd"), ("C:\\Windows\\evil.exe", "evil.exe"), ("..", "received-file"),
     ("CON", "_CON"), (b"\xff.bin", "\ufffd.bin")],
)
def test_unsafe_names_land_inside_the_output_dir(tmp_path: Path, announced: str | bytes,
                                                 saved: str) -> None:
    out = tmp_path / "out"
    out.mkdir()
    before = snapshot(tmp_path)
    assert receive(out, announced) == out / saved
    after = snapshot(tmp_path)
    assert set(after) - set(before) == {f"out/{saved}"}


def test_t16_existing_files_are_never_overwritten(tmp_path: Path) -> None:
    (tmp_path / "a.tar.gz").write_text("first")
    (tmp_path / "a.tar (1).gz").write_text("second")
    before = snapshot(tmp_path)
    assert receive(tmp_path, "a.tar.gz", b"third") == tmp_path / "a.tar (2).gz"
    after = snapshot(tmp_path)
    assert all(after[k] == v for k, v in before.items())
    assert (tmp_path / "a.tar (2).gz").read_bytes() == b"third"


def test_t16_final_symlink_and_directory_are_not_followed(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    victim = tmp_path / "victim.txt"
    victim.write_text("keep")
    (out / "x.txt").symlink_to(victim)
    (out / "dangling").symlink_to(tmp_path / "would-be-created")
    (out / "d").mkdir()
    assert receive(out, "x.txt", b"new") == out / "x (1).txt"
    assert receive(out, "dangling", b"new") == out / "dangling (1)"
    assert receive(out, "d", b"new") == out / "d (1)"
    assert victim.read_text() == "keep"
    assert not (tmp_path / "would-be-created").exists()


def test_name_taken_after_prepare_commit_gets_the_next_number(tmp_path: Path) -> None:
    with IncomingFile(tmp_path) as incoming:
        incoming.write(b"mine")
        assert incoming.prepare_commit("r.txt") == tmp_path / "r.txt"
        (tmp_path / "r.txt").write_text("theirs")  # a racing writer
        assert incoming.commit("r.txt") == tmp_path / "r (1).txt"
    assert (tmp_path / "r.txt").read_text() == "theirs"
    assert (tmp_path / "r (1).txt").read_text() == "mine"


def test_t2_more_than_the_announced_size_is_refused(tmp_path: Path) -> None:
    incoming = IncomingFile(tmp_path, limit=10)
    incoming.write(b"x" * 10)
    with pytest.raises(RemoteProtocolError, match="more than the announced 10 bytes"):
        incoming.write(b"y")
    assert list(tmp_path.iterdir()) == []


def test_running_out_of_numbers_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "n").write_text("0")
    for i in range(1, 1001):
        (tmp_path / f"n ({i})").write_text(str(i))
    with pytest.raises(LocalIOError, match="no free name"):
        receive(tmp_path, "n")
    assert leftovers(tmp_path) == []


def test_abort_and_context_manager_remove_the_temp_file(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError), IncomingFile(tmp_path) as incoming:
        incoming.write(b"partial")
        raise RuntimeError("transfer failed")
    assert list(tmp_path.iterdir()) == []
    incoming = IncomingFile(tmp_path)
    incoming.abort()
    incoming.abort()
    assert list(tmp_path.iterdir()) == []


def test_missing_output_directory_is_an_error_and_not_created(tmp_path: Path) -> None:
    with pytest.raises(LocalIOError, match="does not exist") as excinfo:
        IncomingFile(tmp_path / "missing")
    assert excinfo.value.hint
    assert not (tmp_path / "missing").exists()
    (tmp_path / "file").write_text("x")
    with pytest.raises(LocalIOError, match="not a directory"):
        IncomingFile(tmp_path / "file")


def _file_refused_then_moved(tmp_path: Path, fd: int) -> None:
    """A taken name is refused with both files intact; a free one takes the file."""
    (tmp_path / "src").write_text("new")
    (tmp_path / "dst").write_text("old")
    with pytest.raises(FileExistsError):
        rename_noreplace("src", fd, "dst", fd)
    assert (tmp_path / "dst").read_text() == "old" and (tmp_path / "src").read_text() == "new"
    rename_noreplace("src", fd, "free", fd)
    assert (tmp_path / "free").read_text() == "new" and not (tmp_path / "src").exists()


def test_fallbacks_without_renameat2(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The link-then-unlink (files) and mkdir-probe (dirs) paths also refuse to replace."""
    monkeypatch.setattr(fsutil, "_load_renameat2", lambda: None)
    fd = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        _file_refused_then_moved(tmp_path, fd)
        (tmp_path / "sd").mkdir()
        (tmp_path / "sd" / "f").write_text("f")
        (tmp_path / "taken").mkdir()
        with pytest.raises(FileExistsError):
            rename_noreplace("sd", fd, "taken", fd)
        rename_noreplace("sd", fd, "moved", fd)
        assert (tmp_path / "moved" / "f").read_text() == "f"
        assert list((tmp_path / "taken").iterdir()) == []
    finally:
        os.close(fd)
    assert receive(tmp_path, "dst", b"x") == tmp_path / "dst (1)"


def _no_hard_links(*args: object, **kwargs: object) -> None:
    raise PermissionError(errno.EPERM, "Operation not permitted")  # what FAT/exFAT answer


@pytest.mark.parametrize("kind", ["file", "dir"])
def test_kernel_rename_noreplace_refuses_to_replace(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kind: str
) -> None:
    """renameat2: directories always, files where the file system has no hard links."""
    monkeypatch.setattr(fsutil.os, "link", _no_hard_links)
    fd = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for name in ("a", "b"):
            if kind == "dir":
                (tmp_path / name).mkdir()
                (tmp_path / name / "f").write_text(name)
            else:
                (tmp_path / name).write_text(name)
        with pytest.raises(FileExistsError):
            rename_noreplace("a", fd, "b", fd)
        inside = tmp_path / "b" / "f" if kind == "dir" else tmp_path / "b"
        assert inside.read_text() == "b"
        rename_noreplace("a", fd, "c", fd)
        assert not (tmp_path / "a").exists()
        assert (tmp_path / "c" / "f" if kind == "dir" else tmp_path / "c").read_text() == "a"
    finally:
        os.close(fd)


def test_neither_hard_links_nor_renameat2(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The last resort for files: an exclusive create claims the name, then rename."""
    monkeypatch.setattr(fsutil.os, "link", _no_hard_links)
    monkeypatch.setattr(fsutil, "_load_renameat2", lambda: None)
    fd = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        _file_refused_then_moved(tmp_path, fd)
    finally:
        os.close(fd)


def test_a_file_is_moved_without_ctypes(tmp_path: Path) -> None:
    """Hard links where the file system has them: a receive never loads ctypes (issue 12)."""
    code = (
        "import os, sys\n"
        "from sp2p.fs.fsutil import rename_noreplace\n"
        f"fd = os.open({str(tmp_path)!r}, os.O_RDONLY | os.O_DIRECTORY)\n"
        "rename_noreplace('src', fd, 'dst', fd)\n"
        "print('ctypes' in sys.modules)\n"
    )
    (tmp_path / "src").write_text("x")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO)
    assert out.stdout.strip() == "False"
    assert (tmp_path / "dst").read_text() == "x" and not (tmp_path / "src").exists()


def test_disk_full_is_reported_as_such() -> None:
    fd = os.open("/dev/full", os.O_WRONLY)
    try:
        with pytest.raises(OSError) as excinfo:
            write_all(fd, b"x" * 10)
    finally:
        os.close(fd)
    assert excinfo.value.errno == errno.ENOSPC
    err = io_error("writing into /out", excinfo.value)
    assert isinstance(err, LocalIOError) and err.message == "disk full while writing into /out"


def test_t13a_free_space_check(tmp_path: Path) -> None:
    check_free_space(tmp_path, 1)
    with pytest.raises(LocalIOError, match="not enough free space"):
        check_free_space(tmp_path, 10**18)


def test_t17_stale_leftovers_are_cleaned_only_when_ours_and_old(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "precious").write_text("keep")
    old = time.time() - 2 * 86400
    (out / ".sp2p-recv-old").write_text("stale")
    (out / ".sp2p-recv-new").write_text("in use")
    (out / ".sp2p-extract-old").mkdir()
    (out / ".sp2p-extract-old" / "inner").mkdir()
    (out / ".sp2p-extract-old" / "inner" / "f").write_text("stale")
    (out / ".sp2p-extract-old" / "link").symlink_to(elsewhere)
    (out / ".sp2p-recv-link").symlink_to(elsewhere / "precious")
    (out / ".sp2p-extract-link").symlink_to(elsewhere)
    (out / "user-file").write_text("mine")
    (out / ".sp2p-recv-dir").mkdir()  # wrong type for the prefix: not ours
    for name in (".sp2p-recv-old", ".sp2p-extract-old", "user-file", ".sp2p-recv-dir"):
        os.utime(out / name, (old, old))
    for name in (".sp2p-recv-link", ".sp2p-extract-link"):
        os.utime(out / name, (old, old), follow_symlinks=False)
    removed = clean_stale(out)
    assert sorted(removed) == [".sp2p-extract-old", ".sp2p-recv-old"]
    assert sorted(p.name for p in out.iterdir()) == [
        ".sp2p-extract-link", ".sp2p-recv-dir", ".sp2p-recv-link", ".sp2p-recv-new", "user-file"]
    assert (elsewhere / "precious").read_text() == "keep"
    assert clean_stale(tmp_path / "missing") == []


def test_renameat2_is_found_in_the_process_own_libc() -> None:
    """Looked up lazily through dlopen(NULL) (no library search at start, issue 12)."""
    assert sys.platform != "linux" or fsutil._load_renameat2() is not None
