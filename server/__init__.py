"""sp2p-server: the signalling server and web UI host (Flask + flask-sock under gunicorn).

`create_app(config)` builds the WSGI app; `server.cli:main` runs it under gunicorn's gevent
worker: one process with sessions in memory, or several processes and hosts sharing them
through Redis (server.redis_store).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from flask import Flask, Response, request
from flask_sock import Sock

from server.config import ServerConfig


def create_app(config: Mapping[str, Any] | ServerConfig | None = None) -> Flask:
    """Build the app. `config` maps ServerConfig field names to values (validated; raises
    ConfigError). Background threads (reaper, stats) start here; `app.extensions["sp2p"]`
    is the ServerState whose `shutdown()` stops them and closes every session."""
    from server import connection, headers, web, ws
    from server.bootstrap import Bootstrap
    from server.downloads import Downloads
    from server.ratelimit import client_ip
    from server.state import ServerState
    from sp2p import __version__
    from sp2p.proto.signal import MAX_SIGNAL_MESSAGE

    if not isinstance(config, ServerConfig):
        config = ServerConfig.from_mapping(config)
    if not config.server_version:
        config = dataclasses.replace(config, server_version=__version__)
    app = Flask(__name__, static_folder=None)
    app.config["MAX_CONTENT_LENGTH"] = 64 * 1024
    app.config["SOCK_SERVER_OPTIONS"] = {
        "ping_interval": config.ping_interval,
        "max_message_size": MAX_SIGNAL_MESSAGE,
        "selector_class": connection.ActivitySelector,
        "thread_class": connection.ReaderThread,
    }
    app.config["SP2P_STATIC_DIR"] = config.static_dir or web.default_static_dir()
    app.config["SP2P_BOOTSTRAP"] = Bootstrap(config.bootstrap_dir)
    app.config["SP2P_DOWNLOADS"] = Downloads(dl_dir=config.dl_dir, dl_url=config.dl_url)
    state = ServerState(config)
    app.extensions["sp2p"] = state
    app.register_blueprint(web.bp)
    web.register_error_handlers(app)

    @app.before_request
    def guard_websocket() -> Response | None:
        if request.path != "/ws":
            return None
        ip = client_ip(request.environ, trust_proxy=config.trust_proxy)
        if not state.ws_limiter.hit(ip):
            return web.text_response("rate limit exceeded", 429)
        if request.headers.get("Upgrade", "").lower() != "websocket":
            return web.text_response("websocket upgrade required", 426)
        problem = headers.origin_problem(config, request)
        if problem is not None:
            return web.text_response(problem, 403)
        # no permessage-deflate: compressed frames could inflate past the size limit (S4)
        request.environ.pop("HTTP_SEC_WEBSOCKET_EXTENSIONS", None)
        return None

    @app.after_request
    def security_headers(response: Response) -> Response:
        headers.add_security_headers(config, request, response)
        return response

    sock = Sock(app)

    @sock.route("/ws")  # type: ignore[untyped-decorator]
    def signalling(websocket: Any) -> None:
        ip = client_ip(request.environ, trust_proxy=config.trust_proxy)
        peer = connection.Peer(websocket, ip, write_timeout=config.write_timeout)
        try:
            ws.handle(state, peer, web.request_base_url())
        finally:
            peer.finish()

    state.start()
    return app
