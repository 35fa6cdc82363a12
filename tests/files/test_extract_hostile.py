"""sp2p.fs.extract: the hostile-archive catalogue (security-cases T5–T12).

Every rejection test asserts the whole archive is refused with a RemoteProtocolError,
the staging directory is gone and nothing changed in the test's directory tree (the
output directory, its parent and a sentinel directory beside it).
"""

from __future__ import annotations

import os
import stat
import tarfile
import threading
from pathlib import Path

import pytest

from sp2p.errors import LocalIOError, RemoteProtocolError
from sp2p.fs.extract import ArchiveRejected, TarExtractor
from sp2p.fs.fsutil import STAGING_PREFIX, current_umask
from sp2p.proto.tar import BLOCK, END_OF_ARCHIVE
from tests.files.helpers import (
    archive,
    extract_all,
    info,
    member,
    python_tar,
    snapshot,
    staging_dirs,
)


def assert_rejected(out: Path, data: bytes, match: str, *, max_unpacked: int | None = None,
                    piece: int = 700) -> None:
    before = snapshot(out.parent)
    with pytest.raises(RemoteProtocolError, match=match):
        extract_all(out, data, max_unpacked=max_unpacked, piece=piece)
    assert staging_dirs(out) == []
    assert snapshot(out.parent) == before


# --------------------------------------------------------------- T5 traversal


@pytest.mark.parametrize(
    "name",
    ["../evil", "/abs/evil", "a/../../evil", "./../evil", "C:evil", "C:\\evil", "\\..\\evil",
     "ok/..\\..\\evil"],
)
def test_t5_traversal_rejects_the_whole_archive(area: tuple[Path, Path], name: str) -> None:
    out, _ = area
    data = archive(member("fine.txt", b"fine"), member(name, b"evil"))
    assert_rejected(out, data, "unsafe member name")


def test_t5_gnu_long_name_traversal(area: tuple[Path, Path]) -> None:
    out, _ = area
    name = "a/" * 60 + "../" * 70 + "outside/evil"
    data = python_tar([(info(name), b"evil")], fmt=tarfile.GNU_FORMAT)
    assert_rejected(out, data, "unsafe member name")


def test_t5_pax_path_traversal(area: tuple[Path, Path]) -> None:
    out, _ = area
    ti = info("harmless")
    ti.pax_headers = {"path": "../outside/evil"}
    assert_rejected(out, python_tar([(ti, b"evil")]), "unsafe member name")


# --------------------------------------------------------------- T6 links


def cve_2025_4517_tar(dest: Path) -> bytes:
    """The PATH_MAX symlink-chain reproducer (security-cases §3.4), built at test time."""
    steps = "abcdefghijklmnop"
    path_max = os.pathconf(dest, "PC_PATH_MAX")
    comp = "d" * min(247, path_max // len(steps) - 9)
    entries: list[tuple[tarfile.TarInfo, bytes | None]] = []
    path = ""
    for step in steps:
        entries.append((info(path + comp, tarfile.DIRTYPE, mode=0o755), None))
        entries.append((info(path + step, tarfile.SYMTYPE, linkname=comp), None))
        path += comp + "/"
    linkpath = "/".join(steps) + "/" + "l" * 254
    entries.append((info(linkpath, tarfile.SYMTYPE, linkname="../" * len(steps)), None))
    entries.append((info("escape", tarfile.SYMTYPE, linkname=linkpath + "/../outside"), None))
    entries.append((info("escape/newfile"), b"escaped"))
    return python_tar(entries)


def test_t6_cve_2025_4517_chain_is_rejected(area: tuple[Path, Path]) -> None:
    out, sentinel = area
    assert_rejected(out, cve_2025_4517_tar(out), "symbolic link")
    assert list(sentinel.iterdir()) == []


@pytest.mark.parametrize(
    "entries",
    [
        [(info("link", tarfile.SYMTYPE, linkname="/etc/passwd"), None)],
        [(info("link", tarfile.SYMTYPE, linkname="../outside"), None),
         (info("link/x"), b"x")],
        # croc: a symlink followed by a regular file of the same name
        [(info("same", tarfile.SYMTYPE, linkname="../outside/same"), None),
         (info("same"), b"overwrite through the link")],
        # gh-157190: a hard link to a symlink
        [(info("s", tarfile.SYMTYPE, linkname="../outside"), None),
         (info("h", tarfile.LNKTYPE, linkname="s"), None)],
        [(info("h", tarfile.LNKTYPE, linkname="../outside/victim"), None)],
        [(info("h", tarfile.LNKTYPE, linkname="/etc/shadow"), None)],
        [(info("inner.txt"), b"x"), (info("h", tarfile.LNKTYPE, linkname="inner.txt"), None)],
    ],
    ids=["abs-symlink", "symlink-then-write-through", "symlink-then-same-name-file",
         "hardlink-to-symlink", "hardlink-outside", "hardlink-abs", "hardlink-inside"],
)
def test_t6_links_are_rejected(area: tuple[Path, Path],
                               entries: list[tuple[tarfile.TarInfo, bytes | None]]) -> None:
    out, _ = area
    assert_rejected(out, python_tar(entries), "link")


# --------------------------------------------------------------- T7 specials and metadata


@pytest.mark.parametrize(
    ("kind", "word"),
    [(tarfile.CHRTYPE, "character device"), (tarfile.BLKTYPE, "block device"),
     (tarfile.FIFOTYPE, "FIFO"), (tarfile.CONTTYPE, "contiguous")],
)
def test_t7_special_members_are_rejected(area: tuple[Path, Path], kind: bytes, word: str) -> None:
    out, _ = area
    data = python_tar([(info("dev"), b"ok"), (info("x", kind), b"" if kind == tarfile.CONTTYPE
                                                 else None)])
    assert_rejected(out, data, word)


def test_t7_sparse_members_are_rejected(area: tuple[Path, Path]) -> None:
    out, _ = area
    ti = info("sparse")
    ti.pax_headers = {"GNU.sparse.major": "1", "GNU.sparse.minor": "0",
                      "GNU.sparse.name": "sparse", "GNU.sparse.realsize": "1000000"}
    assert_rejected(out, python_tar([(ti, b"")]), "sparse")
    raw = bytearray(python_tar([(info("old-sparse"), b"")], fmt=tarfile.GNU_FORMAT))
    raw[156:157] = b"S"
    raw[148:156] = b" " * 8
    raw[148:156] = b"%06o\x00 " % sum(raw[:512])
    assert_rejected(out, bytes(raw), "sparse")


def test_t7_modes_mtimes_and_metadata_are_tamed(area: tuple[Path, Path]) -> None:
    out, _ = area
    xattr = info("top/xattr.txt")
    xattr.pax_headers = {"SCHILY.xattr.user.evil": "1", "SCHILY.xattr.security.capability": "x"}
    root_owned = info("top/owned.txt")
    root_owned.uid = root_owned.gid = 0
    root_owned.uname = root_owned.gname = "root"
    entries = [
        (info("top", tarfile.DIRTYPE, mode=0o7777), None),
        (info("top/suid", mode=0o6755), b"#!"),
        (info("top/sticky-dir", tarfile.DIRTYPE, mode=0o1777), None),
        (info("top/plain", mode=0o4666), b"p"),
        (info("top/old", mtime=-2_200_000_000), b"1901"),
        (info("top/future", mtime=253_402_300_000), b"9999"),
        (xattr, b"x"),
        (root_owned, b"o"),
    ]
    extract_all(out, python_tar(entries))
    top = out / "top"
    umask = current_umask()
    assert stat.S_IMODE(top.stat().st_mode) == 0o755 & ~umask
    assert stat.S_IMODE((top / "suid").stat().st_mode) == 0o755 & ~umask
    assert stat.S_IMODE((top / "sticky-dir").stat().st_mode) == 0o755 & ~umask
    assert stat.S_IMODE((top / "plain").stat().st_mode) == 0o644 & ~umask
    assert (top / "old").stat().st_mtime == 0
    assert 0 < (top / "future").stat().st_mtime <= 4_102_444_800
    assert os.listxattr(top / "xattr.txt") == []
    assert (top / "owned.txt").stat().st_uid == os.geteuid()


def test_t7_umask_is_respected(area: tuple[Path, Path]) -> None:
    out, _ = area
    old = os.umask(0o077)
    try:
        extract_all(out, archive(member("u", is_dir=True), member("u/x", b"x", mode=0o755),
                                 member("u/y", b"y", mode=0o644)))
    finally:
        os.umask(old)
    assert stat.S_IMODE((out / "u").stat().st_mode) == 0o700
    assert stat.S_IMODE((out / "u" / "x").stat().st_mode) == 0o700
    assert stat.S_IMODE((out / "u" / "y").stat().st_mode) == 0o600


# --------------------------------------------------------------- T8 existing links, races


def test_t8_symlink_swap_during_extraction_cannot_escape(area: tuple[Path, Path]) -> None:
    out, sentinel = area
    members = [member("top", is_dir=True)]
    for d in range(8):
        members.append(member(f"top/d{d}", is_dir=True))
        members += [member(f"top/d{d}/f{i}", os.urandom(3000)) for i in range(40)]
    data = archive(*members)
    stop = threading.Event()
    swaps = 0

    def attacker() -> None:
        nonlocal swaps
        while not stop.is_set():
            for staging in out.glob(STAGING_PREFIX + "*"):
                for d in range(8):
                    victim = staging / "top" / f"d{d}"
                    try:
                        victim.rename(staging / f"moved{d}-{swaps}")
                        victim.symlink_to(sentinel)
                        swaps += 1
                    except OSError:
                        pass

    thread = threading.Thread(target=attacker)
    thread.start()
    try:
        with TarExtractor(out, max_unpacked=len(data)) as ex:
            for i in range(0, len(data), 2048):
                ex.feed(data[i : i + 2048])
            ex.finish()
            ex.commit()
    except (LocalIOError, RemoteProtocolError):
        pass  # refusing is fine; escaping is not
    finally:
        stop.set()
        thread.join()
    assert list(sentinel.iterdir()) == []


def test_t8_swapped_staging_directory_is_not_followed(area: tuple[Path, Path]) -> None:
    out, sentinel = area
    first = archive(member("top/a", is_dir=True), member("top/a/f1", b"1"),
                    member("top/b/f1", b"2"))[: -len(END_OF_ARCHIVE)]
    rest = archive(member("top/a/f2", b"must not escape"))
    ex = TarExtractor(out, max_unpacked=10**6)
    ex.feed(first)
    (staging,) = out.glob(STAGING_PREFIX + "*")
    (staging / "top" / "a").rename(staging / "elsewhere")
    (staging / "top" / "a").symlink_to(sentinel)
    with pytest.raises(LocalIOError):
        ex.feed(rest)
    assert staging_dirs(out) == []
    assert list(sentinel.iterdir()) == []


def test_t8_existing_link_in_output_dir_is_not_followed(area: tuple[Path, Path]) -> None:
    out, sentinel = area
    (out / "out").symlink_to(sentinel)
    (out / "up").symlink_to("../..")
    committed = extract_all(out, archive(member("out/x", b"x"), member("up/y", b"y")))
    assert committed == [out / "out (1)", out / "up (1)"]
    assert os.readlink(out / "up") == "../.."


# --------------------------------------------------------------- T9 duplicates


@pytest.mark.parametrize(
    "members",
    [
        [member("a.txt", b"1"), member("a.txt", b"2")],
        [member("a", b"file"), member("a", is_dir=True)],
        [member("a", is_dir=True), member("a", b"file")],
        [member("a", b"file"), member("a/b", b"under a file")],
        [member("d", is_dir=True), member("d", is_dir=True)],
        [member("README", b"1"), member("readme", b"2")],
        [member("\u00e9.txt", b"nfc"), member("e\u0301.txt", b"nfd")],
        [member("Dir/x", b"1"), member("dir/y", b"2")],
        [member("CON", b"1"), member("_CON", b"2")],  # equal after sanitising
    ],
    ids=["same-twice", "file-then-dir", "dir-then-file", "file-as-parent", "dir-twice",
         "case", "nfc-nfd", "case-in-parent", "sanitised-equal"],
)
def test_t9_duplicates_and_collisions_are_rejected(area: tuple[Path, Path],
                                                   members: list[bytes]) -> None:
    out, _ = area
    assert_rejected(out, archive(*members), "twice|clashes")


# --------------------------------------------------------------- T11 portable names in a tree


def test_t11_portable_names_are_sanitised_in_trees(area: tuple[Path, Path]) -> None:
    out, _ = area
    data = archive(member("t/CON", b"1"), member("t/file.txt:stream", b"2"),
                   member("t/trail. ", b"3"), member("t/a\x1bb", b"4"))
    extract_all(out, data)
    assert sorted(p.name for p in (out / "t").iterdir()) == [
        "_CON", "a_b", "file.txt_stream", "trail"]


# --------------------------------------------------------------- T12 limits


def test_t12_entry_limit(area: tuple[Path, Path]) -> None:
    out, _ = area
    # 100 001 "./" entries: cheap to create, each counts as an entry
    root_entry = member("./", is_dir=True)
    data = root_entry * 100_001 + END_OF_ARCHIVE
    assert_rejected(out, data, "more than 100000 entries", piece=262144)


@pytest.mark.parametrize(
    ("name", "limit"),
    [("n/" * 2048 + "x", "4096 bytes"), ("d/" * 100 + "x", "100 levels"),
     ("a/" + "c" * 256, "255 bytes")],
)
def test_t12_name_limits(area: tuple[Path, Path], name: str, limit: str) -> None:
    out, _ = area
    assert_rejected(out, archive(member(name, b"x")), limit)


def test_t12_unpacked_size_beyond_announced(area: tuple[Path, Path]) -> None:
    out, _ = area
    data = archive(member("a", b"x" * 1000), member("b", b"y" * 1000))
    assert_rejected(out, data, "announced 1500 bytes", max_unpacked=1500)


def test_t12_checksum_error_and_missing_end_marker(area: tuple[Path, Path]) -> None:
    out, _ = area
    data = bytearray(archive(member("a", b"x")))
    data[10] ^= 0x20
    assert_rejected(out, bytes(data), "checksum")
    assert_rejected(out, archive(member("a", b"x"))[:-BLOCK], "truncated")
    assert_rejected(out, archive(member("a", b"x")) + b"junk", "after the end-of-archive")


def test_file_count_must_match_the_announcement(area: tuple[Path, Path]) -> None:
    out, _ = area
    data = archive(member("a", b"1"), member("b", b"2"))
    before = snapshot(out.parent)
    with TarExtractor(out, max_unpacked=len(data)) as ex:
        ex.feed(data)
        with pytest.raises(ArchiveRejected, match="announced 3"):
            ex.finish(expected_file_count=3)
    assert snapshot(out.parent) == before
