"""The TCP-preference hold (client.md §4.5): for a large file a confirmed WebRTC channel waits
PREFER_TCP_WINDOW for TCP to win, but only where TCP races beside it. Facing a browser there is
no TCP leg: the hold made every CLI -> browser transfer of 64 MiB or more wait the whole window
(6 s) after the data channel opened."""

from __future__ import annotations

import pytest

from sp2p.flow.connect import PREFER_TCP_WINDOW, ConnectOptions, PeerInfo, prefer_tcp_window
from sp2p.proto.constants import Transport
from sp2p.proto.signal import ClientType


@pytest.mark.parametrize(
    ("transport", "client", "prefer_tcp", "held"),
    [
        (Transport.AUTO, ClientType.CLI, True, True),
        (Transport.AUTO, ClientType.CLI, False, False),
        (Transport.AUTO, ClientType.BROWSER, True, False),
        (Transport.WEBRTC, ClientType.CLI, True, False),
    ],
    ids=["cli-large", "cli-small", "browser-large", "webrtc-only"],
)
def test_webrtc_is_held_for_tcp_only_where_tcp_races(
    transport: Transport, client: str, prefer_tcp: bool, held: bool
) -> None:
    opts = ConnectOptions(transport=transport, prefer_tcp=prefer_tcp)
    window = prefer_tcp_window(opts, PeerInfo(client_type=client))
    assert window == (PREFER_TCP_WINDOW if held else 0.0)
