"""SSDP discovery of UPnP internet gateways (client.md §4.7): which root descriptions answer
an M-SEARCH on the LAN. sp2p.net.upnp maps a port on what this finds."""

from __future__ import annotations

import socket
import time

from sp2p.log import get_logger

log = get_logger(__name__)

_SSDP_ADDR = ("239.255.255.250", 1900)
_SSDP_GRACE = 0.1  # after the first answer, wait this long for other gateways
#: the search is sent again this often while no gateway has answered: SSDP is multicast UDP,
#: and a lost search (a busy router, a burst dropped on the LAN) would hide the gateway for
#: the whole transfer (UDA 1.1 §1.3.2: send it more than once)
_SSDP_RESEND = 0.5
_SSDP_SENDS = 3
# IGDv2 first, as the Go client prefers WANIPConnection:2 (§4.7)
_SEARCH_TARGETS = (
    "urn:schemas-upnp-org:device:InternetGatewayDevice:2",
    "urn:schemas-upnp-org:service:WANIPConnection:2",
    "urn:schemas-upnp-org:device:InternetGatewayDevice:1",
    "urn:schemas-upnp-org:service:WANIPConnection:1",
)


def ssdp_discover(timeout: float) -> list[str]:
    """M-SEARCH for internet gateways; root-description URLs in order of arrival.

    Our own SSDP search instead of miniupnpc's discover(): that one waits the full delay per
    search target (4 targets, 1 s minimum each), while this returns ~0.1 s after the first
    gateway answers and spends exactly `timeout` when none does. The search goes out again
    every _SSDP_RESEND s (at most _SSDP_SENDS times) until one answers.
    """
    msgs = search_messages(timeout)
    found: list[str] = []
    start = time.monotonic()
    deadline, sends = start + timeout, 0
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 2)
        while (now := time.monotonic()) < deadline:
            if not found and sends < _SSDP_SENDS and now >= start + sends * _SSDP_RESEND:
                try:
                    for msg in msgs:
                        s.sendto(msg, _SSDP_ADDR)
                except OSError as exc:  # no route for multicast: no LAN to search
                    log.debug("UPnP: SSDP search not sent: %s", exc)
                    return found
                sends += 1
            wake = deadline if found or sends >= _SSDP_SENDS else min(deadline, start + sends * _SSDP_RESEND)
            s.settimeout(max(0.001, wake - now))
            try:
                data, _ = s.recvfrom(4096)
            except TimeoutError:
                continue
            except OSError:
                break
            location = _ssdp_location(data)
            if location and location not in found:
                found.append(location)
                deadline = min(deadline, time.monotonic() + _SSDP_GRACE)
    return found


def search_messages(timeout: float) -> list[bytes]:
    """One SSDP search burst: an M-SEARCH per target, answers asked for within `timeout`."""
    return [
        (
            "M-SEARCH * HTTP/1.1\r\n"
            f"HOST: {_SSDP_ADDR[0]}:{_SSDP_ADDR[1]}\r\n"
            'MAN: "ssdp:discover"\r\n'
            f"MX: {max(1, min(5, int(timeout)))}\r\n"
            f"ST: {target}\r\n\r\n"
        ).encode()
        for target in _SEARCH_TARGETS
    ]


def _ssdp_location(data: bytes) -> str | None:
    lines = data.decode("latin-1").split("\r\n")
    if not lines or not lines[0].startswith("HTTP/1.1 200"):
        return None
    for line in lines[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "location":
            url = value.strip()
            return url if url.startswith("http://") else None
    return None
