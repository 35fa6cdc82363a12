"""sp2p.log: the stdlib logging module loads only when a line can be seen (issue 12), and the
lines reach it exactly as before once it is loaded. Fresh interpreters, so sys.modules is ours."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.e2e.harness import REPO


def _run(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO)


def test_debug_and_info_never_load_logging() -> None:
    out = _run(
        "import sys\n"
        "from sp2p.log import get_logger\n"
        "log = get_logger('sp2p.x')\n"
        "log.debug('quiet %d', 1); log.info('quiet too')\n"
        "print('logging' in sys.modules)\n"
    )
    assert out.stdout.strip() == "False"
    assert out.stderr == ""


def test_a_warning_is_printed_as_before() -> None:
    """No handler configured: logging's last resort prints warnings on stderr, as it did."""
    out = _run("from sp2p.log import get_logger\nget_logger('sp2p.x').warning('mapping %s kept', 'tcp/1')\n")
    assert out.stderr == "mapping tcp/1 kept\n"


def test_lines_reach_a_configured_logging_with_the_callers_place() -> None:
    out = _run(
        "import logging\n"
        "logging.basicConfig(level=logging.DEBUG, format='%(levelname)s %(name)s %(funcName)s: %(message)s')\n"
        "from sp2p.log import get_logger\n"
        "log = get_logger('sp2p.x')\n"
        "def where():\n"
        "    log.debug('d %d', 1); log.info('i')\n"
        "    try:\n"
        "        raise ValueError('boom')\n"
        "    except ValueError:\n"
        "        log.exception('failed')\n"
        "where()\n"
    )
    lines = out.stderr.splitlines()
    assert lines[:3] == ["DEBUG sp2p.x where: d 1", "INFO sp2p.x where: i", "ERROR sp2p.x where: failed"]
    assert "ValueError: boom" in out.stderr


def test_caplog_sees_debug_lines(caplog: pytest.LogCaptureFixture) -> None:
    import logging

    from sp2p.log import get_logger

    caplog.set_level(logging.DEBUG, logger="sp2p.test_log")
    get_logger("sp2p.test_log").debug("seen %s", "here")
    assert [r.getMessage() for r in caplog.records] == ["seen here"]
