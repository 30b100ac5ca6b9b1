"""A profile's state: one row of the inline projection, the fold's result.

Apart from the fold (``fold.py``: the stream rules, which only an append and
doctor run), so that readers (`profile history`, `list`) can hold and check a
state without importing the writer's half.
"""

from __future__ import annotations

from .records import Record


class ProfileState(Record):
    """Current state of one profile: one row of the inline projection."""

    profile: str
    version: int
    deleted: bool
    desired: str
    created_position: int
    last_position: int
    last_type: str
    last_actor: str
    last_reason: str | None
    last_at: str
    intent_position: int
    intent_actor: str
    intent_reason: str | None
    intent_at: str
    start_intent_position: int | None = None
    restart_position: int | None = None
    run_position: int | None = None
    run_pid: int | None = None
    run_started_at: str | None = None
    run_boot_id: str | None = None
    run_ended: bool = False
    last_exit_code: int | None = None
    last_signal: int | None = None
    host: str | None = None  # the host of the created event: the profile's own (docs/fleet.md)
    # Every crash of the name, all lives: history's summary reads one row, not the crash index.
    crashes: int = 0
    last_crash_position: int | None = None  # the newest crash by position (a clock set back cannot reorder)
    # The newest report the gateway made of itself (migration 0006): the page and /metrics read its row.
    last_report_position: int | None = None

    @property
    def live(self) -> bool:
        return not self.deleted

    @property
    def held_down_by(self) -> str | None:
        """Why the supervisor holds the profile down, or None when it does not.

        The one definition of "held down": the last intent is a supervisor's
        ``stopped`` with desired ``down`` (``finish`` decided it: crash-loop,
        fatal-config, exited), and no start has been asked since. A person's
        stop is not a hold. The ``profile_status`` view's column of the same
        name must agree (tests/test_fold.py checks it on a migrated store).
        """
        if self.desired == "down" and self.intent_actor == "supervisor":
            return self.intent_reason
        return None

    @property
    def running_run(self) -> int | None:
        """Position of the run the log believes is still going, if any."""
        return self.run_position if self.run_position is not None and not self.run_ended else None


# The projection's columns, in the state's order.
STATE_FIELDS = ProfileState._fields
