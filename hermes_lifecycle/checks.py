"""Findings of `hermes-state doctor`: what was checked, how it went, in one line each."""

from __future__ import annotations

from dataclasses import dataclass, field

from .records import Record

OK, WARNING, ERROR = "ok", "warning", "error"


class Finding(Record):
    check: str
    status: str
    detail: str


@dataclass
class Report:
    location: str
    findings: list[Finding] = field(default_factory=list)

    def add(self, check: str, status: str, detail: str) -> None:
        self.findings.append(Finding(check, status, detail))

    @property
    def healthy(self) -> bool:
        return all(f.status != ERROR for f in self.findings)

    def as_json(self) -> dict:
        return {"path": self.location, "healthy": self.healthy, "checks": [f._asdict() for f in self.findings]}
