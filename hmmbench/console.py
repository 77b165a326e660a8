"""Find kernel trouble in console output or kmsg records and name it like syzkaller does.

A report is an oops, BUG, WARNING, KASAN report, panic, soft/hard lockup, hung task or RCU stall.
Each gets a *title* ("WARNING in restore_exclusive_pte", "kernel BUG in folio_make_device_exclusive")
built from the first line and the faulting function, plus the top stack frames, so two failures can
be compared (same bug or a different one?) and a bisection can chase one signature and ignore others.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field

_TS = re.compile(r"^\s*\[\s*\d+\.\d+\]\s?")
_FRAME = re.compile(r"^\s*(\?\s+)?([A-Za-z0-9_.$]+)\+0x[0-9a-f]+/0x[0-9a-f]+")
_RIP = re.compile(r"RIP: [0-9a-f]{4}:([A-Za-z0-9_.$]+)\+0x")
_WARN_AT = re.compile(r"WARNING: CPU: \d+ PID: \d+ at (\S+) ([A-Za-z0-9_.$]+)\+0x")

# Frames that describe the reporting machinery, not the bug.
_SKIP_FRAMES = {
    "dump_stack", "dump_stack_lvl", "show_stack", "__warn", "warn_slowpath_fmt", "report_bug", "handle_bug",
    "exc_invalid_op", "asm_exc_invalid_op", "die", "do_trap", "do_error_trap", "panic", "__die", "oops_end",
    "page_fault_oops", "kernelmode_fixup_or_oops", "__bad_area_nosemaphore", "bad_area_nosemaphore",
    "do_user_addr_fault", "exc_page_fault", "asm_exc_page_fault", "kasan_report", "print_report",
    "watchdog_timer_fn", "__hrtimer_run_queues", "hrtimer_interrupt", "dump_page", "bad_page",
    "print_address_description", "kasan_check_range", "__asan_load8", "__asan_store8", "check_panic_on_warn",
    # Where a hung task sleeps says nothing about why: skip the scheduler's frames.
    "__schedule", "schedule", "schedule_timeout", "schedule_preempt_disabled", "io_schedule", "io_schedule_timeout",
    "__wait_for_common", "wait_for_completion", "wait_for_completion_killable", "rwsem_down_read_slowpath",
    "rwsem_down_write_slowpath", "__mutex_lock", "mutex_lock", "__mutex_lock_slowpath", "folio_wait_bit_common",
    "__folio_lock", "__folio_lock_killable", "context_switch", "__switch_to_asm", "__switch_to",
}

# (regex on a line, kind, title template); the first match on a line starts a report.
_STARTS: list[tuple[re.Pattern[str], str, str]] = [
    (re.compile(r"BUG: KASAN: ([a-z\-]+) in ([A-Za-z0-9_.$]+)"), "kasan", "KASAN: {0} in {1}"),
    (re.compile(r"kernel BUG at (\S+)!"), "bug", "kernel BUG in {func}"),
    (re.compile(r"WARNING: CPU: \d+ PID: \d+ at "), "warning", "WARNING in {func}"),
    (re.compile(r"BUG: kernel NULL pointer dereference"), "oops", "BUG: kernel NULL pointer dereference in {func}"),
    (re.compile(r"BUG: unable to handle page fault"), "oops", "BUG: unable to handle page fault in {func}"),
    (re.compile(r"BUG: soft lockup - CPU#\d+ stuck"), "soft_lockup", "BUG: soft lockup in {func}"),
    (re.compile(r"Watchdog detected hard LOCKUP"), "hard_lockup", "hard LOCKUP in {func}"),
    (re.compile(r"INFO: task .* blocked for more than \d+ seconds"), "hung_task", "INFO: task hung in {func}"),
    (re.compile(r"rcu: INFO: rcu_\w+ (self-)?detected stall"), "rcu_stall", "INFO: rcu detected stall in {func}"),
    (re.compile(r"BUG: Bad page (state|map)"), "bad_page", "BUG: Bad page {0} in {func}"),
    (re.compile(r"BUG: (sleeping function called from invalid context|scheduling while atomic)"), "bug",
     "BUG: {0} in {func}"),
    (re.compile(r"general protection fault"), "oops", "general protection fault in {func}"),
    (re.compile(r"Oops: "), "oops", "Oops in {func}"),
    (re.compile(r"Kernel panic - not syncing: (.*)"), "panic", "kernel panic: {0}"),
]
_DIE_BANNER = re.compile(r"^Oops: .*\[#\d+\]")
_END = re.compile(r"---\[ end trace|^\s*</TASK>|Kernel Offset:|---\[ end Kernel panic")


@dataclass
class CrashReport:
    """One piece of kernel trouble: its title (signature), kind, top frames and the excerpt."""

    title: str
    kind: str
    frames: list[str] = field(default_factory=list)
    first_line: str = ""
    excerpt: list[str] = field(default_factory=list)
    location: str | None = None

    @property
    def signature(self) -> str:
        return self.title

    def to_dict(self) -> dict:
        return asdict(self)


def strip_timestamp(line: str) -> str:
    return _TS.sub("", line.rstrip("\r\n"))


def parse(lines: list[str], max_excerpt: int = 80) -> list[CrashReport]:
    """All reports in ``lines`` (console text or kmsg record texts), in order."""
    clean = [strip_timestamp(line) for line in lines]
    reports: list[CrashReport] = []
    i = 0
    while i < len(clean):
        match = _match_start(clean[i])
        if match is None:
            i += 1
            continue
        kind, template, groups = match
        end = i + 1
        while end < len(clean) and end - i < max_excerpt:
            if _END.search(clean[end]):
                end += 1
                break
            if end > i + 1 and _match_start(clean[end]) is not None and "Kernel panic" not in clean[end]:
                if not _is_own_die_banner(kind, clean[i:end], clean[end]):
                    break
            end += 1
        excerpt = clean[i:end]
        frames = _frames(excerpt)
        func = _culprit(excerpt, frames)
        location = None
        if kind == "warning" and (m := _WARN_AT.search(clean[i])):
            location, func = m.group(1), m.group(2)
        elif kind == "bug" and (m := re.search(r"kernel BUG at (\S+)!", clean[i])):
            location = m.group(1)
        title = template.format(*groups, func=func or "unknown")
        if kind == "panic" and reports:
            # "Kernel panic - not syncing: Fatal exception" follows the oops that caused it.
            reports[-1].excerpt += excerpt
            i = end
            continue
        reports.append(CrashReport(title, kind, frames[:5], clean[i], excerpt, location))
        i = end
    return reports


def _is_own_die_banner(kind: str, so_far: list[str], line: str) -> bool:
    """The die() banner ("Oops: Oops: 0000 [#1] ...") that a BUG/oops headline printed a few lines earlier."""
    return (kind in ("bug", "oops") and bool(_DIE_BANNER.match(line))
            and not any(_DIE_BANNER.match(x) for x in so_far))


def _match_start(line: str) -> tuple[str, str, tuple[str, ...]] | None:
    for regex, kind, template in _STARTS:
        if m := regex.search(line):
            return kind, template, m.groups()
    return None


def _frames(excerpt: list[str]) -> list[str]:
    """The stack's function names, reporting machinery skipped.

    Frames marked ``?`` are ones the unwinder is not sure of; they are used only when the trace has
    no reliable frame at all (a kernel without a frame-pointer or ORC unwinder marks every frame so).
    """
    reliable, guessed = [], []
    in_trace = False
    for line in excerpt:
        if "Call Trace:" in line:
            in_trace = True
            continue
        if in_trace and (m := _FRAME.match(line)):
            name = m.group(2).split(".")[0]
            if name not in _SKIP_FRAMES and not name.startswith(("entry_SYSCALL", "do_syscall")):
                (guessed if m.group(1) else reliable).append(name)
    return reliable or guessed


def _culprit(excerpt: list[str], frames: list[str]) -> str | None:
    for line in excerpt:
        if m := _RIP.search(line):
            name = m.group(1).split(".")[0]
            if name not in _SKIP_FRAMES:
                return name
    return frames[0] if frames else None


def reports_from_kmsg(records: list[dict]) -> list[CrashReport]:
    return parse([r.get("text", "") for r in records])


TAINT_FLAGS = "PFSRMBUDAWCIOELKXTN"  # bit order of /proc/sys/kernel/tainted (P=0 ... )


def taint_letters(value: int | None) -> str:
    if not value:
        return ""
    return "".join(ch for bit, ch in enumerate(TAINT_FLAGS) if value >> bit & 1)
