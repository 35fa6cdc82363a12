"""server/runners.ReusingPool: connections served one after another on the same greenlets,
with gevent's Pool contract kept (room, full, join, kill). In-process, on gevent's hub."""

from __future__ import annotations

import gevent
import pytest
from gevent.event import Event
from gevent.greenlet import Greenlet

from server.runners import IDLE_MAX, ReusingPool


def test_jobs_one_after_another_run_on_the_same_greenlet() -> None:
    pool = ReusingPool(10)
    ran: list[object] = []
    for i in range(200):
        pool.spawn(lambda i=i: ran.append((i, gevent.getcurrent())))
        pool.join()
    assert [i for i, _ in ran] == list(range(200))
    assert len({id(g) for _, g in ran}) == 1
    assert pool.made == 1
    assert len(pool) == 0 and pool.free_count() == 10


def test_room_is_counted_by_jobs_being_served_not_parked_greenlets() -> None:
    pool = ReusingPool(5)
    go = Event()
    for _ in range(5):
        pool.spawn(go.wait)
    gevent.sleep(0)
    assert pool.full() and pool.free_count() == 0 and len(pool) == 5
    go.set()
    pool.join(timeout=5)
    assert not pool.full() and pool.free_count() == 5 and len(pool) == 0
    # a burst wider than IDLE_MAX makes new greenlets; only IDLE_MAX stay parked after it
    wide = ReusingPool(IDLE_MAX * 2)
    hold = Event()
    for _ in range(IDLE_MAX * 2):
        wide.spawn(hold.wait)
    gevent.sleep(0)
    hold.set()
    wide.join(timeout=5)
    assert wide.made == IDLE_MAX * 2
    for _ in range(IDLE_MAX * 2):
        wide.spawn(hold.wait)
    wide.join(timeout=5)
    assert wide.made == IDLE_MAX * 3  # IDLE_MAX reused, IDLE_MAX new


def test_a_job_that_raises_is_reported_and_the_next_still_runs(capsys: pytest.CaptureFixture[str]) -> None:
    pool = ReusingPool(3)

    def boom() -> None:
        raise ValueError("job failed")

    pool.spawn(boom)
    pool.join(timeout=5)
    done: list[int] = []
    pool.spawn(done.append, 1)
    pool.join(timeout=5)
    assert done == [1] and pool.made == 1 and pool.free_count() == 3
    assert "ValueError: job failed" in capsys.readouterr().err


def test_kill_ends_the_jobs_being_served() -> None:
    pool = ReusingPool(4)
    never = Event()
    runners = [pool.spawn(never.wait) for _ in range(3)]
    gevent.sleep(0)
    pool.kill(timeout=5)
    assert all(r.dead for r in runners)
    assert len(pool) == 0 and pool.free_count() == 4
    done: list[int] = []
    pool.spawn(done.append, 2)
    pool.join(timeout=5)
    assert done == [2]


def test_a_held_greenlet_carries_no_attributes_of_its_own() -> None:
    """Every connection held keeps its greenlet: attributes of ours on it would grow each
    one's instance dict (~0.2 KiB per connection); the job travels in a slot beside it."""
    plain = set(Greenlet(lambda: None).__dict__)  # what gevent itself keeps there
    pool = ReusingPool(2)
    go = Event()
    runner = pool.spawn(lambda a, b, c: go.wait(), 1, 2, 3)
    gevent.sleep(0)
    assert set(runner.__dict__) == plain
    go.set()
    pool.join(timeout=5)
    again = pool.spawn(lambda a, b: None, 1, 2)
    assert again is runner and set(again.__dict__) == plain
    pool.join(timeout=5)
