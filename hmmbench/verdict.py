"""Verdicts and the evidence behind them.

PASS, FAIL and SKIP are results about the kernel; ERROR means the harness (or the case's guest code)
could not decide, and is never reported as PASS. Each verdict carries evidence lines that say what was
checked and what was seen, short enough to paste into a mail.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from enum import StrEnum


class Status(StrEnum):
    PASS = "PASS"
    FAIL = "FAIL"
    SKIP = "SKIP"
    ERROR = "ERROR"


@dataclass
class Verdict:
    status: Status
    summary: str
    evidence: list[str] = field(default_factory=list)
    failed_checks: list[str] = field(default_factory=list)
    crashes: list[dict] = field(default_factory=list)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["status"] = str(self.status)
        return d


class Checks:
    """Collects named checks; the verdict is PASS only if every check held."""

    def __init__(self) -> None:
        self.evidence: list[str] = []
        self.failed: list[str] = []

    def check(self, name: str, ok: bool, seen: str) -> bool:
        self.evidence.append(f"{'ok  ' if ok else 'FAIL'} {name}: {seen}")
        if not ok:
            self.failed.append(name)
        return ok

    def note(self, name: str, seen: str) -> None:
        """An observation recorded without judging it; ``name`` must not vary between kernels."""
        self.evidence.append(f"note {name}: {seen}")

    def verdict(self, pass_summary: str) -> Verdict:
        if self.failed:
            return Verdict(Status.FAIL, "failed: " + ", ".join(self.failed), self.evidence, self.failed)
        return Verdict(Status.PASS, pass_summary, self.evidence)
