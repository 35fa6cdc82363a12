"""Plain records without `dataclasses` (issue 12).

`dataclasses` imports `inspect` (with ast, dis, tokenize) and compiles each class's methods
with exec(), ~0.5 ms a class: the ~30 records a 1-byte receive defines cost ~20 ms of CPU on
every start. `record` gives what they use (init by position or keyword with defaults and
factories, ==, a hash when frozen, repr, immutability, `__slots__` on request, `replace`)
once, generically. A class on a per-frame path may define its own `__init__`; it is kept.
"""

from __future__ import annotations

import typing
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")
_MISSING: Any = object()
#: (name, default, default factory, shown in repr, part of == and hash)
_Spec = tuple[str, Any, "Callable[[], Any] | None", bool, bool]


class FrozenInstanceError(AttributeError):
    """Assigning to a field of a frozen record."""


class _Field:
    __slots__ = ("compare", "default", "factory", "repr")

    def __init__(self, default: Any, factory: Callable[[], Any] | None, repr: bool,  # noqa: A002
                 compare: bool) -> None:
        self.default, self.factory, self.repr, self.compare = default, factory, repr, compare


def field(*, default: Any = _MISSING, default_factory: Callable[[], Any] | None = None,
          repr: bool = True, compare: bool = True) -> Any:  # noqa: A002 (the dataclasses spelling)
    """A field with a factory for its default, hidden from repr (secrets) or from ==."""
    return _Field(default, default_factory, repr, compare)


def _is_classvar(annotation: object) -> bool:
    if isinstance(annotation, str):
        return annotation.startswith(("ClassVar", "typing.ClassVar"))
    return annotation is typing.ClassVar or typing.get_origin(annotation) is typing.ClassVar


def _specs(cls: type) -> tuple[_Spec, ...]:
    specs: dict[str, _Spec] = {}
    for base in reversed(cls.__mro__[1:]):
        specs.update((s[0], s) for s in base.__dict__.get("__record_fields__", ()))
    for name, annotation in cls.__dict__.get("__annotations__", {}).items():
        if _is_classvar(annotation):
            continue
        value = cls.__dict__.get(name, _MISSING)
        if isinstance(value, _Field):
            specs[name] = (name, value.default, value.factory, value.repr, value.compare)
        else:
            specs[name] = (name, value, None, True, True)
    return tuple(specs.values())


def _init(self: Any, *args: Any, **kwargs: Any) -> None:
    specs: tuple[_Spec, ...] = type(self).__record_fields__
    if len(args) > len(specs):
        raise TypeError(f"{type(self).__name__}() takes {len(specs)} positional arguments")
    for spec, value in zip(specs, args, strict=False):
        if spec[0] in kwargs:
            raise TypeError(f"{type(self).__name__}() got {spec[0]!r} twice")
        kwargs[spec[0]] = value
    for name, default, factory, _, _ in specs:
        if name in kwargs:
            value = kwargs.pop(name)
        elif factory is not None:
            value = factory()
        elif default is not _MISSING:
            value = default
        else:
            raise TypeError(f"{type(self).__name__}() missing argument {name!r}")
        object.__setattr__(self, name, value)
    if kwargs:
        raise TypeError(f"{type(self).__name__}() has no field {sorted(kwargs)[0]!r}")


def _values(self: Any) -> tuple[Any, ...]:
    return tuple(getattr(self, spec[0]) for spec in type(self).__record_fields__ if spec[4])


def _eq(self: Any, other: object) -> Any:
    if other.__class__ is not self.__class__:
        return NotImplemented
    return _values(self) == _values(other)


def _hash(self: Any) -> int:
    return hash(_values(self))


def _repr(self: Any) -> str:
    inner = ", ".join(f"{s[0]}={getattr(self, s[0])!r}" for s in type(self).__record_fields__ if s[3])
    return f"{type(self).__qualname__}({inner})"


def _frozen_setattr(self: Any, name: str, value: Any) -> None:
    raise FrozenInstanceError(f"cannot assign to field {name!r}")


def _frozen_delattr(self: Any, name: str) -> None:
    raise FrozenInstanceError(f"cannot delete field {name!r}")


def _build(cls: type[T], frozen: bool, slots: bool) -> type[T]:
    specs = _specs(cls)
    own = [s[0] for s in specs if s[0] in cls.__dict__.get("__annotations__", {})]
    if slots:
        ns = {k: v for k, v in cls.__dict__.items() if k not in (*own, "__dict__", "__weakref__")}
        ns["__slots__"] = tuple(own)
        metaclass: Any = type(cls)
        cls = metaclass(cls.__name__, cls.__bases__, ns)
    else:
        for name, default, factory, _, _ in specs:
            if isinstance(cls.__dict__.get(name), _Field):
                if default is _MISSING or factory is not None:
                    delattr(cls, name)
                else:
                    setattr(cls, name, default)
    setattr(cls, "__record_fields__", specs)  # noqa: B010 (a dunder mypy would not know)
    setattr(cls, "__match_args__", tuple(s[0] for s in specs))  # noqa: B010
    if "__init__" not in cls.__dict__:
        setattr(cls, "__init__", _init)  # noqa: B010
    for name, method in (("__eq__", _eq), ("__repr__", _repr)):
        if name not in cls.__dict__:
            setattr(cls, name, method)
    setattr(cls, "__hash__", _hash if frozen else None)  # noqa: B010 (as dataclass(eq=True) does)
    if frozen:
        setattr(cls, "__setattr__", _frozen_setattr)  # noqa: B010
        setattr(cls, "__delattr__", _frozen_delattr)  # noqa: B010
    return cls


@typing.dataclass_transform(field_specifiers=(field,))
def record(*, frozen: bool = False, slots: bool = False) -> Callable[[type[T]], type[T]]:
    """Class decorator: a record of the annotated fields, like `dataclass(frozen=, slots=)`."""
    return lambda cls: _build(cls, frozen, slots)


def replace(obj: T, /, **changes: Any) -> T:
    """A copy of record `obj` with some fields changed (`dataclasses.replace`)."""
    values = {s[0]: getattr(obj, s[0]) for s in type(obj).__record_fields__}  # type: ignore[attr-defined]
    values.update(changes)
    return type(obj)(**values)
