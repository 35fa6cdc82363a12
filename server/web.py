"""Plain HTTP routes: pages or bootstrap scripts, static files, health, file-info, downloads.

`/` and `/r` are the send and receive pages for browsers and the bootstrap scripts for
everything else: exactly upstream's rule, a request is a "script client" when its Accept
header does not contain `text/html` (curl, wget, HTTPie, fetch() all qualify).
"""

from __future__ import annotations

import html
import importlib.util
import json
import re
from pathlib import Path

from flask import Blueprint, Flask, Response, current_app, request, send_file
from werkzeug.exceptions import HTTPException, NotFound

from server import downloads as dl
from server.bootstrap import Bootstrap
from server.headers import base_url
from server.ratelimit import client_ip
from server.state import ServerState
from server.store import StoreUnavailable

bp = Blueprint("sp2p_web", __name__)

#: esbuild-style content-hashed asset names may be cached forever
_HASHED_ASSET = re.compile(r"-[A-Z0-9]{8}\.(?:js|css)(?:\.map)?$")

_PLACEHOLDER_PAGES = {
    "index.html": "<title>SP2P</title><p>The web UI is not installed on this server.</p>",
    "receive.html": "<title>SP2P Receive</title><p>Web UI not installed.</p>",
}


def default_static_dir() -> Path:
    """The installed `sp2p_static` package, else `<repo>/static`."""
    spec = importlib.util.find_spec("sp2p_static")
    if spec is not None and spec.submodule_search_locations:
        for location in spec.submodule_search_locations:
            if Path(location, "sw.js").exists() or Path(location, "index.html").exists():
                return Path(location)
    return Path(__file__).resolve().parents[1] / "static"


def state() -> ServerState:
    value: ServerState = current_app.extensions["sp2p"]
    return value


def text_response(body: str, status: int = 200) -> Response:
    """Go's http.Error shape: the message plus a newline, text/plain, nosniff."""
    return Response(
        body if body.endswith("\n") else body + "\n", status, content_type="text/plain; charset=utf-8"
    )


def request_base_url() -> str | None:
    """The configured base URL, else one derived from this request (None if unsafe)."""
    return base_url(
        state().config,
        host=request.headers.get("Host", ""),
        scheme=str(request.environ.get("wsgi.url_scheme", "http")),
        forwarded_proto=request.headers.get("X-Forwarded-Proto", ""),
    )


def is_script_client() -> bool:
    return "text/html" not in request.headers.get("Accept", "")


# -- pages and scripts ----------------------------------------------------------------


def _page(name: str) -> Response:
    path = current_app.config["SP2P_STATIC_DIR"] / name
    try:
        body = path.read_text(encoding="utf-8")
    except OSError:
        body = "<!doctype html><meta charset=utf-8>" + _PLACEHOLDER_PAGES[name]
    config = state().config
    body = body.replace("<!--SP2P_VERSION-->", html.escape(config.server_version))
    body = body.replace("<!--SP2P_BUILD_TIME-->", "")
    response = Response(body, content_type="text/html; charset=utf-8")
    response.headers["Cache-Control"] = "no-store"  # the receive page handles codes (B5)
    return response


def _script(name: str) -> Response:
    base_url = request_base_url()
    if base_url is None:
        return text_response("invalid Host header", 400)
    bootstrap: Bootstrap = current_app.config["SP2P_BOOTSTRAP"]
    response = text_response(bootstrap.render(name, base_url))
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.route("/", methods=["GET", "HEAD", "POST"])
def send_page() -> Response:
    return _script("send.sh") if is_script_client() else _page("index.html")


@bp.route("/r", methods=["GET", "HEAD", "POST"])
def receive_page() -> Response:
    return _script("receive.sh") if is_script_client() else _page("receive.html")


@bp.route("/ps", methods=["GET", "HEAD", "POST"])
def send_ps() -> Response:
    return _script("send.ps1")


@bp.route("/ps/r", methods=["GET", "HEAD", "POST"])
def receive_ps() -> Response:
    return _script("receive.ps1")


# -- static files -----------------------------------------------------------------------


def _static(relative: str) -> Response:
    root: Path = current_app.config["SP2P_STATIC_DIR"]
    path = (root / relative).resolve()
    if not path.is_relative_to(root.resolve()) or not path.is_file():
        raise NotFound
    mimetype = "text/javascript" if path.suffix in (".js", ".mjs") else None
    response = send_file(path, mimetype=mimetype, conditional=True, etag=True, max_age=None)
    if _HASHED_ASSET.search(relative):
        response.headers["Cache-Control"] = "public, max-age=31536000, immutable"
    else:
        response.headers["Cache-Control"] = "no-cache"  # revalidate with the ETag
    return response


@bp.route("/static/<path:relative>")
def static_file(relative: str) -> Response:
    return _static(relative)


@bp.route("/sw.js")
def service_worker() -> Response:
    response = _static("sw.js")
    response.headers["Service-Worker-Allowed"] = "/"
    return response


# -- API --------------------------------------------------------------------------------


@bp.route("/health", methods=["GET", "HEAD", "POST"])
def health() -> Response:
    """`ok`, or 503 with the reason (e.g. the shared store is unreachable)."""
    problem = state().store.health()
    if problem is not None:
        return text_response(f"unhealthy: {problem}", 503)
    return Response("ok", content_type="text/plain; charset=utf-8")


@bp.route("/metrics", methods=["GET"])
def metrics() -> Response:
    from server.metrics import CONTENT_TYPE

    return Response(state().metrics.render(), content_type=CONTENT_TYPE)


@bp.route(
    "/api/file-info/", defaults={"session_id": ""}, methods=["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH"]
)
@bp.route("/api/file-info/<path:session_id>", methods=["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH"])
def file_info(session_id: str) -> Response:
    if request.method != "GET":
        return text_response("method not allowed", 405)
    st = state()
    ip = client_ip(request.environ, trust_proxy=st.config.trust_proxy)
    if st.miss_limiter.exceeded(ip):
        return text_response("rate limit exceeded", 429)
    try:
        record = st.store.get(session_id) if session_id else None
    except StoreUnavailable as exc:
        return text_response(f"service unavailable: {exc}", 503)
    data = record.file_info if record is not None else None
    if data is None:
        st.miss_limiter.hit(ip)
        return text_response("404 page not found", 404)
    response = Response(
        json.dumps({"data": data}, separators=(",", ":")) + "\n", content_type="application/json"
    )
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.route("/dl/<path:rest>", methods=["GET", "HEAD"])
def download(rest: str) -> Response:
    downloads: dl.Downloads = current_app.config["SP2P_DOWNLOADS"]
    answer = downloads.resolve(rest)
    match answer:
        case dl.Redirect(location):
            response = Response(status=302)
            response.headers["Location"] = location
            return response
        case dl.SendFile(path):
            return send_file(
                path,
                as_attachment=True,
                download_name=path.name,
                mimetype="application/octet-stream",
                conditional=True,
            )
        case dl.SendText(text):
            response = text_response(text)
            response.headers["Cache-Control"] = "no-cache"
            return response
        case dl.Problem(status, message):
            return text_response(message, status)
    raise AssertionError("unreachable")


def register_error_handlers(app: Flask) -> None:
    """Plain-text errors everywhere (no HTML error pages, no stack traces)."""

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> Response:
        status = exc.code or 500
        if status == 404:
            return text_response("404 page not found", 404)
        if status == 405:
            return text_response("method not allowed", 405)
        return text_response(f"{status} {exc.name.lower()}", status)

    @app.errorhandler(Exception)
    def internal_error(exc: Exception) -> Response:
        current_app.logger.exception("request failed")
        return text_response("internal server error", 500)
