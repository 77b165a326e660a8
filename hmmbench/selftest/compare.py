"""hmm-tests beside hmmbench: its output judged as a whole, and each of its tests against our cases.

Each hmm-tests test that an hmmbench case also checks (hmmbench.selftest.coverage: exclusive ->
exclusive_basic, migrate -> migrate_to_device, ...) is set beside that case's verdict, the variant on the
same kind of device memory where the case has one (hmm-tests' hmm_device_coherent fixture beside
``memory=coherent``); a pair where one says PASS and the other FAIL is a disagreement (one of the two
tests is wrong, or sees something the other does not), and the best-known cause (THP-backed buffers on
a pre-series kernel) is explained when it applies.
"""

from __future__ import annotations

from dataclasses import dataclass

from hmmbench.reports.results import CaseResult
from hmmbench.selftest import coverage, ktap
from hmmbench.selftest.build import EXCLUSIVE_CASES
from hmmbench.selftest.ktap import SelftestResult


@dataclass(frozen=True)
class OutputCheck:
    """hmm-tests' output as a whole: whether every result its plan promised is there.

    ``status`` is COMPLETE, INCOMPLETE (fewer results than planned, or a bail-out), NO OUTPUT (not even a
    version line: the binary never ran, or the target was lost first) or 0 TESTS (a valid ``1..0``).
    The first two of the others fail the selftest; 0 TESTS is reported as such.
    """

    status: str
    summary: str
    planned: int | None
    seen: int
    last_test: str
    shortfalls: tuple[str, ...] = ()

    @property
    def failed(self) -> bool:
        return self.status in ("INCOMPLETE", "NO OUTPUT")

    @classmethod
    def of(cls, doc: ktap.KtapDocument) -> OutputCheck:
        if doc.no_output:
            status = "NO OUTPUT"
        elif not doc.complete:
            status = "INCOMPLETE"
        elif doc.zero_tests:
            status = "0 TESTS"
        else:
            status = "COMPLETE"
        return cls(status, doc.summary(), doc.planned, doc.seen, doc.last_test,
                   tuple(s.describe() for s in doc.shortfalls))

    def as_json(self) -> dict:
        return {"status": self.status, "failed": self.failed, "summary": self.summary, "planned": self.planned,
                "seen": self.seen, "last_test": self.last_test, "shortfalls": list(self.shortfalls)}

    @classmethod
    def from_json(cls, data: dict) -> OutputCheck:
        return cls(data["status"], data["summary"], data["planned"], data["seen"], data["last_test"],
                   tuple(data.get("shortfalls", ())))

    def line(self) -> str:
        """The table's line: ``FAIL`` first when the output was cut short or absent."""
        return f"hmm-tests output: {'FAIL: ' if self.failed else ''}{self.summary}"


@dataclass(frozen=True)
class ComparisonRow:
    """One hmm-tests exclusive test beside the verdict of the hmmbench case that checks the same thing."""

    selftest: str
    selftest_status: str
    case: str
    case_status: str
    reason: str
    diagnostics: tuple[str, ...]


def compare(parsed: list[SelftestResult], ours: list[CaseResult]) -> tuple[list[ComparisonRow], list[str]]:
    """One row per hmm-tests test an hmmbench case checks; a disagreement where one says PASS and the other FAIL."""
    rows, disagreements = [], []
    for r in parsed:
        case = coverage.case_for(r.test)
        if case is None:
            continue
        seen = [str(c.status) for c in _same_memory(r, [c for c in ours if c.case == case])]
        # ERROR (could not decide) is never reported as PASS; SKIP only when every variant skipped.
        mine = next((s for s in ("FAIL", "ERROR", "PASS", "SKIP") if s in seen), "not run")
        rows.append(ComparisonRow(r.name, r.status, case, mine, r.reason, tuple(r.diagnostics)[-3:]))
        if {r.status, mine} == {"PASS", "FAIL"} or (r.status == "ERROR" and mine == "PASS"):
            disagreements.append(f"{r.name}: hmm-tests says {r.status}, hmmbench {case} says {mine}")
    return rows, disagreements


def _same_memory(r: SelftestResult, results: list[CaseResult]) -> list[CaseResult]:
    """The variants of a case on the kind of device memory hmm-tests' fixture variant used, if it has them."""
    kind = "coherent" if "coherent" in r.name else "private"
    same = [c for c in results if c.params.get("memory") == kind]
    return same or [c for c in results if "memory" not in c.params]


def explain_disagreements(parsed: list[SelftestResult], thp: CaseResult | None, thp_mode: str | None) -> str:
    """Why hmm-tests may fail where hmmbench passes: its 4 MiB buffers are THPs when THP is 'always'."""
    ebusy = [r for r in parsed if r.test in EXCLUSIVE_CASES and r.status == "FAIL"
             and any("(-16)" in d for d in r.diagnostics)]
    if not ebusy or thp is None:
        return ""
    return (f"hmm-tests' exclusive tests failed with -EBUSY (-16). THP is {thp_mode!r} in the guest, so their "
            f"4 MiB buffers are backed by THPs; hmmbench tests base pages (MADV_NOHUGEPAGE) in exclusive_basic and "
            f"THPs in exclusive_thp, which is {thp.status}: {thp.verdict.summary}")


def explain_kernel_trouble(parsed: list[SelftestResult], ours: list[CaseResult]) -> str:
    """Why hmm-tests may pass where hmmbench fails: it judges return codes and data, so a kernel WARNING or
    oops on the path it exercises (or in a child whose exit status it does not check), or a device whose
    view of a page contradicts the CPU's (it reads the owning device only), goes unseen."""
    lines = []
    for r in parsed:
        case = coverage.case_for(r.test)
        if r.status != "PASS" or case is None:
            continue
        failed = [c for c in _same_memory(r, [c for c in ours if c.case == case]) if str(c.status) == "FAIL"]
        troubled = [c for c in failed if c.verdict.crashes]
        if troubled:
            titles = "; ".join(dict.fromkeys(x.title for c in troubled for x in c.verdict.crashes))
            lines.append(f"{r.name} passed, but {', '.join(c.id for c in troubled)} hit kernel trouble on the same "
                         f"path ({titles}): hmm-tests judges return codes and data only")
            continue
        split = [c for c in failed if c.verdict.disagreements]
        if split:
            first = split[0].verdict.disagreements[0]
            total = sum(len(c.verdict.disagreements) for c in split)
            lines.append(f"{r.name} passed, but {', '.join(c.id for c in split)} saw {total} page view(s) where a "
                         f"device contradicts the CPU (first: {first.line()}): hmm-tests reads only the device "
                         "that did the work")
    return "\n".join(lines)


def selftest_verdicts_for(results: list[SelftestResult], case_name: str) -> list[SelftestResult]:
    """The selftest results (every fixture variant) that check what hmmbench case ``case_name`` checks."""
    return [r for r in results if coverage.case_for(r.test) == case_name]
