"""The man pages render cleanly and are true to the code: flags, config keys, exit codes."""

from __future__ import annotations

import os
import re
import subprocess

import pytest

from server.config import ServerConfig
from server.flags import FLAGS as SERVER_FLAGS
from server.flags import Flag, parse_duration
from sp2p import cli, config
from sp2p.status import ExitStatus
from tests.dist.helpers import REPO_ROOT

MAN_DIR = REPO_ROOT / "packaging" / "man"
PAGES = ("sp2p.1", "sp2p-server.1")


def plain(page: str) -> str:
    """The page as man renders it, in plain text."""
    result = subprocess.run(
        ["man", "--warnings", "-l", str(MAN_DIR / page)],
        capture_output=True, text=True, timeout=60,
        env={**os.environ, "MANWIDTH": "100", "MAN_KEEP_FORMATTING": "0", "LC_ALL": "C.UTF-8"},
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == "", f"groff warnings in {page}:\n{result.stderr}"
    return re.sub(r".\x08", "", result.stdout)


def section(text: str, title: str) -> str:
    match = re.search(rf"^{title}\n(.*?)(?=^[A-Z][A-Z ]+\n|\Z)", text, re.M | re.S)
    assert match, f"no {title} section"
    return match.group(1)


def documented_flags(page: str) -> set[str]:
    """Flags that have their own tagged paragraph (`.TP`/`.TQ` then `.B[I] \\-name`)."""
    lines = (MAN_DIR / page).read_text().splitlines()
    flags = set()
    for previous, line in zip(lines, lines[1:], strict=False):
        match = re.match(r"\.(?:B|BI|BR) \\-((?:[a-z0-9]|\\-)+)", line)
        if previous in (".TP", ".TQ") and match:
            flags.add(match.group(1).replace("\\-", "-"))
    return flags


@pytest.mark.parametrize("page", PAGES)
def test_renders_without_warnings(page: str) -> None:
    text = plain(page)
    assert "NAME" in text and "SYNOPSIS" in text


def test_cli_flags_match_the_parser() -> None:
    code_flags = set(cli.SEND_FLAGS) | set(cli.RECEIVE_FLAGS)
    assert {"server", "url", "name", "compress", "allow-relay", "transport", "parallel", "v",
            "output", "stdout"} <= code_flags  # the contract in the team brief
    plain("sp2p.1")
    documented = documented_flags("sp2p.1") - {"h"}
    assert documented == code_flags


def test_cli_config_keys_and_environment() -> None:
    text = plain("sp2p.1")
    files = section(text, "FILES")
    for key in config._KEYS:
        assert re.search(rf"\b{re.escape(key)}\b", files), f"config key {key} undocumented"
    assert "$XDG_CONFIG_HOME/sp2p/config.yaml" in files
    assert "~/.config/sp2p/config.yaml" in files
    environment = section(text, "ENVIRONMENT")
    assert config.ENV_SERVER in environment and config.ENV_URL in environment


def test_cli_exit_codes_match_status_py() -> None:
    exit_section = section(plain("sp2p.1"), "EXIT STATUS")
    documented = {int(n) for n in re.findall(r"^\s{7}(\d+)\s*$", exit_section, re.M)}
    documented |= {int(n) for n in re.findall(r"^\s{7}(\d+)\s{2,}\S", exit_section, re.M)}
    assert documented == {int(status) for status in ExitStatus}


def test_server_flags_match_server_flags_py() -> None:
    text = plain("sp2p-server.1")
    code_flags = {flag.name for flag in SERVER_FLAGS} | {"version"}
    assert documented_flags("sp2p-server.1") == code_flags
    for flag in SERVER_FLAGS:  # each flag's environment variable is named next to it
        assert f"({flag.env})" in text.replace("\n", " "), flag.env


def man_paragraph(text: str, flag: str) -> str:
    """The rendered paragraph of `-flag`, with the flags that share it (`.TQ`), as one line."""
    shared = r"(?: {14}\(SP2P_[A-Z_]+\)\n {7}-.*\n)*"  # a .TQ pair: its env line, the next flag
    match = re.search(rf"^ {{7}}-{re.escape(flag)}\b.*\n{shared}(?:(?: {{14}}.*)?\n)*", text, re.M)
    assert match, f"no paragraph for -{flag}"
    return " ".join(match.group(0).split())


@pytest.mark.parametrize("flag", [f for f in SERVER_FLAGS if re.search(r"\(default \d", f.help)],
                         ids=lambda f: f.name)
def test_server_numeric_defaults_agree_in_help_man_page_and_config(flag: Flag) -> None:
    """A default the help names ("(default 30s)") is ServerConfig's, and the man page says the same."""
    match = re.search(r"\(default (\d[^,)]*)\)", flag.help)
    assert match, flag.help
    shown = match.group(1)
    value = parse_duration(shown) if flag.kind == "duration" else float(shown)
    assert value == getattr(ServerConfig(), flag.field), (flag.name, shown)
    paragraph = man_paragraph(plain("sp2p-server.1"), flag.name)
    assert re.search(rf"\b[Dd]efault {re.escape(shown)}\b", paragraph), (flag.name, paragraph)


@pytest.mark.parametrize(
    "name", [n for n, (_, text) in {**cli.SEND_FLAGS, **cli.RECEIVE_FLAGS}.items() if "(default " in text]
)
def test_cli_defaults_in_help_are_the_config_defaults(name: str) -> None:
    """A CLI default that -help names ("(default 60s)") is what Config starts from."""
    text = {**cli.SEND_FLAGS, **cli.RECEIVE_FLAGS}[name][1]
    match = re.search(r"\(default ([^,):]+)\)", text)
    assert match, text
    field, check = config._KEYS[name]
    shown = match.group(1)
    assert str(check(int(shown) if name in config._INT_KEYS else shown)) == str(getattr(config.Config(), field))


def test_cli_default_server_is_the_one_documented() -> None:
    assert f"(default {config.DEFAULT_SERVER})" in cli.USAGE
    assert f"or {config.DEFAULT_SERVER})" in cli.SEND_FLAGS["server"][1]
    assert f"({config.DEFAULT_SERVER})" in man_paragraph(plain("sp2p.1"), "server")


#: "(default X)" or "(default: X)" in a flag's -help text
_DEFAULT = re.compile(r"\(default:? ([^,;)]+)")


@pytest.mark.parametrize(
    "name", [n for n, (_, text) in {**cli.SEND_FLAGS, **cli.RECEIVE_FLAGS}.items() if _DEFAULT.search(text)]
)
def test_cli_defaults_in_help_are_in_the_man_page(name: str) -> None:
    """What -help calls a flag's default, its paragraph in man sp2p calls it too."""
    text = {**cli.SEND_FLAGS, **cli.RECEIVE_FLAGS}[name][1]
    shown = _DEFAULT.search(text).group(1)  # type: ignore[union-attr]  # the parametrize filter
    paragraph = man_paragraph(plain("sp2p.1"), name)
    assert re.search(rf"[Dd]efault:? {re.escape(shown)}(?!\w)", paragraph), (name, shown, paragraph)


@pytest.mark.parametrize("flag", [f for f in SERVER_FLAGS if _DEFAULT.search(f.help)], ids=lambda f: f.name)
def test_server_defaults_in_help_are_in_the_man_page(flag: Flag) -> None:
    """Every default -help names, words included ("(default: the installed one)"), is the man
    page's too; the numeric ones are also ServerConfig's (above)."""
    shown = _DEFAULT.search(flag.help).group(1)  # type: ignore[union-attr]  # the parametrize filter
    paragraph = man_paragraph(plain("sp2p-server.1"), flag.name)
    assert re.search(rf"[Dd]efault:? {re.escape(shown)}(?!\w)", paragraph), (flag.name, shown, paragraph)


def test_cli_environment_is_the_same_everywhere() -> None:
    """The variables the CLI reads, as `sp2p help`, man sp2p and the README list them."""
    read = {config.ENV_SERVER, config.ENV_URL, cli.ENV_CODE}
    usage = cli.USAGE.split("environment:", 1)[1].split("config file:", 1)[0]
    assert set(re.findall(r"SP2P_[A-Z_]+", usage)) == read
    assert set(re.findall(r"^ {7}(SP2P_[A-Z_]+)$", section(plain("sp2p.1"), "ENVIRONMENT"), re.M)) == read
    readme = (REPO_ROOT / "README.md").read_text()
    listed = re.search(r"^Environment: (.*?)\.", readme, re.M)
    assert listed, "no 'Environment:' line in the README"
    assert set(re.findall(r"`(SP2P_[A-Z_]+)`", listed.group(1))) == read
