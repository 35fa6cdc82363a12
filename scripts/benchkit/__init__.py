"""What the benchmarks in scripts/ share, so none imports another's private functions.

    rows.py        Row, try_row, interleaved rounds, best/median, sections with ratios, load average
    cli.py         this checkout's CLI on a loopback server: one timed transfer, the rate it reports
    inputs.py      random and log-like inputs, digests, tree sizes
    cpu.py         CPU seconds: of finished children (getrusage), of a process tree by kind (/proc)
    lab.py         the 70 ms link in network namespaces (tests/netlab; root): the one seam to it
    aiortc_peer.py a stock aiortc data-channel peer (and sp2p's Channel) driven over stdin/stdout

Scripts put the repository root on sys.path and import `scripts.benchkit.<module>`.
"""

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
