"""The one place that patches aiortc's SCTP stack (version-guarded) and reads its internals.

apply() installs the receive-side patches (webrtc_sctp_recv) and the send-side ones
(webrtc_sctp_send), whose arithmetic lives in webrtc_sctp_math, and the DTLS record layer
(webrtc_dtls over webrtc_records) with the larger packets it allows between our CLIs
(webrtc_sctp_mtu); what each changes and the
measurements behind it are in docs/webrtc-tuning.md. When the installed aiortc is not a
release they were written against, or lacks an attribute they use, nothing is patched and
aiortc behaves as shipped (tests/net/test_webrtc_patches.py fails in that case).
The accessors below are for webrtc.py / webrtc_channel.py, on the loop thread only.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from typing import Any

from sp2p.net import webrtc_dtls, webrtc_sctp_mtu, webrtc_sctp_recv, webrtc_sctp_rtt, webrtc_sctp_send
from sp2p.net.webrtc_sctp_math import RECEIVE_WINDOW, queue_target, receive_window

log = logging.getLogger(__name__)

#: set to 1 to run aiortc exactly as shipped (for comparisons and interop debugging)
DISABLE_ENV = "SP2P_WEBRTC_STOCK"
#: aiortc (major, minor) releases whose SCTP internals the patches were written against
PATCHED_VERSIONS = ((1, 16),)
#: max-message-size we must advertise: Go and browser peers send 256 KiB messages
MAX_MESSAGE_SIZE = 262144
#: (aiortc class, function) -> the sp2p module whose function replaces it
PATCHED: dict[tuple[str, str], str] = {
    **{key: webrtc_sctp_recv.__name__ for key in webrtc_sctp_recv.PATCHED},
    **{key: webrtc_sctp_send.__name__ for key in webrtc_sctp_send.PATCHED},
    **{key: webrtc_dtls.__name__ for key in webrtc_dtls.PATCHED},
    **{key: webrtc_sctp_mtu.__name__ for key in webrtc_sctp_mtu.PATCHED},
}

_applied: bool | None = None
#: H1: the handshake chunks webrtc_sctp_rtt times
_HANDSHAKE = ("InitChunk", "InitAckChunk", "CookieEchoChunk", "CookieAckChunk")


def aiortc_version() -> tuple[int, int]:
    import aiortc

    parts = [int("".join(c for c in p if c.isdigit()) or 0) for p in aiortc.__version__.split(".")]
    return (parts + [0, 0])[0], (parts + [0, 0])[1]


def apply() -> bool:
    """Install the patches once; True when they are active."""
    global _applied
    if _applied is not None:
        return _applied
    from aiortc import rtcsctptransport as mod

    _ensure_max_message_size(mod)
    _applied = False
    if os.environ.get(DISABLE_ENV, "") not in ("", "0"):
        log.info("%s set: SCTP tuning not applied", DISABLE_ENV)
        return False
    if aiortc_version() not in PATCHED_VERSIONS:
        log.info("aiortc %s.%s: SCTP tuning not applied (untested version)", *aiortc_version())
        return False
    cls = getattr(mod, "RTCSctpTransport", None)
    needed = [
        "_transmit",
        "_send_sack",
        "_receive_sack_chunk",
        "_t3_expired",
        "_mark_received",
        "_send_chunk",
        "_t3_start",
        "_t3_restart",
        "_t3_cancel",
        "_flight_size_increase",
        "_flight_size_decrease",
        "_maybe_abandon",
        "_update_advanced_peer_ack_point",
        "_update_rto",
        "_data_channel_flush",
        "_receive_chunk",  # H1 wraps it and _send_chunk per association
    ]
    if (
        cls is None
        or not all(hasattr(cls, name) for name in needed)
        or not all(hasattr(mod, n) for n in ("InboundStream", "SackChunk", "USERDATA_MAX_LENGTH"))
        or not all(hasattr(mod, n) for n in _HANDSHAKE)
        or not hasattr(mod.InboundStream, "pop_messages")
    ):
        log.info("aiortc SCTP internals changed: tuning not applied")
        return False
    webrtc_sctp_recv.install(mod)
    webrtc_sctp_send.install(mod)
    dtls = _install_dtls()
    mtu_needs = ("_get_extensions", "_set_extensions", "_send", "_receive_chunk")
    if dtls and all(hasattr(cls, n) for n in mtu_needs):
        webrtc_sctp_mtu.install(mod, can_send_jumbo=webrtc_dtls.sending)
    _applied = True
    return True


def active() -> bool:
    """Whether apply() installed the tuning (also the cue for webrtc_udp's batched reads)."""
    return bool(_applied)


def _install_dtls() -> bool:
    from aiortc import rtcdtlstransport as dtls

    cls = getattr(dtls, "RTCDtlsTransport", None)
    needed = ("_recv_next", "_send_data", "_write_ssl", "_data_receiver", "_state", "_role")
    if cls is None or not hasattr(dtls, "State") or not hasattr(dtls, "SSL") or not all(
        hasattr(cls, n) or n in cls.__init__.__code__.co_names for n in needed
    ):
        log.info("aiortc DTLS internals changed: record layer not replaced")
        return False
    webrtc_dtls.install(dtls)
    return True


def _ensure_max_message_size(mod: Any) -> None:
    # aiortc < 1.10 advertised a=max-message-size:65536 although it reassembles messages
    # of any size; pion then refuses to send its 256 KiB messages to us.
    cls = mod.RTCSctpTransport
    size = cls.getCapabilities().maxMessageSize
    if size and size < MAX_MESSAGE_SIZE:
        capabilities = mod.RTCSctpCapabilities

        def get_capabilities(_cls: Any) -> Any:
            return capabilities(maxMessageSize=MAX_MESSAGE_SIZE)

        setattr(cls, "getCapabilities", classmethod(get_capabilities))  # noqa: B010


# -- accessors used by webrtc.py / webrtc_channel.py (loop thread only) -------------


def set_receive_window(sctp: Any) -> None:
    """Advertise RECEIVE_WINDOW (when patched); call before the association starts."""
    if _applied:
        with contextlib.suppress(AttributeError):
            sctp._advertised_rwnd = max(sctp._advertised_rwnd, RECEIVE_WINDOW)


def set_peer(sctp: Any, *, browser: bool, receive_buffer: int | None) -> None:
    """Fit this association to its peer and our sockets (`receive_buffer`: their granted
    SO_RCVBUF, as reported): S5's queue target (BROWSER_QUEUE_TARGET for a browser, else
    an eighth of the buffer), W1's receive window, H1's handshake timing and, for a browser,
    M3's packet probe. Call before the association starts."""
    sctp._sp2p_peer_browser = browser  # A3: SACK stretch per peer kind
    target = queue_target(browser=browser, receive_buffer=receive_buffer)
    if target is not None:
        sctp._sp2p_queue_target = target
    if _applied:
        with contextlib.suppress(AttributeError):
            sctp._sp2p_window = sctp._advertised_rwnd = receive_window(receive_buffer)
        from aiortc import rtcsctptransport

        webrtc_sctp_rtt.watch_handshake(sctp, rtcsctptransport)  # H1
        if browser:
            webrtc_sctp_mtu.probe_browser(sctp)  # M3


def hold(sctp: Any, size: int) -> None:
    """Count `size` delivered-but-unread bytes against our receive window."""
    if _applied:
        sctp._advertised_rwnd -= size


def release(sctp: Any, size: int) -> None:
    """The reader consumed `size` bytes: reopen the window, telling the sender if it was low."""
    if not _applied:
        return
    before = sctp._advertised_rwnd
    sctp._advertised_rwnd = before + size
    half = getattr(sctp, "_sp2p_window", RECEIVE_WINDOW) // 2
    if before < half <= sctp._advertised_rwnd and sctp._association_state == type(sctp).State.ESTABLISHED:
        asyncio.ensure_future(sctp._sp2p_send_sack_now())


def outbound_idle(sctp: Any) -> bool:
    """True when everything sent was acknowledged (or the association is gone)."""
    try:
        if sctp._association_state != type(sctp).State.ESTABLISHED:
            return True
        return not (sctp._data_channel_queue or sctp._outbound_queue or sctp._sent_queue)
    except AttributeError:
        return True


def round_trip(sctp: Any) -> float | None:
    """H1: the association's round trip in seconds (any thread), None before the first."""
    return webrtc_sctp_rtt.round_trip(sctp)


def remote_max_message_size(sctp: Any) -> int:
    """The peer's a=max-message-size (0 = unlimited); 65536 when unknown (RFC 8841)."""
    value = getattr(sctp, "_remote_max_message_size", 65536)
    return value if isinstance(value, int) else 65536
