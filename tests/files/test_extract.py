"""sp2p.fs.extract and sp2p.fs.placement: streaming extraction round trips and the commit.

Well-formed archives, fed in any piece sizes, land as the sender's tree; the commit never
overwrites and loses nothing. The hostile-archive catalogue is test_extract_hostile.py.
"""

from __future__ import annotations

import os
import random
import stat
from pathlib import Path

import pytest

from sp2p.errors import LocalIOError, LocalProtocolError
from sp2p.fs.archive import plan_tar
from sp2p.fs.extract import TarExtractor
from sp2p.fs.fsutil import current_umask
from sp2p.proto.tar import END_OF_ARCHIVE
from tests.files.helpers import (
    archive,
    drain,
    extract_all,
    member,
    snapshot,
    staging_dirs,
)


def make_tree(root: Path) -> None:
    """A source tree with nesting, empty dirs, unicode, long names, modes and mtimes."""
    (root / "sub" / "deeper").mkdir(parents=True)
    (root / "empty").mkdir()
    (root / "sub" / "empty2").mkdir()
    (root / "a.txt").write_text("hello\n")
    (root / "sub" / "run.sh").write_bytes(b"#!/bin/sh\necho hi\n")
    (root / "sub" / "run.sh").chmod(0o755)
    (root / "sub" / "secret").write_bytes(b"s")
    (root / "sub" / "secret").chmod(0o600)
    (root / "sub" / "deeper" / "große Datei ü.bin").write_bytes(os.urandom(300_000))
    (root / "日本語").mkdir()
    (root / "日本語" / ("long-" + "n" * 200 + ".dat")).write_bytes(os.urandom(1000))
    deep = root.joinpath(*["lvl"] * 40)
    deep.mkdir(parents=True)
    (deep / "bottom.txt").write_text("deep")
    (root / "zero").write_bytes(b"")
    for i, path in enumerate(sorted(root.rglob("*"), reverse=True)):
        os.utime(path, (1_500_000_000 + i, 1_500_000_000 + i))
    os.utime(root, (1_400_000_000, 1_400_000_000))


def tree_state(root: Path) -> dict[str, tuple[object, ...]]:
    state: dict[str, tuple[object, ...]] = {}
    for path in sorted(root.rglob("*")):
        st = path.lstat()
        rel = str(path.relative_to(root))
        if path.is_dir():
            state[rel] = ("dir", int(st.st_mtime))
        else:
            state[rel] = ("file", path.read_bytes(), int(st.st_mtime))
    return state


def expected_mode(source_mode: int, is_dir: bool) -> int:
    base = 0o755 if is_dir or source_mode & 0o111 else 0o644
    return base & ~current_umask()


def stream_bytes(paths: list[Path]) -> tuple[bytes, int, int]:
    plan = plan_tar(paths)
    data = b"".join(drain(plan.open()))
    return data, plan.size, plan.file_count


# --------------------------------------------------------------- round trips


@pytest.mark.parametrize("piece", [1, 511, 4096, 262144])
def test_round_trip_of_a_tree(tmp_path: Path, piece: int) -> None:
    src = tmp_path / "src" / "photos"
    src.mkdir(parents=True)
    make_tree(src)
    out = tmp_path / "out"
    out.mkdir()
    data, size, file_count = stream_bytes([src])
    assert len(data) == size
    if piece == 1:
        data_pieces = [data[:5000]]  # byte-at-a-time over the headers, then the rest
        rest = data[5000:]
    else:
        data_pieces, rest = [], data
    with TarExtractor(out, max_unpacked=size, empty_name="photos") as ex:
        for p in data_pieces:
            for i in range(len(p)):
                ex.feed(p[i : i + 1])
        step = max(piece, 1)
        for i in range(0, len(rest), step):
            ex.feed(rest[i : i + step])
        ex.finish(expected_file_count=file_count)
        assert ex.prepare_commit() == [out / "photos"]
        assert ex.commit() == [out / "photos"]
    assert tree_state(out / "photos") == tree_state(src)
    for path in (out / "photos").rglob("*"):
        source = src / path.relative_to(out / "photos")
        got = stat.S_IMODE(path.stat().st_mode)
        assert got == expected_mode(source.stat().st_mode, path.is_dir()), path
    assert staging_dirs(out) == []


def test_multi_path_send_lands_entries_directly(tmp_path: Path) -> None:
    (tmp_path / "one.txt").write_text("1")
    (tmp_path / "dir").mkdir()
    (tmp_path / "dir" / "two.txt").write_text("2")
    (tmp_path / "void").mkdir()
    out = tmp_path / "out"
    out.mkdir()
    data, size, _ = stream_bytes([tmp_path / "one.txt", tmp_path / "dir", tmp_path / "void"])
    committed = extract_all(out, data, max_unpacked=size)
    assert committed == [out / "one.txt", out / "dir", out / "void"]
    assert (out / "dir" / "two.txt").read_text() == "2"
    assert (out / "void").is_dir() and list((out / "void").iterdir()) == []


def test_empty_folder_arrives_as_an_empty_folder(tmp_path: Path) -> None:
    (tmp_path / "nothing").mkdir()
    out = tmp_path / "out"
    out.mkdir()
    data, size, count = stream_bytes([tmp_path / "nothing"])
    assert count == 0
    assert extract_all(out, data, max_unpacked=size) == [out / "nothing"]
    assert (out / "nothing").is_dir()


def test_empty_archive_from_a_go_sender_commits_the_announced_name(area: tuple[Path, Path]) -> None:
    out, _ = area
    assert extract_all(out, END_OF_ARCHIVE, empty_name="../evil/name") == [out / "name"]
    assert (out / "name").is_dir()


def test_members_without_parent_entries_and_root_entry(area: tuple[Path, Path]) -> None:
    out, _ = area
    data = archive(
        member("./", is_dir=True),
        member("./top/a/b.txt", b"b"),
        member("top/a", is_dir=True, mtime=1_234_567_890),
    )
    assert extract_all(out, data) == [out / "top"]
    assert (out / "top" / "a" / "b.txt").read_bytes() == b"b"
    assert int((out / "top" / "a").stat().st_mtime) == 1_234_567_890


# --------------------------------------------------------------- commit (W5, T16)


def test_commit_never_overwrites_and_loses_nothing(area: tuple[Path, Path]) -> None:
    out, _ = area
    (out / "top").mkdir()
    (out / "top" / "keep").write_text("old")
    (out / "a.tar.gz").write_text("old file")
    data = archive(member("top/new", b"new"), member("a.tar.gz", b"new archive"))
    before = snapshot(out)
    committed = extract_all(out, data)
    assert committed == [out / "top (1)", out / "a.tar (1).gz"]
    after = snapshot(out)
    for key, value in before.items():
        assert after[key] == value
    assert (out / "top (1)" / "new").read_text() == "new"
    assert (out / "a.tar (1).gz").read_text() == "new archive"


def test_commit_rechecks_names_taken_after_prepare(area: tuple[Path, Path]) -> None:
    out, _ = area
    data = archive(member("report", is_dir=True), member("report/x", b"x"))
    with TarExtractor(out, max_unpacked=len(data)) as ex:
        ex.feed(data)
        ex.finish()
        assert ex.prepare_commit() == [out / "report"]
        (out / "report").mkdir()  # a racing process takes the name
        (out / "report" / "theirs").write_text("theirs")
        assert ex.commit() == [out / "report (1)"]
    assert (out / "report" / "theirs").read_text() == "theirs"
    assert (out / "report (1)" / "x").read_text() == "x"


def test_final_path_symlink_is_never_followed(area: tuple[Path, Path]) -> None:
    out, sentinel = area
    (out / "data.txt").symlink_to(sentinel / "target.txt")
    (out / "out").symlink_to(sentinel)
    data = archive(member("data.txt", b"payload"), member("out/x", b"x"))
    assert extract_all(out, data) == [out / "data (1).txt", out / "out (1)"]
    assert os.readlink(out / "data.txt") == str(sentinel / "target.txt")
    assert (out / "out (1)" / "x").read_text() == "x"


def test_transfer_named_like_the_output_directory(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    assert extract_all(out, archive(member("out/f", b"1"))) == [out / "out"]
    assert (out / "out" / "f").read_text() == "1"


def test_abort_removes_staging_and_is_idempotent(area: tuple[Path, Path]) -> None:
    out, _ = area
    ex = TarExtractor(out, max_unpacked=10**6)
    ex.feed(member("partial.bin", b"x" * 2000)[:1500])
    assert len(staging_dirs(out)) == 1
    ex.abort()
    ex.abort()
    assert list(out.iterdir()) == []
    with pytest.raises(LocalProtocolError):
        ex.feed(b"more")


def test_missing_output_directory_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(LocalIOError, match="does not exist"):
        TarExtractor(tmp_path / "nope", max_unpacked=1)
    assert not (tmp_path / "nope").exists()



def test_random_feed_sizes_give_identical_results(tmp_path: Path) -> None:
    src = tmp_path / "src" / "t"
    src.mkdir(parents=True)
    make_tree(src)
    data, size, _ = stream_bytes([src])
    rng = random.Random(7)
    for run in range(3):
        out = tmp_path / f"out{run}"
        out.mkdir()
        with TarExtractor(out, max_unpacked=size) as ex:
            pos = 0
            while pos < len(data):
                step = rng.choice([1, 7, 512, 513, 5000, 65536])
                ex.feed(data[pos : pos + step])
                pos += step
            ex.finish()
            ex.commit()
        assert tree_state(out / "t") == tree_state(src)
