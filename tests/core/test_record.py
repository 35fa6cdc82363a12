"""sp2p.record keeps what the records used from dataclasses (issue 12 replaced them)."""

from __future__ import annotations

from typing import ClassVar

import pytest

from sp2p.record import FrozenInstanceError, field, record, replace


@record(frozen=True)
class Point:
    kind: ClassVar[str] = "point"
    x: int
    y: int = 0
    tags: list[str] = field(default_factory=list, compare=False)
    secret: bytes = field(default=b"k", repr=False)


@record(frozen=True)
class Point3(Point):
    z: int = 0


@record(slots=True)
class Counter:
    n: int = 0


def test_init_by_position_keyword_and_defaults() -> None:
    p = Point(1, y=2)
    assert (p.x, p.y, p.tags, p.secret) == (1, 2, [], b"k")
    assert Point(1).tags is not Point(1).tags  # a factory per instance
    assert Point3(1, 2, z=3).z == 3 and Point3(1).y == 0
    with pytest.raises(TypeError, match="missing argument 'x'"):
        Point()  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="no field 'w'"):
        Point(1, w=2)  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="twice"):
        Point(1, x=2)  # type: ignore[misc]


def test_eq_hash_repr_and_frozen() -> None:
    assert Point(1, 2, ["a"]) == Point(1, 2, ["b"])  # tags do not compare
    assert Point(1, 2) != Point(1, 3) and Point(1) != Point3(1)
    assert hash(Point(1, 2)) == hash(Point(1, 2))
    assert repr(Point(1)) == "Point(x=1, y=0, tags=[])"  # the secret stays out
    with pytest.raises(FrozenInstanceError):
        Point(1).x = 2  # type: ignore[misc]
    assert Point.kind == "point" and "kind" not in Point.__match_args__


def test_slots_mutable_unhashable_and_replace() -> None:
    c = Counter()
    c.n += 1
    assert c.n == 1 and not hasattr(c, "__dict__")
    with pytest.raises(TypeError):
        hash(c)
    p = replace(Point(1, 2, ["a"]), y=5)
    assert (p.x, p.y, p.tags) == (1, 5, ["a"])
