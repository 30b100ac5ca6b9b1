"""Profile names: the one rule, checked at every boundary that takes a name."""

from __future__ import annotations

import re

from .errors import BadInput, InvalidName

NAME_PATTERN = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")
RESERVED_NAMES = frozenset({"hermes", "test", "tmp", "root", "sudo"})
DEFAULT_PROFILE = "default"
# A boot id as `<scandir>/.boot-id` holds it (the projector writes a UUID): what readers accept.
BOOT_ID_PATTERN = re.compile(r"[0-9a-f-]{1,64}")


def validate_name(name: object) -> str:
    """Return ``name`` when it is a valid profile name, else raise InvalidName.

    ``fullmatch`` rather than ``match`` + ``$``: ``$`` also matches before a
    trailing newline, which would let ``"alice\\n"`` through.
    """
    if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name):
        raise InvalidName(
            f"invalid profile name {shown(name)}: "
            "use 1-64 of a-z, 0-9, '_' and '-', starting with a letter or digit"
        )
    return name


def validate_new_name(name: object) -> str:
    """A name that may be created: valid and not reserved."""
    valid = validate_name(name)
    if valid in RESERVED_NAMES:
        raise InvalidName(f"profile name {valid!r} is reserved")
    return valid


# A profile's s6 service slot is named gateway-<name> (docs/design.md section 1).
SLOT_PREFIX = "gateway-"


def slot_name(name: str) -> str:
    return SLOT_PREFIX + validate_name(name)


def profile_of_slot(entry: object) -> str | None:
    """The profile whose slot ``entry`` names, or None when it is not a slot of ours."""
    if not isinstance(entry, str) or not entry.startswith(SLOT_PREFIX):
        return None
    name = entry[len(SLOT_PREFIX):]
    return name if NAME_PATTERN.fullmatch(name) else None


def shown(value: object) -> str:
    """Untrusted text (a name from the command line or the database), safe to print: repr, at most 80 characters."""
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def validate_slug(value: object, what: str = "reason") -> str:
    """Short lower-case slugs such as ``crash-loop``: safe in logs and SQL recipes."""
    if not isinstance(value, str) or not re.fullmatch(r"[a-z0-9][a-z0-9_-]{0,63}", value):
        raise BadInput(f"invalid {what} {shown(value)}: use a short slug of a-z, 0-9, '_' and '-'")
    return value
