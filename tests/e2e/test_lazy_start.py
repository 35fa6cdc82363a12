"""Start-up loads only what the path needs (issue 12): no aiortc/av (WebRTC), no yaml without a
config file, no tar code for a single file. Checked in fresh interpreters, never as a timing."""

from __future__ import annotations

import json
import os
import signal
import site
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

import pytest

from sp2p.proto.codes import MAX_SEED_CHARS
from sp2p.status import ExitStatus
from tests.e2e.harness import REPO, read_code, transfer
from tests.support.codes import sender_main

pytestmark = pytest.mark.e2e

HEAVY = ["aiortc", "av", "yaml"]
#: the CLI, printing the heavy modules it loaded as its last stderr line
_TRACED = (
    "import atexit, json, sys\n"
    "atexit.register(lambda: print('LOADED ' + json.dumps(sorted(m for m in sys.modules if m in {names})),"
    " file=sys.stderr))\n"
    "from sp2p.cli import run\n"
    "sys.exit(run())\n"
)
_WATCHED = [*HEAVY, "sp2p.fs.extract", "sp2p.fs.archive", "sp2p.proto.tar", "sp2p.net.webrtc"]
#: what the start no longer pays for (issue 12): websocket-client and ssl (a ws:// server),
#: cryptography's OpenSSL backend module and cipher packages, zstandard (a 1-byte file is sent
#: without zstd), platform, the library search for renameat2, the idna codec (getaddrinfo),
#: dataclasses and the inspect/ast/dis it pulls (records are sp2p.record's), the send pump
#: and its thread pool on a receive, logging and traceback (sp2p.log loads logging for -v only),
#: OpenSSL's hashes (sp2p.proto.sha) and secrets/random, shutil with its compressors, ctypes
#: (a file is moved with a hard link), termios off a terminal, the ascii codec module, the
#: signal module (SIGTERM is set through _signal)
_LEAN = ["websocket", "ssl", "cryptography.hazmat.backends", "cryptography.hazmat.primitives.ciphers",
         "cryptography.hazmat.primitives.asymmetric.x25519", "zstandard", "platform", "ctypes.util",
         "encodings.idna", "dataclasses", "inspect", "ast", "dis", "sp2p.link.send_pump",
         "concurrent.futures", "logging", "traceback", "linecache", "tokenize", "hashlib", "_hashlib",
         "hmac", "secrets", "random", "shutil", "bz2", "lzma", "ctypes", "termios", "encodings.ascii",
         "signal"]


def _bare(env: Mapping[str, str]) -> dict[str, str]:
    """For `python -S`: the checkout and site-packages on the path, without any .pth start-up
    hook (this sandbox's import shutil, random and more before our first line)."""
    paths = [str(REPO), *site.getsitepackages(), site.getusersitepackages()]
    return {**env, "PYTHONPATH": os.pathsep.join(paths)}


def _loaded_by_import(statement: str) -> set[str]:
    code = f"import json, sys\n{statement}\nprint(json.dumps(sorted(sys.modules)))\n"
    out = subprocess.run([sys.executable, "-S", "-c", code], capture_output=True, text=True, check=True,
                         cwd=REPO, env=_bare(os.environ))
    return set(json.loads(out.stdout))


def test_cli_import_loads_no_webrtc_or_yaml() -> None:
    loaded = _loaded_by_import("import sp2p.cli")
    assert "sp2p.cli" in loaded
    assert not loaded & {*HEAVY, "sp2p.flow.receive", "sp2p.flow.send"}


def test_receive_path_import_loads_no_webrtc_yaml_or_tar() -> None:
    loaded = _loaded_by_import("import sp2p.cli, sp2p.flow.receive, sp2p.flow.send")
    assert "sp2p.flow.receive" in loaded
    assert not loaded & set(_WATCHED), loaded & set(_WATCHED)


def test_receive_path_import_is_lean() -> None:
    loaded = _loaded_by_import("import sp2p.cli, sp2p.flow.receive, sp2p.net.signaling, sp2p.proto.keys")
    assert "sp2p.net.wsclient" in loaded
    assert not loaded & set(_LEAN), loaded & set(_LEAN)


def _traced(args: list[str], env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-S", "-c", _TRACED.replace("{names}", repr({*_WATCHED, *_LEAN})), *args],
        env=_bare(env), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def _loaded(stderr: str) -> set[str]:
    lines = [line for line in stderr.splitlines() if line.startswith("LOADED ")]
    assert lines, stderr
    return set(json.loads(lines[-1][len("LOADED "):]))


@pytest.mark.parametrize("secret_chars", [MAX_SEED_CHARS, MAX_SEED_CHARS - 1], ids=["full-code", "short-code"])
def test_one_byte_over_tcp_never_loads_webrtc_yaml_or_tar(
    env: dict[str, str], tmp_path: Path, outdir: Path, secret_chars: int
) -> None:
    """A whole transfer in `auto`: TCP wins on loopback before WebRTC's head start ends. A code
    with a short secret part (1 real one in 8) is first tried on the sender's preview
    (sp2p.flow.code_check), over a socket, not urllib (which loads ssl, hashlib, shutil...)."""
    src = tmp_path / "one.txt"
    src.write_bytes(b"x")
    sender = subprocess.Popen(
        [sys.executable, *sender_main(secret_chars), "send", str(src)],
        env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    try:
        code = read_code(sender)
        assert len(code.split("-", 1)[1]) == secret_chars, code
        receiver = _traced(["receive", "-output", str(outdir), code], env)
        _, rerr = receiver.communicate(timeout=60)
        sender.communicate(timeout=60)
    finally:
        if sender.poll() is None:
            sender.kill()
            sender.wait()
    assert receiver.returncode == 0, rerr
    assert (outdir / "one.txt").read_bytes() == b"x"
    assert "via TCP" in rerr
    assert _loaded(rerr) == set()


def test_verbose_still_shows_the_debug_lines(env: dict[str, str], tmp_path: Path, outdir: Path) -> None:
    """The other side of lazy logging (sp2p.log): -v loads it and every debug line shows."""
    src = tmp_path / "one.txt"
    src.write_bytes(b"v")
    s, r = transfer(["-v", str(src)], ["-v", "-output", str(outdir)], env)
    assert (s.rc, r.rc) == (0, 0), s.err + r.err
    for err in (s.err, r.err):
        assert "sp2p.net.race: confirmed TCP" in err
        assert "sp2p.net.signaling: signal -> crypto" in err
    assert "receiver AWAIT_FIN_ACK -> FINISHED" in r.err


def test_sigterm_still_unwinds_like_ctrl_c(env: dict[str, str], tmp_path: Path) -> None:
    """The other side of setting SIGTERM through _signal: a waiting sender told to stop says
    so and exits as interrupted, with no traceback."""
    src = tmp_path / "one.txt"
    src.write_bytes(b"t")
    sender = subprocess.Popen(
        [sys.executable, "-m", "sp2p", "send", str(src)],
        env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    try:
        read_code(sender)
        sender.send_signal(signal.SIGTERM)
        _, err = sender.communicate(timeout=30)
    finally:
        if sender.poll() is None:
            sender.kill()
            sender.wait()
    assert sender.returncode == ExitStatus.INTERRUPTED
    assert "interrupted" in err.decode() and "Traceback" not in err.decode()


def test_config_file_loads_yaml_and_is_used(env: dict[str, str], tmp_path: Path) -> None:
    """The other side of lazy YAML: a config file is still read (a bad value fails the run)."""
    conf = Path(env["XDG_CONFIG_HOME"]) / "sp2p" / "config.yaml"
    conf.parent.mkdir(parents=True)
    conf.write_text("transport: pigeon\n")
    proc = _traced(["receive", "abcdefgh-0123456789abcdefgh"], env)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode != 0
    assert "config.yaml: transport: must be auto, tcp or webrtc" in err
    assert "yaml" in _loaded(err)


def test_join_goes_out_early_but_a_bad_output_never_uses_the_code(
    env: dict[str, str], tmp_path: Path, outdir: Path
) -> None:
    """The receiver's join is sent as soon as the socket is open (issue 12); a missing -output
    folder still fails first, so the sender's code stays good for the next try."""
    src = tmp_path / "one.txt"
    src.write_bytes(b"y")
    sender = subprocess.Popen(
        [sys.executable, "-m", "sp2p", "send", str(src)],
        env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    try:
        code = read_code(sender)
        bad = subprocess.run([sys.executable, "-m", "sp2p", "receive", "-output", str(tmp_path / "nope"), code],
                             env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60)
        assert bad.returncode != 0 and "does not exist" in bad.stderr
        good = subprocess.run([sys.executable, "-m", "sp2p", "receive", "-output", str(outdir), code],
                              env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60)
        sender.communicate(timeout=60)
    finally:
        if sender.poll() is None:
            sender.kill()
            sender.wait()
    assert good.returncode == 0, good.stderr
    assert (outdir / "one.txt").read_bytes() == b"y"
