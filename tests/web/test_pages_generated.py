"""static/index.html and static/receive.html are generated from one set of sources
(scripts/pages/, scripts/gen_pages.py): the committed pages are current, a stale one is caught,
and the markup both pages share has one home."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
GENERATOR = REPO / "scripts" / "gen_pages.py"
PAGES = ("index.html", "receive.html")


def generator(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(GENERATOR), *args], capture_output=True, text=True, timeout=60)


def test_committed_pages_are_current() -> None:
    out = generator("--check")
    assert out.returncode == 0, out.stderr


def test_a_hand_edited_page_is_caught(tmp_path: Path) -> None:
    for name in PAGES:
        shutil.copy(REPO / "static" / name, tmp_path / name)
    page = tmp_path / "receive.html"
    page.write_text(page.read_text().replace("Allow relay", "Allow the relay"))
    out = generator("--check", "--dir", str(tmp_path))
    assert out.returncode == 1
    assert "receive.html is stale" in out.stderr and "gen_pages.py" in out.stderr
    assert "index.html" not in out.stderr


def test_generating_writes_what_check_accepts(tmp_path: Path) -> None:
    assert generator("--dir", str(tmp_path)).returncode == 0
    for name in PAGES:
        assert (tmp_path / name).read_text() == (REPO / "static" / name).read_text()


def test_shared_markup_lives_only_in_the_partials() -> None:
    sources = REPO / "scripts" / "pages"
    shared = ('id="relay-dialog"', 'id="progress-bar"', 'id="verify-code"', 'id="done-stats"',
              'id="error-detail"', "Content-Security-Policy", "footer-version")
    for marker in shared:
        homes = [p.name for p in sorted(sources.glob("*.html")) if marker in p.read_text()]
        assert len(homes) == 1, (marker, homes)
        for name in PAGES:  # and both generated pages carry it
            assert (REPO / "static" / name).read_text().count(marker) == 1, (marker, name)
