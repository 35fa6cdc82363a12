"""Run the CLI in process, in the spirit of httpie's test utilities (`http()`):
`run_cli(*argv)` calls `main(argv, env, streams)` with its own streams and returns what it
printed and its exit status. An unexpected non-zero exit fails the test at once, with the
error output, unless the test says it is expected (`expect=` or `tolerate_error=True`).
"""

from __future__ import annotations

import io
import signal
from collections.abc import Mapping
from dataclasses import dataclass

from sp2p.cli import Streams, main
from sp2p.status import ExitStatus


class ExitStatusError(AssertionError):
    """The CLI exited non-zero and the test did not say it would."""


@dataclass
class CliResult:
    exit_status: ExitStatus
    stdout: str
    stderr: str

    @property
    def errors(self) -> list[str]:
        """The `sp2p: error: …` lines, without the prefix."""
        return [line.removeprefix("sp2p: error: ") for line in self.stderr.splitlines()
                if line.startswith("sp2p: error: ")]

    @property
    def hints(self) -> list[str]:
        return [line.removeprefix("sp2p: hint: ") for line in self.stderr.splitlines()
                if line.startswith("sp2p: hint: ")]


def run_cli(*argv: str, env: Mapping[str, str] | None = None, stdin: bytes = b"",
            expect: ExitStatus | None = None, tolerate_error: bool = False) -> CliResult:
    streams = Streams(stdin=io.BytesIO(stdin), stdout=io.StringIO(), stderr=io.StringIO())
    sigterm = signal.getsignal(signal.SIGTERM)  # main() installs its own; keep pytest's
    try:
        rc = main(list(argv), dict(env) if env is not None else {"HOME": "/nonexistent"}, streams)
    finally:
        signal.signal(signal.SIGTERM, sigterm)
    result = CliResult(ExitStatus(rc), streams.stdout.getvalue(), streams.stderr.getvalue())
    if expect is not None:
        if result.exit_status != expect:
            raise ExitStatusError(f"expected exit {expect!r}, got {result.exit_status!r}:\n{result.stderr}")
    elif result.exit_status != ExitStatus.OK and not tolerate_error:
        raise ExitStatusError(f"unexpected exit {result.exit_status!r}:\n{result.stderr}")
    return result
