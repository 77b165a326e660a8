"""Several targets at once: the case variants of one run spread over workers (QEMU guests or SSH machines).

One queue of work items, one thread per worker. Threads, not processes: a worker spends its time
waiting (on SSH, on a TCG guest), so the GIL is not the limit, and the results land in one list without
any pickling. Each worker boots, uses and stops its own guest in its own thread, for a reason that is
easy to break: QEMU is started with PR_SET_PDEATHSIG, which fires when the *thread* that started it
exits, so a guest booted by one thread and used by another would die with the first.

A worker whose target cannot be restarted (after a hang or a lost connection) stops; the others take
its share. Items no worker could take become ERROR entries with the reason.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Generic, TypeVar

from hmmbench import progress

S = TypeVar("S")  # a session: QemuSession or RemoteSession
I = TypeVar("I")  # noqa: E741 - a work item


@dataclass
class WorkerFailure:
    worker: str
    stage: str  # "boot" or "restart"
    error: BaseException


class WorkQueue(Generic[I]):
    """Items in their suite order; results are returned in that order whatever worker ran them."""

    def __init__(self, items: Iterable[I]) -> None:
        self._items = list(items)
        self._pending = deque(range(len(self._items)))
        self._results: dict[int, object] = {}
        self._lock = threading.Lock()

    def take(self) -> tuple[int, I] | None:
        with self._lock:
            if not self._pending:
                return None
            index = self._pending.popleft()
            return index, self._items[index]

    def finish(self, index: int, result: object) -> None:
        with self._lock:
            self._results[index] = result

    def untaken(self) -> list[tuple[int, I]]:
        with self._lock:
            return [(i, self._items[i]) for i in self._pending]

    def results(self) -> list:
        with self._lock:
            return [self._results[i] for i in sorted(self._results)]


def drive(sessions: list[S], queue: WorkQueue[I], name: Callable[[S], str],
          work: Callable[[S, I], tuple[object, str | None]]) -> list[WorkerFailure]:
    """Run every item of ``queue`` on one of ``sessions``.

    ``work(session, item)`` runs one item and returns (its result, a restart reason when the target must
    be restarted (a hang, a lost connection) or None). Sessions that are not booted yet are booted by
    their worker. With one session everything runs in the calling thread.
    """
    failures: list[WorkerFailure] = []
    lock = threading.Lock()

    def worker(session: S) -> None:
        stage = "boot"
        try:
            if getattr(session, "agent", None) is None:
                session.boot()
            while (taken := queue.take()) is not None:
                index, item = taken
                result, reason = work(session, item)
                queue.finish(index, result)
                if reason:
                    stage = "restart"
                    session.restart(reason)
                    stage = "run"
        except Exception as exc:  # noqa: BLE001 - a worker's failure is reported, the others go on
            if stage != "boot" or len(sessions) > 1:  # a lone boot failure is the run's error, printed once
                progress.say(f"{name(session)}: stopped at {stage}: {exc}")
            with lock:
                failures.append(WorkerFailure(name(session), stage, exc))
        finally:
            session.close()

    if len(sessions) == 1:
        worker(sessions[0])
        return failures
    threads = [threading.Thread(target=worker, args=(s,), name=f"worker-{name(s)}", daemon=True) for s in sessions]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return failures
