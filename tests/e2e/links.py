"""Destroy the peer-to-peer TCP connections of two CLI processes (`ss -K`), as a network change would."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

from tests.e2e.cut_transfer import TooLate, short_of_end, stopped


def server_port(server: Any) -> int:
    return int(server.http_url.rsplit(":", 1)[1].split("/")[0])


def p2p_sockets(pids: tuple[int, ...], server_port: int) -> list[tuple[str, str]]:
    """(local, peer) of the established TCP connections of `pids` that are not to the server."""
    out = subprocess.run(["ss", "-tnpH", "state", "established"], capture_output=True, text=True,
                         check=True).stdout
    found = []
    for line in out.splitlines():
        if not any(f"pid={pid}," in line for pid in pids):
            continue
        fields = line.split()
        local, peer = fields[2], fields[3]
        if not local.endswith(f":{server_port}") and not peer.endswith(f":{server_port}"):
            found.append((local, peer))
    return found


def cut(local: str, peer: str) -> None:
    """Destroy one TCP connection (both processes see it die, as after a network change)."""
    lport = local.rsplit(":", 1)[1]
    pport = peer.rsplit(":", 1)[1]
    # by ports only: ss does not parse the IPv4-mapped addresses it prints itself
    done = subprocess.run(["ss", "-K", "-tn", f"( sport = :{lport} and dport = :{pport} )"],
                          capture_output=True, text=True, check=True)
    print("cut", local, peer, done.stdout)


def cut_all(sender: subprocess.Popen[bytes], receiver: subprocess.Popen[bytes], port: int, *,
            unread: Path) -> list[tuple[str, str]]:
    """Cut every peer-to-peer connection of the two, with both stopped until all are gone.

    Raises:
        TooLate: the sender had read all of `unread` (what it sends) when stopped: everything
            may be on the way already, and the transfer need not heal.
    """
    pids = (sender.pid, receiver.pid)
    with stopped(sender, receiver):
        if not short_of_end(sender, unread):
            raise TooLate(f"the sender had read all of {unread.name} before the cut")
        links = p2p_sockets(pids, port)
        assert links, "no peer-to-peer connection found"
        for local, peer in links:
            cut(local, peer)
        assert not set(links) & set(p2p_sockets(pids, port))
    return links
