"""sp2p.proto.tar: what we write is read by tarfile, GNU tar and Go; the parser is strict."""

from __future__ import annotations

import io
import json
import os
import subprocess
import tarfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sp2p.errors import RemoteProtocolError
from sp2p.proto.tar import (
    BLOCK,
    END_OF_ARCHIVE,
    MAX_OCTAL_11,
    NEED_DATA,
    ArchiveEnd,
    MemberData,
    MemberEnd,
    MemberHeader,
    MemberKind,
    TarParser,
    encode_member_header,
)
from tests.files.helpers import archive, info, member, python_tar

NAMES = [
    "d",
    "d/plain.txt",
    "d/" + "x" * 150 + "/" + "y" * 90,  # fits the ustar prefix/name split
    "d/" + "z" * 240,  # needs PAX
    "d/ünïcödé/日本語.txt",  # non-ASCII needs PAX
    "d/" + "/".join(["seg"] * 60),  # long and deep
]


def sample_archive() -> tuple[bytes, list[tuple[str, bool, bytes, int]]]:
    members = []
    expected = []
    for i, name in enumerate(NAMES):
        is_dir = name == "d"
        data = b"" if is_dir else os.urandom(i * 700)
        mode = 0o755 if is_dir or i % 2 else 0o644
        members.append(member(name, data, is_dir=is_dir, mode=mode, mtime=1_600_000_000 + i))
        expected.append((name, is_dir, data, mode))
    return archive(*members), expected


def parse_all(data: bytes, splits: list[int] | None = None) -> list[object]:
    """Feed `data` cut at `splits`, merging consecutive data events."""
    parser = TarParser()
    events: list[object] = []
    cuts = sorted(set(splits or [])) + [len(data)]
    start = 0
    for cut in cuts:
        if cut == start:
            continue  # b"" would mean end of input
        parser.receive_data(data[start:cut])
        start = cut
        while (ev := parser.next_event()) is not NEED_DATA:
            if isinstance(ev, MemberData) and events and isinstance(events[-1], MemberData):
                events[-1] = MemberData(events[-1].data + ev.data)
            else:
                events.append(ev)
    parser.receive_data(b"")
    while (ev := parser.next_event()) is not NEED_DATA:
        events.append(ev)
    return events


def test_python_tarfile_reads_our_stream() -> None:
    data, expected = sample_archive()
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        members = tar.getmembers()
        assert [m.name for m in members] == [e[0] for e in expected]
        for m, (_, is_dir, content, mode) in zip(members, expected, strict=True):
            assert m.isdir() == is_dir
            assert m.mode == mode
            assert m.uid == 0 and m.gid == 0 and m.uname == "" and m.gname == ""
            if not is_dir:
                extracted = tar.extractfile(m)
                assert extracted is not None and extracted.read() == content


def test_stream_ends_with_exactly_two_zero_blocks() -> None:
    data, _ = sample_archive()
    assert len(data) % BLOCK == 0
    assert data.endswith(END_OF_ARCHIVE)
    assert data[-3 * BLOCK : -2 * BLOCK] != bytes(BLOCK)  # no record padding before them


def test_gnu_tar_lists_our_stream(tmp_path: Path) -> None:
    data, expected = sample_archive()
    path = tmp_path / "a.tar"
    path.write_bytes(data)
    out = subprocess.run(
        ["tar", "-tf", str(path)], capture_output=True, text=True, check=True,
        env={**os.environ, "LC_ALL": "C.UTF-8"},
    )
    listed = [line.rstrip("/") for line in out.stdout.splitlines()]
    assert listed == [e[0] for e in expected]
    assert out.stderr == ""


@pytest.mark.slow
def test_go_archive_tar_reads_our_stream_without_trailing_bytes(gotar: Path) -> None:
    import hashlib

    data, expected = sample_archive()
    out = subprocess.run([str(gotar)], input=data, capture_output=True, check=True)
    lines = [json.loads(line) for line in out.stdout.decode().splitlines()]
    assert lines[-1] == {"trailing": 0}
    entries = lines[:-1]
    assert [e["name"] for e in entries] == [e[0] for e in expected]
    for got, (_, is_dir, content, mode) in zip(entries, expected, strict=True):
        assert got["type"] == ("5" if is_dir else "0")
        assert got["mode"] == mode
        assert got["sha256"] == hashlib.sha256(content).hexdigest()


def test_round_trip_through_our_parser() -> None:
    data, expected = sample_archive()
    events = parse_all(data)
    headers = [e for e in events if isinstance(e, MemberHeader)]
    assert [h.name for h in headers] == [e[0] for e in expected]
    assert [h.mtime for h in headers] == [1_600_000_000 + i for i in range(len(NAMES))]
    assert isinstance(events[-1], ArchiveEnd)


def test_huge_size_uses_pax_and_parses() -> None:
    size = MAX_OCTAL_11 + 1
    header = encode_member_header("big.bin", is_dir=False, size=size, mode=0o644, mtime=0)
    assert len(header) == 3 * BLOCK  # PAX header + one record block + ustar header
    parser = TarParser()
    parser.receive_data(header)
    ev = parser.next_event()
    assert isinstance(ev, MemberHeader) and ev.size == size


def test_mtime_is_clamped_into_ustar_range() -> None:
    for mtime, want in ((-5, 0), (MAX_OCTAL_11 + 10, MAX_OCTAL_11)):
        header = encode_member_header("f", is_dir=False, size=0, mode=0o644, mtime=mtime)
        parser = TarParser()
        parser.receive_data(header)
        ev = parser.next_event()
        assert isinstance(ev, MemberHeader) and ev.mtime == want


def test_mode_drops_setuid_and_sticky_bits() -> None:
    header = encode_member_header("f", is_dir=False, size=0, mode=0o7777, mtime=0)
    assert tarfile.TarInfo.frombuf(header, "utf-8", "strict").mode == 0o777


# --------------------------------------------------------------- strictness (T12)


def expect_error(data: bytes, match: str) -> None:
    with pytest.raises(RemoteProtocolError, match=match):
        parse_all(data)


def test_checksum_error_is_rejected() -> None:
    data = bytearray(archive(member("a.txt", b"hello")))
    data[0] ^= 0x01  # change the name byte without fixing the checksum
    expect_error(bytes(data), "checksum")


def test_stream_without_end_marker_is_truncated() -> None:
    data = archive(member("a.txt", b"hello"))
    expect_error(data[:-BLOCK], "truncated")
    expect_error(data[:-2 * BLOCK], "truncated")
    expect_error(data[: BLOCK + 3], "truncated")  # inside the data
    expect_error(b"", "truncated")


def test_single_zero_block_inside_archive_is_rejected() -> None:
    data = bytes(BLOCK) + member("a.txt", b"x") + END_OF_ARCHIVE
    expect_error(data, "single zero block")


def test_trailing_non_zero_data_is_rejected_zero_padding_is_not() -> None:
    data = archive(member("a.txt", b"hello"))
    expect_error(data + b"\x00" * 100 + b"x", "after the end-of-archive")
    events = parse_all(data + bytes(9216))  # Python's tarfile record padding
    assert isinstance(events[-1], ArchiveEnd)


def test_header_only_types_with_data_are_rejected() -> None:
    ti = info("d", tarfile.DIRTYPE)
    raw = bytearray(ti.tobuf(tarfile.USTAR_FORMAT))
    # forge a size field and recompute the checksum
    raw[124:136] = b"%011o\x00" % 512
    raw[148:156] = b" " * 8
    raw[148:156] = b"%06o\x00 " % sum(raw)
    expect_error(bytes(raw) + bytes(BLOCK) + END_OF_ARCHIVE, "non-zero size")


def test_malformed_pax_records_are_rejected() -> None:
    good = python_tar([(info("ü.txt"), b"x")])
    bad = good.replace(b" path=", b" path ", 1)
    # the PAX data block is not covered by a checksum: a broken record must still fail
    expect_error(bad, "PAX")


def test_pax_global_header_is_rejected() -> None:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT,
                      pax_headers={"comment": "x"}) as tar:
        tar.addfile(info("a"), io.BytesIO(b""))
    expect_error(buf.getvalue(), "global")


def test_gnu_long_names_are_understood() -> None:
    name = "dir/" + "n" * 300
    data = python_tar([(info(name), b"abc")], fmt=tarfile.GNU_FORMAT)
    headers = [e for e in parse_all(data) if isinstance(e, MemberHeader)]
    assert [h.name for h in headers] == [name]


def test_kinds_are_reported() -> None:
    entries = [
        (info("l", tarfile.SYMTYPE, linkname="/etc/passwd"), None),
        (info("h", tarfile.LNKTYPE, linkname="l"), None),
        (info("c", tarfile.CHRTYPE), None),
        (info("b", tarfile.BLKTYPE), None),
        (info("p", tarfile.FIFOTYPE), None),
        (info("k", tarfile.CONTTYPE), b""),
    ]
    headers = [e for e in parse_all(python_tar(entries)) if isinstance(e, MemberHeader)]
    assert [h.kind for h in headers] == [
        MemberKind.SYMLINK, MemberKind.HARDLINK, MemberKind.CHAR_DEVICE,
        MemberKind.BLOCK_DEVICE, MemberKind.FIFO, MemberKind.CONTIGUOUS,
    ]
    assert headers[0].linkname == "/etc/passwd"


def test_pax_sparse_member_is_reported_as_sparse() -> None:
    ti = info("s")
    ti.pax_headers = {"GNU.sparse.major": "1", "GNU.sparse.minor": "0"}
    headers = [e for e in parse_all(python_tar([(ti, b"")])) if isinstance(e, MemberHeader)]
    assert headers[0].kind is MemberKind.SPARSE


# --------------------------------------------------------------- properties


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.integers(min_value=0, max_value=20_000), max_size=40))
def test_any_split_yields_the_same_events(splits: list[int]) -> None:
    data, _ = sample_archive_cached()
    assert parse_all(data, [s % (len(data) + 1) for s in splits]) == reference_events()


_CACHE: dict[str, object] = {}


def sample_archive_cached() -> tuple[bytes, object]:
    if "data" not in _CACHE:
        _CACHE["data"] = sample_archive()
    return _CACHE["data"]  # type: ignore[return-value]


def reference_events() -> list[object]:
    if "events" not in _CACHE:
        _CACHE["events"] = parse_all(sample_archive_cached()[0])
    return _CACHE["events"]  # type: ignore[return-value]


@settings(max_examples=150, deadline=None)
@given(st.binary(max_size=3 * BLOCK), st.integers(min_value=1, max_value=600))
def test_garbage_only_raises_remote_protocol_error(blob: bytes, step: int) -> None:
    parser = TarParser()
    try:
        for i in range(0, len(blob), step):
            parser.receive_data(blob[i : i + step])
            while parser.next_event() is not NEED_DATA:
                pass
        parser.receive_data(b"")
        while parser.next_event() is not NEED_DATA:
            pass
    except RemoteProtocolError:
        return
    assert parser.finished


@settings(max_examples=80, deadline=None)
@given(st.binary(min_size=1, max_size=2 * BLOCK), st.integers(min_value=0))
def test_mutated_archives_only_raise_remote_protocol_error(patch: bytes, where: int) -> None:
    data = bytearray(sample_archive_cached()[0])
    pos = where % len(data)
    data[pos : pos + len(patch)] = patch
    try:
        events = parse_all(bytes(data))
    except RemoteProtocolError:
        return
    assert isinstance(events[-1], ArchiveEnd)
    assert all(isinstance(e, MemberHeader | MemberData | MemberEnd | ArchiveEnd) for e in events)
