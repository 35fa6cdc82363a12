"""The README's benchmark figures say where they came from: each bullet that quotes a measured
figure names a commit of this repository, the tree measured ("at <hash>") or, for figures from
before this rule, the commit that put them in the README ("recorded in <hash>"), so a reader
can tell how old a figure is and what the bench ran against."""

from __future__ import annotations

import re
import subprocess

from tests.dist.helpers import REPO_ROOT
from tests.dist.test_readme_flags import readme_section

#: a number with the unit of a measurement (a rate, a latency, a ratio)
_FIGURE = re.compile(r"\d[\d.,–]* ?(?:MB/s|MiB/s|ms\b|conn/s|×|KiB/session)")


def bullets() -> list[str]:
    section = readme_section("Benchmarks")
    return [" ".join(b.split()) for b in re.split(r"^- ", section, flags=re.M)[1:]]


def is_commit(ref: str) -> bool:
    return subprocess.run(["git", "-C", str(REPO_ROOT), "cat-file", "-e", f"{ref}^{{commit}}"],
                          capture_output=True, timeout=30).returncode == 0


def test_every_bullet_with_figures_names_a_commit() -> None:
    quoting = [b for b in bullets() if _FIGURE.search(b)]
    assert len(quoting) >= 5, quoting  # the transfer, start, adapt, link, browser and server figures
    for bullet in quoting:
        named = re.findall(r"\b(?:at|recorded in) ([0-9a-f]{7,40})\b", bullet)
        assert named, f"no 'at <commit>' in: {bullet[:100]}…"
        for ref in named:
            assert is_commit(ref), f"{ref} is not a commit of this repository"
