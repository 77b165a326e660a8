"""The selftest report: hmm-tests' results beside hmmbench's cases, as JSON (``hmmbench.selftest/1``) and a table."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from hmmbench.reports.results import CaseResult, KernelBlock
from hmmbench.selftest.compare import ComparisonRow, OutputCheck
from hmmbench.selftest.ktap import SelftestResult, summarize

SCHEMA = "hmmbench.selftest/1"


@dataclass
class SelftestReport:
    kernel: KernelBlock
    accel: str | None
    accel_why: str | None
    binary: str
    ended: str
    selftest: list[SelftestResult]
    output: OutputCheck
    cases: list[CaseResult]
    comparison: list[ComparisonRow]
    disagreements: list[str]
    explanation: str
    started: str = ""
    seconds: float = 0.0
    extra: dict = field(default_factory=dict)

    @property
    def failed(self) -> bool:
        return (self.output.failed or any(r.status in ("FAIL", "ERROR") for r in self.selftest)
                or any(str(c.status) == "FAIL" for c in self.cases))

    @property
    def exit_code(self) -> int:
        return 1 if self.disagreements or self.failed else 0

    def to_dict(self) -> dict:
        return {
            "schema": SCHEMA, "started": self.started, "seconds": self.seconds,
            "kernel": {"label": self.kernel.label, "release": self.kernel.release,
                       "tree_identity": self.kernel.tree_identity, "config_hash": self.kernel.config_hash},
            "accel": self.accel, "accel_why": self.accel_why, "binary": self.binary, "ended": self.ended,
            "selftest": [{"name": r.name, "status": r.status, "reason": r.reason, "diagnostics": list(r.diagnostics)}
                         for r in self.selftest],
            "selftest_summary": summarize(self.selftest), "selftest_output": self.output.as_json(),
            "cases": [c.to_dict() for c in self.cases], "comparison": [asdict(r) for r in self.comparison],
            "disagreements": self.disagreements, "explanation": self.explanation,
        }


def table(res: SelftestReport) -> str:
    lines = [f"kernel {res.kernel.release} ({res.kernel.label}); hmm-tests {res.ended}; "
             f"summary {summarize(res.selftest)}", res.output.line(), ""]
    w = max([len(r.selftest) for r in res.comparison] + [8])
    lines.append(f"{'hmm-tests':<{w}}  {'result':<6}  hmmbench case         verdict")
    for r in res.comparison:
        lines.append(f"{r.selftest:<{w}}  {r.selftest_status:<6}  {r.case:<20}  {r.case_status}")
        for d in r.diagnostics if r.selftest_status in ("FAIL", "ERROR") else []:
            lines.append(f"{'':<{w}}    {d}")
    compared = {r.selftest for r in res.comparison}
    others = [s for s in res.selftest if s.status in ("FAIL", "ERROR") and s.name not in compared]
    if others:
        lines += ["", "other hmm-tests failures: " + ", ".join(f"{s.name} ({s.status})" for s in others)]
    lines += ["", "disagreements: " + ("; ".join(res.disagreements) if res.disagreements else "none")]
    if res.explanation:
        lines += ["", "why: " + res.explanation]
    return "\n".join(lines)
