"""Terminal output: the verdict table and the evidence a developer pastes into a mail."""

from __future__ import annotations

import textwrap

from hmmbench.cases.verdict import Outcome, Status
from hmmbench.reports.results import RunResult

# The table shows the first few pages where a CPU's and a device's views disagree; evidence.txt has all.
SHOWN_DISAGREEMENTS = 6


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
        shown = v.disagreements[:SHOWN_DISAGREEMENTS]
        rows += [" " * (name_w + 4) + "DISAGREE " + d.line() for d in shown]
        if len(v.disagreements) > len(shown):
            rows.append(" " * (name_w + 4) + f"DISAGREE ... and {len(v.disagreements) - len(shown)} more pages "
                        "(every one in evidence.txt)")
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
        if v.disagreements:
            out.append(f"    {len(v.disagreements)} page(s) where the CPU's and a device's views disagree:")
            out += [f"      {d.line()}" for d in v.disagreements]
    return "\n".join(out)
