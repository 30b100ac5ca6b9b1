"""``@record``: a named tuple written as a class with annotated fields, cheap to define.

``typing.NamedTuple`` checks every field's annotation as it defines the
class, and with postponed annotations that means compiling each one: about
a millisecond for the records a hook or `profile history` imports, paid at
every start. ``@record`` reads the annotations as the text they are and
builds the same tuple with ``collections.namedtuple``.
"""

from __future__ import annotations

from collections import namedtuple

_CLASS_ONLY = ("__dict__", "__weakref__")


def record(cls: type) -> type:
    """The class's annotated fields, in order, as a named tuple; an assigned value is the field's
    default (defaults only after the fields without one); everything else in the body is kept."""
    fields = tuple(cls.__dict__.get("__annotations__", {}))
    defaults = [cls.__dict__[name] for name in fields if name in cls.__dict__]
    required = len(fields) - len(defaults)
    if any(name in cls.__dict__ for name in fields[:required]):
        raise TypeError(f"{cls.__name__}: a field without a default follows one with a default")
    base = namedtuple(cls.__name__, fields, defaults=defaults or None, module=cls.__module__)
    namespace = {key: value for key, value in cls.__dict__.items() if key not in fields and key not in _CLASS_ONLY}
    namespace["__slots__"] = ()
    return type(cls.__name__, (base,), namespace)
