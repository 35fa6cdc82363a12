"""Settings: flags > environment > config file > defaults (client.md §5.2–5.3, W23).

`load_config` is pure: the caller hands in the parsed flags, the environment mapping and
(optionally) the config file path, so precedence is testable without touching the
process. The file is ``$XDG_CONFIG_HOME/sp2p/config.yaml``, else
``~/.config/sp2p/config.yaml``; a missing file is ignored, anything wrong in it is a
UsageError ``parsing <path>: …``.

Also here: turning the ``-server`` value into the signalling WebSocket URL and deriving
the public base URL for share links.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Final
from urllib.parse import SplitResult, urlsplit, urlunsplit

from sp2p.errors import UsageError
from sp2p.proto.constants import Transport
from sp2p.record import record

DEFAULT_SERVER: Final = "http://localhost:8080"
DEFAULT_COMPRESS: Final = 3
DEFAULT_RECONNECT: Final = 60.0
ENV_SERVER: Final = "SP2P_SERVER"
ENV_URL: Final = "SP2P_URL"


@record(frozen=True)
class Config:
    server: str = DEFAULT_SERVER  #: as given: http(s) base, ws(s) URL or host:port
    url: str = ""  #: public base for share links; "" derives it from `server`
    compress: int = DEFAULT_COMPRESS  #: zstd level 0-9, 0 disables
    transport: Transport = Transport.AUTO
    allow_relay: bool = False
    output: Path = Path(".")
    verbose: bool = False
    parallel: int = 0  #: 0 auto, 1 never, 2-6 force
    no_resume: bool = False  #: do not announce resume (docs/protocol-extensions.md §1)
    yes: bool = False  #: receive without asking, even on a terminal
    reconnect: float = DEFAULT_RECONNECT  #: seconds to heal a dropped connection; 0 disables (§2)
    #: where `server` came from when not typed (SP2P_SERVER, the config file): named if it fails
    server_origin: str = ""

    @property
    def signaling_url(self) -> str:
        """The WebSocket URL to dial (see `signaling_url`)."""
        return signaling_url(self.server)

    @property
    def base_url(self) -> str:
        """Public base URL for share links: `url` if set, else derived from `server`."""
        return normalize_base_url(self.url) if self.url else share_base_url(self.signaling_url)


# ------------------------------------------------------------------ value checking


class _BadValue(ValueError):
    pass


def _string(value: Any) -> str:
    if not isinstance(value, str):
        raise _BadValue("must be a string")
    return value


def _boolean(value: Any) -> bool:
    if not isinstance(value, bool):
        raise _BadValue("must be true or false")
    return value


def _int_range(low: int, high: int) -> Callable[[Any], int]:
    def check(value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise _BadValue(f"must be an integer {low}-{high}")
        if not low <= value <= high:
            raise _BadValue(f"must be {low}-{high}")
        return value

    return check


_DURATION = re.compile(r"(?:(\d+(?:\.\d+)?)h)?(?:(\d+(?:\.\d+)?)m)?(?:(\d+(?:\.\d+)?)s?)?")


def _duration(value: Any) -> float:
    """Seconds from ``90``, ``90s``, ``2m``, ``1m30s`` or ``1h`` (Go's duration style); 0 is allowed."""
    if isinstance(value, bool):
        raise _BadValue("must be a duration such as 60s or 2m")
    if isinstance(value, int | float):
        seconds = float(value)
    else:
        text = _string(value).strip().lower()
        match = _DURATION.fullmatch(text)
        if not text or match is None:
            raise _BadValue("must be a duration such as 60s or 2m")
        h, m, s = (float(x) if x else 0.0 for x in match.groups())
        seconds = h * 3600 + m * 60 + s
    if not 0 <= seconds <= 24 * 3600:
        raise _BadValue("must be between 0 and 24h")
    return seconds


def _transport(value: Any) -> Transport:
    text = _string(value).strip().lower()
    try:
        return Transport(text or "auto")
    except ValueError:
        raise _BadValue("must be auto, tcp or webrtc") from None


#: config key -> (Config field, checker)
_KEYS: Final[dict[str, tuple[str, Callable[[Any], Any]]]] = {
    "server": ("server", _string),
    "url": ("url", _string),
    "compress": ("compress", _int_range(0, 9)),
    "transport": ("transport", _transport),
    "allow-relay": ("allow_relay", _boolean),
    "output": ("output", _string),
    "verbose": ("verbose", _boolean),
    "parallel": ("parallel", _int_range(0, 6)),
    "no-resume": ("no_resume", _boolean),
    "yes": ("yes", _boolean),
    "reconnect": ("reconnect", _duration),
}


_INT_KEYS: Final = frozenset({"compress", "parallel"})
#: flags whose empty value would quietly mean the default (an empty variable does, documented)
_STRING_FLAGS: Final = frozenset({"server", "url", "output"})


def _home(environ: Mapping[str, str]) -> Path:
    home = environ.get("HOME")
    return Path(home) if home else Path.home()


def _expand_home(text: str, environ: Mapping[str, str]) -> Path:
    if text == "~":
        return _home(environ)
    if text.startswith("~/"):
        return _home(environ) / text[2:]
    return Path(text)


def default_config_path(environ: Mapping[str, str]) -> Path:
    xdg = environ.get("XDG_CONFIG_HOME")
    base = Path(xdg) if xdg else _home(environ) / ".config"
    return base / "sp2p" / "config.yaml"


def _read_file(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"parsing {path}: {getattr(exc, 'strerror', None) or exc}") from None
    import yaml  # only when a config file exists: ~20 ms of import otherwise spent for nothing

    try:
        data = yaml.load(text, Loader=_strict_loader(yaml))  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        raise UsageError(f"parsing {path}: {_yaml_problem(exc)}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise UsageError(f"parsing {path}: expected a mapping of settings")
    values: dict[str, Any] = {}
    for key, value in data.items():
        if key is True:  # YAML 1.1 reads the bare key `yes` as a boolean
            key = "yes"
        if key not in _KEYS:
            raise UsageError(f"parsing {path}: unknown key {key!r}", hint=_key_hint(key))
        attr, check = _KEYS[key]
        try:
            values[attr] = check(value)
        except _BadValue as exc:
            # the value is named here: a flag's message names it already ("invalid value 12 …")
            shown = isinstance(value, str | int | float) and len(repr(value)) <= 40
            got = f", got {value!r}" if shown else ""
            raise UsageError(f"parsing {path}: {key}: {exc}{got}") from None
    return values


def _key_hint(key: object) -> str:
    """A near miss among the keys (`compres`, `allow_relay`), or the list of them."""
    import difflib  # only on this error

    near = difflib.get_close_matches(str(key).replace("_", "-"), list(_KEYS), n=1)
    return f"did you mean '{near[0]}'?" if near else f"the keys are: {', '.join(_KEYS)}"


def _strict_loader(yaml: Any) -> Any:
    """PyYAML's SafeLoader that refuses a key given twice: it kept the last one silently, so a
    second `server:` further down a file quietly won over the first."""

    def mapping(loader: Any, node: Any, deep: bool = False) -> Any:
        seen = set()
        for key_node, _ in node.value:
            key = loader.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"{'yes' if key is True else key!r} is given twice", key_node.start_mark)
            seen.add(key)
        return loader.construct_mapping(node, deep)

    class Strict(yaml.SafeLoader):  # type: ignore[misc,name-defined]
        pass

    Strict.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, mapping)
    return Strict


def _yaml_problem(exc: Exception) -> str:
    """`line 3, column 7: <what is wrong>` from a YAML error, on one line (its str() spans
    several, with a copy of the line and a caret)."""
    mark, problem = getattr(exc, "problem_mark", None), getattr(exc, "problem", None)
    if mark is None or not problem:
        return " ".join(str(exc).split())
    return f"line {mark.line + 1}, column {mark.column + 1}: {problem}"


def _from_flags(flags: Mapping[str, Any]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for key, value in flags.items():
        norm = key.lstrip("-").replace("_", "-")
        if value is None or norm not in _KEYS:
            continue  # not given, or a flag that is not a setting (-name, -stdout …)
        attr, check = _KEYS[norm]
        if value == "" and norm in _STRING_FLAGS:  # `-server ""`: not silently the default
            raise UsageError(f"-{norm} is empty", hint=f"give a value, or leave -{norm} out")
        if norm in _INT_KEYS and isinstance(value, str):
            # flags arrive as text; the config file must hold real integers
            with contextlib.suppress(ValueError):
                value = int(value.strip())
        try:
            values[attr] = check(value)
        except _BadValue as exc:
            raise UsageError(f"invalid value {value!r} for -{norm}: {exc}") from None
    return values


def load_config(
    flags: Mapping[str, Any], environ: Mapping[str, str], path: Path | None = None
) -> Config:
    """Build the effective settings.

    Args:
        flags: flag values by name (``allow-relay`` or ``allow_relay``); None = not given.
            Keys that are not settings are ignored.
        environ: environment variables (only SP2P_SERVER and SP2P_URL, when non-empty).
        path: config file; None means the default location derived from `environ`.

    Raises:
        UsageError: malformed file, unknown key, wrong type or out-of-range value.
    """
    path = default_config_path(environ) if path is None else path
    values = _read_file(path)
    #: where the server and url in `values` came from, when not typed as a flag
    origin: dict[str, str] = {k: f"the config file {path}" for k in ("server", "url") if k in values}
    for key, name in (("server", ENV_SERVER), ("url", ENV_URL)):
        if environ.get(name):
            values[key], origin[key] = environ[name], name
    from_flags = _from_flags(flags)
    values.update(from_flags)
    for key in ("server", "url"):
        if key in origin and key not in from_flags and values[key]:
            _check_url(key, values[key], origin[key])
    if not values.get("server"):
        values.pop("server", None)
    elif "server" in origin and "server" not in from_flags:
        values["server_origin"] = origin["server"]
    if "output" in values:
        values["output"] = _expand_home(values["output"], environ)
    return Config(**values)


def _check_url(key: str, value: str, origin: str) -> None:
    """A server or share URL the user did not type on this command line fails naming where it
    came from: a stale SP2P_SERVER in a shell profile is otherwise a mystery."""
    try:
        signaling_url(value) if key == "server" else normalize_base_url(value)
    except UsageError as exc:
        raise UsageError(f"{exc.message} (from {origin})",
                         hint=f"fix it there, or give -{key} to override it") from None


# ------------------------------------------------------------------ URLs


def signaling_url(server: str) -> str:
    """WebSocket URL for a ``-server`` value (W23).

    ``ws://``/``wss://`` are used verbatim; ``http`` → ``ws`` and ``https`` → ``wss``
    with ``/ws`` appended unless the path already ends in it (trailing slashes dropped);
    a bare ``host[:port]`` is taken as ``http://host[:port]``.

    Raises:
        UsageError: empty, unsupported scheme, no host, or a bad port.
    """
    text = server.strip()
    if not text:
        raise UsageError("the server URL is empty")
    if "://" not in text:
        text = "http://" + text
    parts = _split(text, f"server URL {server!r}")
    scheme = parts.scheme.lower()
    if scheme in ("ws", "wss"):
        _check_host(server, parts.netloc, parts)
        return text
    if scheme not in ("http", "https"):
        raise UsageError(f"unsupported server URL {server!r}: use http(s):// or ws(s)://")
    _check_host(server, parts.netloc, parts)
    path = parts.path.rstrip("/")
    if not path.endswith("/ws"):
        path += "/ws"
    ws_scheme = "wss" if scheme == "https" else "ws"
    return urlunsplit((ws_scheme, parts.netloc, path, parts.query, ""))


def _split(url: str, what: str) -> SplitResult:
    """`urlsplit`, whose ValueError (an unclosed ``[``) becomes a UsageError naming `what`."""
    try:
        return urlsplit(url)
    except ValueError as exc:
        raise UsageError(f"{what} is not a valid URL: {exc}") from None


def _encodable_host(host: str) -> bool:
    """Whether a socket can be given `host` (IDNA for non-ASCII names; never a lone surrogate
    from undecodable argv bytes). An ASCII name gets the IDNA codec's own label check without
    loading the codec, which every start would pay for (tests/e2e/test_lazy_start.py)."""
    if host.isascii():
        *labels, last = host.split(".")
        return all(0 < len(label) < 64 for label in labels) and len(last) < 64
    try:
        host.encode("idna")
    except UnicodeError:
        return False
    return True


def _check_host(original: str, netloc: str, parts: Any) -> None:
    if not netloc or not parts.hostname:
        raise UsageError(f"server URL {original!r} has no host")
    if not _encodable_host(parts.hostname):
        raise UsageError(f"server URL {original!r} has an invalid host name")
    try:
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        raise UsageError(f"server URL {original!r} has an invalid port") from None


def share_base_url(ws_url: str) -> str:
    """Base URL of the web pages behind a signalling URL: wss→https, ws→http, no ``/ws``."""
    parts = urlsplit(ws_url)
    scheme = {"wss": "https", "ws": "http"}.get(parts.scheme.lower(), parts.scheme.lower())
    path = parts.path.rstrip("/")
    if path.endswith("/ws"):
        path = path[: -len("/ws")]
    return urlunsplit((scheme, parts.netloc, path.rstrip("/"), "", ""))


def normalize_base_url(url: str) -> str:
    """An explicit ``-url``/SP2P_URL: scheme added if missing (http), trailing ``/`` dropped."""
    text = url.strip()
    if "://" not in text:
        text = "http://" + text
    parts = _split(text, f"share URL {url!r}")
    if (parts.scheme.lower() not in ("http", "https") or not parts.netloc
            or not _encodable_host(parts.hostname or "")):
        raise UsageError(f"invalid share URL {url!r}: use http(s)://host[:port]")
    return urlunsplit((parts.scheme.lower(), parts.netloc, parts.path.rstrip("/"), "", ""))


def server_of_share_url(text: str) -> str | None:
    """The server behind a share URL (``https://host/r#CODE`` → ``https://host``), or None
    when `text` is a bare code. The receive page lives at ``<base>/r``, so the base keeps any
    path prefix in front of it.

    Raises:
        UsageError: a URL that is not http(s) or has no host.
    """
    raw = text.strip()
    if "://" not in raw:
        return None
    parts = _split(raw, f"share URL {raw.split('#', 1)[0]!r}")
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise UsageError(f"invalid share URL {raw.split('#', 1)[0]!r}: expected http(s)://host/r#CODE")
    path = parts.path.rstrip("/")
    if path.endswith("/r"):
        path = path[: -len("/r")]
    return urlunsplit((parts.scheme.lower(), parts.netloc, path, "", ""))


def same_server(a: str, b: str) -> bool:
    """Whether two server values name the same host and port (schemes ws/http alike)."""
    pa, pb = urlsplit(signaling_url(a)), urlsplit(signaling_url(b))

    def where(p: Any) -> tuple[str, int]:
        return (p.hostname or "").lower(), p.port or (443 if p.scheme == "wss" else 80)

    return where(pa) == where(pb)
