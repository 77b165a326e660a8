"""Compare two runs of the suite: what got fixed, what regressed, what changed although the verdict did not.

Categories per case: ``fixed`` (FAIL -> PASS), ``regressed`` (PASS -> FAIL, or a kernel message the base
did not print), ``still failing``, ``still passing``, and ``changed`` for any other transition (e.g. SKIP
-> PASS). *Changed observations* come from the verdicts' evidence: every check and note is a line
``name: what was seen``, and a line whose seen-text differs between the two runs is an observation that
changed (a swap type, an errno, the number of PTEs converted ...).
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import asdict, dataclass, field

CATEGORY_ORDER = ["regressed", "fixed", "changed", "still failing", "still passing", "only in one run"]
_LINE = re.compile(r"^(ok  |FAIL|note) (.*)$")


@dataclass
class CaseDiff:
    id: str
    case: str
    base: str
    patched: str
    category: str
    changes: list[dict] = field(default_factory=list)  # {"what", "base", "patched"}
    new_messages: list[str] = field(default_factory=list)
    base_summary: str = ""
    patched_summary: str = ""

    def to_dict(self) -> dict:
        return asdict(self)


def _split(rest: str, level: int) -> tuple[str, str]:
    """``rest`` cut at its ``level``-th ``": "`` (0: the first) into (name, seen); (rest, "") without one."""
    parts = rest.split(": ")
    if len(parts) == 1:
        return rest, ""
    n = min(level + 1, len(parts) - 1)
    return ": ".join(parts[:n]), ": ".join(parts[n:])


def evidence_map(verdict: dict) -> dict[str, str]:
    """``{check name or note: seen}`` from a verdict's evidence lines.

    A line is cut at its first ``": "``. Check names may contain ``": "`` too (``shared_anon: refused with
    EBUSY``, ``shared_anon: data intact``), and so may seen-texts (``seen {29: 4}``, a kernel message
    title): lines whose names would collide are cut one ``": "`` further until they no longer do.
    """
    lines = []
    for line in verdict.get("evidence", []):
        m = _LINE.match(line)
        if m:
            kind, rest = m.groups()
            lines.append(("note: " if kind == "note" else "", rest))
    levels = [0] * len(lines)
    while True:
        keys = [pre + _split(rest, lv)[0] for (pre, rest), lv in zip(lines, levels, strict=True)]
        counts = Counter(keys)
        deeper = [i for i, (k, (_pre, rest)) in enumerate(zip(keys, lines, strict=True))
                  if counts[k] > 1 and levels[i] + 1 < rest.count(": ")]
        if not deeper:
            break
        for i in deeper:
            levels[i] += 1
    out: dict[str, str] = {}
    for (pre, rest), lv in zip(lines, levels, strict=True):
        name, seen = _split(rest, lv)
        out[pre + name] = seen
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
    return "changed"


def _titles(verdict: dict) -> list[str]:
    return [c.get("title", "") for c in verdict.get("crashes", [])]


def diff_runs(base: dict, patched: dict) -> list[CaseDiff]:
    """One CaseDiff per case id found in either run, in the order the cases ran."""
    b_by = {c["id"]: c for c in base["cases"]}
    p_by = {c["id"]: c for c in patched["cases"]}
    order = list(dict.fromkeys([c["id"] for c in base["cases"]] + [c["id"] for c in patched["cases"]]))
    out = []
    for cid in order:
        b, p = b_by.get(cid), p_by.get(cid)
        if b is None or p is None:
            present = b or p
            assert present is not None
            out.append(CaseDiff(cid, present["case"], b["verdict"]["status"] if b else "-",
                                p["verdict"]["status"] if p else "-", "only in one run"))
            continue
        bv, pv = b["verdict"], p["verdict"]
        new = [t for t in _titles(pv) if t not in _titles(bv)]
        bm, pm = evidence_map(bv), evidence_map(pv)
        changes = [{"what": k, "base": bm.get(k, "-"), "patched": pm.get(k, "-")}
                   for k in dict.fromkeys([*bm, *pm]) if bm.get(k) != pm.get(k)]
        out.append(CaseDiff(cid, b["case"], bv["status"], pv["status"], categorize(bv["status"], pv["status"], new),
                            changes, new, bv["summary"], pv["summary"]))
    return out


def regressed(diffs: list[CaseDiff]) -> bool:
    return any(d.category == "regressed" for d in diffs)
