"""Verdicts and the evidence behind them.

PASS, FAIL and SKIP are results about the kernel; ERROR means the harness (or the case's guest code)
could not decide, and is never reported as PASS. Each verdict carries typed checks that say what was
checked, what was expected and what was seen, short enough to paste into a mail.

A check's *key* names the property and never contains an observed or expected value ("shared anon
refused", not "shared anon refused with EBUSY"): the gate pairs checks across kernels by key.

A check is only worth something if it could have read the other way. Where a case can show that in
the same run (a buffer that was never written reads "not soft-dirty"; an ordinary buffer's write loop
costs no faults), it records a *control*: a control that does not read the other way means the check
beside it cannot fail in this state, so the verdict is ERROR (undecided), never PASS.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from enum import StrEnum


class Status(StrEnum):
    PASS = "PASS"
    FAIL = "FAIL"
    SKIP = "SKIP"
    ERROR = "ERROR"


class Outcome(StrEnum):
    """What one line of evidence is: a held or failed check, a note, or a negative control."""

    OK = "ok"
    FAIL = "FAIL"
    NOTE = "note"
    CONTROL = "ctrl"  # the negative control read the other way: the check beside it can fail
    CONTROL_FAILED = "NOCTRL"  # it did not: that check cannot fail here


@dataclass(frozen=True)
class Check:
    """One judged (or noted) property of a case run."""

    key: str
    outcome: Outcome
    seen: str
    expected: str = ""

    def line(self) -> str:
        """The evidence line: ``ok   key: seen (expected ...)``."""
        tail = f" (expected {self.expected})" if self.expected else ""
        return f"{str(self.outcome):<4} {self.key}: {self.seen}{tail}"

    def to_dict(self) -> dict:
        return {"key": self.key, "outcome": str(self.outcome), "seen": self.seen, "expected": self.expected}

    @classmethod
    def from_dict(cls, d: dict) -> Check:
        return cls(d["key"], Outcome(d["outcome"]), d.get("seen", ""), d.get("expected", ""))


@dataclass
class Verdict:
    status: Status
    summary: str
    evidence: list[str] = field(default_factory=list)
    failed_checks: list[str] = field(default_factory=list)
    crashes: list[dict] = field(default_factory=list)
    checks: list[Check] = field(default_factory=list)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["status"] = str(self.status)
        d["checks"] = [c.to_dict() for c in self.checks]
        return d


class Checks:
    """Collects named checks; the verdict is PASS only if every check held and every control read the
    other way."""

    def __init__(self) -> None:
        self.items: list[Check] = []

    def _add(self, item: Check) -> Check:
        self.items.append(item)
        return item

    def check(self, name: str, ok: bool, seen: str, expected: str = "") -> bool:
        """Judge one property; ``name`` is its stable key, ``expected`` what the rule wanted (as text)."""
        self._add(Check(name, Outcome.OK if ok else Outcome.FAIL, seen, expected))
        return ok

    def control(self, name: str, other_way: bool, seen: str) -> bool:
        """Record a negative control: ``other_way`` is True when the observation the checks rely on read
        the other way on a page (or path) where it must, so those checks can fail in this state."""
        self._add(Check(name, Outcome.CONTROL if other_way else Outcome.CONTROL_FAILED, seen))
        return other_way

    def note(self, name: str, seen: str) -> None:
        """An observation recorded without judging it; ``name`` must not vary between kernels."""
        self._add(Check(name, Outcome.NOTE, seen))

    @property
    def evidence(self) -> list[str]:
        return [c.line() for c in self.items]

    @property
    def failed(self) -> list[str]:
        return [c.key for c in self.items if c.outcome is Outcome.FAIL]

    @property
    def failed_controls(self) -> list[str]:
        return [c.key for c in self.items if c.outcome is Outcome.CONTROL_FAILED]

    def verdict(self, pass_summary: str) -> Verdict:
        if self.failed:
            return Verdict(Status.FAIL, "failed: " + ", ".join(self.failed), self.evidence, self.failed,
                           checks=list(self.items))
        if self.failed_controls:
            return Verdict(Status.ERROR, "negative control did not read the other way (the check cannot fail "
                           "here): " + ", ".join(self.failed_controls), self.evidence, [], checks=list(self.items))
        return Verdict(Status.PASS, pass_summary, self.evidence, checks=list(self.items))
