"""The worker's collector policy (server.gcpolicy): survivors frozen, cycles still reclaimed."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest

from server.gcpolicy import GcPolicy


class Node:
    def __init__(self) -> None:
        self.other: Node | None = None


@pytest.fixture(autouse=True)
def _thawed() -> Iterator[None]:
    yield
    gc.unfreeze()  # the test process goes back to CPython's own policy


def _cycle() -> weakref.ref[Node]:
    a, b = Node(), Node()
    a.other, b.other = b, a
    return weakref.ref(a)


def test_tick_freezes_survivors_so_passes_skip_them() -> None:
    now = [0.0]
    policy = GcPolicy(reclaim_every=600.0, clock=lambda: now[0])
    frozen = _cycle()  # (already unreachable: only a pass over it would free it)
    policy.tick()
    assert gc.get_freeze_count() > 0
    gc.collect()
    assert frozen() is not None, "a frozen cycle must not be walked by ordinary passes"


def test_reclaim_collects_cycles_that_died_frozen() -> None:
    now = [0.0]
    policy = GcPolicy(reclaim_every=600.0, clock=lambda: now[0])
    dead = _cycle()
    policy.tick()  # frozen while alive, then unreachable (as a connection that ended)
    gc.collect()
    assert dead() is not None
    now[0] = 600.0
    policy.tick()  # the interval passed: a full pass over the frozen heap
    assert dead() is None
    assert gc.get_freeze_count() > 0, "survivors are frozen again after the pass"


def test_garbage_that_dies_young_is_collected_as_usual() -> None:
    policy = GcPolicy(reclaim_every=600.0, clock=lambda: 0.0)
    policy.tick()
    young = _cycle()  # never frozen
    gc.collect()
    assert young() is None


def test_a_busy_worker_postpones_the_full_pass_until_it_is_small_again() -> None:
    now = [0.0]
    held = [15_000]
    policy = GcPolicy(reclaim_every=600.0, clock=lambda: now[0], held=lambda: held[0], max_held=4000)
    dead = _cycle()
    policy.tick()
    now[0] = 600.0
    policy.tick()  # due, but a pass over 15,000 connections' objects would stop the hub
    assert dead() is not None
    held[0] = 3_000  # most of them left
    now[0] = 601.0
    policy.tick()
    assert dead() is None
