"""Watching a running case from the host: end it as soon as kernel trouble has wedged it.

Why: after an oops or a BUG the case's process often sits in D state holding locks, and a hang in an
ioctl never answers; waiting out the case timeout then costs minutes per case (a BUG in mprotect cost
300 s of a run, a kernel whose EXCLUSIVE ioctl hangs 20 minutes for one run). As syzkaller's monitor
does, the host reads what the target says while the case runs: the kernel messages the agent streams
(and, for QEMU guests, the serial console), and once a second the case's tasks in uninterruptible
sleep with their kernel stacks. Two rules, both host decisions over recorded observations:

* a *fatal* report (BUG, oops, panic, lockup, hung task, RCU stall ...) ends the case if it has not
  finished ``grace`` seconds after the report (a task that survives its own report may still answer);
* a task of the case in D state with the *same* kernel stack for ``stuck_after`` seconds is a hang, even
  when the kernel prints nothing (a task looping in an uninterruptible sleep never trips the hung-task
  detector), titled by the top frame that is not the scheduler's.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from hmmbench.cases import kernel_reports


class CaseEnded(Exception):
    """The host's watch ended a running case early (a kernel report that wedges it, or a hang).

    ``record`` is what the host knows of the case at that moment (its status, the kernel messages and
    stuck tasks the agent streamed); the agent server is dropped with the case.
    """

    def __init__(self, record: dict) -> None:
        super().__init__(record.get("reason", "case ended by the host"))
        self.record = record


@dataclass
class CaseWatch:
    """The host's view of one running case; an :data:`hmmbench.targets.agent.EventHook`."""

    case: str
    params: dict
    console_lines: Callable[[], list[str]]  # the console printed since the case started ([] without one)
    grace: float = 5.0
    stuck_after: float = 30.0
    clock: Callable[[], float] = time.monotonic
    kmsg: list[dict] = field(default_factory=list)
    uninterruptible: list[dict] = field(default_factory=list)  # the last sample of D-state tasks
    _started: float = 0.0
    _fatal_at: float | None = None
    _fatal: kernel_reports.CrashReport | None = None
    _stuck_since: dict[tuple, float] = field(default_factory=dict)
    _parsed: tuple[int, int] = (-1, -1)

    def __post_init__(self) -> None:
        self._started = self.clock()

    def __call__(self, event: dict | None) -> None:
        now = self.clock()
        if event is not None and event.get("event") == "kmsg":
            self.kmsg += event.get("records") or []
        elif event is not None and event.get("event") == "tick":
            self._sample(event.get("uninterruptible") or [], now)
        self._look_for_trouble(now)
        if self._fatal is not None and self._fatal_at is not None and now - self._fatal_at >= self.grace:
            raise CaseEnded(self.record("trouble", f"{self._fatal.title}: the case had not finished "
                                        f"{self.grace:.0f}s after the report"))
        for task in self.uninterruptible:
            since = self._stuck_since.get(self._key(task))
            if since is not None and now - since >= self.stuck_after:
                rec = self.record("hang", f"{task.get('comm')} (tid {task.get('tid')}) in D state with the same "
                                  f"kernel stack for {now - since:.0f}s")
                rec["stuck"] = {**task, "seconds": round(now - since, 1)}
                raise CaseEnded(rec)

    @staticmethod
    def _key(task: dict) -> tuple:
        return task.get("tid"), tuple(task.get("stack") or [task.get("wchan") or ""])

    def _sample(self, tasks: list[dict], now: float) -> None:
        keys = {self._key(t) for t in tasks}
        self._stuck_since = {k: v for k, v in self._stuck_since.items() if k in keys}
        for key in keys:
            self._stuck_since.setdefault(key, now)
        self.uninterruptible = tasks

    def _look_for_trouble(self, now: float) -> None:
        if self._fatal is not None:
            return
        lines = self.console_lines()
        if (len(self.kmsg), len(lines)) == self._parsed:
            return
        self._parsed = (len(self.kmsg), len(lines))
        for report in kernel_reports.parse([r.get("text", "") for r in self.kmsg]) + kernel_reports.parse(lines):
            if report.fatal:
                self._fatal, self._fatal_at = report, now
                return

    def record(self, status: str, reason: str) -> dict:
        """The case's record as the host knows it now (for a case the host ended, or one that timed out)."""
        rec = {"case": self.case, "params": self.params, "status": status, "reason": reason,
               "seconds": round(self.clock() - self._started, 1), "kmsg": list(self.kmsg)}
        if self.uninterruptible:
            rec["uninterruptible"] = self.uninterruptible
        return rec
