"""The host's watch over a running case, on recorded events and a fake clock (pure logic)."""

from __future__ import annotations

import pytest

from hmmbench import cases
from hmmbench.cases.facts import TargetFacts
from hmmbench.cases.judge import judge_record
from hmmbench.cases.watch import CaseEnded, CaseWatch

BUG = ["kernel BUG at lib/test_hmm.c:850!", "Oops: invalid opcode: 0000 [#1] PREEMPT SMP NOPTI",
       "RIP: 0010:dmirror_exclusive+0x2a/0x300", "Call Trace:", " <TASK>", " dmirror_fops_unlocked_ioctl+0x5d/0x90",
       " __x64_sys_ioctl+0x94/0xd0", " </TASK>"]
WARN = ["WARNING: CPU: 0 PID: 35 at mm/memory.c:3890 remove_device_exclusive_entry+0x1a/0x200",
        "RIP: 0010:remove_device_exclusive_entry+0x1a/0x200", "---[ end trace 0000000000000000 ]---"]


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def watch(console: list[str] | None = None, clock: FakeClock | None = None) -> CaseWatch:
    lines = console if console is not None else []
    return CaseWatch("exclusive_basic", {"npages": 4}, lambda: lines, clock=clock or FakeClock())


def kmsg(lines: list[str]) -> dict:
    return {"event": "kmsg", "records": [{"seq": i, "text": t} for i, t in enumerate(lines)]}


def stuck(stack: list[str], tid: int = 40) -> dict:
    return {"event": "tick", "uninterruptible": [{"pid": 40, "tid": tid, "comm": "python3", "wchan": stack[0],
                                                  "stack": stack}]}


def test_a_fatal_report_ends_the_case_after_the_grace() -> None:
    clock = FakeClock()
    w = watch(clock=clock)
    w(kmsg(BUG))  # the report arrives; the case may still answer
    clock.now += 4.9
    w(None)
    clock.now += 0.2
    with pytest.raises(CaseEnded) as ended:
        w(None)
    rec = ended.value.record
    assert rec["status"] == "trouble" and "kernel BUG" in rec["reason"] and rec["kmsg"][0]["text"] == BUG[0]
    v = judge_record(cases.load_all()["exclusive_basic"], rec, TargetFacts())
    assert v.status == "FAIL" and "kernel BUG in dmirror_exclusive" in v.summary


def test_a_fatal_report_on_the_console_counts_too() -> None:
    clock = FakeClock()
    console: list[str] = []
    w = watch(console, clock)
    w(None)
    console += BUG
    w(None)
    clock.now += 6
    with pytest.raises(CaseEnded):
        w(None)


def test_a_warning_does_not_end_the_case() -> None:
    clock = FakeClock()
    w = watch(clock=clock)
    w(kmsg(WARN))
    clock.now += 600
    w(None)
    assert w.kmsg and w.record("hang", "x")["kmsg"][0]["text"] == WARN[0]


def test_the_same_stack_in_d_state_for_30s_is_a_hang_titled_by_its_stack() -> None:
    clock = FakeClock()
    w = watch(clock=clock)
    stack = ["__schedule", "schedule", "schedule_timeout", "dmirror_exclusive", "dmirror_fops_unlocked_ioctl",
             "__x64_sys_ioctl", "do_syscall_64"]
    for _ in range(29):
        w(stuck(stack))
        clock.now += 1.0
    w(stuck(stack))
    clock.now += 1.0
    with pytest.raises(CaseEnded) as ended:
        w(stuck(stack))
    rec = ended.value.record
    assert rec["status"] == "hang" and rec["stuck"]["stack"] == stack
    v = judge_record(cases.load_all()["exclusive_basic"], rec, TargetFacts())
    assert v.status == "FAIL" and v.summary == "hang: hang in dmirror_exclusive"


def test_a_task_that_moves_is_not_stuck() -> None:
    clock = FakeClock()
    w = watch(clock=clock)
    for i in range(120):  # two minutes in D, but never twice with the same stack for long
        w(stuck(["io_schedule", "folio_wait_bit_common", f"step_{i // 20}"]))
        clock.now += 1.0


def test_a_task_that_leaves_d_state_resets_its_clock() -> None:
    clock = FakeClock()
    w = watch(clock=clock)
    for i in range(100):
        w(stuck(["schedule", "dmirror_exclusive"]) if i % 10 else {"event": "tick", "uninterruptible": []})
        clock.now += 1.0


def test_a_compiler_suffix_is_not_part_of_the_hang_title() -> None:
    from hmmbench.cases.judge import hang_title

    assert hang_title({"stack": ["dmirror_exclusive.constprop.0", "dmirror_fops_unlocked_ioctl"]}) == \
        "hang in dmirror_exclusive"
