"""Suite-wide fixtures. Parts of the suite register their own in their packages."""

import gc
import shlex
import signal
import sys
from pathlib import Path

import pytest

pytest_plugins = [
    "tests.support.server_proc",
    "tests.support.cli_fixtures",
    "tests.netlab.fixtures",
    "tests.support.durations",
    "tests.support.run_once",
    "tests.support.alone",
]


def pytest_configure(config: pytest.Config) -> None:
    """A suite started in the background (`cmd &` in a script, nohup) inherits SIGINT as
    ignored, and so would every CLI it spawns: Ctrl-C tests would then see a CLI that cannot
    be interrupted. A handled signal is reset to the default on exec, so the CLIs start as
    from a terminal."""
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    _xdist_workers_like_us(config)


def _xdist_workers_like_us(config: pytest.Config) -> None:
    """pytest-xdist starts its workers as plain `python -u`: a suite run with `python -b`
    (scripts/test.sh) would lose its BytesWarnings (bytes compared with str) in every test.
    The workers get the interpreter's -b too (xdist reads the specs at session start)."""
    tx = getattr(config.option, "tx", None)
    if tx and sys.flags.bytes_warning and not hasattr(config, "workerinput"):
        python = f"python={shlex.quote(sys.executable)} -{'b' * sys.flags.bytes_warning}"
        config.option.tx = [spec if "python=" in spec else f"{spec}//{python}" for spec in tx]


#: suites whose in-process code is ours end to end: there an unclosed socket or file, or an
#: exception nobody could catch (in __del__, in a thread), fails the test instead of being
#: ignored (issue 16 item 8); the other suites keep the pyproject defaults until they are
#: cleaned up the same way (server: sockets still reach the GC in a few tests)
STRICT_SUITES = ("core", "files", "flow", "link", "cli", "net", "e2e", "web", "netlab", "server")
STRICT_FILTERS = ("error::ResourceWarning", "error::pytest.PytestUnraisableExceptionWarning")


def _is_strict(item: pytest.Item | None) -> bool:
    root = Path(__file__).parent
    if item is None or not item.path.is_relative_to(root):
        return False
    parts = item.path.relative_to(root).parts
    return bool(parts) and parts[0] in STRICT_SUITES


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if _is_strict(item):
            for spec in STRICT_FILTERS:
                item.add_marker(pytest.mark.filterwarnings(spec))


def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> None:
    # garbage a lenient suite left in reference cycles is collected under its own filters,
    # not during whichever strict test the collector happens to run in next
    if nextitem is not None and not _is_strict(item) and _is_strict(nextitem):
        gc.collect()
