"""Makes the netlab fixtures available to the harness's own tests.

Scenario tests elsewhere get them once tests/conftest.py lists "tests.netlab.fixtures" in
`pytest_plugins`.
"""

from __future__ import annotations

from tests.netlab.fixtures import netlab  # noqa: F401
