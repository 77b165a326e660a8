"""The worker engine and the inventory file, with fake sessions (pure logic: no guest, no SSH).

FakeSession is a fake: it records what it was asked to do, and fails on purpose where a test says so.
"""

from __future__ import annotations

import threading
import time

import pytest

from hmmbench.errors import HarnessError
from hmmbench.targets import inventory, workers


class FakeSession:
    """A fake session: boot/restart/close are recorded; ``fail_restart`` makes restart raise."""

    def __init__(self, label: str, fail_boot: bool = False, fail_restart: bool = False,
                 boot_seconds: float = 0.0) -> None:
        self.label, self.fail_boot, self.fail_restart = label, fail_boot, fail_restart
        self.boot_seconds = boot_seconds
        self.agent = None
        self.ran: list[int] = []
        self.closed = False
        self.threads: set[str] = set()

    def boot(self) -> None:
        self.threads.add(threading.current_thread().name)
        time.sleep(self.boot_seconds)
        if self.fail_boot:
            raise HarnessError(f"{self.label} does not boot")
        self.agent = object()

    def restart(self, why: str) -> None:
        if self.fail_restart:
            raise HarnessError(f"{self.label} cannot restart after {why}")
        self.boot()

    def close(self) -> None:
        self.threads.add(threading.current_thread().name)
        self.closed = True


def _work(hang_on: set[int], hangs_on: str | None = None):
    """Items in ``hang_on``, and every item run by the session labelled ``hangs_on``, hang."""
    def work(session: FakeSession, item: int) -> tuple[dict, str | None]:
        session.ran.append(item)
        hung = item in hang_on or session.label == hangs_on
        return {"item": item, "by": session.label}, (f"item {item} hung" if hung else None)
    return work


def test_every_item_runs_once_in_suite_order_across_workers() -> None:
    sessions = [FakeSession("w1"), FakeSession("w2"), FakeSession("w3")]
    queue = workers.WorkQueue(range(20))
    failures = workers.drive(sessions, queue, lambda s: s.label, _work(set()))
    assert failures == []
    assert [r["item"] for r in queue.results()] == list(range(20))
    assert sorted(i for s in sessions for i in s.ran) == list(range(20))
    assert all(s.closed for s in sessions)
    # each worker booted and closed its guest in its own thread (PR_SET_PDEATHSIG follows the thread)
    assert all(len(s.threads) == 1 and next(iter(s.threads)).startswith("worker-") for s in sessions)


def test_a_worker_that_cannot_restart_leaves_its_share_to_the_others() -> None:
    bad, good = FakeSession("bad", fail_restart=True), FakeSession("good", boot_seconds=0.3)  # bad takes item 0
    queue = workers.WorkQueue(range(10))
    failures = workers.drive([bad, good], queue, lambda s: s.label, _work(set(), hangs_on="bad"))
    assert len(queue.results()) == 10 and queue.untaken() == []
    assert len(bad.ran) == 1 and len(good.ran) == 9  # bad ran one item, hung, could not restart, stopped
    assert [(f.worker, f.stage) for f in failures] == [("bad", "restart")]
    assert bad.closed and good.closed


def test_one_session_runs_in_the_calling_thread_and_reports_what_was_not_run() -> None:
    s = FakeSession("only", fail_restart=True)
    queue = workers.WorkQueue(range(5))
    failures = workers.drive([s], queue, lambda x: x.label, _work({2}))
    assert s.threads == {threading.current_thread().name}
    assert [r["item"] for r in queue.results()] == [0, 1, 2]
    assert [i for i, _ in queue.untaken()] == [3, 4]
    assert failures[0].stage == "restart" and "item 2 hung" in str(failures[0].error)


def test_boot_failures_are_reported_per_worker() -> None:
    queue = workers.WorkQueue(range(3))
    failures = workers.drive([FakeSession("a", fail_boot=True), FakeSession("b")], queue, lambda s: s.label,
                             _work(set()))
    assert [(f.worker, f.stage) for f in failures] == [("a", "boot")]
    assert len(queue.results()) == 3


INVENTORY = """
[[target]]
url = "ssh://root@lab-a"
identity = "~/.ssh/lab"

[[target]]
url = "ssh://tester@lab-b:2222"
accept_new_host_key = true
"""


def test_inventory_parses_targets_and_options() -> None:
    a, b = inventory.parse(INVENTORY)
    assert str(a.url) == "ssh://root@lab-a:22" and a.options.identity is not None
    assert a.options.identity.name == "lab" and not a.options.accept_new_host_key
    assert (b.url.user, b.url.port, b.options.accept_new_host_key) == ("tester", 2222, True)


@pytest.mark.parametrize(("text", "message"), [
    ("", "no [[target]] tables"),
    ("[[target]]\nidentity = 'k'\n", "target 1 has no url"),
    ("[[target]]\nurl = 'ssh://a'\nport = 3\n", "unknown key(s) port"),
    ("[[target]]\nurl = 'http://a'\n", "expected ssh://"),
    ("[[target]]\nurl = 'ssh://a'\n[[target]]\nurl = 'ssh://root@a:22'\n", "listed twice"),
    ("[[target]\n", "not valid TOML"),
])
def test_inventory_errors_name_the_problem(text: str, message: str) -> None:
    with pytest.raises(HarnessError, match=message.replace("[", r"\[").replace("(", r"\(").replace(")", r"\)")):
        inventory.parse(text)
