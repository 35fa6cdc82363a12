"""The one payload codec (sp2p.proto.gojson): every signalling payload survives
encode → JSON text → decode, and a payload class declared wrongly fails at once."""

from __future__ import annotations

import typing
from typing import Any, ClassVar

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sp2p.errors import SignalFormatError, SignalingError
from sp2p.proto.gojson import UINT16, Payload, dumps, loads, wire
from sp2p.proto.signal import PAYLOAD_TYPES, Error, IceServer, Welcome


def _instances(cls: type[Payload]) -> st.SearchStrategy[Payload]:
    hints = typing.get_type_hints(cls)
    kwargs: dict[str, st.SearchStrategy[Any]] = {}
    for name, spec in cls.wire_fields.items():
        hint = hints[name]
        if hint is str:
            kwargs[name] = st.text(max_size=8)
        elif hint is bool:
            kwargs[name] = st.booleans()
        elif hint is int:
            # a field with its own reader (an extension version) keeps 0..2^16
            lo, hi = spec.int_range if spec.read is None else (0, 1 << 16)
            kwargs[name] = st.integers(min_value=lo, max_value=hi)
        elif typing.get_args(hint)[0] is str:
            kwargs[name] = st.lists(st.text(max_size=8), max_size=3).map(tuple)
        else:
            kwargs[name] = st.lists(_instances(typing.get_args(hint)[0]), max_size=2).map(tuple)
    return st.builds(cls, **kwargs)


_CLASSES = sorted({type(f(None)) for f in PAYLOAD_TYPES.values()}, key=lambda c: c.__name__)


@pytest.mark.parametrize("cls", _CLASSES, ids=lambda c: c.__name__)
@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_every_payload_round_trips_through_go_json(cls: type[Payload], data: st.DataObject) -> None:
    value = data.draw(_instances(cls))
    assert cls.from_payload(loads(dumps(value.to_payload()))) == value


def test_omitempty_drops_only_empty_fields_and_keeps_go_order() -> None:
    class Sample(Payload):
        what: ClassVar[str] = "sample"
        json_order: ClassVar[tuple[str, ...]] = ("b", "a")
        a: int = wire("A", 0, omitempty=True)
        b: str = wire("bee", "")

    assert dumps(Sample().to_payload()) == '{"bee":""}'
    assert dumps(Sample(7, "x<").to_payload()) == '{"bee":"x\\u003c","A":7}'
    with pytest.raises(SignalFormatError, match="sample: expected an object"):
        Sample.from_payload([])  # type: ignore[arg-type]


def test_a_field_without_wire_or_with_an_uncodable_type_is_refused() -> None:
    class Bare(Payload):
        what: ClassVar[str] = "bare"
        a: int = 0

    class Odd(Payload):
        what: ClassVar[str] = "odd"
        a: float = wire("a", 0.0)

    with pytest.raises(TypeError, match="wire"):
        Bare().to_payload()
    with pytest.raises(TypeError, match="no JSON coding"):
        Odd.from_payload({})


def test_an_int_outside_its_go_range_is_a_format_error_in_the_sp2p_tree() -> None:
    class Small(Payload):
        what: ClassVar[str] = "small"
        n: int = wire("n", 0, int_range=UINT16)

    with pytest.raises(SignalFormatError, match="n: integer out of range") as info:
        Small.from_payload({"n": 65536})
    assert isinstance(info.value, SignalingError) and isinstance(info.value, ValueError)


def test_payloads_are_frozen_records_like_the_dataclasses_they_replace() -> None:
    """Built without `dataclasses` (its exec per class cost the start, issue 12): init by
    position or keyword with defaults, inherited fields first, ==, hash, repr, immutable."""
    ice = IceServer(("turn:a",), "u")
    assert ice == IceServer(urls=("turn:a",), username="u", credential="")
    assert ice != IceServer(("turn:a",), "v")
    assert hash(ice) == hash(IceServer(("turn:a",), "u"))
    assert repr(ice) == "IceServer(urls=('turn:a',), username='u', credential='')"
    assert Welcome().ice_servers == () and Welcome().session_id == ""
    assert list(Error.wire_fields) == ["code", "message"]  # from _CodeMessage
    assert Error("busy", "m").to_payload() == {"code": "busy", "message": "m"}
    with pytest.raises(AttributeError, match="immutable"):
        ice.username = "x"  # type: ignore[misc]
    with pytest.raises(TypeError, match="no field 'bogus'"):
        IceServer(bogus=1)  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="twice"):
        IceServer(("a",), urls=("b",))  # type: ignore[misc]
    with pytest.raises(TypeError, match="positional"):
        IceServer((), "", "", "extra")  # type: ignore[call-arg]
