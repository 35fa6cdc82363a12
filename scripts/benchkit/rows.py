"""Rows of figures, interleaved rounds and their summaries."""

from __future__ import annotations

import os
import statistics
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass
from typing import TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


@dataclass
class Row:
    name: str
    bytes_per_s: float | None  #: None: the row could not run (`note` says why)
    note: str = ""
    detail: str = ""  #: printed on its own line below the row


def try_row(name: str, fn: Callable[[], float | tuple[float, float]]) -> Row:
    """`fn` gives bytes/s (or bytes/s and total seconds); a failure becomes "n/a (reason)"."""
    try:
        result = fn()
        if isinstance(result, tuple):
            return Row(name, result[0], f"(total {result[1]:.1f} s incl. signalling/connect)")
        return Row(name, result)
    except Exception as exc:  # noqa: BLE001 - a benchmark row reports, never aborts the run
        lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()] or [""]
        return Row(name, None, f"n/a ({type(exc).__name__}: {lines[-1][:140]})")


def interleaved(rounds: int, keys: Iterable[K], run: Callable[[K], V]) -> dict[K, list[V]]:
    """`run(key)` for every key, round after round: a burst of other load hits all keys alike."""
    order = list(keys)
    results: dict[K, list[V]] = {key: [] for key in order}
    for _ in range(max(rounds, 1)):
        for key in order:
            results[key].append(run(key))
    return results


def median(values: Iterable[float]) -> float:
    return float(statistics.median(values))


def best_rows(specs: list[tuple[str, Callable[[], Row]]], rounds: int) -> list[Row]:
    """Every row `rounds` times, interleaved; each keeps its fastest run (other work on the
    machine can only slow a run down), with all runs listed in its note."""
    makers = dict(specs)
    results = interleaved(rounds, list(makers), lambda key: makers[key]())
    out = []
    for rows in results.values():
        ok = [r for r in rows if r.bytes_per_s is not None]
        best = max(ok, key=lambda r: r.bytes_per_s or 0.0) if ok else rows[-1]
        if len(rows) > 1 and ok:
            figures = ", ".join(f"{r.bytes_per_s / 1e6:.1f}" if r.bytes_per_s else "n/a" for r in rows)
            best.note = f"best of {len(rows)}: {figures}  {best.note}".rstrip()
        out.append(best)
    return out


def print_section(title: str, rows: list[Row], baseline: str) -> None:
    """Rows in MB/s with their ratio to the row named `baseline` ("best raw": the fastest
    row whose name starts with "raw")."""
    if not rows:
        return
    if baseline == "best raw":
        base = max((r.bytes_per_s or 0.0 for r in rows if r.name.startswith("raw")), default=None)
    else:
        base = next((r.bytes_per_s for r in rows if r.name == baseline and r.bytes_per_s), None)
    print(f"\n[{title}]", flush=True)
    for row in rows:
        if row.bytes_per_s is None:
            print(f"  {row.name:<22} {row.note}", flush=True)
            continue
        ratio = f"{row.bytes_per_s / base:5.2f} x {baseline}" if base else ""
        print(f"  {row.name:<22} {row.bytes_per_s / 1e6:7.1f} MB/s  {ratio}  {row.note}".rstrip(), flush=True)
        if row.detail:
            print(f"  {'':<22} {row.detail}", flush=True)


def load_average() -> str:
    """"load average 2.3 on 2 CPUs": figures are quoted with it."""
    return f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs"
