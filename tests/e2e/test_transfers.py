"""CLI to CLI through the real server on loopback: what arrives is what was sent."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from scripts.benchkit.fixed_level import FIXED_MAIN
from tests.e2e.harness import transfer
from tests.support.files import sha256_file as sha

pytestmark = pytest.mark.e2e




def tree(root: Path) -> dict[str, str]:
    """relative path -> content hash ('dir' for directories)."""
    out: dict[str, str] = {}
    for p in sorted(root.rglob("*")):
        out[str(p.relative_to(root))] = "dir" if p.is_dir() else sha(p)
    return out


def test_zero_byte_file(env: dict[str, str], tmp_path: Path, outdir: Path) -> None:
    src = tmp_path / "empty.dat"
    src.write_bytes(b"")
    s, r = transfer([str(src)], ["-output", str(outdir)], env)
    assert (s.rc, r.rc) == (0, 0), s.err + r.err
    assert (outdir / "empty.dat").read_bytes() == b""
    assert "Transfer complete" in r.err and "via TCP" in r.err


@pytest.mark.slow
def test_300_mib_random_file(env: dict[str, str], tmp_path: Path, outdir: Path) -> None:
    src = tmp_path / "big.bin"
    with src.open("wb") as f:
        for _ in range(300):
            f.write(os.urandom(1 << 20))
    s, r = transfer([str(src)], ["-output", str(outdir)], env)
    assert (s.rc, r.rc) == (0, 0), s.err + r.err
    assert sha(outdir / "big.bin") == sha(src)
    assert "Confirmed by receiver" in s.err
    assert not [p for p in outdir.iterdir() if p.name.startswith(".sp2p")]


def test_folder_with_nested_and_empty_dirs(env: dict[str, str], tmp_path: Path, outdir: Path) -> None:
    src = tmp_path / "project"
    (src / "a" / "b" / "c").mkdir(parents=True)
    (src / "empty").mkdir()
    (src / "a" / "b" / "c" / "deep.txt").write_text("deep")
    (src / "top.bin").write_bytes(os.urandom(700_000))
    (src / "a" / "script.sh").write_text("#!/bin/sh\n")
    (src / "a" / "script.sh").chmod(0o755)
    os.utime(src / "top.bin", (1_600_000_000, 1_600_000_000))
    s, r = transfer([str(src)], ["-output", str(outdir)], env)
    assert (s.rc, r.rc) == (0, 0), s.err + r.err
    assert tree(outdir / "project") == tree(src)
    assert (outdir / "project" / "empty").is_dir()
    assert os.stat(outdir / "project" / "a" / "script.sh").st_mode & 0o111
    assert int(os.stat(outdir / "project" / "top.bin").st_mtime) == 1_600_000_000


def test_unicode_and_odd_names(env: dict[str, str], tmp_path: Path, outdir: Path) -> None:
    src = tmp_path / "Ünïcødé dir ☃"
    src.mkdir()
    for name in ["spaces in name.txt", "日本語.txt", "-dash-first", "a'quote\".txt", "x" * 150 + ".txt"]:
        (src / name).write_text(name)
    s, r = transfer([str(src)], ["-output", str(outdir)], env)
    assert (s.rc, r.rc) == (0, 0), s.err + r.err
    expected = tree(src)
    # the portable name policy (T11) renames characters Windows cannot store, deterministically
    expected["a'quote_.txt"] = expected.pop('a\'quote".txt')
    assert tree(outdir / src.name) == expected


def test_single_file_with_unicode_name(env: dict[str, str], tmp_path: Path, outdir: Path) -> None:
    src = tmp_path / "résumé ☃.pdf"
    src.write_bytes(b"%PDF" + os.urandom(5000))
    s, r = transfer([str(src)], ["-output", str(outdir)], env)
    assert (s.rc, r.rc) == (0, 0), s.err + r.err
    assert sha(outdir / src.name) == sha(src)


def test_several_files_at_once(env: dict[str, str], tmp_path: Path, outdir: Path) -> None:
    files = []
    for i in range(3):
        p = tmp_path / f"f{i}.txt"
        p.write_text(f"file {i}\n" * (i + 1) * 1000)
        files.append(p)
    folder = tmp_path / "dir"
    folder.mkdir()
    (folder / "inner.txt").write_text("inner")
    s, r = transfer([*map(str, files), str(folder)], ["-output", str(outdir)], env)
    assert (s.rc, r.rc) == (0, 0), s.err + r.err
    for p in files:
        assert (outdir / p.name).read_text() == p.read_text()
    assert (outdir / "dir" / "inner.txt").read_text() == "inner"


def test_stdin_to_stdout(env: dict[str, str]) -> None:
    s, r = transfer(["-"], ["-stdout"], env, stdin_data=b"hello from a pipe\n")
    assert (s.rc, r.rc) == (0, 0), s.err + r.err
    assert r.out == b"hello from a pipe\n"  # the payload only


def test_stdin_with_name_to_file(env: dict[str, str], outdir: Path) -> None:
    data = os.urandom(3_000_000)
    s, r = transfer(["-name", "dump.bin", "-"], ["-output", str(outdir)], env, stdin_data=data)
    assert (s.rc, r.rc) == (0, 0), s.err + r.err
    assert (outdir / "dump.bin").read_bytes() == data


def test_name_flag_renames_a_file(env: dict[str, str], tmp_path: Path, outdir: Path) -> None:
    src = tmp_path / "original.txt"
    src.write_text("renamed")
    s, r = transfer(["--name=other.txt", str(src)], ["-output", str(outdir)], env)
    assert (s.rc, r.rc) == (0, 0), s.err + r.err
    assert (outdir / "other.txt").read_text() == "renamed"


@pytest.mark.parametrize("level", range(1, 10))
def test_every_compression_level(level: int, env: dict[str, str], tmp_path: Path, outdir: Path) -> None:
    """Every chunk at zstd's setting for -compress N. Over loopback the real CLI sends no zstd
    (the receiver is on this host), so the benches' fixed-level wrapper forces the level."""
    src = tmp_path / "text.log"
    src.write_bytes(b"".join(b"line %d: the quick brown fox\n" % i for i in range(60_000)))
    s, r = transfer(["-v", str(src)], ["-output", str(outdir)], env,
                    send_main=(*FIXED_MAIN, str(level), "--"))
    assert (s.rc, r.rc) == (0, 0), s.err + r.err
    assert "without zstd" not in s.err
    assert sha(outdir / "text.log") == sha(src)


def test_compression_off(env: dict[str, str], tmp_path: Path, outdir: Path) -> None:
    src = tmp_path / "text.log"
    src.write_bytes(b"".join(b"line %d: the quick brown fox\n" % i for i in range(60_000)))
    s, r = transfer(["-compress=0", str(src)], ["-output", str(outdir)], env)
    assert (s.rc, r.rc) == (0, 0), s.err + r.err
    assert sha(outdir / "text.log") == sha(src)


def test_incompressible_data_with_compression_on(env: dict[str, str], tmp_path: Path, outdir: Path) -> None:
    src = tmp_path / "random.bin"
    src.write_bytes(os.urandom(2_000_000))
    s, r = transfer(["-compress", "9", "-v", str(src)], ["-output", str(outdir)], env)
    assert (s.rc, r.rc) == (0, 0), s.err + r.err
    assert sha(outdir / "random.bin") == sha(src)
    assert "does not compress" in s.err


def test_name_collisions_never_overwrite(env: dict[str, str], tmp_path: Path, outdir: Path) -> None:
    src = tmp_path / "report.tar.gz"
    src.write_bytes(b"new")
    (outdir / "report.tar.gz").write_bytes(b"old")
    (outdir / "report.tar (1).gz").write_bytes(b"old1")
    s, r = transfer([str(src)], ["-output", str(outdir)], env)
    assert (s.rc, r.rc) == (0, 0), s.err + r.err
    assert (outdir / "report.tar.gz").read_bytes() == b"old"
    assert (outdir / "report.tar (1).gz").read_bytes() == b"old1"
    assert (outdir / "report.tar (2).gz").read_bytes() == b"new"


def test_folder_collision_gets_a_fresh_name(env: dict[str, str], tmp_path: Path, outdir: Path) -> None:
    src = tmp_path / "photos"
    src.mkdir()
    (src / "a.jpg").write_bytes(b"new")
    (outdir / "photos").mkdir()
    (outdir / "photos" / "a.jpg").write_bytes(b"old")
    s, r = transfer([str(src)], ["-output", str(outdir)], env)
    assert (s.rc, r.rc) == (0, 0), s.err + r.err
    assert (outdir / "photos" / "a.jpg").read_bytes() == b"old"
    assert (outdir / "photos (1)" / "a.jpg").read_bytes() == b"new"


def test_config_env_flag_precedence(env: dict[str, str], tmp_path: Path, outdir: Path) -> None:
    """flags > SP2P_* env > config file > defaults, shown with the server address."""
    good = env["SP2P_SERVER"]
    cfg = Path(env["XDG_CONFIG_HOME"]) / "sp2p" / "config.yaml"
    cfg.parent.mkdir(parents=True, exist_ok=True)
    src = tmp_path / "p.txt"
    src.write_text("precedence")
    no_env = {k: v for k, v in env.items() if k != "SP2P_SERVER"}
    # the file alone decides when nothing else is given
    cfg.write_text(f"server: {good}\noutput: {outdir}\ncompress: 0\n")
    s, r = transfer([str(src)], [], no_env)
    assert (s.rc, r.rc) == (0, 0), s.err + r.err
    assert (outdir / "p.txt").read_text() == "precedence"
    # env beats the file
    cfg.write_text("server: http://127.0.0.1:9\n")
    s, r = transfer([str(src)], ["-output", str(outdir)], env)
    assert (s.rc, r.rc) == (0, 0), s.err + r.err
    # a flag beats the env
    bad_env = {**env, "SP2P_SERVER": "http://127.0.0.1:9"}
    s, r = transfer([f"-server={good}", str(src)], ["--server", good, "-output", str(outdir)], bad_env)
    assert (s.rc, r.rc) == (0, 0), s.err + r.err
    assert sorted(p.name for p in outdir.iterdir()) == ["p (1).txt", "p (2).txt", "p.txt"]
