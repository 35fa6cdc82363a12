"""UPnP IGD port mapping for the direct-TCP listener (client.md §4.7, improved per W16).

    mapping = UpnpMapping.create(listen_port, timeout=5.0)   # None: no gateway answered
    if mapping:
        advertise(mapping.external_address)                  # "ip:port"
        ...
        mapping.close()                                      # idempotent; safe from atexit

Differences from the Go client, all deliberate (W16):
* the internal client is the local address of the interface that routes to the IGD, not the
  first IPv4 of the host (docker/VPN interfaces would otherwise get the mapping);
* if the same external port is taken, the IGD picks one (IGDv2 AddAnyPortMapping), falling
  back to a few random ports on IGDv1;
* the lease (3600 s) is renewed while the mapping lives, so a crash leaves it for at most
  one lease and a long transfer never loses it;
* CGNAT/private external addresses are flagged (`external_kind`) rather than advertised blindly.

Discovery is a plain SSDP search (fast when a gateway answers); the IGD's description and
SOAP calls go through miniupnpc. Those block, so `create` runs them on a worker thread and its
budget holds even when a gateway stops answering mid-way (a mapping that completes after the
budget is removed again).
Threads inherit the caller's network namespace, so the worker and the renewal thread talk on
the same network as the caller.
"""

from __future__ import annotations

import contextlib
import enum
import ipaddress
import socket
import threading
import time
from typing import Any
from urllib.parse import urlsplit

from sp2p.errors import ConnectError
from sp2p.log import get_logger
from sp2p.net.ssdp import ssdp_discover

log = get_logger(__name__)

DEFAULT_LEASE = 3600  # seconds (spec Appendix A)
DEFAULT_DESCRIPTION = "sp2p"
DEFAULT_TIMEOUT = 5.0  # whole create() budget
DEFAULT_DISCOVER_TIMEOUT = 2.0  # SSDP wait inside that budget
_RANDOM_PORT_TRIES = 3
_CGNAT = ipaddress.ip_network("100.64.0.0/10")
class UpnpError(ConnectError):
    """A gateway answered but the mapping could not be made, renewed or removed."""


class ExternalKind(enum.StrEnum):
    PUBLIC = "public"
    #: RFC 1918 and other non-global space: another NAT sits above the IGD
    PRIVATE = "private"
    #: 100.64.0.0/10 shared address space: carrier-grade NAT above the IGD
    CGNAT = "cgnat"


def classify_external(ip: str) -> ExternalKind:
    addr = ipaddress.ip_address(ip)
    if addr in _CGNAT:
        return ExternalKind.CGNAT
    return ExternalKind.PUBLIC if addr.is_global else ExternalKind.PRIVATE


def route_source_address(url: str) -> str | None:
    """The local address the kernel would use to reach the host of `url` (no packet sent)."""
    parts = urlsplit(url)
    if not parts.hostname:
        return None
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.connect((parts.hostname, parts.port or 80))
            addr: str = s.getsockname()[0]
            return addr
    except OSError:
        return None


class UpnpMapping:
    """A live port mapping on the gateway; renewed until `close()`."""

    def __init__(
        self,
        client: Any,
        *,
        protocol: str,
        internal_ip: str,
        internal_port: int,
        external_ip: str,
        external_port: int,
        lease: int,
        description: str,
        renew: bool = True,
    ) -> None:
        self._client = client
        self.protocol = protocol
        self.internal_ip = internal_ip
        self.internal_port = internal_port
        self.external_ip = external_ip
        self.external_port = external_port
        self.lease = lease
        self.description = description
        self.external_kind = classify_external(external_ip)
        # RLock: close() may run from a signal handler that interrupted close() itself
        self._lock = threading.RLock()
        self._closed = False
        self._stop = threading.Event()
        self._renewer: threading.Thread | None = None
        if renew and lease > 0:
            self._renewer = threading.Thread(target=self._renew_loop, name="upnp-renew", daemon=True)
            self._renewer.start()

    # ------------------------------------------------------------------ creation

    @classmethod
    def create(
        cls,
        port: int,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        discover_timeout: float = DEFAULT_DISCOVER_TIMEOUT,
        lease: int = DEFAULT_LEASE,
        protocol: str = "TCP",
        description: str = DEFAULT_DESCRIPTION,
        renew: bool = True,
    ) -> UpnpMapping | None:
        """Map `port` (same internal port) on the gateway; None if no gateway answered.

        Raises UpnpError when a gateway was found but refused or stalled within `timeout`.
        """
        # a silent LAN must end in None (no gateway), not in the budget's UpnpError
        discover_timeout = min(discover_timeout, timeout * 0.8)
        box: dict[str, Any] = {}
        abandoned = threading.Event()
        lock = threading.Lock()

        def work() -> None:
            try:
                result = _map_port(
                    port, discover_timeout=discover_timeout, lease=lease, protocol=protocol,
                    description=description, renew=renew,
                )  # fmt: skip
            except BaseException as exc:
                result, box["error"] = None, exc
            with lock:
                if abandoned.is_set():
                    if result is not None:  # too late: the caller has moved on
                        result.close()
                    return
                box["result"] = result

        worker = threading.Thread(target=work, name="upnp-create", daemon=True)
        worker.start()
        worker.join(timeout)
        with lock:
            if worker.is_alive():
                abandoned.set()
                raise UpnpError(f"UPnP gateway did not complete the mapping within {timeout:g} s")
        if "error" in box:
            err = box["error"]
            if isinstance(err, UpnpError):
                raise err
            raise UpnpError(f"UPnP failed: {err}") from err
        mapping: UpnpMapping | None = box.get("result")
        return mapping

    # ------------------------------------------------------------------ properties

    @property
    def external_address(self) -> str:
        """`ip:port` to advertise to the peer."""
        return f"{self.external_ip}:{self.external_port}"

    @property
    def internal_address(self) -> str:
        return f"{self.internal_ip}:{self.internal_port}"

    @property
    def closed(self) -> bool:
        return self._closed

    # ------------------------------------------------------------------ lifetime

    def renew(self) -> None:
        """Re-add the mapping, which restarts its lease (the IGD updates its own entry)."""
        with self._lock:
            if self._closed:
                return
            try:
                self._client.addportmapping(
                    self.external_port, self.protocol, self.internal_ip, self.internal_port,
                    self.description, "", self.lease,
                )  # fmt: skip
            except Exception as exc:
                raise UpnpError(f"UPnP lease renewal failed: {exc}") from exc

    def _renew_loop(self) -> None:
        interval = max(1.0, self.lease / 2)
        wait = interval
        while not self._stop.wait(wait):
            try:
                self.renew()
                wait = interval
            except UpnpError as exc:
                log.warning("%s", exc)
                wait = max(1.0, min(60.0, interval / 4))  # retry well before the lease ends

    def close(self) -> None:
        """Remove the mapping (errors are logged, never raised). Idempotent."""
        self._stop.set()
        with self._lock:
            if self._closed:
                return
            self._closed = True
            try:
                self._client.deleteportmapping(self.external_port, self.protocol, "")
            except Exception as exc:
                log.warning("UPnP: could not remove mapping %s: %s", self.external_address, exc)
        renewer = self._renewer
        if renewer is not None and renewer is not threading.current_thread():
            renewer.join(timeout=2)

    def __enter__(self) -> UpnpMapping:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return (
            f"<UpnpMapping {self.protocol} {self.external_address} -> {self.internal_address}"
            f" ({self.external_kind}, {state})>"
        )


# ---------------------------------------------------------------------- the blocking part


def _map_port(
    port: int, *, discover_timeout: float, lease: int, protocol: str, description: str,
    renew: bool,
) -> UpnpMapping | None:  # fmt: skip
    import miniupnpc  # lazy: only the TCP race needs it

    started = time.monotonic()
    locations = ssdp_discover(discover_timeout)
    if not locations:
        return None
    client = miniupnpc.UPnP()
    control_url: str | None = None
    for location in locations:
        try:
            control_url = client.selectigd(location)
            break
        except Exception as exc:  # a UPnP device, but not a usable IGD
            log.debug("UPnP: %s is no IGD: %s", location, exc)
    if control_url is None:
        return None
    log.debug("UPnP: IGD %s after %.2f s", control_url, time.monotonic() - started)

    internal_ip = route_source_address(control_url) or client.lanaddr
    try:
        external_ip: str = client.externalipaddress()
    except Exception as exc:
        raise UpnpError(f"UPnP gateway gave no external address: {exc}") from exc
    if not external_ip:
        raise UpnpError("UPnP gateway has no external address (port forwarding disabled)")
    try:
        classify_external(external_ip)
    except ValueError as exc:
        raise UpnpError(f"UPnP gateway reported a bad external address {external_ip!r}") from exc

    external_port, lease = _add_mapping(client, port, protocol, internal_ip, description, lease)
    return UpnpMapping(
        client, protocol=protocol, internal_ip=internal_ip, internal_port=port,
        external_ip=external_ip, external_port=external_port, lease=lease,
        description=description, renew=renew,
    )  # fmt: skip


def _add_mapping(
    client: Any, port: int, protocol: str, internal_ip: str, description: str, lease: int
) -> tuple[int, int]:
    """Map port -> internal_ip:port; returns (external port, lease actually used)."""

    def add(eport: int, lease_s: int) -> None:
        client.addportmapping(eport, protocol, internal_ip, port, description, "", lease_s)

    try:
        add(port, lease)
        return port, lease
    except Exception as exc:
        first_error = str(exc)
    if "OnlyPermanentLeasesSupported" in first_error:  # IGDv1 boxes that refuse leases
        lease = 0
        try:
            add(port, lease)
            return port, lease
        except Exception as exc:
            first_error = str(exc)
    log.debug("UPnP: external port %d refused (%s); asking for any port", port, first_error)

    try:  # IGDv2: the gateway picks a free external port
        eport = int(client.addanyportmapping(port, protocol, internal_ip, port, description, ""))
    except Exception as exc:
        log.debug("UPnP: AddAnyPortMapping failed: %s", exc)
    else:
        if lease:
            # this binding sends lease 0 (= a week on IGDv2); shorten it to ours
            with contextlib.suppress(Exception):
                add(eport, lease)
        return eport, lease

    import random  # the last resort only

    for eport in random.sample(range(20000, 60000), _RANDOM_PORT_TRIES):
        try:
            add(eport, lease)
            return eport, lease
        except Exception as exc:
            log.debug("UPnP: external port %d refused: %s", eport, exc)
    raise UpnpError(f"UPnP gateway refused the port mapping: {first_error}")
