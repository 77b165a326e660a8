"""What "mm: fixes for device-exclusive entries (hmm)" is predicted to change, checked on two runs.

Each prediction comes from the project's facts file (shared/notes/device-exclusive-facts.md, the
series patch by patch) and is checked against the raw observations of a run before the series and a
run after it: *confirmed*, *refuted* (the facts file is wrong there, or the kernel is), or *not
checked* (a case was skipped or not run). The values seen on both sides are always shown.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

from hmmbench.cases.exclusive_mprotect import restored_writability
from hmmbench.cases.rules import decoded, errname, pfns
from hmmbench.reports.results import RunResult


@dataclass(frozen=True)
class Prediction:
    name: str
    source: str
    before: str
    after: str
    case: str
    observe: Callable[[dict], object]  # observations -> the value compared


def _types(entries: list[int]) -> list[int]:
    return sorted(Counter(d.get("swap_type") for d in decoded(entries) if d["swap"]))


def _thp(o: dict) -> str:
    head = sum(1 for d in decoded(o["after_head"]) if not d["present"])
    tail = sum(1 for d in decoded(o["after_tail"]) if not d["present"])
    return (f"head: ret {o['head']['ret']} {head} PTE(s) exclusive; "
            f"tail: ret {o['tail']['ret']} ({errname(o['tail']['errno'])}) {tail} PTE(s) exclusive")


def _migration(o: dict) -> str:
    moved = sum(a != b for a, b in zip(pfns(o["before"]["pagemap"]), pfns(o["after_cpu"]["pagemap"]), strict=True))
    ok = all(w.get("ok") for w in o["writes"]) and bool(o["writes"])
    return f"{o['method']} {'succeeded' if ok else 'failed'}, {moved}/{o['npages']} moved"


def _private_types(o: dict) -> str:
    """The swap types of a writable and a read-only device-private entry, from the case's calibration."""
    probes = {p["how"]: p for p in o["calibration"]["probes"][str(o["local"])]}
    return str([decoded([probes[how]["pagemap"]])[0].get("swap_type") for how in ("write", "read-only")])


def _device_thp(o: dict) -> str:
    """How many of the 512 pages the owning device's SNAPSHOT saw as one PMD-level entry after migration."""
    view = next(v for v in o["views"] if v["label"] == "after MIGRATE_TO_DEV")
    flags = view["devices"][str(o["local"])]["snapshot"]
    return f"{sum(1 for b in flags if b != 0xFF and b & 0x04)}/{len(flags)} pages PMD-level"


PREDICTIONS: list[Prediction] = [
    Prediction("swap type of a writable device-exclusive entry", "patch 6 (single SWP_DEVICE_EXCLUSIVE)",
               "[29]", "[30]", "exclusive_basic[npages=4]", lambda o: str(_types(o["while_exclusive"]["pagemap"]))),
    Prediction("swap type after mprotect(PROT_READ) of an exclusive entry", "patch 6",
               "[30] (converted to EXCLUSIVE_READ)", "[30] (unchanged)", "exclusive_mprotect",
               lambda o: str(_types(o["a_after_mprotect"]))),
    Prediction("PTE restored after mprotect RO->RW and a CPU read", "patch 5 (can_change_pte_writable)",
               "read-only", "writable", "exclusive_mprotect", restored_writability),
    Prediction("one page of a THP made exclusive", "patch 4 (folio_walk instead of rmap walk)",
               "head: whole folio converted; tail: EBUSY", "exactly one PTE", "exclusive_thp", _thp),
    Prediction("kpagecount of a device-exclusive page", "patch 16 (keep mapcount untouched)",
               "[0, 0, 0, 0]", "[1, 1, 1, 1]", "exclusive_mapcount",
               lambda o: str(o["while_exclusive"]["kpagecount"])),
    Prediction("errno for MAP_SHARED anonymous memory", "patch 3 (reject non-anon after GUP)", "EBUSY", "EOPNOTSUPP",
               "exclusive_shared_and_file",
               lambda o: errname(o["mappings"]["shared_anon"]["exclusive"]["errno"])),
    Prediction("errno for a shared file mapping (ext4)", "patch 3", "EBUSY", "EOPNOTSUPP", "exclusive_shared_and_file",
               lambda o: errname(o["mappings"]["ext4_shared"]["exclusive"]["errno"])),
    Prediction("errno for hugetlb memory", "patches 1-3 (hugetlb fencing)", "EBUSY", "EOPNOTSUPP",
               "exclusive_hugetlb", lambda o: errname(o["one_page"]["errno"])),
    Prediction("errno for a read-only mapping (GUP error)", "patch 3 (GUP errors propagate)", "EBUSY", "EFAULT",
               "exclusive_bad_args", lambda o: errname(o["attempts"]["read_only"]["cmd"]["errno"])),
    Prediction("migration (soft offline) of exclusive pages", "patches 11 and 16", "fails", "succeeds",
               "exclusive_migration", _migration),
    # The device swap types sit at the top of the 5-bit type space, below MAX_SWAPFILES's complement:
    # one device type fewer (patch 6) moves the device-private ones up by one.
    Prediction("swap types of device-private entries (write, read)", "patch 6 (SWP_DEVICE_NUM 4 -> 3)",
               "[27, 28]", "[28, 29]", "migrate_to_device[memory=private]", _private_types),
    # Not from the series: device-private THP (merged in 6.19) lies between the two default kernels too.
    Prediction("a 2 MiB THP migrated to device-private memory", "device-private THP (Linux 6.19, not the series)",
               "0/512 pages PMD-level (split)", "512/512 pages PMD-level", "device_thp[fill=data]", _device_thp),
]


def _observations(run: RunResult, case_id: str) -> dict | None:
    case = run.case(case_id)
    return case.observations if case else None


def _matches(value: str, expected: str) -> bool:
    """A prediction's expectation is matched by its leading token(s) (``[30] (unchanged)`` matches ``[30]``)."""
    key = expected.split(" (")[0]
    if key in ("fails", "succeeds"):
        return ("succeeded" if key == "succeeds" else "failed") in value
    if key == "exactly one PTE":
        # (?<!\d): "511 PTE(s) exclusive" is not one PTE.
        one_each = len(re.findall(r"(?<!\d)1 PTE\(s\) exclusive", value)) == 2
        return one_each and "ret 0" in value and "ret -1" not in value
    if key.startswith("head: whole folio"):
        return "512 PTE(s) exclusive" in value and "EBUSY" in value
    return value == key


@dataclass
class PredictionCheck:
    """A prediction checked on a run before the series and a run after it."""

    name: str
    source: str
    case: str
    predicted_before: str
    predicted_after: str
    seen_before: str | None = None
    seen_after: str | None = None
    status: str = "not checked"  # confirmed, refuted, not checked (with why)


def check_all(base: RunResult, patched: RunResult) -> list[PredictionCheck]:
    """Every prediction with the values seen before and after and whether both match."""
    out = []
    for p in PREDICTIONS:
        ob, op = _observations(base, p.case), _observations(patched, p.case)
        row = PredictionCheck(p.name, p.source, p.case, p.before, p.after)
        out.append(row)
        if ob is None or op is None:
            continue
        try:
            row.seen_before, row.seen_after = str(p.observe(ob)), str(p.observe(op))
        except (KeyError, TypeError, ValueError) as exc:
            row.status = f"not checked ({exc!r})"
            continue
        ok = _matches(row.seen_before, p.before) and _matches(row.seen_after, p.after)
        row.status = "confirmed" if ok else "refuted"
    return out
