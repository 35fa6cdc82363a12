"""pytest fixtures for netlab (register with `pytest_plugins = ["tests.netlab.fixtures"]`).

    def test_x(netlab):
        lab = netlab(Nat.SYMMETRIC, Nat.SYMMETRIC)   # same arguments as Lab.create
        ...                                          # every lab is torn down after the test
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.netlab.lab import Lab

REQUIRED_TOOLS = ("ip", "iptables-legacy", "iptables-legacy-restore", "conntrack", "gcc")

LabFactory = Callable[..., Lab]


def require_netlab() -> None:
    """Skip without root (reported by -ra); fail loudly when a package is missing."""
    if os.geteuid() != 0:
        pytest.skip("netlab needs root (network namespaces)")
    missing = [t for t in REQUIRED_TOOLS if shutil.which(t) is None]
    if missing:
        pytest.fail(f"netlab tools missing: {missing} (install the packages in .ci/apt-packages)")


@pytest.fixture
def netlab() -> Iterator[LabFactory]:
    """Factory: `netlab(nat1, nat2, same_lan=, delay_ms=, ...)` -> Lab, closed after the test."""
    require_netlab()
    labs: list[Lab] = []

    def make(*args: Any, **kw: Any) -> Lab:
        lab = Lab.create(*args, **kw)
        labs.append(lab)
        return lab

    try:
        yield make
    finally:
        for lab in reversed(labs):
            lab.close()
