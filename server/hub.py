"""The gevent plumbing shared by server.waiting and server.background: gevent loaded once,
whether a socket or this process runs under it, and one instance of a kind per hub."""

from __future__ import annotations

import functools
import socket
import sys
from collections.abc import Callable
from typing import Any, Protocol, TypeVar


@functools.cache
def gevent_module() -> Any:
    """gevent, with the parts used here loaded: imported once, on first use under gevent
    (a server on threads never loads it; an import statement per connection cost ~1 us)."""
    import gevent
    import gevent.lock
    import gevent.socket

    return gevent


def is_gevent(sock: socket.socket) -> bool:
    return type(sock).__module__.startswith("gevent")


def under_gevent() -> bool:
    """Running under gevent's monkey patches (the server's worker), not on threads."""
    monkey = sys.modules.get("gevent.monkey")
    return monkey is not None and bool(monkey.is_module_patched("threading"))


class _HubBound(Protocol):
    hub: Any


H = TypeVar("H", bound=_HubBound)

#: each kind's one instance for the current hub (a fork or a new hub makes a fresh one)
_per_hub: dict[Callable[[Any], Any], Any] = {}


def of_this_hub(kind: Callable[[Any], H]) -> H:
    """The one `kind` of this worker's hub, made on first use (after the fork, in the
    hub's thread)."""
    hub = gevent_module().get_hub()
    own: H | None = _per_hub.get(kind)
    if own is None or own.hub is not hub:
        own = _per_hub[kind] = kind(hub)
    return own
