"""Adaptive compression (issue 12): the default `-compress 3` against fixed choices, same run.

Inputs (--mib each): "text", real source code and documentation from this machine
(/usr/lib/python3*/ and /usr/share/doc, plain-text files only, in path order; repeated whole if
the machine has less); "mixed", a folder of half those text files and half random files;
"random", incompressible. The same files serve every round; they are synced to disk before the
first (no writeback of the inputs during a transfer) and read from the page cache after.

Settings (--levels, the first is the one compared): "3" is `-compress 3` (the default, adaptive),
"0" no zstd, "1" `-compress 1` (adaptive up to level 1), "f1"/"f3" every chunk at zstd level 1/3
whatever the link does (what `-compress 1`/`3` did before issue 12), "s3" `-compress 3` starting
at a stored frame even on a far link (WebRTC before its round trip was known); the "f" and "s"
senders run through scripts/benchkit/fixed_level.py. Rounds are interleaved; figures are medians
in MB/s (10^6 B/s) of original bytes as the receiver reports the transfer, with the spread
(min-max) under each table; the last column is default / best of the others.

Links: "loopback" (real sp2p-server on 127.0.0.1), and with --link (root) the 70 ms RTT link
of scripts/bench_link.py (tests/netlab TUN delay line, 35 ms each way) with the sender's
side capped at --rate-mbit by a tc token bucket (400 Mbit/s = 50 MB/s by default); --transport
picks the CLIs' -transport there (webrtc: adaptive compression over a data channel).

    flock /tmp/bench.lock python3 scripts/bench_adapt.py [--mib 128] [--rounds 5]
        [--inputs text,mixed,random] [--levels 3,0,1,f1,f3] [--link] [--rate-mbit 400]
        [--no-loopback] [--transport auto|tcp|webrtc] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from scripts.benchkit.cli import LoopbackPair, reported_rate  # noqa: E402
from scripts.benchkit.fixed_level import FIXED_MAIN  # noqa: E402
from scripts.benchkit.inputs import tree_size, write_random  # noqa: E402
from scripts.benchkit.rows import interleaved, load_average, median  # noqa: E402
from tests.support.server_proc import NO_LIMIT_FLAGS  # noqa: E402

TEXT_ROOTS = [*sorted(Path("/usr/lib").glob("python3*")), Path("/usr/share/doc")]
TEXT_SUFFIXES = {".py", ".txt", ".md", ".rst", ".html", ".htm", ".c", ".h", ".css", ".js", ".json", ".cfg"}
TEXT_NAMES = {"copyright", "README", "NEWS", "changelog", "AUTHORS", "THANKS", "TODO"}
#: a --levels entry: "N" is `-compress N`, "fN" zstd level N on every chunk
Setting = str
Transfer = Callable[[Path, Setting], float]


def text_files() -> Iterator[Path]:
    for root in TEXT_ROOTS:
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames.sort()
            for name in sorted(filenames):
                path = Path(dirpath) / name
                if (path.suffix in TEXT_SUFFIXES or name in TEXT_NAMES) and path.is_file() \
                        and not path.is_symlink():
                    yield path


def write_text(path: Path, size: int) -> Path:
    with path.open("wb") as out:
        while out.tell() < size:
            before = out.tell()
            for src in text_files():
                out.write(src.read_bytes())
                if out.tell() >= size:
                    break
            if out.tell() == before:
                raise SystemExit("no text files found under " + ", ".join(map(str, TEXT_ROOTS)))
        out.truncate(size)
    return path


def write_mixed(root: Path, size: int) -> Path:
    """Half real text files (copied with their relative names), half 4 MiB random files."""
    root.mkdir()
    done = 0
    seen: set[str] = set()
    for src in text_files():
        if done >= size // 2:
            break
        rel = Path(*src.parts[1:])
        if str(rel).casefold() in seen:  # sp2p refuses names that clash on case-insensitive disks
            continue
        seen.add(str(rel).casefold())
        (root / "text" / rel.parent).mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, root / "text" / rel)
        done += src.stat().st_size
    (root / "random").mkdir()
    k = 0
    while done < size:
        n = min(4 << 20, size - done)
        (root / "random" / f"r{k:04d}.bin").write_bytes(os.urandom(n))
        done, k = done + n, k + 1
    return root


def sender_argv(setting: Setting) -> tuple[list[str], list[str]]:
    """(python arguments that start the sender, its flags) for one --levels entry."""
    if setting.startswith("f"):
        return [*FIXED_MAIN, setting[1:], "--"], []
    if setting.startswith("s"):
        return [*FIXED_MAIN, setting, "--"], []
    return ["-m", "sp2p"], [f"-compress={int(setting)}"]


def label(setting: Setting, default: Setting) -> str:
    if setting == default:
        return "default"
    if setting.startswith("s"):
        return f"stored {setting[1:]}"
    return f"fixed {setting[1:]}" if setting.startswith("f") else f"-c {setting}"


def loopback(tmp: Path) -> tuple[Transfer, Callable[[], None]]:
    pair = LoopbackPair(tmp / "home-loop")

    def run(src: Path, setting: Setting) -> float:
        main, flags = sender_argv(setting)
        return pair.transfer(src, *flags, main=main).rate

    return run, pair.stop


def link(tmp: Path, rate_mbit: int, delay_ms: float, transport: str) -> tuple[Transfer, Callable[[], None]]:
    from scripts.benchkit.lab import RECEIVER, SENDER, SP2P, link_lab, start_server, tail, wait_code

    lab_cm = link_lab(delay_ms)
    lab = lab_cm.__enter__()
    try:
        # the cap: a token bucket on the sender's side of the delay line (its egress: the data)
        subprocess.run(["tc", "-n", lab.ns(SENDER), "qdisc", "add", "dev", "eth0", "root", "tbf",
                        "rate", f"{rate_mbit}mbit", "burst", "512kb", "latency", "60ms"], check=True)
        server_url = start_server(lab, *NO_LIMIT_FLAGS)
    except BaseException:
        lab_cm.__exit__(None, None, None)
        raise

    def run(src: Path, setting: Setting) -> float:
        out = Path(tempfile.mkdtemp(dir=tmp, prefix="out-"))
        flags = ["-server", server_url, "-transport", transport]
        main, level_flags = sender_argv(setting)
        sender = lab.run(SENDER, [sys.executable, *main, "send", *flags, *level_flags, str(src)], name="send",
                         start_new_session=True)
        try:
            code = wait_code(lab, sender)
            start = time.perf_counter()
            receiver = lab.run(RECEIVER, [*SP2P, "receive", *flags, "-output", str(out), code], name="recv",
                               start_new_session=True)
            rc = receiver.wait(timeout=1800)
            elapsed = time.perf_counter() - start
            if rc or sender.wait(timeout=60):
                raise SystemExit(f"transfer failed: {tail(lab.output_of(receiver))}")
            return reported_rate(lab.output_of(receiver), tree_size(src), elapsed)
        finally:
            lab.stop(sender)
            shutil.rmtree(out, ignore_errors=True)

    return run, lambda: lab_cm.__exit__(None, None, None)


def table(name: str, runs: dict[tuple[str, Setting], list[float]], inputs: list[str],
          levels: list[Setting]) -> None:
    default = levels[0]
    print(f"\n{name}: MB/s, medians of {len(next(iter(runs.values())))} rounds ({load_average()})")
    head = "".join(f" {label(lv, default):>9s}" for lv in levels)
    print(f"{'input':8s}{head} {'default/best other':>19s}")
    for inp in inputs:
        med = {lv: median(runs[(inp, lv)]) for lv in levels}
        best = max(med[lv] for lv in levels if lv != default)
        print(f"{inp:8s}" + "".join(f" {med[lv]:9.1f}" for lv in levels) + f" {med[default] / best:19.2f}",
              flush=True)
    print("spread (min-max):")
    for inp in inputs:
        spans = (f" {min(runs[(inp, lv)]):4.0f}-{max(runs[(inp, lv)]):<4.0f}" for lv in levels)
        print(f"{inp:8s}" + "".join(spans))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--mib", type=int, default=128)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--inputs", default="text,mixed,random")
    ap.add_argument("--levels", default="3,0,1,f1,f3", help="the first is the one compared (the default)")
    ap.add_argument("--link", action="store_true", help="also over the 70 ms link (root)")
    ap.add_argument("--no-loopback", action="store_true")
    ap.add_argument("--rate-mbit", type=int, default=400)
    ap.add_argument("--delay-ms", type=float, default=35.0)
    ap.add_argument("--transport", default="auto", choices=("auto", "tcp", "webrtc"), help="over the link")
    ap.add_argument("--workdir", type=Path, help="where inputs and outputs live (default: $TMPDIR)")
    args = ap.parse_args()
    inputs, levels = args.inputs.split(","), args.levels.split(",")
    for lv in levels:
        sender_argv(lv)  # a bad entry fails here, not after the inputs were written
    size = args.mib << 20
    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp_text:
        tmp = Path(tmp_text)
        makers = {"text": lambda: write_text(tmp / "text.txt", size),
                  "mixed": lambda: write_mixed(tmp / "mixed", size),
                  "random": lambda: write_random(tmp / "random.bin", size)}
        srcs = {inp: makers[inp]() for inp in inputs}
        os.sync()
        links: list[tuple[str, Callable[[], tuple[Transfer, Callable[[], None]]]]] = []
        if not args.no_loopback:
            links.append(("loopback", lambda: loopback(tmp)))
        if args.link:
            links.append((f"70 ms link, {args.rate_mbit} Mbit/s cap, -transport {args.transport}",
                          lambda: link(tmp, args.rate_mbit, args.delay_ms, args.transport)))
        for name, setup in links:
            run, stop = setup()
            try:  # interleaved: load drifts hit every level alike
                cases = [(inp, lv) for inp in inputs for lv in levels]
                runs = interleaved(args.rounds, cases, lambda case, run=run: run(srcs[case[0]], case[1]))
            finally:
                stop()
            table(name, runs, inputs, levels)


if __name__ == "__main__":
    main()
