"""The `sp2p` command's flags, Go style (`-flag`, `--flag`, `-flag=value`, flags anywhere): the
tables of each command, their parser and the -help text. Kept apart from sp2p.cli, which runs
the commands and is the one place that prints errors and picks exit codes."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sp2p.errors import UsageError
from sp2p.record import field, record

USAGE = """\
usage: sp2p <command> [flags] [arguments]

commands:
  send [flags] <file|folder|...|->   send files, a folder, or stdin (-)
  receive [flags] [CODE]             receive with a transfer code or share URL (alias: recv);
                                     without CODE: $SP2P_CODE, or a prompt on the terminal
  version                            print the version
  help [command]                     show this help, or the flags of a command

environment:
  SP2P_SERVER   signaling server (default http://localhost:8080)
  SP2P_URL      public base URL for share links (default: derived from the server)
  SP2P_CODE     transfer code for 'receive' when none is given (keeps it out of ps)

config file: $XDG_CONFIG_HOME/sp2p/config.yaml or ~/.config/sp2p/config.yaml
Run 'sp2p <command> -help' for the flags of a command.
"""

BOOL, STR, INT = "bool", "str", "int"
COMMON_FLAGS: dict[str, tuple[str, str]] = {
    "server": (STR, "signaling server URL: http(s)://host[:port], ws(s)://…/ws or host:port "
               "(without it: $SP2P_SERVER, the config file's, or http://localhost:8080)"),
    "transport": (STR, "connection method: auto, tcp or webrtc (default auto)"),
    "parallel": (INT, "parallel TCP streams: 0 auto, 1 never, 2-6 force (default 0)"),
    "allow-relay": (BOOL, "accept a TURN relay without asking (data stays end-to-end encrypted)"),
    "no-resume": (BOOL, "neither resume an interrupted file nor keep a partial for a re-run"),
    "reconnect": (STR, "heal a dropped connection for up to this long (60s, 2m …); 0 disables (default 60s)"),
    "v": (BOOL, "verbose diagnostics"),
    "debug": (BOOL, "show a traceback after any error (for bug reports)"),
}
SEND_FLAGS = {
    **COMMON_FLAGS,
    "url": (STR, "public base URL for share links"),
    "name": (STR, "name to announce (stdin streams; also renames a single file): a plain file name"),
    "compress": (INT, "most zstd effort 1-9 (default 3): each chunk gets as much as the link leaves time "
                 "for, down to none; 0 disables zstd"),
    "qr": (BOOL, "show a QR code of the share URL (on a terminal, q toggles it while waiting)"),
}
RECEIVE_FLAGS = {
    **COMMON_FLAGS,
    "output": (STR, "output folder, which must exist and be writable (default .)"),
    "stdout": (BOOL, "write the received data to stdout (a pipe or a file, not a terminal)"),
    "yes": (BOOL, "receive without asking 'Receive it?' on a terminal (config: yes: true)"),
}
#: what -help calls a value parsed as text but meaning more
_SHOWN_KIND = {"reconnect": "duration"}
_TRUE = {"1", "t", "true", "yes", "on"}
_FALSE = {"0", "f", "false", "no", "off"}


@record()
class Parsed:
    flags: dict[str, Any] = field(default_factory=dict)
    args: list[str] = field(default_factory=list)
    help: bool = False


def parse_flags(argv: Sequence[str], spec: Mapping[str, tuple[str, str]]) -> Parsed:
    out = Parsed()
    it = iter(argv)
    for arg in it:
        if arg == "--":
            out.args.extend(it)
            break
        if arg == "-" or not arg.startswith("-"):
            out.args.append(arg)
            continue
        name, has_value, value = arg.lstrip("-").partition("=")
        if name in ("h", "help"):
            out.help = True
            continue
        if name not in spec:
            raise UsageError(f"unknown flag: {arg.split('=', 1)[0]}", hint=_unknown_flag_hint(name, spec))
        kind = spec[name][0]
        if kind == BOOL:
            if not has_value:
                out.flags[name] = True
            elif value.lower() in _TRUE | _FALSE:
                out.flags[name] = value.lower() in _TRUE
            else:
                raise UsageError(f"invalid boolean value {value!r} for -{name}")
            continue
        if not has_value:
            try:
                value = next(it)
            except StopIteration:
                raise UsageError(f"flag needs an argument: -{name}") from None
        if kind == INT:
            try:
                out.flags[name] = int(value)
            except ValueError:
                raise UsageError(f"invalid value {value!r} for -{name}: expected a whole number") from None
        else:
            out.flags[name] = value
    return out


def _unknown_flag_hint(name: str, spec: Mapping[str, tuple[str, str]]) -> str:
    """What to type instead of the flag `name`: one of the other command's, a near miss or the
    start of one of ours (`-o`, `--nam`, `-ouptut`). Only names from our tables are shown."""
    if name == "verbose":  # the config key's name for -v
        return "did you mean -v?"
    if name in SEND_FLAGS or name in RECEIVE_FLAGS:
        return f"-{name} is a flag of 'sp2p {'receive' if name in RECEIVE_FLAGS else 'send'}'"
    starts = [flag for flag in spec if name and flag.startswith(name)]
    if len(starts) == 1:
        return f"did you mean -{starts[0]}?"
    import difflib  # only on this error

    near = difflib.get_close_matches(name, list(spec), n=1)
    return f"did you mean -{near[0]}?" if near else "see -help for the flags"


def flag_help(command: str, spec: Mapping[str, tuple[str, str]]) -> str:
    lines = [f"usage: sp2p {command} [flags] {'<file|folder|...|->' if command == 'send' else '[CODE]'}", ""]
    for name, (kind, text) in spec.items():
        arg = "" if kind == BOOL else f" {_SHOWN_KIND.get(name, kind)}"
        lines.append(f"  -{name}{arg}\n        {text}")
    return "\n".join(lines) + "\n"
