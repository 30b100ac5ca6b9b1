"""``Record``: the one record style of the package, a named tuple written as a typed class.

``class Run(Record): position: int ...`` is, to a type checker, exactly
``class Run(typing.NamedTuple)``: it sees every field, the constructor and
``_replace``. At run time it is built by ``collections.namedtuple`` from the
annotations read as the text they are: ``typing.NamedTuple`` checks (with
postponed annotations: compiles) every annotation as it defines the class,
about a millisecond of every hook and `history` start (docs/performance.md).
"""

from __future__ import annotations

from collections import namedtuple
from typing import TYPE_CHECKING, Any

__all__ = ["Record"]

# What ``type()`` makes for a class body and must not be copied onto the tuple's subclass.
_CLASS_ONLY = ("__dict__", "__weakref__")

if TYPE_CHECKING:
    from typing import NamedTuple as Record
else:

    class _RecordType(type):
        """Turns each subclass's annotated fields, in order, into a named tuple; an assigned value
        is the field's default (defaults only after the fields without one); the rest of the body
        (methods, properties, class constants without annotation) is kept."""

        def __new__(mcls, name: str, bases: tuple[type, ...], namespace: dict[str, Any]) -> type:
            if not bases:  # ``Record`` itself
                return super().__new__(mcls, name, bases, namespace)
            fields = tuple(namespace.get("__annotations__", {}))
            defaults = [namespace[field] for field in fields if field in namespace]
            required = len(fields) - len(defaults)
            if any(field in namespace for field in fields[:required]):
                raise TypeError(f"{name}: a field without a default follows one with a default")
            base = namedtuple(name, fields, defaults=defaults or None, module=namespace.get("__module__"))
            body = {key: value for key, value in namespace.items() if key not in fields and key not in _CLASS_ONLY}
            body["__slots__"] = ()
            return type(name, (base,), body)

    class Record(metaclass=_RecordType):
        """Subclass it and annotate the fields."""
