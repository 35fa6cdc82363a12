"""sp2p.config: precedence, file errors, URL normalisation (client.md §5.2-5.3, W23)."""

from __future__ import annotations

from pathlib import Path

import pytest

from sp2p.config import (
    DEFAULT_SERVER,
    Config,
    Transport,
    default_config_path,
    load_config,
    normalize_base_url,
    share_base_url,
    signaling_url,
)
from sp2p.errors import UsageError


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_defaults_without_a_file(tmp_path: Path) -> None:
    cfg = load_config({}, {}, tmp_path / "missing.yaml")
    assert cfg == Config()
    assert cfg.server == DEFAULT_SERVER == "http://localhost:8080"
    assert (cfg.compress, cfg.transport, cfg.parallel, cfg.allow_relay, cfg.verbose) == (
        3, Transport.AUTO, 0, False, False)
    assert cfg.signaling_url == "ws://localhost:8080/ws"
    assert cfg.base_url == "http://localhost:8080"


def test_file_values(tmp_path: Path) -> None:
    path = write(tmp_path / "c.yaml", """
server: https://sp2p.example
url: https://share.example/
compress: 0
transport: WebRTC
allow-relay: true
output: ~/Downloads
verbose: yes
parallel: 6
""")
    cfg = load_config({}, {"HOME": "/home/u"}, path)
    assert cfg == Config(server="https://sp2p.example", url="https://share.example/", compress=0,
                         transport=Transport.WEBRTC, allow_relay=True,
                         output=Path("/home/u/Downloads"), verbose=True, parallel=6,
                         server_origin=f"the config file {path}")
    assert cfg.base_url == "https://share.example"
    assert cfg.signaling_url == "wss://sp2p.example/ws"


def test_precedence_flags_over_env_over_file(tmp_path: Path) -> None:
    path = write(tmp_path / "c.yaml", "server: http://file:1\nurl: http://file-url\ncompress: 5\n")
    env = {"SP2P_SERVER": "http://env:2", "SP2P_URL": "http://env-url"}
    assert load_config({}, {}, path).server == "http://file:1"
    cfg = load_config({}, env, path)
    assert (cfg.server, cfg.url, cfg.compress) == ("http://env:2", "http://env-url", 5)
    flags = {"server": "http://flag:3", "url": None, "compress": 7, "allow_relay": None,
             "name": "ignored", "stdout": True}
    cfg = load_config(flags, env, path)
    assert (cfg.server, cfg.url, cfg.compress, cfg.allow_relay) == (
        "http://flag:3", "http://env-url", 7, False)
    # empty environment values do not count
    assert load_config({}, {"SP2P_SERVER": "", "SP2P_URL": ""}, path).url == "http://file-url"


def test_flag_names_with_hyphens_or_underscores(tmp_path: Path) -> None:
    missing = tmp_path / "none.yaml"
    assert load_config({"allow-relay": True}, {}, missing).allow_relay
    assert load_config({"allow_relay": True}, {}, missing).allow_relay
    assert load_config({"transport": "TCP"}, {}, missing).transport is Transport.TCP
    assert load_config({"compress": " 9"}, {}, missing).compress == 9
    assert load_config({"transport": ""}, {}, missing).transport is Transport.AUTO
    assert load_config({"output": "~"}, {"HOME": "/h"}, missing).output == Path("/h")


def test_default_path_uses_xdg_then_home() -> None:
    assert default_config_path({"XDG_CONFIG_HOME": "/x", "HOME": "/h"}) == Path(
        "/x/sp2p/config.yaml")
    assert default_config_path({"HOME": "/h"}) == Path("/h/.config/sp2p/config.yaml")


def test_default_path_is_read_when_none_given(tmp_path: Path) -> None:
    (tmp_path / "sp2p").mkdir()
    write(tmp_path / "sp2p" / "config.yaml", "parallel: 2\n")
    assert load_config({}, {"XDG_CONFIG_HOME": str(tmp_path)}).parallel == 2


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("server: [unclosed", "parsing"),
        ("- a\n- b\n", "expected a mapping"),
        ("colour: blue\n", "unknown key 'colour'"),
        ("compress: 10\n", "compress: must be 0-9, got 10$"),
        ("yes: maybe\n", "yes: must be true or false, got 'maybe'$"),
        ("compress: -1\n", "compress"),
        ("compress: '3'\n", "compress"),
        ("compress: true\n", "compress: must be an integer"),
        ("parallel: 7\n", "parallel: must be 0-6"),
        ("transport: quic\n", "transport: must be auto, tcp or webrtc"),
        ("allow-relay: maybe\n", "allow-relay: must be true or false"),
        ("verbose: 1\n", "verbose"),
        ("server: 42\n", "server: must be a string"),
        ("output: [a]\n", "output"),
        ("verbose: true\nserver: http://h:1\nverbose: false\n", "line 3, column 1: 'verbose' is given twice$"),
        ("yes: true\nyes: false\n", "line 2, column 1: 'yes' is given twice$"),
    ],
)
def test_file_errors_name_the_file(tmp_path: Path, text: str, match: str) -> None:
    path = write(tmp_path / "config.yaml", text)
    with pytest.raises(UsageError, match=match) as excinfo:
        load_config({}, {}, path)
    assert excinfo.value.message.startswith(f"parsing {path}: ")
    assert "\n" not in excinfo.value.message


@pytest.mark.parametrize(("text", "hint"), [
    ("compres: 3\n", "did you mean 'compress'?"),
    ("allow_relay: true\n", "did you mean 'allow-relay'?"),
    ("colour: blue\n", "the keys are: server, url, compress, transport, allow-relay, output, verbose, "
                      "parallel, no-resume, yes, reconnect"),
])
def test_an_unknown_key_names_the_one_meant(tmp_path: Path, text: str, hint: str) -> None:
    with pytest.raises(UsageError) as excinfo:
        load_config({}, {}, write(tmp_path / "config.yaml", text))
    assert excinfo.value.hint == hint


def test_a_flag_value_out_of_range_is_named_once() -> None:
    """It read 'invalid value 12 for -compress: must be 0-9, got 12'."""
    with pytest.raises(UsageError) as excinfo:
        load_config({"compress": 12}, {}, Path("/nonexistent/config.yaml"))
    assert excinfo.value.message == "invalid value 12 for -compress: must be 0-9"


def test_empty_file_is_fine(tmp_path: Path) -> None:
    assert load_config({}, {}, write(tmp_path / "c.yaml", "")) == Config()
    assert load_config({}, {}, write(tmp_path / "d.yaml", "# only a comment\n")) == Config()


def test_unreadable_config_path_is_a_usage_error(tmp_path: Path) -> None:
    (tmp_path / "dir.yaml").mkdir()
    with pytest.raises(UsageError, match="parsing"):
        load_config({}, {}, tmp_path / "dir.yaml")


@pytest.mark.parametrize(
    ("flags", "match"),
    [({"compress": 12}, "-compress"), ({"parallel": -1}, "-parallel"),
     ({"transport": "udp"}, "-transport"), ({"compress": "x"}, "-compress"),
     ({"compress": "11"}, "-compress")],
)
def test_bad_flag_values(tmp_path: Path, flags: dict[str, object], match: str) -> None:
    with pytest.raises(UsageError, match=match):
        load_config(flags, {}, tmp_path / "none.yaml")


@pytest.mark.parametrize(
    ("server", "ws"),
    [
        ("localhost:8080", "ws://localhost:8080/ws"),
        ("example.com", "ws://example.com/ws"),
        ("http://example.com", "ws://example.com/ws"),
        ("http://example.com/", "ws://example.com/ws"),
        ("https://example.com", "wss://example.com/ws"),
        ("https://example.com//", "wss://example.com/ws"),
        ("https://example.com/ws", "wss://example.com/ws"),
        ("https://example.com/ws/", "wss://example.com/ws"),
        ("HTTPS://example.com:8443/sp2p/", "wss://example.com:8443/sp2p/ws"),
        ("ws://127.0.0.1:9/custom", "ws://127.0.0.1:9/custom"),
        ("wss://example.com/ws", "wss://example.com/ws"),
        ("  http://[::1]:8080  ", "ws://[::1]:8080/ws"),
    ],
)
def test_signaling_url(server: str, ws: str) -> None:
    assert signaling_url(server) == ws


@pytest.mark.parametrize("server", ["", "   ", "ftp://x", "http://", "http://host:99999", "ws://"])
def test_signaling_url_errors(server: str) -> None:
    with pytest.raises(UsageError):
        signaling_url(server)


@pytest.mark.parametrize(
    ("ws", "base"),
    [("wss://example.com/ws", "https://example.com"), ("ws://h:8080/ws", "http://h:8080"),
     ("wss://example.com/sp2p/ws/", "https://example.com/sp2p"),
     ("ws://h/other", "http://h/other")],
)
def test_share_base_url(ws: str, base: str) -> None:
    assert share_base_url(ws) == base


def test_explicit_base_url() -> None:
    assert normalize_base_url("https://share.example/") == "https://share.example"
    assert normalize_base_url("share.example:8080") == "http://share.example:8080"
    with pytest.raises(UsageError):
        normalize_base_url("ftp://x")


@pytest.mark.parametrize("host", ["localhost", "127.0.0.1", "a.b.", "x" * 63, "a..b", ".a", "a.b..", "x" * 64,
                                  "a." + "x" * 64, "bücher.de", "ex\udcffample"])
def test_host_check_agrees_with_the_idna_codec_it_skips_for_ascii(host: str) -> None:
    """An ASCII host name is judged without loading encodings.idna (start time), as the codec would."""
    try:
        host.encode("idna")
        encodable = True
    except UnicodeError:
        encodable = False
    url = f"http://{host}:8080"
    if encodable:
        assert normalize_base_url(url) == url
    else:
        with pytest.raises(UsageError):
            normalize_base_url(url)


@pytest.mark.parametrize(
    ("environ", "text", "origin", "hint"),
    [({"SP2P_SERVER": "ftp://x"}, "", "SP2P_SERVER", "-server"),
     ({"SP2P_URL": "ftp://x"}, "", "SP2P_URL", "-url"),
     ({}, "server: ftp://x\n", "the config file", "-server"),
     ({}, "server: 'http://[::1'\n", "the config file", "-server"),
     ({}, "url: ftp://x\n", "the config file", "-url")],
)
def test_a_bad_url_not_typed_says_where_it_came_from(tmp_path: Path, environ: dict[str, str], text: str,
                                                     origin: str, hint: str) -> None:
    """A stale SP2P_SERVER in a shell profile said only "unsupported server URL 'ftp://x'"."""
    path = write(tmp_path / "c.yaml", text)
    with pytest.raises(UsageError) as excinfo:
        load_config({}, environ, path)
    assert excinfo.value.message.endswith(f"(from {origin}{f' {path}' if 'file' in origin else ''})")
    assert excinfo.value.hint is not None and hint in excinfo.value.hint


def test_a_bad_url_overridden_by_a_flag_is_no_error(tmp_path: Path) -> None:
    path = write(tmp_path / "c.yaml", "server: ftp://file\n")
    cfg = load_config({"server": "http://flag:1", "url": "http://u"}, {"SP2P_URL": "ftp://x"}, path)
    assert (cfg.server, cfg.url) == ("http://flag:1", "http://u")


def test_a_yaml_error_is_one_line_with_its_place(tmp_path: Path) -> None:
    path = write(tmp_path / "c.yaml", "verbose: true\nserver: [unclosed\n")
    with pytest.raises(UsageError) as excinfo:
        load_config({}, {}, path)
    assert excinfo.value.message == f"parsing {path}: line 3, column 1: expected ',' or ']', but got '<stream end>'"


def test_the_server_remembers_where_it_came_from(tmp_path: Path) -> None:
    """Named when it cannot be reached (sp2p.cli): a stale SP2P_SERVER or file is a mystery."""
    path = write(tmp_path / "config.yaml", "server: http://file:1\n")
    assert load_config({}, {}, path).server_origin == f"the config file {path}"
    assert load_config({}, {"SP2P_SERVER": "http://env:2"}, path).server_origin == "SP2P_SERVER"
    assert load_config({"server": "http://flag:3"}, {"SP2P_SERVER": "http://env:2"}, path).server_origin == ""
    assert load_config({}, {}, tmp_path / "none.yaml").server_origin == ""  # the default
