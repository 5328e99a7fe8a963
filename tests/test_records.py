"""``@record`` behaves as ``@dataclass(frozen=True)`` does, in every way the estimator uses."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import FrozenInstanceError, asdict, dataclass, field, fields, replace
from typing import Any

import pytest

from calc.records import record


@record
class Point:
    x: int
    y: int = 2
    tags: Mapping[str, Any] = field(default_factory=dict)
    note: str = field(default="", compare=False, repr=False)


@record
class Point3(Point):
    z: int = 0


@dataclass(frozen=True)
class Reference:
    x: int
    y: int = 2
    tags: Mapping[str, Any] = field(default_factory=dict)
    note: str = field(default="", compare=False, repr=False)


def test_construction_defaults_and_factories() -> None:
    p = Point(1)
    assert (p.x, p.y, p.tags, p.note) == (1, 2, {}, "")
    assert Point(1).tags is not Point(1).tags  # one dict per instance
    assert Point(1, 5, {"a": 1}, "n") == Point(x=1, y=5, tags={"a": 1}, note="other")
    with pytest.raises(TypeError):
        Point()  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        Point(1, wrong=3)  # type: ignore[call-arg]


def test_same_equality_hash_and_repr_as_a_frozen_dataclass() -> None:
    for args in [(1,), (1, 3), (4, 5, {}, "x")]:
        ours, theirs = Point(*args), Reference(*args)
        assert repr(ours) == repr(theirs).replace("Reference", "Point")
        assert asdict(ours) == asdict(theirs)
        assert [f.name for f in fields(ours)] == [f.name for f in fields(theirs)]
    assert Point(1) != Point(2)
    assert Point(1) != Reference(1)
    frozen = Point(1, 3, tags=())  # type: ignore[arg-type]
    assert hash(frozen) == hash(Reference(1, 3, tags=()))  # type: ignore[arg-type]
    assert hash(frozen) == hash(replace(frozen, note="not compared"))
    assert len({frozen, replace(frozen), replace(frozen, x=2)}) == 2
    with pytest.raises(TypeError, match="unhashable"):
        hash(Point(1))  # a dict field, as with dataclass


def test_the_cached_hash_stays_out_of_pickles() -> None:
    import pickle

    p = Point(1, 3, tags=())  # type: ignore[arg-type]
    hash(p)
    assert "_record_hash" in vars(p)
    again = pickle.loads(pickle.dumps(p))
    assert again == p and "_record_hash" not in vars(again)
    assert "_record_hash" not in vars(copy.copy(p))


def test_frozen() -> None:
    p = Point(1)
    with pytest.raises(FrozenInstanceError):
        p.x = 3  # type: ignore[misc]
    with pytest.raises(FrozenInstanceError):
        del p.x  # type: ignore[misc]
    assert replace(p, y=9) == Point(1, 9) and p.y == 2
    assert copy.deepcopy(p) == p


def test_inheritance_takes_the_base_fields() -> None:
    q = Point3(1, 2, {}, "", 7)
    assert [f.name for f in fields(q)] == ["x", "y", "tags", "note", "z"]
    assert q != Point(1) and q == Point3(1, z=7)
    assert repr(q) == "Point3(x=1, y=2, tags={}, z=7)"


def test_post_init_runs() -> None:
    @record
    class Checked:
        value: int

        def __post_init__(self) -> None:
            if self.value < 0:
                raise ValueError("negative")

    assert Checked(1).value == 1
    with pytest.raises(ValueError, match="negative"):
        Checked(-1)


def test_replace_is_dataclasses_replace_for_records() -> None:
    from functools import cached_property

    from calc.records import replace as fast

    @record
    class Model:
        config: tuple[int, ...]
        name: str = "m"

        @cached_property
        def size(self) -> int:
            return sum(self.config)

        def __post_init__(self) -> None:
            if not self.config:
                raise ValueError("empty")

    m = Model((1, 2))
    assert m.size == 3 and hash(m)
    changed = fast(m, config=(5,))
    assert changed == replace(m, config=(5,)) and changed.size == 5  # no stale cached value
    assert fast(m) == m and fast(m) is not m and fast(m, name="n").name == "n"
    with pytest.raises(ValueError, match="empty"):
        fast(m, config=())
    with pytest.raises(TypeError, match="no field 'colour'"):
        fast(m, colour=1)
    assert fast(Reference(1), y=3) == Reference(1, 3)  # other dataclasses: the standard one
