"""The eventsourcing library's side of bench/peers.py: one Aggregate per profile, in an Application.

A module of its own because the library finds an aggregate's class again by
its topic (module and name) when it reads the aggregate back.
"""

from __future__ import annotations

import uuid

from eventsourcing.application import Application
from eventsourcing.domain import Aggregate, event


class GatewayProfile(Aggregate):
    """A profile's lifecycle as an eventsourcing user would model it."""

    @staticmethod
    def create_id(name: str) -> uuid.UUID:
        return uuid.uuid5(uuid.NAMESPACE_URL, f"/profiles/{name}")

    @event("Created")
    def __init__(self, name: str) -> None:
        self.name = name
        self.desired = "up"
        self.run_pid: int | None = None
        self.run_version: int | None = None
        self.crashes = 0

    @event("Started")
    def started(self, pid: int) -> None:
        self.run_pid = pid
        self.run_version = self.version

    @event("Stopped")
    def stopped(self, pid: int, reason: str, run: int | None) -> None:
        self.run_pid = self.run_version = None

    @event("Crashed")
    def crashed(self, pid: int, exit_code: int, run: int | None) -> None:
        self.run_pid = self.run_version = None
        self.crashes += 1


class Profiles(Application):
    """The application: its repository reads aggregates back, ``save`` records their new events."""
