"""Compare two runs of the suite: what got fixed, what regressed, what changed although the verdict did not.

Categories per case: ``fixed`` (FAIL -> PASS), ``regressed`` (PASS -> FAIL, or a kernel message the base
did not print), ``still failing``, ``still passing``, and ``changed`` for any other transition (e.g. SKIP
-> PASS). *Changed observations* pair the two verdicts' checks by key (keys never hold a value, so the
same check has the same key on both kernels): a check whose seen-text or outcome differs is an
observation that changed (a swap type, an errno, the number of PTEs converted ...).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from hmmbench.cases.verdict import Check, Verdict
from hmmbench.reports.results import RunResult

CATEGORY_ORDER = ["regressed", "fixed", "changed", "still failing", "still skipped", "still passing", "only in one run"]


@dataclass(frozen=True)
class Change:
    """One check (or note) that reads differently on the two kernels; "-" where a side lacks it."""

    what: str
    base: str
    patched: str


@dataclass
class CaseDiff:
    id: str
    case: str
    base: str
    patched: str
    category: str
    changes: list[Change] = field(default_factory=list)
    new_messages: list[str] = field(default_factory=list)
    base_summary: str = ""
    patched_summary: str = ""

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> CaseDiff:
        diff = cls(**{k: v for k, v in d.items() if k != "changes"})
        diff.changes = [Change(**c) for c in d.get("changes", [])]
        return diff


def _shown(check: Check) -> str:
    text = check.seen if check.outcome in ("ok", "note") else f"{check.outcome}: {check.seen}"
    return text + (f" (expected {check.expected})" if check.expected else "")


def check_map(verdict: Verdict) -> dict[str, str]:
    """``{key: what was seen}`` of a verdict's checks; notes are prefixed ``note: `` (a repeated key gets #2)."""
    out: dict[str, str] = {}
    for check in verdict.checks:
        key = f"note: {check.key}" if check.outcome == "note" else check.key
        n, unique = 1, key
        while unique in out:
            n += 1
            unique = f"{key} #{n}"
        out[unique] = _shown(check)
    return out


def categorize(base: str, patched: str, new_messages: list[str]) -> str:
    if base == "PASS" and patched == "FAIL":
        return "regressed"
    if new_messages and patched == "FAIL":
        return "regressed"
    if base == "FAIL" and patched == "PASS":
        return "fixed"
    if base == patched == "FAIL":
        return "still failing"
    if base == patched == "PASS":
        return "still passing"
    if base == patched == "SKIP":
        return "still skipped"
    return "changed"


def diff_runs(base: RunResult, patched: RunResult) -> list[CaseDiff]:
    """One CaseDiff per case id found in either run, in the order the cases ran."""
    b_by = {c.id: c for c in base.cases}
    p_by = {c.id: c for c in patched.cases}
    order = list(dict.fromkeys([c.id for c in base.cases] + [c.id for c in patched.cases]))
    out = []
    for cid in order:
        b, p = b_by.get(cid), p_by.get(cid)
        if b is None or p is None:
            present = b or p
            assert present is not None
            out.append(CaseDiff(cid, present.case, str(b.status) if b else "-", str(p.status) if p else "-",
                                "only in one run"))
            continue
        bv, pv = b.verdict, p.verdict
        base_titles = {r.title for r in bv.crashes}
        new = [r.title for r in pv.crashes if r.title not in base_titles]
        bm, pm = check_map(bv), check_map(pv)
        changes = [Change(k, bm.get(k, "-"), pm.get(k, "-")) for k in dict.fromkeys([*bm, *pm])
                   if bm.get(k) != pm.get(k)]
        out.append(CaseDiff(cid, b.case, str(bv.status), str(pv.status),
                            categorize(str(bv.status), str(pv.status), new), changes, new, bv.summary, pv.summary))
    return out


def regressed(diffs: list[CaseDiff]) -> bool:
    return any(d.category == "regressed" for d in diffs)
