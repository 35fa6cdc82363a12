"""Resumable partials on disk (sp2p/fs/partials.py): lookup, safety, stale removal."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from sp2p.fs.partials import MAX_AGE, PARTIAL_PREFIX, RECORD_SUFFIX, Partial, remove_stale
from sp2p.proto.resume import SourceIdentity

DATA = os.urandom(5000)
SOURCE = SourceIdentity.from_edges(len(DATA), 123, DATA[:100], DATA[-100:])


def start(outdir: Path, held: bytes) -> Partial:
    p = Partial(outdir, "a.bin", len(DATA), SOURCE)
    f = p.begin(0)
    f.write(held)
    f.abort()  # interrupted: kept
    p.close()
    return p


def names(outdir: Path) -> list[str]:
    return sorted(x.name for x in outdir.iterdir())


def test_interrupted_partial_is_found_and_hashed(tmp_path: Path) -> None:
    start(tmp_path, DATA[:3000])
    key = SOURCE.partial_key("a.bin")
    assert names(tmp_path) == [PARTIAL_PREFIX + key, PARTIAL_PREFIX + key + RECORD_SUFFIX]
    p = Partial(tmp_path, "a.bin", len(DATA), SOURCE)
    assert p.held == 3000
    import hashlib

    assert p.prefix_hash(3000).hexdigest() == hashlib.sha256(DATA[:3000]).hexdigest()
    f = p.begin(3000)
    f.write(DATA[3000:])
    final = f.commit("a.bin")
    p.forget_record()
    p.close()
    assert final.read_bytes() == DATA
    assert names(tmp_path) == ["a.bin"]


def test_nothing_found_for_another_name_size_or_source(tmp_path: Path) -> None:
    start(tmp_path, DATA[:3000])
    assert Partial(tmp_path, "b.bin", len(DATA), SOURCE).held == 0
    other = SourceIdentity(len(DATA), 124, SOURCE.head_sha256, SOURCE.tail_sha256)
    assert Partial(tmp_path, "a.bin", len(DATA), other).held == 0


def test_tampered_record_or_oversized_partial_is_discarded(tmp_path: Path) -> None:
    start(tmp_path, DATA[:3000])
    key = SOURCE.partial_key("a.bin")
    record = tmp_path / (PARTIAL_PREFIX + key + RECORD_SUFFIX)
    data = json.loads(record.read_text())
    data["size"] = 1
    record.write_text(json.dumps(data))
    assert Partial(tmp_path, "a.bin", len(DATA), SOURCE).held == 0
    assert names(tmp_path) == []
    start(tmp_path, DATA[:3000])
    with (tmp_path / (PARTIAL_PREFIX + key)).open("ab") as f:
        f.write(b"x" * 3000)  # now longer than the announced size
    assert Partial(tmp_path, "a.bin", len(DATA), SOURCE).held == 0
    assert names(tmp_path) == []


def test_links_are_never_followed_or_extended(tmp_path: Path) -> None:
    start(tmp_path, DATA[:3000])
    key = SOURCE.partial_key("a.bin")
    partial = tmp_path / (PARTIAL_PREFIX + key)
    victim = tmp_path.parent / f"{tmp_path.name}-victim"
    victim.write_bytes(DATA[:10])
    partial.unlink()
    partial.symlink_to(victim)
    assert Partial(tmp_path, "a.bin", len(DATA), SOURCE).held == 0
    assert victim.read_bytes() == DATA[:10]
    start(tmp_path, DATA[:3000])
    os.link(partial, victim.with_suffix(".hard"))  # a second name: could be anyone's file
    assert Partial(tmp_path, "a.bin", len(DATA), SOURCE).held == 0


def test_starting_afresh_removes_other_versions_of_the_same_name(tmp_path: Path) -> None:
    start(tmp_path, DATA[:3000])
    newer = SourceIdentity(len(DATA), 999, SOURCE.head_sha256, SOURCE.tail_sha256)
    p = Partial(tmp_path, "a.bin", len(DATA), newer)
    f = p.begin(0)
    f.abort()
    p.close()
    key = newer.partial_key("a.bin")
    assert names(tmp_path) == [PARTIAL_PREFIX + key, PARTIAL_PREFIX + key + RECORD_SUFFIX]


def test_stale_partials_are_removed_after_seven_days(tmp_path: Path) -> None:
    start(tmp_path, DATA[:3000])
    (tmp_path / "keep.txt").write_text("x")
    now = time.time()
    assert remove_stale(tmp_path, now=now + MAX_AGE - 60) == []
    removed = remove_stale(tmp_path, now=now + MAX_AGE + 60)
    assert [(r.name, r.size) for r in removed] == [("a.bin", 3000)]
    assert names(tmp_path) == ["keep.txt"]
