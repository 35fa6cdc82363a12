"""sp2p-server: the signalling server and web UI host (Flask under gunicorn, `/ws` below Flask).

`create_app(config)` builds the WSGI app; `server.cli:main` runs it under gunicorn's gevent
worker: one process with sessions in memory, or several processes and hosts sharing them
through Redis (server.redis_store).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from flask import Flask, Response, request

from server.config import ServerConfig


def create_app(config: Mapping[str, Any] | ServerConfig | None = None) -> Flask:
    """Build the app. `config` maps ServerConfig field names to values (validated; raises
    ConfigError). Background threads (reaper, stats) start here; `app.extensions["sp2p"]`
    is the ServerState whose `shutdown()` stops them and closes every session."""
    from server import headers, web
    from server.bootstrap import Bootstrap
    from server.downloads import Downloads
    from server.endpoint import WebSocketEndpoint
    from server.state import ServerState
    from sp2p import __version__

    if not isinstance(config, ServerConfig):
        config = ServerConfig.from_mapping(config)
    if not config.server_version:
        config = dataclasses.replace(config, server_version=__version__)
    app = Flask(__name__, static_folder=None)
    app.config["MAX_CONTENT_LENGTH"] = 64 * 1024
    app.config["SP2P_STATIC_DIR"] = config.static_dir or web.default_static_dir()
    app.config["SP2P_BOOTSTRAP"] = Bootstrap(config.bootstrap_dir)
    app.config["SP2P_DOWNLOADS"] = Downloads(dl_dir=config.dl_dir, dl_url=config.dl_url)
    state = ServerState(config)
    app.extensions["sp2p"] = state
    app.register_blueprint(web.bp)
    web.register_error_handlers(app)

    @app.after_request
    def security_headers(response: Response) -> Response:
        headers.add_security_headers(config, request, response)
        return response

    # /ws never reaches Flask: the upgrade and the whole connection are handled below it
    app.wsgi_app = WebSocketEndpoint(app.wsgi_app, state)  # type: ignore[method-assign]
    state.start()
    return app
