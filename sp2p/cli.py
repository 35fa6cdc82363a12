"""`sp2p` command line: runs a command with its flags (sp2p/flags.py).

The only place that prints errors and picks exit codes (sp2p/status.py).
"""

from __future__ import annotations

import _signal  # type: ignore[import-not-found]  # no stub; see _install_sigterm
import contextlib
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, BinaryIO, TextIO

from sp2p import __version__
from sp2p.errors import InvalidCodeError, LocalIOError, ServerUnreachable, Sp2pError, UsageError
from sp2p.flags import RECEIVE_FLAGS, SEND_FLAGS, USAGE, Parsed, flag_help, parse_flags
from sp2p.record import record
from sp2p.status import ExitStatus, exit_status_of
from sp2p.term.ui import Terminal

#: test and development hook, like Go's dev builds: advertise and dial loopback addresses
ENV_ALLOW_LOOPBACK = "SP2P_ALLOW_LOOPBACK"
#: the transfer code, for receivers that keep it out of argv
ENV_CODE = "SP2P_CODE"


@record(frozen=True)
class Streams:
    """Where the CLI reads and writes; tests hand in their own (as httpie's Environment)."""

    stdin: BinaryIO | None  #: the bytes `send -` reads (None: standard input is closed)
    stdout: TextIO
    stderr: TextIO
    #: file descriptor 1 was closed at start (`>&-`): `stdout` leads nowhere
    stdout_closed: bool = False

    @classmethod
    def system(cls) -> Streams:
        _hold_standard_fds()
        # Python sets sys.stdin/stdout/stderr to None for a descriptor closed at start (`<&-`):
        # what would go there goes nowhere, and what must go there fails with one line
        return cls(
            getattr(sys.stdin, "buffer", None), sys.stdout or _nowhere(), sys.stderr or _nowhere(),
            stdout_closed=sys.stdout is None,
        )


def _hold_standard_fds() -> None:
    """Point a standard descriptor closed at start (`2>&-`) at /dev/null. Left closed, the next
    socket takes its number, and whatever writes to fd 2 below Python (a fatal error, a C
    library's warning) would write into the signaling or peer connection."""
    for fd in (0, 1, 2):
        try:
            os.fstat(fd)
        except OSError:
            null = os.open(os.devnull, os.O_RDWR)  # the lowest free number: this one, unless 0-1 were too
            if null != fd:
                os.dup2(null, fd)
                os.close(null)


def _nowhere() -> TextIO:
    return open(os.devnull, "w", encoding="utf-8")  # noqa: SIM115 - lives as long as the process


def run() -> int:
    """The `sp2p` command (console script, `python -m sp2p`, the frozen binary): `main`, then
    `exit_now`. Tests call `main` in-process instead."""
    return exit_now(main())


def exit_now(status: int) -> int:
    """Exit without the interpreter's teardown, which only frees memory the kernel takes back
    anyway (~10 ms of a 1-byte receive, issue 12). Everything a normal exit does that anyone
    can see still happens, in its order: other non-daemon threads are waited for (if one is
    alive the normal exit runs: returns `status` for sys.exit), atexit handlers run (a UPnP
    mapping's removal, weakref finalizers, coverage), stdout and stderr are flushed (a flush
    that fails falls back to the normal exit and its reporting). Files were closed and fsynced
    by the flows before `main` returned; daemon threads end with the process either way."""
    import atexit
    import threading

    if any(t.is_alive() and not t.daemon for t in threading.enumerate() if t is not threading.main_thread()):
        return status
    atexit._run_exitfuncs()
    try:
        for stream in (sys.stdout, sys.stderr):
            if stream is not None:
                stream.flush()
    except (OSError, ValueError):
        return status
    os._exit(status)


def main(
    argv: Sequence[str] | None = None,
    environ: Mapping[str, str] | None = None,
    streams: Streams | None = None,
) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    env = os.environ if environ is None else environ
    io = streams or Streams.system()
    term = Terminal(io.stdout, io.stderr)
    # through the Terminal, which drops a stream whose reader went away (`sp2p version | true`)
    if not args:
        term.write(USAGE)
        return ExitStatus.USAGE
    command, rest = args[0], args[1:]
    if command in ("version", "-version", "--version"):
        term.stdout_line(f"sp2p {__version__}")
        return ExitStatus.OK
    if command in ("help", "-h", "-help", "--help"):
        return _help(term, rest)
    if command not in ("send", "receive", "recv"):
        term.error(f"unknown command: {term.peer_text(command)}", _command_hint(command))
        return ExitStatus.USAGE
    debug = "-debug" in rest or "--debug" in rest
    _install_sigterm()
    try:
        return _run(command, rest, env, term, io)
    except KeyboardInterrupt:
        term.end_live()
        term.error("interrupted")
        return ExitStatus.INTERRUPTED
    except Sp2pError as exc:
        term.end_live()
        term.error(term.peer_text(exc.message, max_len=400), exc.hint)
        if debug:
            _print_traceback(term)
        return exit_status_of(exc)
    except Exception as exc:  # noqa: BLE001 - the one place that turns surprises into an exit code
        term.end_live()
        term.error(f"unexpected error: {term.peer_text(str(exc) or type(exc).__name__)}",
                   None if debug else "run again with -debug for details")
        if debug:
            _print_traceback(term)
        return ExitStatus.ERROR


def _help(term: Terminal, topics: list[str]) -> int:
    """`sp2p help`, or `sp2p help send` for a command's flags (as `go help build`)."""
    if not topics:
        term.write(USAGE)
        return ExitStatus.OK
    topic = topics[0]
    if topic in ("send", "receive", "recv") and len(topics) == 1:
        term.write(flag_help("send" if topic == "send" else "receive",
                             SEND_FLAGS if topic == "send" else RECEIVE_FLAGS))
        return ExitStatus.OK
    term.error(f"no help for: {term.peer_text(' '.join(topics))}", "run 'sp2p help' for the commands")
    return ExitStatus.USAGE


def _command_hint(command: str) -> str:
    """What to type instead of `command`: a flag of ours goes after the command that takes it
    (Go style); a near miss is named. Only names from our own tables are shown."""
    name = command.lstrip("-").split("=", 1)[0]
    if command.startswith("-") and (name in SEND_FLAGS or name in RECEIVE_FLAGS):
        takes_it = "send" if name in SEND_FLAGS else "receive"
        return f"flags follow the command, as in: sp2p {takes_it} -{name} …"
    import difflib

    near = difflib.get_close_matches(command.lower(), ("send", "receive", "version", "help"), n=1)
    return f"did you mean 'sp2p {near[0]}'?" if near else "run 'sp2p help' for the commands"


def _print_traceback(term: Terminal) -> None:
    import traceback  # only with -debug: it brings linecache and tokenize

    term.write(traceback.format_exc())


def _run(command: str, rest: list[str], env: Mapping[str, str], term: Terminal, io: Streams) -> int:
    from sp2p.config import load_config

    spec = SEND_FLAGS if command == "send" else RECEIVE_FLAGS
    parsed = parse_flags(rest, spec)
    name = "send" if command == "send" else "receive"
    if parsed.help:
        term.write(flag_help(name, spec))
        return ExitStatus.OK
    settings = dict(parsed.flags)
    if "v" in settings:  # -v is the flag, `verbose` the config key
        settings["verbose"] = settings.pop("v")
    config = load_config(settings, env)
    term.verbose = config.verbose
    if config.verbose:
        import logging  # sp2p.log forwards to it from now on

        logging.basicConfig(level=logging.DEBUG, format="  [%(threadName)s] %(name)s: %(message)s")
    term.line(f"sp2p {__version__}")
    loopback = env.get(ENV_ALLOW_LOOPBACK, "") in ("1", "true")
    try:
        if command == "send":
            return _send(parsed, config, term, loopback, io.stdin)
        return _receive(parsed, config, term, loopback, env, stdout_closed=io.stdout_closed)
    except ServerUnreachable as exc:
        # typed here or the default: the message says it all; a share URL's own server is
        # not the one from the environment or the file
        if not config.server_origin or exc.url != config.signaling_url:
            raise
        # a stale SP2P_SERVER or config file is otherwise a mystery
        hint = f"the server comes from {config.server_origin}: fix it there, or give -server to override it"
        raise ServerUnreachable(exc.message, url=exc.url, hint=hint) from exc


def _send(parsed: Parsed, config: Any, term: Terminal, loopback: bool, stdin: BinaryIO | None) -> int:
    from sp2p.config import signaling_url
    from sp2p.flow.early import EarlySignal

    if not parsed.args:
        piped = stdin is not None and _is_pipe_or_file(stdin)
        raise UsageError("nothing to send", hint=(
            "to send what is piped in, add '-': sp2p send [flags] -" if piped  # `tar c d | sp2p send`
            else "usage: sp2p send [flags] <file|folder|...|->"))
    early = EarlySignal(signaling_url(config.server))  # connects while the rest loads
    try:
        from sp2p.flow.send import SendOptions, run_send

        _freeze_imports()
        opts = SendOptions(
            paths=parsed.args, name=parsed.flags.get("name"), config=config, allow_loopback=loopback,
            qr=bool(parsed.flags.get("qr")), stdin=stdin, early=early, relay_consent=_relay_consent,
        )
        return run_send(opts, term)
    finally:
        early.close()


def _is_pipe_or_file(stream: BinaryIO) -> bool:
    """Whether `stream` is a pipe or a redirected file (not a terminal, not /dev/null)."""
    import stat

    try:
        mode = os.fstat(stream.fileno()).st_mode
    except (OSError, ValueError):  # no descriptor (a test's buffer)
        return False
    return stat.S_ISFIFO(mode) or stat.S_ISREG(mode)


def _opening_of(session_id: str, config: Any, to_stdout: bool, key_now: bool) -> Callable[[], Any]:
    def build() -> Any:
        from sp2p.flow.session import receiver_opening  # on the connect thread

        return receiver_opening(session_id, config, to_stdout=to_stdout, key_now=key_now)

    return build


def _freeze_imports() -> None:
    """Everything imported so far lives until exit: keep it out of every garbage collection,
    including the one at interpreter exit that walked it all again (~0.2 s of a 1-byte receive)."""
    import gc

    gc.freeze()


#: how often the prompt asks again for a code that is not one
CODE_PROMPTS = 3


def _code_without_argv(env: Mapping[str, str], term: Terminal) -> str:
    """The code from SP2P_CODE or a prompt, so it stays out of `ps` and shell history (T20, D6).

    The prompt reads /dev/tty without echo: a pasted code or share URL never lands in the
    terminal's scrollback either. As the user cannot see what went in, one that is not a code
    is explained and asked for again (an empty answer still ends it).
    """
    from sp2p.proto.codes import parse_code
    from sp2p.term.prompts import NoTerminal, ask_secret

    if env.get(ENV_CODE):
        return env[ENV_CODE]
    for attempt in range(1, CODE_PROMPTS + 1):
        try:
            text = ask_secret("  Transfer code or share URL (not shown): ")
        except NoTerminal:
            text = ""
        if not text.strip():
            raise UsageError(
                "expected exactly one transfer code",
                hint="usage: sp2p receive [flags] <CODE>, or set SP2P_CODE",
            )
        try:
            parse_code(text)
        except InvalidCodeError as exc:
            if attempt == CODE_PROMPTS:
                raise UsageError(exc.message, hint=exc.hint) from exc
            term.line(f"{term.peer_text(exc.message)}; try again (Enter alone stops)")
            continue
        return text
    raise AssertionError("unreachable")


def _server_for(text: str, parsed: Parsed, config: Any) -> Any:
    """A share URL selects its own server; an explicit -server must agree with it."""
    from sp2p.config import same_server, server_of_share_url
    from sp2p.record import replace

    url_server = server_of_share_url(text)
    if url_server is None:
        return config
    flag = parsed.flags.get("server")
    if flag and not same_server(flag, url_server):
        raise UsageError(
            f"-server {flag} disagrees with the share URL's server {url_server}",
            hint="drop -server, or pass just the code",
        )
    return replace(config, server=url_server)


def _receive(parsed: Parsed, config: Any, term: Terminal, loopback: bool, env: Mapping[str, str], *,
             stdout_closed: bool) -> int:
    from sp2p.config import signaling_url
    from sp2p.flow.code_check import is_short, seed_is_refused
    from sp2p.flow.early import EarlySignal
    from sp2p.fs.fsutil import output_dir_problem
    from sp2p.proto.codes import parse_code

    if len(parsed.args) > 1:
        raise UsageError("expected exactly one transfer code", hint="usage: sp2p receive [flags] <CODE>")
    if parsed.flags.get("stdout") and "output" in parsed.flags:
        raise UsageError("-stdout and -output exclude each other", hint="give one of them")
    text = parsed.args[0] if parsed.args else _code_without_argv(env, term)
    try:
        code = parse_code(text)
    except InvalidCodeError as exc:  # the code came from our arguments or the prompt
        raise UsageError(exc.message, hint=exc.hint) from exc
    config = _server_for(text, parsed, config)
    to_stdout = bool(parsed.flags.get("stdout"))
    if to_stdout and stdout_closed:  # before the join: the sender's code stays unused
        raise LocalIOError("standard output is closed: nowhere to write what is received",
                           hint="redirect it (> file), or drop -stdout to save into a folder")
    if to_stdout and term.out_is_tty:  # before the join too: the code stays usable
        raise UsageError("-stdout would write the sender's bytes raw into this terminal, escape "
                         "sequences and all", hint="redirect it (> file) or pipe it (| less), or drop "
                         "-stdout to save into a folder")
    confirm = _confirmer(config, term)
    # join and key go out as soon as the socket is open, unless something may still refuse
    # the code first, leaving it unused: a bad -output (run_receive says why), or a short
    # code's preview check, which runs as the socket opens (a full-length code skips it: the
    # join would wait for it, ~50 ms of a 1-byte receive under load)
    usable = to_stdout or output_dir_problem(Path(config.output)) is None
    opening = _opening_of(code.session_id, config, to_stdout, key_now=confirm is None)
    check = is_short(code)
    early = EarlySignal(signaling_url(config.server), first=opening if usable and not check else None)
    try:
        if check and seed_is_refused(config.server, code):
            raise UsageError(  # or the server serves a wrong preview: the message says both
                "this code does not open the sender's preview: its secret part (after '-') "
                "looks cut off or mistyped",
                hint="copy the whole code again (the sender is still waiting); if it is exactly "
                     "what the sender shows, the server is serving a wrong preview",
            )
        from sp2p.flow.receive import ReceiveOptions, run_receive
        from sp2p.fs.incoming import clean_stale

        _freeze_imports()
        if usable and not to_stdout:
            clean_stale(config.output)
        opts = ReceiveOptions(
            code=code, config=config, to_stdout=to_stdout, allow_loopback=loopback,
            confirm=confirm, early=early, relay_consent=_relay_consent,
        )
        return run_receive(opts, term)
    finally:
        early.close()


def _confirmer(config: Any, term: Terminal) -> Callable[[str], bool] | None:
    """The accept question on the terminal; None (proceed) with -yes or without a terminal.
    The preview goes to stderr, so stderr must be that terminal too (not a log or a pipe)."""
    if config.yes or not term.is_tty:
        return None
    from sp2p.term.prompts import ask_yes_no, has_tty  # termios: only on a terminal

    if not has_tty():
        return None
    return lambda question: ask_yes_no(f"  {question}")


def _relay_consent() -> bool:
    """The relay question on the terminal (loaded only when a relay is on offer)."""
    from sp2p.term.prompts import ask_relay_consent

    return ask_relay_consent()


def _install_sigterm() -> None:
    """SIGTERM unwinds like Ctrl-C, so temp files are removed and the peer hears Cancel."""

    def handler(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    # _signal is what the signal module wraps (its enums cost ~1.5 ms of every start, issue 12)
    if hasattr(_signal, "SIGTERM"):
        with contextlib.suppress(ValueError):  # not the main thread (in-process tests)
            _signal.signal(_signal.SIGTERM, handler)
