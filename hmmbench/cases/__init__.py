"""Host-side halves of the cases: which variants run, and the verdict rule applied to observations.

Guest modules (:mod:`hmmbench.guest.cases`) observe; the rules here judge. :func:`judge_record` is
the single entry point: it turns an agent record (observations, or skip/error, plus the kernel
messages printed while the case ran) into a :class:`~hmmbench.cases.verdict.Verdict`. Because it needs only
the record and the target's facts, ``hmmbench judge results.json`` can re-run every rule offline.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field

from hmmbench.cases import kernel_reports as console
from hmmbench.cases.verdict import Status, Verdict


@dataclass(frozen=True)
class CaseSpec:
    """A case as the runner sees it."""

    name: str
    description: str
    rule: str
    variants: list[dict] = field(default_factory=lambda: [{}])
    timeout: float = 120.0

    def variant_id(self, params: dict) -> str:
        if not params:
            return self.name
        inner = ",".join(f"{k}={v}" for k, v in sorted(params.items()))
        return f"{self.name}[{inner}]"

    def judge(self) -> Callable[[dict, dict], Verdict]:
        return importlib.import_module(f"hmmbench.cases.{self.name}").judge


CASES: dict[str, CaseSpec] = {}

# The order cases run in: cheap, non-destructive ones first; the ones that stress the kernel last.
CASE_ORDER = [
    "exclusive_basic", "exclusive_mprotect", "exclusive_fork", "exclusive_thp", "exclusive_shared_and_file",
    "exclusive_hugetlb", "exclusive_bad_args", "exclusive_two_devices", "exclusive_repeat", "exclusive_device_rw",
    "exclusive_exit",
    "exclusive_concurrent_cpu", "exclusive_mapcount", "exclusive_migration", "exclusive_reclaim", "exclusive_ksm",
    "exclusive_soft_dirty",
]


def register(spec: CaseSpec) -> CaseSpec:
    CASES[spec.name] = spec
    return spec


def load_all() -> dict[str, CaseSpec]:
    for name in CASE_ORDER:
        importlib.import_module(f"hmmbench.cases.{name}")
    return CASES


def kernel_trouble(record: dict, console_lines: list[str] | None) -> list[console.CrashReport]:
    """Reports from the case's kmsg records, else from the console lines printed during the case."""
    reports = console.reports_from_kmsg(record.get("kmsg") or [])
    if not reports and console_lines:
        reports = console.parse(console_lines)
    return reports


# Taint flags that mean the kernel complained (W warning, D died/oops, B bad page, L soft lockup).
TROUBLE_TAINTS = "WDBL"


def new_taints(record: dict) -> str:
    """Trouble taint letters that appeared while the case ran."""
    before = console.taint_letters(record.get("tainted_before"))
    after = console.taint_letters(record.get("tainted_after"))
    return "".join(ch for ch in after if ch not in before and ch in TROUBLE_TAINTS)


def judge_record(spec: CaseSpec, record: dict, target: dict, console_lines: list[str] | None = None) -> Verdict:
    """The verdict for one case run: kernel trouble first, then skip/error/hang, then the case's rule."""
    reports = kernel_trouble(record, console_lines)
    crashes = [r.to_dict() for r in reports]
    tainted = new_taints(record)
    if tainted and not reports:
        inner = _inner_verdict(spec, record, target)
        seen = f"FAIL taint: {record.get('tainted_before')} -> {record.get('tainted_after')}"
        return Verdict(Status.FAIL, f"kernel tainted during the case ({tainted}) with no report captured",
                       [seen] + inner.evidence, ["taint"] + inner.failed_checks)
    status = record.get("status")
    if status == "hang":
        stuck = record.get("stuck")
        if stuck:
            title = hang_title(stuck)
            seen = f"FAIL finished: {record.get('reason')}; kernel stack: {' <- '.join(stuck.get('stack') or [])}"
            return Verdict(Status.FAIL, f"hang: {title}", [seen], ["hang"], crashes)
        title = reports[0].title if reports else "no kernel message"
        why = record.get("reason") or f"no answer within {record.get('timeout')}s"
        return Verdict(Status.FAIL, f"hang: {why} ({title})",
                       [f"FAIL finished: {why}"] + _stuck_lines(record), ["hang"], crashes)
    if status == "trouble":
        titles = "; ".join(dict.fromkeys(r.title for r in reports)) or "kernel report"
        return Verdict(Status.FAIL, f"kernel trouble: {titles} (case ended: {record.get('reason')})",
                       [f"FAIL kernel messages: {titles}", f"FAIL finished: {record.get('reason')}"]
                       + _stuck_lines(record), ["kernel messages", "finished"], crashes)
    if status == "lost":
        title = reports[0].title if reports else "connection lost, no kernel message seen"
        return Verdict(Status.FAIL, f"target lost during the case (possible crash): {title}",
                       [f"FAIL target alive: {record.get('reason')}"], ["target lost"], crashes)
    if reports:
        titles = "; ".join(dict.fromkeys(r.title for r in reports))
        inner = _inner_verdict(spec, record, target)
        evidence = [f"FAIL kernel messages: {titles}"] + inner.evidence
        return Verdict(Status.FAIL, f"kernel trouble: {titles}", evidence, ["kernel messages"] + inner.failed_checks,
                       crashes)
    return _inner_verdict(spec, record, target)


# Where a task sleeps says nothing about why it cannot go on: the scheduler's and the sleeping
# primitives' frames are skipped when a hang is titled by its stack.
_SLEEP_FRAMES = {
    "__schedule", "schedule", "schedule_timeout", "schedule_timeout_uninterruptible", "schedule_preempt_disabled",
    "io_schedule", "io_schedule_timeout", "__wait_for_common", "wait_for_completion", "wait_for_completion_killable",
    "wait_for_completion_timeout", "rwsem_down_read_slowpath", "rwsem_down_write_slowpath", "down_read", "down_write",
    "down_read_killable", "down_write_killable", "__mutex_lock", "mutex_lock", "__mutex_lock_slowpath",
    "mutex_lock_killable", "folio_wait_bit_common", "__folio_lock", "__folio_lock_killable", "folio_wait_bit",
    "context_switch", "__switch_to_asm", "__switch_to", "msleep", "schedule_hrtimeout_range", "usleep_range_state",
    "ret_from_fork", "ret_from_fork_asm", "do_syscall_64", "entry_SYSCALL_64_after_hwframe", "x64_sys_call",
}


def hang_title(task: dict) -> str:
    """``hang in dmirror_exclusive``: the first frame of a stuck task's stack that is not a sleep."""
    frames = [f for f in task.get("stack") or [] if f not in _SLEEP_FRAMES and not f.startswith("__x64_sys_")]
    where = frames[0] if frames else (task.get("wchan") or "unknown")
    return f"hang in {where}"


def _stuck_lines(record: dict) -> list[str]:
    return [f"note uninterruptible task: {t.get('comm')} tid {t.get('tid')}: {' <- '.join(t.get('stack') or [])}"
            for t in record.get("uninterruptible") or []]


def _inner_verdict(spec: CaseSpec, record: dict, target: dict) -> Verdict:
    status = record.get("status")
    if status == "skip":
        return Verdict(Status.SKIP, record.get("reason", "skipped"))
    if status == "error":
        return Verdict(Status.ERROR, record.get("reason", "error"), (record.get("traceback") or "").splitlines()[-6:])
    if status != "observed":
        return Verdict(Status.ERROR, f"no observations (status {status!r})")
    try:
        return spec.judge()(record["observations"], target)
    except (KeyError, TypeError, ValueError) as exc:
        return Verdict(Status.ERROR, f"verdict rule could not read the observations: {exc!r}")


