"""Gate reports: a terminal table, plain text for a mail to linux-mm, JSON, JUnit XML and KTAP.

JSON schema ``hmmbench.gate/1`` (stable; fields are only ever added):
  schema, hmmbench_version, exit_code, regressed (bool),
  base / patched: {spec, release, label, tree_identity, config_hash, results_path},
  cases: [{id, case, base, patched, category, base_summary, patched_summary,
           changes: [{what, base, patched}], new_messages: [title]}],
  predictions: [{name, source, case, predicted_before, predicted_after, seen_before, seen_after, status}],
  counts: {category: n}
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

from hmmbench import __version__
from hmmbench.kernel import expected
from hmmbench.reports import compare, predictions
from hmmbench.reports.compare import CATEGORY_ORDER, CaseDiff
from hmmbench.reports.predictions import PredictionCheck
from hmmbench.reports.results import RunResult

SCHEMA = "hmmbench.gate/1"


@dataclass
class GateSide:
    """One side of the gate: the kernel asked for and what was built and run."""

    spec: str
    release: str | None
    label: str
    tree_identity: str
    config_hash: str
    results_path: str

    @classmethod
    def of(cls, spec: str, run: RunResult) -> GateSide:
        k = run.kernel
        return cls(spec, k.release, k.label, k.tree_identity, k.config_hash, run.results_path)


@dataclass
class GateReport:
    base: GateSide
    patched: GateSide
    cases: list[CaseDiff]
    predictions: list[PredictionCheck] = field(default_factory=list)
    hmmbench_version: str = __version__

    @property
    def regressed(self) -> bool:
        return compare.regressed(self.cases)

    @property
    def exit_code(self) -> int:
        return 1 if self.regressed else 0

    @property
    def counts(self) -> dict[str, int]:
        counts = Counter(d.category for d in self.cases)
        return {c: counts[c] for c in CATEGORY_ORDER if counts.get(c)}

    def to_dict(self) -> dict:
        return {"schema": SCHEMA, "hmmbench_version": self.hmmbench_version, "exit_code": self.exit_code,
                "regressed": self.regressed, "base": asdict(self.base), "patched": asdict(self.patched),
                "cases": [d.to_dict() for d in self.cases], "counts": self.counts,
                "predictions": [asdict(p) for p in self.predictions]}


def build_report(base_spec: str, patched_spec: str, base: RunResult, patched: RunResult) -> GateReport:
    """Compare the runs; where exactly one side has the series, check every prediction of the facts file."""
    preds = []
    if expected.has_series(base.kernel.release or "") != expected.has_series(patched.kernel.release or ""):
        preds = predictions.check_all(base, patched)
    return GateReport(GateSide.of(base_spec, base), GateSide.of(patched_spec, patched),
                      compare.diff_runs(base, patched), preds)


def _kernel_line(label: str, k: GateSide) -> str:
    return f"{label:<8} {k.release or '?':<12} {k.label}  tree {k.tree_identity}  config {k.config_hash}"


def text(report: GateReport, width: int = 100) -> str:
    """The terminal table; also the body of the plain-text (mail) report."""
    lines = [_kernel_line("base", report.base), _kernel_line("patched", report.patched), ""]
    w = max([len(c.id) for c in report.cases] + [4])
    lines.append(f"{'case':<{w}}  {'base':<5}  {'patched':<7}  result")
    lines.append("-" * min(width, w + 40))
    order = {c: i for i, c in enumerate(CATEGORY_ORDER)}
    for c in sorted(report.cases, key=lambda c: order.get(c.category, 99)):
        extra = f" ({len(c.changes)} observation(s) changed)" if c.changes else ""
        lines.append(f"{c.id:<{w}}  {c.base:<5}  {c.patched:<7}  {c.category}{extra}")
    counts = ", ".join(f"{n} {cat}" for cat, n in report.counts.items())
    lines += ["", f"summary: {counts}" + ("   REGRESSIONS" if report.regressed else "")]
    if report.predictions:
        lines += ["", "What the series is predicted to change (facts file), checked on these runs:"]
        for p in report.predictions:
            lines.append(f"  [{p.status}] {p.name} ({p.source})")
            lines.append(f"      predicted {p.predicted_before} -> {p.predicted_after}; "
                         f"seen {p.seen_before} -> {p.seen_after}")
    return "\n".join(lines)


def evidence(report: GateReport) -> str:
    """Every change with its evidence: what differs, verdict summaries, new kernel messages."""
    lines = []
    for c in report.cases:
        if c.category in ("still passing", "still skipped") and not c.changes:
            continue
        lines += ["", f"{c.id}: {c.base} -> {c.patched} ({c.category})",
                  f"  base:    {c.base_summary}", f"  patched: {c.patched_summary}"]
        for t in c.new_messages:
            lines.append(f"  new kernel message: {t}")
        for ch in c.changes:
            lines.append(f"  {ch.what}:")
            lines.append(f"      base:    {ch.base}")
            lines.append(f"      patched: {ch.patched}")
    return "\n".join(lines)


def mail(report: GateReport) -> str:
    """Plain text that reads well in a reply on linux-mm (the ``--markdown`` output)."""
    head = [f"hmmbench {report.hmmbench_version} gate: {report.base.release} -> {report.patched.release}", ""]
    return "\n".join(head) + text(report) + "\n\nEvidence\n--------" + evidence(report) + "\n"


def junit(report: GateReport, path: Path) -> None:
    counts = Counter(c.category for c in report.cases)
    suite = ET.Element("testsuite", {"name": f"hmmbench gate {report.base.release} -> {report.patched.release}",
                                     "tests": str(len(report.cases)), "failures": str(counts.get("regressed", 0)),
                                     "skipped": "0"})
    for c in report.cases:
        tc = ET.SubElement(suite, "testcase", {"classname": "hmmbench.gate", "name": c.id})
        if c.category == "regressed":
            body = "\n".join(f"{ch.what}: {ch.base} -> {ch.patched}" for ch in c.changes)
            ET.SubElement(tc, "failure", {"message": f"{c.base} -> {c.patched}"}).text = body
        else:
            ET.SubElement(tc, "system-out").text = f"{c.category}: {c.base} -> {c.patched}"
    root = ET.Element("testsuites")
    root.append(suite)
    ET.indent(root)
    path.parent.mkdir(parents=True, exist_ok=True)
    ET.ElementTree(root).write(path, encoding="unicode", xml_declaration=True)


def ktap(report: GateReport) -> str:
    """KTAP for kselftest-style consumers: one test per case, ``not ok`` when it regressed."""
    lines = ["KTAP version 1", f"1..{len(report.cases)}"]
    for i, c in enumerate(report.cases, 1):
        status = "not ok" if c.category == "regressed" else "ok"
        directive = " # SKIP" if "SKIP" in (c.base, c.patched) and c.category != "regressed" else ""
        lines.append(f"# {c.id}: {c.base} -> {c.patched} ({c.category})")
        lines.append(f"{status} {i} {c.id}{directive}")
    return "\n".join(lines) + "\n"
