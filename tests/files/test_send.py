"""Sender side: input classification, tar planning, exact size, hazards (T18, W6)."""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import shutil
import socket
import stat
import subprocess
import tarfile
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from sp2p.errors import LocalIOError, UsageError
from sp2p.fs import archive
from sp2p.fs.archive import plan_tar
from sp2p.fs.outgoing import inspect_sources, mime_type
from tests.files.helpers import drain
from tests.support.files import open_under

CHUNK = 262144


def read_all(reader: object) -> bytes:
    return b"".join(drain(reader))


def tar_listing(data: bytes) -> list[tuple[str, bytes, int]]:
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        return [(m.name, m.type, m.size) for m in tar]


# --------------------------------------------------------------- classification


def test_single_file(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    content = os.urandom(600_000)
    path.write_bytes(content)
    source = inspect_sources([str(path)])
    assert (source.name, source.size, source.is_folder, source.stream_mode) == (
        "notes.txt", 600_000, False, False)
    assert source.mime_type == "text/plain; charset=utf-8"
    assert source.file_count == 0
    chunks = drain(source.open(), CHUNK)
    assert [len(c) for c in chunks] == [CHUNK, CHUNK, 600_000 - 2 * CHUNK]
    assert b"".join(chunks) == content


@pytest.mark.parametrize(
    ("name", "mime"),
    [("a.bin", "application/octet-stream"), ("noext", "application/octet-stream"),
     ("p.PNG", "image/png"), ("x.tar.gz", "application/gzip"), ("i.html", "text/html; charset=utf-8"),
     ("d.json", "application/json"), ("s.js", "text/javascript; charset=utf-8")],
)
def test_mime_types_follow_go(name: str, mime: str) -> None:
    assert mime_type(name) == mime


def test_one_directory(tmp_path: Path) -> None:
    root = tmp_path / "album"
    (root / "b").mkdir(parents=True)
    (root / "a.jpg").write_bytes(b"a" * 10)
    (root / "b" / "c.jpg").write_bytes(b"c" * 700)
    (root / "b.txt").write_bytes(b"bt")
    source = inspect_sources([str(root)])
    assert (source.name, source.mime_type, source.is_folder, source.file_count) == (
        "album", "", True, 3)
    data = read_all(source.open())
    assert len(data) == source.size
    # lexical walk order, dirs as typeflag 5 without a trailing slash, no root entry
    assert tar_listing(data) == [
        ("album/a.jpg", tarfile.REGTYPE, 10),
        ("album/b", tarfile.DIRTYPE, 0),
        ("album/b/c.jpg", tarfile.REGTYPE, 700),
        ("album/b.txt", tarfile.REGTYPE, 2),
    ]
    assert b"album/b/\x00" not in data


def test_several_paths(tmp_path: Path) -> None:
    (tmp_path / "x.txt").write_text("x")
    (tmp_path / "dir").mkdir()
    (tmp_path / "dir" / "y").write_text("y")
    (tmp_path / "z.bin").write_text("z")
    source = inspect_sources([str(tmp_path / "x.txt"), str(tmp_path / "dir"),
                              str(tmp_path / "z.bin")])
    assert source.name == "3-files" and source.is_folder and source.file_count == 3
    data = read_all(source.open())
    assert len(data) == source.size
    assert [n for n, _, _ in tar_listing(data)] == ["x.txt", "dir/y", "z.bin"]


def test_stdin_stream_reads_full_chunks(tmp_path: Path) -> None:
    rfd, wfd = os.pipe()
    payload = os.urandom(3 * CHUNK + 123)

    def writer() -> None:
        with os.fdopen(wfd, "wb", buffering=0) as w:
            for i in range(0, len(payload), 1000):  # many small pipe writes
                w.write(payload[i : i + 1000])

    thread = threading.Thread(target=writer)
    thread.start()
    with os.fdopen(rfd, "rb", buffering=0) as r:
        source = inspect_sources(["-"], stdin=r, stream_name="backup.sql")
        assert (source.name, source.size, source.stream_mode, source.mime_type) == (
            "backup.sql", 0, True, "")
        chunks = drain(source.open(), CHUNK)
    thread.join()
    assert [len(c) for c in chunks] == [CHUNK, CHUNK, CHUNK, 123]
    assert b"".join(chunks) == payload
    assert inspect_sources(["-"], stdin=io.BytesIO(b"")).name == "stdin"


def test_usage_errors(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("f")
    with pytest.raises(UsageError, match="nothing to send"):
        inspect_sources([])
    with pytest.raises(UsageError, match="only input"):
        inspect_sources(["-", str(tmp_path / "f")])
    with pytest.raises(LocalIOError, match="No such file"):
        inspect_sources([str(tmp_path / "missing")])


def test_duplicate_basenames_are_refused_before_sending(tmp_path: Path) -> None:
    for d in ("a", "b"):
        (tmp_path / d).mkdir()
    (tmp_path / "a" / "report.pdf").write_text("1")
    (tmp_path / "b" / "report.pdf").write_text("2")
    (tmp_path / "b" / "REPORT.PDF").write_text("3")
    with pytest.raises(UsageError, match="both be sent as 'report.pdf'"):
        inspect_sources([str(tmp_path / "a" / "report.pdf"), str(tmp_path / "b" / "report.pdf")])
    with pytest.raises(UsageError, match="both be sent"):
        inspect_sources([str(tmp_path / "a" / "report.pdf"), str(tmp_path / "b" / "REPORT.PDF")])


def test_one_input_spelled_two_ways_is_named_as_the_same_input(tmp_path: Path) -> None:
    """`d` and `./d/` (or a link to d with d's name) are one input, not two that clash."""
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "f").write_text("f")
    (tmp_path / "links").mkdir()
    (tmp_path / "links" / "d").symlink_to(tmp_path / "d")
    d = str(tmp_path / "d")
    for twin in (d + "/", os.path.join(tmp_path, ".", "d"), str(tmp_path / "links" / "d")):
        with pytest.raises(UsageError, match=r"^" + re.escape(f"{d} and {twin} are the same input") + "$"):
            plan_tar([d, twin])
    with pytest.raises(UsageError, match=r"^" + re.escape(f"{d} is given twice") + "$"):
        plan_tar([d, d])


def test_names_receivers_refuse_are_refused_up_front(tmp_path: Path) -> None:
    root = tmp_path / "t"
    root.mkdir()
    (root / "README").write_text("1")
    (root / "readme").write_text("2")
    with pytest.raises(LocalIOError, match="clash"):
        plan_tar([root])
    (root / "readme").unlink()
    (root / "back\\slash").write_text("3")
    with pytest.raises(LocalIOError, match="backslash"):
        plan_tar([root])
    (root / "back\\slash").unlink()
    with open(os.path.join(os.fsencode(root), b"bad\xffname"), "wb"):
        pass
    with pytest.raises(LocalIOError, match="not valid UTF-8"):
        plan_tar([root])


def test_entry_limit_is_checked_before_sending(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "many"
    root.mkdir()
    for i in range(6):
        (root / str(i)).write_text("x")
    monkeypatch.setattr(archive, "MAX_ENTRIES", 5)
    with pytest.raises(LocalIOError, match="more than 5"):
        plan_tar([root])


def test_exact_size_with_pax_headers(tmp_path: Path) -> None:
    root = tmp_path / "p"
    deep = root / ("ü" * 60) / ("long" * 40)
    deep.mkdir(parents=True)
    (deep / ("name" * 50)).write_bytes(b"x" * 513)
    (root / "日本").write_bytes(b"")
    plan = plan_tar([root])
    data = read_all(plan.open())
    assert len(data) == plan.size
    # Go's estimate ignores PAX headers and would under-count this archive
    go_estimate = sum(512 if e.is_dir else 512 + -(-e.size // 512) * 512
                      for e in plan.entries) + 1024
    assert plan.size > go_estimate


@pytest.mark.slow
def test_go_reads_a_sent_folder(tmp_path: Path, gotar: Path) -> None:
    root = tmp_path / "g"
    (root / "sub" / "empty").mkdir(parents=True)
    files = {"g/a.txt": b"a", "g/sub/ünï.bin": os.urandom(70_000),
             "g/sub/" + "L" * 180: b"long"}
    for name, content in files.items():
        (tmp_path / name).write_bytes(content)
    data = read_all(plan_tar([root]).open())
    out = subprocess.run([str(gotar)], input=data, capture_output=True, check=True)
    lines = [json.loads(line) for line in out.stdout.decode().splitlines()]
    assert lines[-1] == {"trailing": 0}
    got = {e["name"]: e["sha256"] for e in lines[:-1] if e["type"] == "0"}
    assert got == {n: hashlib.sha256(c).hexdigest() for n, c in files.items()}
    assert {e["name"] for e in lines[:-1] if e["type"] == "5"} == {"g/sub", "g/sub/empty"}


# --------------------------------------------------------------- T18 hazards, W6


@pytest.fixture
def hazard_tree(tmp_path: Path) -> Iterator[Path]:
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True)
    (home / ".ssh" / "id_ed25519").write_text("PRIVATE KEY")
    root = tmp_path / "share"
    root.mkdir()
    (root / "ok.txt").write_text("ok")
    (root / "star*.txt").write_text("literal star")
    (root / "ssh").symlink_to(home / ".ssh")
    (root / "zero").symlink_to("/dev/zero")
    (root / "dangling").symlink_to(tmp_path / "nowhere")
    os.mkfifo(root / "fifo")
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(root / "sock"))
    yield root
    sock.close()


def test_t18_links_and_specials_are_skipped_with_notices(hazard_tree: Path) -> None:
    source = inspect_sources([str(hazard_tree)])
    data = read_all(source.open())
    names = [n for n, _, _ in tar_listing(data)]
    assert names == ["share/ok.txt", "share/star*.txt"]
    assert b"PRIVATE KEY" not in data
    assert sorted(source.notices) == [
        "skipped FIFO share/fifo",
        "skipped socket share/sock",
        "skipped symbolic link share/dangling",
        "skipped symbolic link share/ssh",
        "skipped symbolic link share/zero",
    ]


def test_w6_top_level_symlink_to_a_directory_is_followed(tmp_path: Path) -> None:
    real = tmp_path / "real"
    real.mkdir()
    (real / "f").write_text("f")
    (tmp_path / "alias").symlink_to(real)
    source = inspect_sources([str(tmp_path / "alias")])
    assert source.name == "alias"
    assert [n for n, _, _ in tar_listing(read_all(source.open()))] == ["alias/f"]


def test_special_file_named_on_the_command_line_is_refused(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "pipe")
    with pytest.raises(LocalIOError, match="it is a FIFO") as excinfo:
        inspect_sources([str(tmp_path / "pipe")])
    assert excinfo.value.hint is not None and "sp2p send -" in excinfo.value.hint
    with pytest.raises(LocalIOError, match="FIFO"):
        inspect_sources([str(tmp_path / "pipe"), str(tmp_path)])


def big_tree(tmp_path: Path) -> Path:
    root = tmp_path / "t"
    root.mkdir()
    (root / "a.bin").write_bytes(b"a" * 400_000)
    (root / "b.bin").write_bytes(b"b" * 400_000)
    return root


def test_t18_file_growing_while_sent_is_detected(tmp_path: Path) -> None:
    root = big_tree(tmp_path)
    reader = plan_tar([root]).open()
    reader.read(CHUNK)
    with open(root / "a.bin", "ab") as f:
        f.write(b"more")
    with pytest.raises(LocalIOError, match="a.bin grew while being sent"):
        drain(reader, CHUNK)
    reader.close()


def test_t18_file_shrinking_while_sent_is_detected(tmp_path: Path) -> None:
    root = big_tree(tmp_path)
    reader = plan_tar([root]).open()
    reader.read(CHUNK)
    os.truncate(root / "a.bin", 300_000)
    with pytest.raises(LocalIOError, match="a.bin shrank while being sent"):
        drain(reader, CHUNK)


def test_t18_changed_before_its_turn_is_detected(tmp_path: Path) -> None:
    root = big_tree(tmp_path)
    plan = plan_tar([root])
    (root / "b.bin").write_bytes(b"B" * 10)
    with pytest.raises(LocalIOError, match="b.bin changed size"):
        drain(plan.open(), CHUNK)
    plan = plan_tar([root])
    os.utime(root / "b.bin", ns=(0, 5_000_000_000))
    (root / "b.bin").write_bytes(b"C" * 10)  # same size, new content and mtime
    with pytest.raises(LocalIOError, match="b.bin was modified"):
        drain(plan.open(), CHUNK)


def test_t18_file_swapped_for_a_link_is_not_followed(tmp_path: Path) -> None:
    root = big_tree(tmp_path)
    secret = tmp_path / "secret"
    secret.write_bytes(b"s" * 400_000)
    plan = plan_tar([root])
    (root / "b.bin").unlink()
    (root / "b.bin").symlink_to(secret)
    with pytest.raises(LocalIOError, match="b.bin"):
        drain(plan.open(), CHUNK)
    (root / "b.bin").unlink()
    os.link(secret, root / "b.bin")  # same size, other inode
    with pytest.raises(LocalIOError, match="replaced"):
        drain(plan.open(), CHUNK)


def test_single_file_growing_is_detected(tmp_path: Path) -> None:
    path = tmp_path / "log.txt"
    path.write_bytes(b"x" * 300_000)
    reader = inspect_sources([str(path)]).open()
    reader.read(CHUNK)
    with open(path, "ab") as f:
        f.write(b"appended")
    with pytest.raises(LocalIOError, match="grew"):
        drain(reader, CHUNK)


def test_t18_unreadable_file_is_refused_before_sending() -> None:
    workdir = Path(tempfile.mkdtemp(prefix="sp2p-unreadable-"))
    try:
        workdir.chmod(0o755)
        root = workdir / "tree"
        root.mkdir()
        (root / "open.txt").write_text("o")
        (root / "closed.txt").write_text("c")
        (root / "closed.txt").chmod(0)
        if os.geteuid() != 0:
            with pytest.raises(LocalIOError, match="closed.txt: permission denied"):
                plan_tar([root])
            return
        # root reads everything: check as an unprivileged user in a forked child
        pid = os.fork()
        if pid == 0:  # pragma: no cover - child
            code = 3
            try:
                os.setgid(65534)
                os.setuid(65534)
                plan_tar([root])
                code = 1
            except LocalIOError as exc:
                code = 0 if "closed.txt: permission denied" in str(exc) else 2
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
    finally:
        shutil.rmtree(workdir)


def test_reader_close_releases_the_open_file(tmp_path: Path) -> None:
    root = big_tree(tmp_path)
    reader = plan_tar([root]).open()
    reader.read(1000)
    assert len(open_under(root)) == 1
    reader.close()
    assert open_under(root) == []
    assert stat.S_ISDIR(os.stat(root).st_mode)
