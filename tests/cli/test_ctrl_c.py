"""Ctrl-C on a receiver in the middle of a file, between two real CLIs through the suite's server:
the user is told what is kept, as after any other failure (README "Resuming")."""

from __future__ import annotations

import os
import signal
from pathlib import Path

from sp2p.status import ExitStatus
from tests.e2e.cut_transfer import MiB, TooLate, holds, pair, partials, short_of_end, stopped, until_cut
from tests.e2e.harness import Result, finish
from tests.support.polling import eventually


def test_ctrl_c_mid_file_says_the_partial_is_kept_for_a_re_run(
    env: dict[str, str], tmp_path: Path, outdir: Path
) -> None:
    """The receiver kept the partial on Ctrl-C (hidden, `.sp2p-partial-*`) but said only
    "interrupted": the user had no way to know a re-run resumes, nor what the hidden file was."""
    src = tmp_path / "movie.bin"
    src.write_bytes(os.urandom(96 * MiB))

    def attempt() -> Result:
        with pair(["-compress", "0", str(src)], ["-output", str(outdir)], env) as (sender, receiver):
            eventually(lambda: holds(outdir, ".sp2p-partial-*", MiB) or receiver.poll() is not None,
                       timeout=60, what="a partial of 1 MiB")
            with stopped(sender):  # the file cannot complete while the test acts
                if receiver.poll() is not None or not short_of_end(sender, src):
                    raise TooLate("the sender had read the whole file")
                os.kill(receiver.pid, signal.SIGINT)
                r = finish(receiver, timeout=60)
            finish(sender, timeout=60)
        return r

    r = until_cut(outdir, attempt)
    assert r.rc == ExitStatus.INTERRUPTED, r.err
    lines = [line.strip() for line in r.err.splitlines()]
    assert lines[-1] == "sp2p: error: interrupted", r.err
    kept = [line for line in lines if line.startswith("Kept ")]
    assert len(kept) == 1 and "resume" in kept[0] and str(outdir) in kept[0], r.err
    assert len(partials(outdir)) == 1 and not (outdir / src.name).exists()


def test_ctrl_c_on_the_sender_mid_file_says_a_re_run_resumes(
    env: dict[str, str], tmp_path: Path, outdir: Path
) -> None:
    """The receiver kept the partial and said so; the sender, whose user is the one to run the
    send again, said only "interrupted"."""
    src = tmp_path / "movie.bin"
    src.write_bytes(os.urandom(96 * MiB))

    def attempt() -> tuple[Result, Result]:
        with pair(["-compress", "0", str(src)], ["-output", str(outdir)], env) as (sender, receiver):
            eventually(lambda: holds(outdir, ".sp2p-partial-*", MiB) or receiver.poll() is not None,
                       timeout=60, what="a partial of 1 MiB")
            with stopped(receiver):  # it cannot complete the file while the test acts
                if receiver.poll() is not None or not short_of_end(sender, src):
                    raise TooLate("the sender had read the whole file")
                os.kill(sender.pid, signal.SIGINT)
                s = finish(sender, timeout=60)
            return s, finish(receiver, timeout=60)

    s, r = until_cut(outdir, attempt)
    assert s.rc == ExitStatus.INTERRUPTED, s.err
    lines = [line.strip() for line in s.err.splitlines()]
    assert lines[-2:] == ["The receiver keeps what arrived: run the same send again to resume",
                          "sp2p: error: interrupted"], s.err
    assert r.rc == ExitStatus.TRANSFER and "Kept " in r.err, r.err
    assert len(partials(outdir)) == 1 and not (outdir / src.name).exists()
