"""Fast copy-with-changes and content comparison for the frozen row and state records, and the
pickle format of the mutable state records.

`dataclasses.replace` re-runs `__init__` with keyword handling and costs ~20 µs; the lifecycle
calls it several times per event. These records have no `__post_init__`, so copying the slots
is the same thing, several times cheaper.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from dataclasses import fields
from typing import Any, TypeVar

Record = TypeVar("Record")
Cls = TypeVar("Cls", bound=type)

_NAMES: dict[type, tuple[str, ...]] = {}
_CONTENT: dict[type, Callable[[Any], Any]] = {}


def _names(cls: type) -> tuple[str, ...]:
    names = _NAMES.get(cls)
    if names is None:
        if hasattr(cls, "__post_init__"):
            raise TypeError(f"{cls.__name__} has __post_init__: use dataclasses.replace")
        names = _NAMES[cls] = tuple(f.name for f in fields(cls))
    return names


def copy_with(record: Record, **changes: Any) -> Record:
    """`dataclasses.replace` for frozen dataclasses without `__post_init__`."""
    cls = type(record)
    names = _NAMES.get(cls) or _names(cls)
    new = object.__new__(cls)
    setter = object.__setattr__
    used = 0
    for name in names:
        if name in changes:
            setter(new, name, changes[name])
            used += 1
        else:
            setter(new, name, getattr(record, name))
    if used != len(changes):
        raise TypeError(f"{cls.__name__} has no field(s) {sorted(set(changes) - set(names))}")
    return new


def content_getter(cls: type) -> Callable[[Any], Any]:
    """A function giving a row's fields but `version`, as a tuple in declaration order."""
    getter = _CONTENT.get(cls)
    if getter is None:
        getter = _CONTENT[cls] = operator.attrgetter(*(n for n in _names(cls) if n != "version"))
    return getter


def same_but_version(a: object, b: object) -> bool:
    """True when two rows of one class differ at most in their `version`."""
    cls = type(a)
    if type(b) is not cls:
        return False
    getter = _CONTENT.get(cls) or content_getter(cls)
    return bool(getter(a) == getter(b))


def pickled_as_values(cls: Cls) -> Cls:
    """Class decorator: pickle a mutable slots dataclass as a frozen one is, as the list of its
    field values, so that states pickled while the class was frozen load (and the other way).
    """
    names = tuple(f.name for f in fields(cls))

    def getstate(self: object) -> list[object]:
        return [getattr(self, name) for name in names]

    def setstate(self: object, state: list[object]) -> None:
        for name, value in zip(names, state, strict=True):
            setattr(self, name, value)

    # setattr: mypy does not let a method be assigned on a class
    setattr(cls, "__getstate__", getstate)  # noqa: B010
    setattr(cls, "__setstate__", setstate)  # noqa: B010
    return cls
