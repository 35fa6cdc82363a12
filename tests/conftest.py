"""Suite-wide fixtures. Parts of the suite register their own in their packages."""

from pathlib import Path

import pytest

pytest_plugins = ["tests.support.server_proc", "tests.support.cli_fixtures", "tests.netlab.fixtures"]


#: suites whose in-process code is ours end to end: there an unclosed socket or file, or an
#: exception nobody could catch (in __del__, in a thread), fails the test instead of being
#: ignored (issue 16 item 8); the other suites keep the pyproject defaults until they are
#: cleaned up the same way (server: sockets still reach the GC in a few tests)
STRICT_SUITES = ("core", "files", "flow", "link", "cli", "net", "e2e", "web", "netlab")
STRICT_FILTERS = ("error::ResourceWarning", "error::pytest.PytestUnraisableExceptionWarning")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    root = Path(__file__).parent
    for item in items:
        parts = item.path.relative_to(root).parts if item.path.is_relative_to(root) else ()
        if parts and parts[0] in STRICT_SUITES:
            for spec in STRICT_FILTERS:
                item.add_marker(pytest.mark.filterwarnings(spec))
