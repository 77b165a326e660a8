"""From a case's record to its verdict: kernel trouble first, then how the case ended, then its rule.

:func:`judge_record` is the single entry point. It needs only the agent's record (observations, or
skip/error, the kernel messages the case caused, the taint flags before and after), the target's facts
and the console lines of the case, so ``hmmbench judge results.json`` re-derives every verdict offline.
The harness's own findings (kernel messages, a hang, a lost target) are checks like any rule's, with
stable keys, so the gate pairs them across kernels too.
"""

from __future__ import annotations

from hmmbench.cases import kernel_reports
from hmmbench.cases.facts import TargetFacts
from hmmbench.cases.kernel_reports import CrashReport
from hmmbench.cases.registry import CaseSpec
from hmmbench.cases.verdict import Check, Outcome, Status, Verdict

# Taint flags that mean the kernel complained (W warning, D died/oops, B bad page, L soft lockup).
TROUBLE_TAINTS = "WDBL"

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


def kernel_trouble(record: dict, console_lines: list[str] | None) -> list[CrashReport]:
    """Reports from the case's kmsg records, else from the console lines printed during the case."""
    reports = kernel_reports.reports_from_kmsg(record.get("kmsg") or [])
    if not reports and console_lines:
        reports = kernel_reports.parse(console_lines)
    return reports


def new_taints(record: dict) -> str:
    """Trouble taint letters that appeared while the case ran."""
    before = kernel_reports.taint_letters(record.get("tainted_before"))
    after = kernel_reports.taint_letters(record.get("tainted_after"))
    return "".join(ch for ch in after if ch not in before and ch in TROUBLE_TAINTS)


def hang_title(task: dict) -> str:
    """``hang in dmirror_exclusive``: the first frame of a stuck task's stack that is not a sleep."""
    names = [f.split(".", 1)[0] for f in task.get("stack") or []]  # f.constprop.0 is f
    frames = [f for f in names if f not in _SLEEP_FRAMES and not f.startswith("__x64_sys_")]
    where = frames[0] if frames else (task.get("wchan") or "unknown")
    return f"hang in {where}"


def _fail(key: str, seen: str) -> Check:
    return Check(key, Outcome.FAIL, seen)


def _stuck_notes(record: dict) -> list[Check]:
    return [Check("uninterruptible task", Outcome.NOTE,
                  f"{t.get('comm')} tid {t.get('tid')}: {' <- '.join(t.get('stack') or [])}")
            for t in record.get("uninterruptible") or []]


def judge_record(spec: CaseSpec, record: dict, facts: TargetFacts, console_lines: list[str] | None = None) -> Verdict:
    """The verdict for one case run: kernel trouble first, then skip/error/hang, then the case's rule."""
    reports = kernel_trouble(record, console_lines)
    titles = "; ".join(dict.fromkeys(r.title for r in reports))
    status = record.get("status")
    if status == "hang":
        stuck = record.get("stuck")
        if stuck:
            seen = f"{record.get('reason')}; kernel stack: {' <- '.join(stuck.get('stack') or [])}"
            return Verdict(Status.FAIL, f"hang: {hang_title(stuck)}", [_fail("finished", seen)], reports)
        why = record.get("reason") or f"no answer within {record.get('timeout')}s"
        return Verdict(Status.FAIL, f"hang: {why} ({titles or 'no kernel message'})",
                       [_fail("finished", why), *_stuck_notes(record)], reports)
    if status == "trouble":
        what = titles or "kernel report"
        return Verdict(Status.FAIL, f"kernel trouble: {what} (case ended: {record.get('reason')})",
                       [_fail("kernel messages", what), _fail("finished", record.get("reason", "")),
                        *_stuck_notes(record)], reports)
    if status == "lost":
        return Verdict(Status.FAIL, "target lost during the case (possible crash): "
                       f"{titles or 'connection lost, no kernel message seen'}",
                       [_fail("target alive", record.get("reason", ""))], reports)
    inner = _rule_verdict(spec, record, facts)
    tainted = new_taints(record)
    if tainted and not reports:
        seen = f"{record.get('tainted_before')} -> {record.get('tainted_after')}"
        return Verdict(Status.FAIL, f"kernel tainted during the case ({tainted}) with no report captured",
                       [_fail("taint", seen), *inner.checks], disagreements=inner.disagreements)
    if reports:
        return Verdict(Status.FAIL, f"kernel trouble: {titles}", [_fail("kernel messages", titles), *inner.checks],
                       reports, inner.disagreements)
    return inner


def _rule_verdict(spec: CaseSpec, record: dict, facts: TargetFacts) -> Verdict:
    status = record.get("status")
    if status == "skip":
        return Verdict(Status.SKIP, record.get("reason", "skipped"))
    if status == "error":
        lines = (record.get("traceback") or "").splitlines()[-6:]
        return Verdict(Status.ERROR, record.get("reason", "error"),
                       [Check("guest traceback", Outcome.NOTE, line) for line in lines])
    if status != "observed":
        return Verdict(Status.ERROR, f"no observations (status {status!r})")
    try:
        return spec.judge()(record["observations"], facts)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        return Verdict(Status.ERROR, f"verdict rule could not read the observations: {exc!r}")
