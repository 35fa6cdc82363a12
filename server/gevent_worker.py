"""gunicorn's gevent worker, made to stop within about a second of SIGTERM.

gunicorn's own gevent worker polls its way out: its Python signal handler runs at gevent's
next periodic signal check (up to 0.3 s on an idle hub), its main loop sees `alive` drop at
its next 1 s tick, then it looks at the connection pool once a second until the handlers
are gone; a node with open WebSockets took ~2 s, and more under load. Here a libev signal
watcher wakes the hub at once, the worker runs its stop hook (the app closes every session
with 1001; a peer held by another node hears `peer-left` through the store) and then waits
for exactly that and for the connection handlers, within STOP_BUDGET; connections still
open then are closed by the process exit. The arbiter's graceful_timeout stays the backstop
for a worker that hangs.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import time
from collections.abc import Callable
from functools import partial
from typing import Any

import gevent
from gevent.event import Event
from gevent.pool import Pool
from gevent.server import StreamServer
from gunicorn import util
from gunicorn.sock import ssl_context
from gunicorn.workers.ggevent import GeventWorker

from server.background import background_share, set_background_share
from server.gcpolicy import FREEZE_EVERY, GcPolicy
from server.listen import per_worker, worker_listener
from server.runners import ReusingPool

#: seconds from the signal until the worker gives up waiting for its stop hook and the
#: connection handlers (a client that never answers its close frame is cut here)
STOP_BUDGET = 1.0

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT)


class StopFastWorker(GeventWorker):  # type: ignore[misc]
    """The `gevent` worker (a greenlet per connection) with an event-driven stop."""

    #: set by the app (post_worker_init): closes every session; runs in its own greenlet
    on_stop: Callable[[], None] | None = None
    #: set by the app: serves a connection whose request is `GET /ws` before gunicorn's
    #: HTTP parser sees it (server.endpoint); False leaves the connection to gunicorn
    ws_direct: Callable[[Any, Any], bool] | None = None
    #: set by the app: given the connection pool once the worker serves (server.handoff
    #: takes connections moved from other workers into it)
    on_pool: Callable[[Pool], None] | None = None

    def handle(self, listener: Any, client: Any, addr: Any) -> None:
        direct = self.ws_direct
        if direct is not None:  # (plain TCP only: the app leaves it unset with TLS)
            try:
                served = direct(client, addr)
            except Exception:  # noqa: BLE001 - a handler bug must not kill the worker
                self.log.exception("WebSocket connection failed")
                served = True
            if served:
                util.close(client)
                return
        super().handle(listener, client, addr)

    def init_process(self) -> None:
        # From the fork until init_signals (monkey-patching takes ~1 s on a loaded machine)
        # a stop signal would run the arbiter's handler that came with the fork, which
        # queues it for a loop that never runs here: the worker booted and served on until
        # the arbiter's SIGKILL after graceful_timeout (5 s).
        for num in STOP_SIGNALS:
            signal.signal(num, self._stopped_early)
        super().init_process()

    def _stopped_early(self, signum: int, frame: Any) -> None:
        self.alive = False  # run() then stops at once

    def init_signals(self) -> None:
        super().init_signals()
        self._stopping = Event()
        # libev watchers instead of Python handlers: they wake the hub immediately. TERM,
        # INT and QUIT all mean "stop now, cleanly": with the budget above there is no
        # slower graceful mode to choose between.
        self._watchers = [gevent.signal_handler(num, self._signalled) for num in STOP_SIGNALS]

    def _signalled(self) -> None:
        # runs in the hub, which must not block: only flags here
        self.alive = False
        self._stopping.set()

    def run(self) -> None:
        # a greenlet per connection: recording each one's spawning stack cost ~4 objects and
        # a stack walk per connection, for debugging aids nothing here uses
        gevent.config.track_greenlet_tree = False
        # background work (after a mass close) leaves a core to everything else
        set_background_share(background_share(self.cfg.workers, len(os.sched_getaffinity(0))))
        ssl_args: dict[str, Any] = {"ssl_context": ssl_context(self.cfg)} if self.cfg.is_ssl else {}
        pool = ReusingPool(self.worker_connections)  # one cap for the worker, whichever socket
        servers = [self._serve(sock, ssl_args, pool, shared=shared) for sock, shared in self._listeners()]
        if self.on_pool is not None:
            self.on_pool(pool)
        policy = GcPolicy(held=lambda: pool.size - pool.free_count())
        policy.start()
        self._gc_timer = gevent.get_hub().loop.timer(FREEZE_EVERY, FREEZE_EVERY)
        self._gc_timer.start(policy.tick)  # in the hub: freezing is O(1), never blocks
        while self.alive:
            self.notify()
            self._stopping.wait(1.0)
        deadline = time.monotonic() + STOP_BUDGET
        for server in servers:
            server.close()  # stop accepting
        if self.on_stop is not None:
            closing = gevent.spawn(self.on_stop)
            closing.join(_left(deadline))
            if not closing.dead:
                self.log.warning("Worker stop hook still running after %.1f s (pid: %s)",
                                 STOP_BUDGET, self.pid)
        pool.join(timeout=_left(deadline))
        left = pool.size - pool.free_count()
        if left:
            # not killed: a killed handler unwinds through its lingering close (up to 2 s)
            # and back into gunicorn's request loop (with simple-websocket that logged a
            # traceback per connection); the process exit closes them, after the close
            # frames already went out
            self.log.warning("Worker stop budget spent; %d connections closed unfinished (pid: %s)",
                             left, self.pid)
        self._exit_now()

    def _exit_now(self) -> None:
        """Leave without the interpreter's teardown. Everything that matters went out
        above (close frames, the store's peer-left, stats); the teardown would only cost
        time: its garbage collections walk the heap (~0.3 s on a loaded machine) and unwind
        every unfinished greenlet they meet (a lingering close waits out its 2 s)."""
        self.log.info("Worker exiting (pid: %s)", self.pid)
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)

    def _serve(self, listener: Any, ssl_args: dict[str, Any], pool: Pool, *, shared: bool) -> StreamServer:
        """As GeventWorker.run does for the plain `gevent` worker (no pywsgi)."""
        listener.setblocking(1)
        server = StreamServer(listener, handle=partial(self.handle, listener), spawn=pool, **ssl_args)
        if shared and self.cfg.workers > 1:
            server.max_accept = 1  # leave the rest of a burst to the other workers
        server.start()
        return server

    def _listeners(self) -> list[tuple[Any, bool]]:
        """(socket, shared by the workers): the inherited ones, and with several workers
        this worker's own beside each (server.listen: one wake-up per connection)."""
        found = [(sock, True) for sock in self.sockets]
        found += [(worker_listener(sock), False) for sock in self.sockets if per_worker(sock)]
        return found


def _left(deadline: float) -> float:
    return max(0.0, deadline - time.monotonic())
