"""Open the signaling WebSocket first: it connects while the rest of the program loads.

    early = EarlySignal(url)        # returns at once; the connect runs on its own thread
    early = EarlySignal(url, first=make_opening)   # ... and sends its messages once open
    ... imports, key generation ...
    signal = early.result()         # the SignalClient, or the SignalingError of its connect
    early.close()                   # on every way out: closes a client nobody took
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sp2p.flow.session import Opening
    from sp2p.net.signaling import SignalClient


class EarlySignal:
    def __init__(self, ws_url: str, *, first: Callable[[], Opening] | None = None) -> None:
        """`first` builds a receiver's opening, sent as soon as the connection is open (on the
        connect thread), so the server and the sender answer while we load."""
        self._url = ws_url
        self._first = first
        #: the opening `first` built, once all its messages went out
        self.opening: Opening | None = None
        self._done = threading.Event()
        self._lock = threading.Lock()
        self._client: SignalClient | None = None
        self._error: BaseException | None = None
        self._taken = False
        self._closed = False
        threading.Thread(target=self._connect, name="sp2p-signal-connect", daemon=True).start()

    def _connect(self) -> None:
        try:
            from sp2p.net.signaling import SignalClient  # websocket-client and ssl load here too

            client = SignalClient(self._url)
            if self._first is not None:
                try:
                    opening = self._first()
                    for env in opening.messages:
                        client.send(env)
                except BaseException:
                    client.close()
                    raise
                self.opening = opening
        except BaseException as exc:  # noqa: BLE001 - re-raised on the caller's thread by result()
            self._error = exc
            self._done.set()
            return
        with self._lock:
            self._client = client
            orphan = self._closed and not self._taken
        self._done.set()
        if orphan:
            client.close()

    def result(self) -> SignalClient:
        self._done.wait()
        if self._error is not None:
            raise self._error
        with self._lock:
            assert self._client is not None
            self._taken = True
            return self._client

    def close(self) -> None:
        """Close the connection unless `result()` handed it out (its taker closes it); never blocks."""
        with self._lock:
            self._closed = True
            client = None if self._taken else self._client
        if client is not None:
            client.close()
