"""Findings of `hermes-state doctor`: what was checked, how it went, in one line each."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from .records import Record


class FindingStatus(StrEnum):
    """How one check went."""

    OK = "ok"
    WARNING = "warning"
    ERROR = "error"


OK, WARNING, ERROR = FindingStatus


class Finding(Record):
    check: str
    status: FindingStatus
    detail: str


@dataclass
class Report:
    location: str
    findings: list[Finding] = field(default_factory=list)

    def add(self, check: str, status: FindingStatus, detail: str) -> None:
        self.findings.append(Finding(check, status, detail))

    @property
    def healthy(self) -> bool:
        return all(f.status != ERROR for f in self.findings)

    def as_json(self) -> dict[str, object]:
        return {"path": self.location, "healthy": self.healthy, "checks": [f._asdict() for f in self.findings]}
