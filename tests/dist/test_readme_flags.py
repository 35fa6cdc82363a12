"""The README's flags are the code's: the CLI's flag table, and every flag it names in prose."""

from __future__ import annotations

import re

import pytest

from server.flags import FLAGS as SERVER_FLAGS
from sp2p import cli, config
from sp2p.status import ExitStatus
from tests.dist.helpers import REPO_ROOT

README = (REPO_ROOT / "README.md").read_text()
#: `-flag` or `-flag VALUE` at the start of inline code; `--` and prose dashes do not match
_FLAG = re.compile(r"`-([a-z][a-z0-9-]*)[ `=]")


def commands_flags(section: str, program: str) -> set[str]:
    """Flags on the README's indented command lines that run `program`."""
    lines = re.findall(rf"^ {{4}}(?:\S+=\S+ )*{re.escape(program)} (.*)$", section, re.M)
    return {flag for line in lines for flag in re.findall(r"(?:^|\s)-([a-z][a-z0-9-]*)", line.split("#")[0])}


def readme_section(title: str) -> str:
    match = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## |\Z)", README, re.M | re.S)
    assert match, f"no '## {title}' section"
    return match.group(1)


def test_cli_flag_table_is_the_parser() -> None:
    rows = re.findall(r"^\| `-([a-z-]+)[^`]*` \| (both|send|receive) \|", readme_section("Using it"), re.M)
    table = {name: where for name, where in rows}
    assert len(table) == len(rows), "a flag listed twice"
    code = {
        name: "both" if name in cli.SEND_FLAGS and name in cli.RECEIVE_FLAGS
        else "send" if name in cli.SEND_FLAGS else "receive"
        for name in {*cli.SEND_FLAGS, *cli.RECEIVE_FLAGS}
    }
    assert table == code


def test_flags_named_in_prose_exist() -> None:
    cli_flags = {*cli.SEND_FLAGS, *cli.RECEIVE_FLAGS}
    using = readme_section("Using it")
    named = set(_FLAG.findall(using)) - {"flag"}  # "`-flag value`" is syntax
    named |= commands_flags(using, "sp2p send") | commands_flags(using, "sp2p receive")
    assert named and named <= cli_flags, named - cli_flags
    server_flags = {flag.name for flag in SERVER_FLAGS} | {"version", "help"}
    server = readme_section("The server")
    named = set(_FLAG.findall(server)) | commands_flags(server, "sp2p-server")
    assert commands_flags(server, "sp2p send") <= cli_flags
    assert named and named <= server_flags, named - server_flags


#: "(default X)" in a flag's -help text
_DEFAULT = re.compile(r"\(default ([^,;)]+)\)")


@pytest.mark.parametrize(
    "name", [n for n, (_, text) in {**cli.SEND_FLAGS, **cli.RECEIVE_FLAGS}.items() if _DEFAULT.search(text)]
)
def test_cli_defaults_in_help_are_the_flag_table_s(name: str) -> None:
    """The README's row for a flag names the default -help names, as "(default X)"."""
    shown = _DEFAULT.search({**cli.SEND_FLAGS, **cli.RECEIVE_FLAGS}[name][1]).group(1)  # type: ignore[union-attr]
    row = re.search(rf"^\| `-{re.escape(name)}[ `].*$", readme_section("Using it"), re.M)
    assert row, name
    assert re.search(rf"\(default `?{re.escape(shown)}`?\)", row.group(0)), (name, shown, row.group(0))


def test_exit_code_table_is_status_py() -> None:
    codes = re.findall(r"^\| (\d+) \| ", readme_section("Using it"), re.M)
    assert [int(code) for code in codes] == sorted(int(status) for status in ExitStatus)


def test_config_file_keys_are_config_s() -> None:
    listed = re.search(r"`~/\.config/sp2p/config\.yaml`\) with keys (.*?)\. Precedence", " ".join(README.split()))
    assert listed, "no config key list in the README"
    keys = re.findall(r"`([a-z-]+)`", listed.group(1))
    assert len(keys) == len(set(keys)) and set(keys) == set(config._KEYS)
