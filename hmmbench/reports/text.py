"""Terminal output: the verdict table and the evidence a developer pastes into a mail."""

from __future__ import annotations

import textwrap

from hmmbench.cases.verdict import Outcome, Status
from hmmbench.reports.results import RunResult


def table(res: RunResult, width: int = 110) -> str:
    k, t = res.kernel, res.target
    head = [
        f"kernel  {k.release}  ({k.label}; tree {k.tree_identity}; config {k.config_hash})",
        f"target  {t.describe()}",
        "",
    ]
    name_w = max([len(c.id) for c in res.cases] + [4])
    rows = [f"{'case':<{name_w}}  {'verdict':<7}  {'time':>6}  evidence", "-" * min(width, name_w + 80)]
    for c in res.cases:
        v = c.verdict
        first = f"{c.id:<{name_w}}  {str(v.status):<7}  {c.seconds:>5.1f}s  "
        wrapped = textwrap.wrap(v.summary, max(30, width - len(first))) or [""]
        rows.append(first + wrapped[0])
        rows += [" " * len(first) + w for w in wrapped[1:]]
        if v.status in (Status.FAIL, Status.ERROR):
            for check in v.checks:
                if check.outcome in (Outcome.FAIL, Outcome.CONTROL_FAILED) or v.status is Status.ERROR:
                    rows.append(" " * (name_w + 2) + "  " + check.line())
            if c.console_excerpt:
                rows.append(" " * (name_w + 4) + f"console excerpt: {c.console_excerpt}")
    counts = res.summary
    tail = ["", "verdict: " + ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
            + f"   ({res.seconds:.0f}s)  results: {res.results_path}"]
    return "\n".join(head + rows + tail)


def evidence(res: RunResult) -> str:
    """Every case's full evidence, for the mail."""
    out = []
    for c in res.cases:
        v = c.verdict
        out.append(f"{c.id}: {v.status} - {v.summary}")
        out += [f"    {line}" for line in v.evidence]
    return "\n".join(out)
