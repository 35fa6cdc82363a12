"""The raw /ws path's request head (server.upgrade.request_from_head) reads what the WSGI
path's UpgradeRequest.from_environ reads from a WSGI server's environ."""

from __future__ import annotations

from server.upgrade import UpgradeRequest, request_from_head

HEAD = (
    b"GET /ws HTTP/1.1\r\nHost: example.org\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"X-Forwarded-For: 10.0.0.1\r\nx-forwarded-for: 192.0.2.7\r\nX_Odd: a\r\n\r\n"
)


def _environ() -> dict[str, object]:
    # what a WSGI server makes of HEAD: repeated (and _/- spelled) names joined by commas
    return {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": "/ws",
        "REMOTE_ADDR": "127.0.0.9",
        "wsgi.url_scheme": "http",
        "HTTP_HOST": "example.org",
        "HTTP_UPGRADE": "websocket",
        "HTTP_CONNECTION": "Upgrade",
        "HTTP_X_FORWARDED_FOR": "10.0.0.1,192.0.2.7",
        "HTTP_X_ODD": "a",
    }


def test_head_and_environ_give_the_same_request() -> None:
    for trust in (False, True):
        raw = request_from_head(HEAD, ("127.0.0.9", 5000), trust_proxy=trust)
        assert raw == UpgradeRequest.from_environ(_environ(), trust_proxy=trust)
    assert raw is not None and raw.ip == "192.0.2.7"  # trusted: the right-most hop
    untrusted = request_from_head(HEAD, ("127.0.0.9", 5000), trust_proxy=False)
    assert untrusted is not None and untrusted.ip == "127.0.0.9"


def test_a_malformed_head_is_left_to_the_http_server() -> None:
    assert request_from_head(b"GET /ws\r\n\r\n", ("127.0.0.1", 1), trust_proxy=False) is None
    assert request_from_head(b"GET /ws HTTP/1.1\r\nNoColon\r\n\r\n", ("127.0.0.1", 1), trust_proxy=False) is None
    assert request_from_head(b"GET /ws HTTP/1.1\r\n Host: x\r\n\r\n", ("127.0.0.1", 1), trust_proxy=False) is None
