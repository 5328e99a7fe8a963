"""``@record``: a frozen dataclass that costs one compile to define instead of six.

Every value type of the estimator is a frozen dataclass. ``dataclass(frozen=True)`` compiles six
methods per class from source (``__init__``, ``__repr__``, ``__eq__``, ``__hash__``,
``__setattr__``, ``__delattr__``); on CPython 3.11 the estimator's ~90 classes spent 86 ms of a
146 ms import there, most of a command-line answer (issue 15). Only ``__init__`` needs its own
code, for its signature; the other five are the same for every class and are shared here, reading
the field names the class keeps.

A record is a dataclass in every way the code and the standard library ask about:
``dataclasses.fields``, ``replace``, ``asdict`` and ``is_dataclass`` work, fields declared with
``compare=False`` or ``repr=False`` are left out of equality, hashing and the repr as they would
be, assigning to a field raises ``FrozenInstanceError``, and ``default_factory`` runs per instance.
"""

from __future__ import annotations

import dataclasses
from dataclasses import MISSING, FrozenInstanceError, dataclass, fields
from typing import TYPE_CHECKING, Any, TypeVar, dataclass_transform

T = TypeVar("T")


def _frozen_setattr(self: object, name: str, value: object) -> None:
    raise FrozenInstanceError(f"cannot assign to field {name!r}")


def _frozen_delattr(self: object, name: str) -> None:
    raise FrozenInstanceError(f"cannot delete field {name!r}")


def _key(self: Any) -> tuple[Any, ...]:
    return tuple(getattr(self, name) for name in self.__record_compare__)


def _eq(self: Any, other: object) -> bool:
    if other.__class__ is not self.__class__:
        return NotImplemented  # type: ignore[no-any-return]
    return _key(self) == _key(other)


def _hash(self: Any) -> int:
    """Computed once per instance: the fields never change, and an architecture's are long
    tuples that the estimator's memos hash many times."""
    known: int | None = self.__dict__.get(_HASH)
    if known is None:
        known = self.__dict__[_HASH] = hash(_key(self))
    return known


_HASH = "_record_hash"


def _getstate(self: Any) -> dict[str, Any]:
    """The fields without the cached hash, which another process (another hash seed) must
    compute again."""
    return {k: v for k, v in self.__dict__.items() if k != _HASH}


def _repr(self: Any) -> str:
    shown = ", ".join(f"{name}={getattr(self, name)!r}" for name in self.__record_repr__)
    return f"{self.__class__.__qualname__}({shown})"


def _init(cls: type) -> Any:
    """The class's ``__init__``, compiled from the field list as dataclass would write it."""
    namespace: dict[str, Any] = {"_set": object.__setattr__, "_MISSING": MISSING}
    params, body = [], []
    for f in fields(cls):
        if f.default is not MISSING:
            namespace[f"_d_{f.name}"] = f.default
            params.append(f"{f.name}=_d_{f.name}")
            body.append(f"_set(self, {f.name!r}, {f.name})")
        elif f.default_factory is not MISSING:
            namespace[f"_f_{f.name}"] = f.default_factory
            params.append(f"{f.name}=_MISSING")
            body.append(
                f"_set(self, {f.name!r}, _f_{f.name}() if {f.name} is _MISSING else {f.name})"
            )
        else:
            params.append(f.name)
            body.append(f"_set(self, {f.name!r}, {f.name})")
    if hasattr(cls, "__post_init__"):
        body.append("self.__post_init__()")
    source = f"def __init__(self, {', '.join(params)}):\n    " + "\n    ".join(body or ["pass"])
    exec(source, namespace)
    function = namespace["__init__"]
    function.__qualname__ = f"{cls.__qualname__}.__init__"
    return function


@dataclass_transform(frozen_default=True)
def record(cls: type[T]) -> type[T]:
    """Make ``cls`` a frozen dataclass (see the module's docstring)."""
    cls = dataclass(init=False, repr=False, eq=False)(cls)
    declared = fields(cls)  # type: ignore[arg-type]
    shared = {
        "__record_fields__": tuple(f.name for f in declared),
        "__record_compare__": tuple(f.name for f in declared if f.compare),
        "__record_repr__": tuple(f.name for f in declared if f.repr),
        "__init__": _init(cls),
        "__eq__": _eq,
        "__hash__": _hash,
        "__repr__": _repr,
        "__setattr__": _frozen_setattr,
        "__delattr__": _frozen_delattr,
        "__getstate__": _getstate,
    }
    for name, value in shared.items():
        setattr(cls, name, value)
    return cls


def _replace(obj: T, /, **changes: Any) -> T:
    """``dataclasses.replace``, five times faster for a record: the fields are copied as they
    are (they are frozen, and every field is an ``__init__`` argument) and the changes checked
    by name; ``__post_init__`` runs as it would. Other dataclasses go to the standard one.
    The estimator replaces a record some twenty times per estimate."""
    names: tuple[str, ...] | None = getattr(type(obj), "__record_fields__", None)
    if names is None:
        return dataclasses.replace(obj, **changes)  # type: ignore[type-var]
    unknown = [name for name in changes if name not in names]
    if unknown:
        raise TypeError(f"{type(obj).__qualname__} has no field {unknown[0]!r}")
    state = obj.__dict__
    new = object.__new__(type(obj))
    new.__dict__.update({name: changes.get(name, state[name]) for name in names})
    post = getattr(new, "__post_init__", None)
    if post is not None:
        post()
    return new


if TYPE_CHECKING:  # type checkers check the changes against the fields, as for dataclasses
    from dataclasses import replace as replace
else:
    replace = _replace
