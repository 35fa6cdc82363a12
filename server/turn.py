"""TURN credentials in the format clients expect (server-web.md §3).

Ephemeral (coturn `use-auth-secret`, the "TURN REST API"): username = `<expiry unix
time>:<tag>`, credential = base64(HMAC-SHA1(secret, username)). The original sent the
bare timestamp; coturn accepts both, and the tag binds the credentials to one session and
role without revealing the session id to TURN logs (R1). Static: the configured pair.
Either way one ICE server object carries every turn:/turns: URL.
"""

from __future__ import annotations

import base64
import hashlib
import hmac

from server.config import ServerConfig
from sp2p.proto.signal import IceServer, TurnCredentials


def rest_password(secret: str, username: str) -> str:
    digest = hmac.new(secret.encode(), username.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode("ascii")


def session_tag(secret: str, session_id: str, role: str) -> str:
    """A short opaque user part: keyed, so it cannot be brute-forced back to the id."""
    mac = hmac.new(secret.encode(), f"sp2p-turn:{session_id}:{role}".encode(), hashlib.sha256)
    return mac.hexdigest()[:16]


def rest_credentials(secret: str, ttl: float, now_unix: float, tag: str = "") -> tuple[str, str]:
    username = str(int(now_unix + ttl)) + (f":{tag}" if tag else "")
    return username, rest_password(secret, username)


def turn_credentials(config: ServerConfig, *, now_unix: float, session_id: str, role: str) -> TurnCredentials:
    urls = config.turn_urls
    if config.turn_secret:
        tag = session_tag(config.turn_secret, session_id, role)
        username, password = rest_credentials(config.turn_secret, config.turn_ttl, now_unix, tag)
    else:
        username, password = config.turn_username, config.turn_password
    return TurnCredentials((IceServer(urls, username, password),))


def stun_servers(config: ServerConfig) -> tuple[IceServer, ...]:
    """`welcome.iceServers`: one object with every STUN URL, or nothing (never TURN)."""
    urls = config.stun_urls
    return (IceServer(urls),) if urls else ()
