"""The real CLI with one fixed zstd level for every chunk: the benches' "fixed N" column.

Since issue 12, `-compress N` is the most effort the sender spends (sp2p/proto/adapt.py), so
the old fixed-cost behaviour of `-compress N` (every Data chunk at zstd's setting for N, after the
first-sample check) is no longer reachable from the command line. The benches compare the
adaptive default against it, so this wrapper (never shipped, bench only) swaps the controller for
one that always answers N's setting:

    python -m scripts.benchkit.fixed_level N -- send [flags] PATH

N is 1-9 on the CLI's scale, and `-compress N` is added to the sender's flags; N=0 sends every
chunk as a stored zstd frame (zstd announced, `-compress 3`): the cheapest the controller can pick.
`sN` instead keeps the adaptive controller of `-compress N` but starts it at a stored frame
whatever the round trip: how every WebRTC transfer started before its round trip was known
(docs/webrtc-tuning.md H1), the "start stored" column of bench_adapt.
"""

from __future__ import annotations

import sys
from typing import Any

#: argv[0] of the wrapper as a module, for `[sys.executable, *FIXED_MAIN, N, "--", ...]`
FIXED_MAIN = ("-m", "scripts.benchkit.fixed_level")


def fix_level(level: int) -> None:
    """Every chunk the send pump compresses gets zstd's setting for `-compress level`."""
    from sp2p.link import send_pump
    from sp2p.net.tcp import TcpChannel
    from sp2p.proto.adapt import LevelController
    from sp2p.proto.compression import STORED, zstd_level

    # a receiver on this host gets no zstd from the real CLI: the fixed columns compress anyway
    TcpChannel.same_host = property(lambda self: False)  # type: ignore[method-assign,assignment]

    setting = zstd_level(level) if level else STORED

    class FixedLevel(LevelController):
        def __init__(self, max_level: int, **kw: Any) -> None:
            super().__init__(max_level, **kw)

        def next_level(self) -> int:
            return setting

        def on_compressed(self, level: int, raw_len: int, packed_len: int) -> None:
            pass

        def on_written(self, *measured: float) -> None:
            pass

    send_pump.LevelController = FixedLevel  # type: ignore[misc]


def start_stored() -> None:
    """The adaptive controller starts at a stored frame, far link or not."""
    from sp2p.link import send_pump

    send_pump.start_level = lambda max_level, round_trip: 0  # type: ignore[assignment]


def main(argv: list[str]) -> int:
    stored = argv[:1] != [] and argv[0].startswith("s")
    if len(argv) < 3 or argv[1] != "--" or not argv[0].removeprefix("s").isdigit():
        print("usage: python -m scripts.benchkit.fixed_level [s]N -- send [flags] PATH", file=sys.stderr)
        return 2
    level, args = int(argv[0].removeprefix("s")), argv[2:]
    if stored:
        start_stored()
    else:
        fix_level(level)
    from sp2p.cli import main as cli_main

    return cli_main([*args[:1], f"-compress={level or 3}", *args[1:]])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
