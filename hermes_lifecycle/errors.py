"""Every failure a user can meet, each carrying its exit status (docs/design.md section 7)."""

from __future__ import annotations


class HermesError(Exception):
    """Base of every expected failure: ``str(error)`` is the one line a user sees."""

    exit_status = 1


class BadInput(HermesError):
    """Bad usage or input: an invalid name, an unknown event type, a malformed value."""

    exit_status = 2


class InvalidName(BadInput):
    pass


class NotFound(HermesError):
    """No such profile (or stream)."""

    exit_status = 3


class Conflict(HermesError):
    """Exists already, deleted, or an expected-version mismatch."""

    exit_status = 4


class VersionConflict(Conflict):
    pass


class ProfileDeleted(Conflict):
    pass


class ProfileExists(Conflict):
    pass


class NotThisHost(Conflict):
    """In a fleet, a gateway's start or exit recorded for a profile of another host (docs/fleet.md)."""


class StoreUnavailable(HermesError):
    """The store cannot be used: locked, read-only, full, corrupt, wrong schema, missing."""

    exit_status = 5


class StoreUnreachable(StoreUnavailable):
    """A fleet's database cannot be reached (refused, down, restarting, the connection lost):
    unlike the other failures, waiting may cure it (docs/fleet.md, Outages)."""


class StoreLocked(StoreUnavailable):
    pass


class StoreReadOnly(StoreUnavailable):
    pass


class StoreFull(StoreUnavailable):
    pass


class StoreCorrupt(StoreUnavailable):
    pass


class SchemaMismatch(StoreUnavailable):
    """The file's schema revision is not the code's (older, newer or foreign)."""


class StoreMissing(StoreUnavailable):
    pass
