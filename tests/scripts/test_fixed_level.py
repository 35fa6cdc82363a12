"""scripts/benchkit/fixed_level.py: the benches' "fixed N" sender answers N's setting for every
chunk and takes whatever the send pump reports (it broke once when the pump reported more)."""

from __future__ import annotations

import socket

import pytest

from scripts.benchkit.fixed_level import fix_level, start_stored
from sp2p.link import send_pump
from sp2p.net.tcp import TcpChannel
from sp2p.proto.adapt import LevelController
from sp2p.proto.compression import STORED, zstd_level


@pytest.mark.parametrize("level", [0, 1, 3, 9])
def test_every_chunk_gets_the_fixed_setting(level: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(send_pump, "LevelController", send_pump.LevelController)  # restored after
    monkeypatch.setattr(TcpChannel, "same_host", TcpChannel.same_host)
    fix_level(level)
    # a receiver on this host would get no zstd from the real CLI: the fixed columns compress
    with socket.socket() as sock:
        assert TcpChannel(sock, dialed=True).same_host is False
    ctl = send_pump.LevelController(level or 3)
    want = zstd_level(level) if level else STORED
    for _ in range(100):
        ctl.on_compressed(want, 262144, 262144)  # does not shrink: still no stored run
        # as many measurements as the pump's writer reports
        ctl.on_written(want, 262144, 0.01, 0.0, 0.01, 4 << 20, 262144)
        assert ctl.next_level() == want



def test_start_stored_keeps_the_controller_but_starts_at_a_stored_frame(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(send_pump, "start_level", send_pump.start_level)  # restored after
    assert send_pump.start_level(3, 0.07) == 3  # a far link
    start_stored()
    assert send_pump.start_level(3, 0.07) == 0
    assert send_pump.LevelController is LevelController  # still adaptive
