"""JSON in Go's manner, and one codec for payload classes described by their fields.

The original server and CLI use Go's `encoding/json`; we read and write what it does.

Decoding (`loads`, `decode`):

* object keys match case-insensitively, the last matching key wins, unknown keys are
  ignored; of duplicate keys spelled the same, the last wins too;
* a missing key or a JSON `null` leaves the field at its zero value ("", 0, False, ());
* a value of the wrong JSON type (a string for an int, 2.0 for an int, a number for a
  string, ...) or an integer outside the Go field's range is a `SignalFormatError`;
* invalid UTF-8 inside strings becomes U+FFFD instead of failing.

Encoding (`dumps`, `encode`): struct field order, compact separators, raw UTF-8, `<`, `>`,
`&`, U+2028 and U+2029 escaped, and `omitempty` fields left out when empty or false.

A payload class is a frozen record (`Payload`) whose fields are declared with `wire()` (JSON
name, default, omit-empty, integer range); the field's type says how it is coded: str, bool,
int, ``tuple[str, ...]`` or ``tuple[<payload class>, ...]``.
"""

from __future__ import annotations

import json
import typing
from collections.abc import Callable, Mapping
from typing import Any, ClassVar, Final, Self

from sp2p.errors import SignalFormatError

INT64: Final = (-(1 << 63), (1 << 63) - 1)
UINT16: Final = (0, 0xFFFF)
UINT64: Final = (0, (1 << 64) - 1)

# ---------------------------------------------------------------------------------------
# text <-> plain values


def _reject_constant(name: str) -> Any:
    raise SignalFormatError(f"invalid JSON constant {name}")


def _last_wins(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # keep dict order = order of *last* occurrence, so case-folded lookups see Go's winner
    result: dict[str, Any] = {}
    for key, value in pairs:
        result.pop(key, None)
        result[key] = value
    return result


_DECODER: Final = json.JSONDecoder(object_pairs_hook=_last_wins, parse_constant=_reject_constant)


def loads(text: str | bytes) -> Any:
    if isinstance(text, bytes | bytearray | memoryview):
        text = bytes(text).decode("utf-8", errors="replace")
    try:
        return _DECODER.decode(text)  # what json.loads(text, **same options) does, minus a decoder per call
    except (ValueError, RecursionError) as exc:  # JSONDecodeError is a ValueError
        raise SignalFormatError("invalid JSON") from exc


_GO_ESCAPES: Final = {
    "<": "\\u003c",
    ">": "\\u003e",
    "&": "\\u0026",
    "\u2028": "\\u2028",
    "\u2029": "\\u2029",
}


#: one encoder for every call: json.dumps with options builds a new one each time (~40 % of
#: encoding a small message; the signalling server encodes one per welcome and peer-joined)
_ENCODER: Final = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def dumps(value: Any) -> str:
    text = _ENCODER.encode(value)
    if any(c in text for c in _GO_ESCAPES):
        # only string contents can hold these characters, so a plain replace is exact
        for raw, escaped in _GO_ESCAPES.items():
            text = text.replace(raw, escaped)
    return text


MISSING: Final = object()


def lookup(d: Mapping[str, Any], name: str) -> Any:
    """Go's field matching: every key equal up to case assigns the field, so the last wins."""
    folded = name.casefold()
    found: Any = MISSING
    for key, value in d.items():
        if key.casefold() == folded:
            found = value
    return found


def _absent(value: Any) -> bool:
    return value is MISSING or value is None


def read_str(d: Mapping[str, Any], name: str) -> str:
    value = lookup(d, name)
    if _absent(value):
        return ""
    if not isinstance(value, str):
        raise SignalFormatError(f"{name}: expected a string")
    return value


def read_bool(d: Mapping[str, Any], name: str) -> bool:
    value = lookup(d, name)
    if _absent(value):
        return False
    if not isinstance(value, bool):
        raise SignalFormatError(f"{name}: expected a boolean")
    return value


def read_int(d: Mapping[str, Any], name: str, lo: int, hi: int) -> int:
    value = lookup(d, name)
    if _absent(value):
        return 0
    # bool is an int subclass in Python but not a JSON number; floats like 2.0 fail in Go too
    if isinstance(value, bool) or not isinstance(value, int):
        raise SignalFormatError(f"{name}: expected an integer")
    if not lo <= value <= hi:
        raise SignalFormatError(f"{name}: integer out of range")
    return value


def read_list(d: Mapping[str, Any], name: str) -> list[Any]:
    value = lookup(d, name)
    if _absent(value):
        return []
    if not isinstance(value, list):
        raise SignalFormatError(f"{name}: expected an array")
    return value


def read_object(value: Any, what: str) -> Mapping[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise SignalFormatError(f"{what}: expected an object")
    return value


# ---------------------------------------------------------------------------------------
# payload classes <-> plain values
#
# Payload classes are frozen records built without `dataclasses`: its generated methods are
# compiled with exec() for every class, ~0.5 ms each, and the signalling messages alone are
# ~20 classes on every CLI start (issue 12). The behaviour a dataclass would give (keyword or
# positional init with defaults, ==, hash, repr, immutability) lives once in `Payload`.


class Wire:
    """How one payload field appears in JSON (the Go struct tag, in effect), and its default."""

    __slots__ = ("default", "int_range", "name", "omitempty", "read")

    def __init__(
        self,
        name: str,
        default: Any,
        omitempty: bool = False,
        int_range: tuple[int, int] = INT64,
        read: Callable[[Mapping[str, Any], str], Any] | None = None,
    ) -> None:
        self.name = name
        self.default = default
        self.omitempty = omitempty
        #: accepted integer range of an int field (Go's field type: int, uint16, uint64)
        self.int_range = int_range
        #: a reader (payload, JSON name) -> value replacing the one the type implies, for
        #: fields with their own rule (an extension that must never fail the message)
        self.read = read


def wire(
    name: str,
    default: Any,
    *,
    omitempty: bool = False,
    int_range: tuple[int, int] = INT64,
    read: Callable[[Mapping[str, Any], str], Any] | None = None,
) -> Any:
    """Declare a payload field: its JSON name, Go's `omitempty`, for ints the Go range.

    `default` must be immutable (it is shared by every instance)."""
    return Wire(name, default, omitempty, int_range, read)


@typing.dataclass_transform(frozen_default=True)  # type checkers: an init with every field
class Payload:
    """Base of payload classes: a frozen record of its `wire()` fields, coded as Go does.

    Subclasses declare fields as annotated class attributes set with `wire()`; a subclass's
    fields follow its bases' (as with dataclasses). `to_payload()` and `from_payload()` come
    from the fields.
    """

    __slots__ = ()
    #: names the object in decoding errors ("welcome: expected an object")
    what: ClassVar[str]
    #: Python field names in Go's struct order, where it differs from the declaration order
    json_order: ClassVar[tuple[str, ...]] = ()
    #: field name -> its Wire, in declaration order (set for each subclass)
    wire_fields: ClassVar[dict[str, Wire]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        own = {name: spec for name in cls.__dict__.get("__annotations__", {})
               if isinstance(spec := cls.__dict__.get(name), Wire)}
        cls.wire_fields = {**cls.wire_fields, **own}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        fields = type(self).wire_fields
        if len(args) > len(fields):
            raise TypeError(f"{type(self).__name__} takes {len(fields)} positional arguments")
        for name, value in zip(fields, args, strict=False):
            if name in kwargs:
                raise TypeError(f"{type(self).__name__} got {name!r} twice")
            kwargs[name] = value
        unknown = kwargs.keys() - fields.keys()
        if unknown:
            raise TypeError(f"{type(self).__name__} has no field {sorted(unknown)[0]!r}")
        for name, spec in fields.items():
            object.__setattr__(self, name, kwargs.get(name, spec.default))

    def _values(self) -> tuple[Any, ...]:
        return tuple(getattr(self, name) for name in type(self).wire_fields)

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return self._values() == other._values()  # type: ignore[attr-defined]

    def __hash__(self) -> int:
        return hash((type(self), self._values()))

    def __repr__(self) -> str:
        inner = ", ".join(f"{name}={getattr(self, name)!r}" for name in type(self).wire_fields)
        return f"{type(self).__name__}({inner})"

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"{type(self).__name__} is immutable")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"{type(self).__name__} is immutable")

    def to_payload(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name, spec, code in _codecs(type(self)).encode_order:
            value = getattr(self, name)
            if not (spec.omitempty and not value):
                out[spec.name] = code.encode(value)
        return out

    @classmethod
    def from_payload(cls, d: Mapping[str, Any] | None) -> Self:
        d = read_object(d, cls.what)
        return cls(**{name: code.decode(d, spec) for name, spec, code in _codecs(cls).decode_order})


class _Code:
    __slots__ = ("decode", "encode")

    def __init__(
        self, encode: Callable[[Any], Any], decode: Callable[[Mapping[str, Any], Wire], Any]
    ) -> None:
        self.encode = encode
        self.decode = decode


def _code_for(hint: Any, spec: Wire) -> _Code:
    if spec.read is not None:
        read = spec.read
        return _Code(lambda v: v, lambda d, w: read(d, w.name))
    if hint is str:
        return _Code(lambda v: v, lambda d, w: read_str(d, w.name))
    if hint is bool:
        return _Code(lambda v: v, lambda d, w: read_bool(d, w.name))
    if hint is int:
        return _Code(lambda v: v, lambda d, w: read_int(d, w.name, *w.int_range))
    item = typing.get_args(hint)[0] if typing.get_origin(hint) is tuple else None
    if item is str:
        return _Code(list, _read_strings)
    if isinstance(item, type) and issubclass(item, Payload):
        nested = item
        return _Code(
            lambda v: [x.to_payload() for x in v],
            lambda d, w: tuple(nested.from_payload(x) for x in read_list(d, w.name)),
        )
    raise TypeError(f"no JSON coding for field type {hint!r}")


def _read_strings(d: Mapping[str, Any], w: Wire) -> tuple[str, ...]:
    items = read_list(d, w.name)
    if not all(isinstance(x, str) for x in items):
        raise SignalFormatError(f"{w.name}: expected strings")
    return tuple(items)


_FieldCode = tuple[str, Wire, _Code]


class _Codecs:
    __slots__ = ("decode_order", "encode_order")

    def __init__(self, encode_order: tuple[_FieldCode, ...], decode_order: tuple[_FieldCode, ...]) -> None:
        #: Go's struct order, for encoding
        self.encode_order = encode_order
        #: the declaration order, for decoding (so the first bad field named stays the same)
        self.decode_order = decode_order


_CODECS: dict[type[Payload], _Codecs] = {}


def _codecs(cls: type[Payload]) -> _Codecs:
    """(field name, wire spec, coder) per field; built once per class, on first use."""
    found = _CODECS.get(cls)
    if found is None:
        found = _CODECS[cls] = _build_codecs(cls)
    return found


def _build_codecs(cls: type[Payload]) -> _Codecs:
    hints = typing.get_type_hints(cls)
    fields = cls.wire_fields
    order = cls.json_order or tuple(fields)
    if sorted(order) != sorted(fields):
        raise TypeError(f"{cls.__name__}.json_order must name every field once")
    undeclared = [name for name, hint in hints.items()
                  if name not in fields and typing.get_origin(hint) is not ClassVar]
    if undeclared:
        raise TypeError(f"{cls.__name__}: declare every field with wire() ({undeclared[0]})")
    codes = {name: (name, spec, _code_for(hints[name], spec)) for name, spec in fields.items()}
    return _Codecs(tuple(codes[name] for name in order), tuple(codes.values()))
