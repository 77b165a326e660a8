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

Verdicts stay typed everywhere; :meth:`Verdict.to_dict` and :meth:`Verdict.from_dict` are the edge
(results.json), and the evidence lines are derived from the checks, never parsed back.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from hmmbench.cases.kernel_reports import CrashReport


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

    @property
    def judged(self) -> bool:
        return self.outcome in (Outcome.OK, Outcome.FAIL)

    def to_dict(self) -> dict:
        return {"key": self.key, "outcome": str(self.outcome), "seen": self.seen, "expected": self.expected}

    @classmethod
    def from_dict(cls, d: dict) -> Check:
        return cls(d["key"], Outcome(d["outcome"]), d.get("seen", ""), d.get("expected", ""))

    @classmethod
    def from_line(cls, line: str) -> Check:
        """A check from an evidence line of results.json schema 1 (which kept only the lines): the outcome
        word, then the name up to the first ``": "``. Used only to read old files."""
        word, _, rest = line.partition(" ")
        outcome = {"ok": Outcome.OK, "FAIL": Outcome.FAIL, "note": Outcome.NOTE, "ctrl": Outcome.CONTROL,
                   "NOCTRL": Outcome.CONTROL_FAILED}.get(word, Outcome.NOTE)
        key, _, seen = rest.strip().partition(": ")
        return cls(key, outcome, seen)


@dataclass(frozen=True)
class Disagreement:
    """One page where the CPU's page tables and a device's own view of it disagree.

    hmmbench tests test_hmm as much as mm/: a page whose pagemap entry says "on device 0" while
    device 0's SNAPSHOT says NONE is wrong on one side or the other, and the report shows both views
    so a reader can tell which (the rule that decided what the device should say is in ``why``).
    """

    label: str  # the moment of the case ("after MIGRATE_TO_DEV")
    page: int  # index of the page in the range
    cpu: str  # what pagemap/kpageflags say ("device-private entry, swap type 28")
    device: str  # the device's view ("dmirror1 SNAPSHOT NONE")
    why: str  # what the device should have said, and by which rule

    def line(self) -> str:
        return f"{self.label}, page {self.page}: CPU {self.cpu}; {self.device} ({self.why})"

    def to_dict(self) -> dict:
        return {"label": self.label, "page": self.page, "cpu": self.cpu, "device": self.device, "why": self.why}

    @classmethod
    def from_dict(cls, d: dict) -> Disagreement:
        return cls(d["label"], int(d["page"]), d["cpu"], d["device"], d.get("why", ""))


@dataclass
class Verdict:
    """A case run's verdict: status, a one-line summary, the checks behind it, and kernel reports."""

    status: Status
    summary: str
    checks: list[Check] = field(default_factory=list)
    crashes: list[CrashReport] = field(default_factory=list)
    disagreements: list[Disagreement] = field(default_factory=list)

    @property
    def evidence(self) -> list[str]:
        return [c.line() for c in self.checks]

    @property
    def failed_checks(self) -> list[str]:
        return [c.key for c in self.checks if c.outcome is Outcome.FAIL]

    @property
    def fatal_crashes(self) -> list[CrashReport]:
        return [r for r in self.crashes if r.fatal]

    def to_dict(self) -> dict:
        return {"status": str(self.status), "summary": self.summary, "checks": [c.to_dict() for c in self.checks],
                "evidence": self.evidence, "failed_checks": self.failed_checks,
                "crashes": [r.to_dict() for r in self.crashes],
                "disagreements": [d.to_dict() for d in self.disagreements]}

    @classmethod
    def from_dict(cls, d: dict) -> Verdict:
        if "checks" in d:
            checks = [Check.from_dict(c) for c in d["checks"]]
        else:  # schema 1
            checks = [Check.from_line(line) for line in d.get("evidence", [])]
        return cls(Status(d["status"]), d.get("summary", ""), checks,
                   [CrashReport.from_dict(r) for r in d.get("crashes", [])],
                   [Disagreement.from_dict(x) for x in d.get("disagreements", [])])


class Checks:
    """Collects named checks; the verdict is PASS only if every check held and every control read the
    other way."""

    def __init__(self) -> None:
        self.items: list[Check] = []
        self.disagreements: list[Disagreement] = []

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

    def disagree(self, found: list[Disagreement]) -> None:
        """Record pages where the CPU's and a device's views disagree (the check beside them fails)."""
        self.disagreements.extend(found)

    @property
    def evidence(self) -> list[str]:
        return [c.line() for c in self.items]

    @property
    def failed(self) -> list[str]:
        return [c.key for c in self.items if c.outcome is Outcome.FAIL]

    @property
    def failed_controls(self) -> list[str]:
        return [c.key for c in self.items if c.outcome is Outcome.CONTROL_FAILED]

    def skip(self, reason: str) -> Verdict:
        """SKIP, decided by the host from what was observed, with the observations noted so far."""
        return Verdict(Status.SKIP, reason, list(self.items), disagreements=list(self.disagreements))

    def error(self, reason: str) -> Verdict:
        """ERROR: the rule cannot decide (with what it saw)."""
        return Verdict(Status.ERROR, reason, list(self.items), disagreements=list(self.disagreements))

    def verdict(self, pass_summary: str) -> Verdict:
        if self.failed:
            return Verdict(Status.FAIL, "failed: " + ", ".join(self.failed), list(self.items),
                           disagreements=list(self.disagreements))
        if self.failed_controls:
            return Verdict(Status.ERROR, "negative control did not read the other way (the check cannot fail "
                           "here): " + ", ".join(self.failed_controls), list(self.items),
                           disagreements=list(self.disagreements))
        return Verdict(Status.PASS, pass_summary, list(self.items), disagreements=list(self.disagreements))
