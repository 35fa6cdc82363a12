"""Issue 16 item 4 (and issue 14 item 6), C11/C12: a wrong code and a key-swapping server end
both sides the same way: exit 5, "wrong code, or someone tampered", "may be intercepted".

Before, only the receiver said so; the sender saw a peer that left (exit 4).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from sp2p.proto.constants import CONFIRM_BYTES, TCP_MAGIC
from sp2p.proto.keys import KeyPair
from sp2p.status import ExitStatus
from tests.e2e.harness import Result, finish, read_code, spawn
from tests.support.codes import wrong_code
from tests.support.evil_mitm import Mitm, never_readable
from tests.support.evil_server import EvilServer
from tests.support.server_proc import ServerProc

pytestmark = pytest.mark.e2e

MESSAGE = "sp2p: error: key confirmation failed: wrong code, or someone tampered with the connection"
HINT = "sp2p: hint: check that both sides used the same code; if they did, the connection may be intercepted"


def _says_wrong_code_or_intercepted(r: Result) -> None:
    assert r.rc == ExitStatus.SECURITY, r.err
    assert "Traceback" not in r.err, r.err
    lines = r.err.splitlines()
    assert MESSAGE in lines and HINT in lines, r.err


def _verify_code(r: Result) -> str:
    match = re.search(r"Verify: ([0-9a-f]{8})", r.err)
    assert match, r.err
    return match.group(1)


def test_wrong_code_ends_both_sides_alike(env: dict[str, str], tmp_path: Path, outdir: Path) -> None:
    src = tmp_path / "secret.txt"
    src.write_text("top secret")
    sender = spawn(["send", str(src)], env)
    wrong = wrong_code(read_code(sender))
    r = finish(spawn(["receive", "-output", str(outdir), wrong], env), timeout=60)
    s = finish(sender, timeout=60)
    _says_wrong_code_or_intercepted(r)
    _says_wrong_code_or_intercepted(s)
    assert list(outdir.iterdir()) == []


def test_key_swapping_server_is_called_out_on_both_sides(sp2p_server: ServerProc, env: dict[str, str],
                                                         tmp_path: Path, outdir: Path) -> None:
    """C12: the server hands each peer the attacker's X25519 key instead of the other peer's."""
    attacker = KeyPair.generate().public_b64()
    swapped: list[str] = []

    def swap_keys(msg: dict[str, Any], role: str) -> list[dict[str, Any]]:
        payload = msg.get("payload")
        if msg.get("type") == "crypto" and isinstance(payload, dict):
            swapped.append(payload.get("publicKey", ""))
            msg = {**msg, "payload": {**payload, "publicKey": attacker}}
        return [msg]

    src = tmp_path / "secret.txt"
    src.write_text("top secret")
    with EvilServer(sp2p_server.ws_url, swap_keys) as evil:
        evil_env = {**env, "SP2P_SERVER": evil.http_url}
        sender = spawn(["send", str(src)], evil_env)
        r = finish(spawn(["receive", "-output", str(outdir), read_code(sender)], evil_env), timeout=60)
        s = finish(sender, timeout=60)
    assert len(swapped) == 2  # both directions were rewritten
    _says_wrong_code_or_intercepted(r)
    _says_wrong_code_or_intercepted(s)
    assert _verify_code(r) != _verify_code(s)
    assert list(outdir.iterdir()) == []


def test_c12_attacker_in_the_tcp_path_learns_nothing(sp2p_server: ServerProc, env: dict[str, str],
                                                      tmp_path: Path, outdir: Path) -> None:
    """C12: the server swaps the keys and points each peer's `direct` address at an attacker
    listener that relays to the real one: both sides exit 5, and the attacker saw only
    key-confirmation bytes, never the file's name, Metadata or data."""
    name, content = b"quarterly-secret.txt", b"the plaintext the attacker wants " * 64
    src = tmp_path / name.decode()
    src.write_bytes(content)
    mitm = Mitm("127.0.0.1")
    with EvilServer(sp2p_server.ws_url, mitm.rewrite) as evil:
        evil_env = {**env, "SP2P_SERVER": evil.http_url}
        sender = spawn(["send", "-transport", "tcp", str(src)], evil_env)
        r = finish(spawn(["receive", "-transport", "tcp", "-output", str(outdir), read_code(sender)],
                         evil_env), timeout=60)
        s = finish(sender, timeout=60)
        evil.call(mitm.close())
    assert mitm.keys_swapped == 2
    _says_wrong_code_or_intercepted(r)
    _says_wrong_code_or_intercepted(s)
    assert list(outdir.iterdir()) == []
    seen = mitm.on("tcp")
    assert {item.sender for item in seen if item.data} == {"sender", "receiver"}, "not through the attacker"
    never_readable(seen, [name, content[:32]])
    # per connection and direction: the 0x53 handshake byte and at most one confirmation MAC
    for item in seen:
        assert item.data[:1] in (b"", bytes([TCP_MAGIC])) and len(item.data) <= 1 + CONFIRM_BYTES, item
