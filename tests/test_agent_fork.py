"""The guest agent's forked case processes, run on the host (stdlib only: no guest needed)."""

from __future__ import annotations

import os
import signal

import pytest

from hmmbench.guest import agent


def test_the_answer_comes_back_from_a_fresh_process() -> None:
    parent = os.getpid()
    reply = agent._in_child(lambda: {"pid": os.getpid(), "big": "x" * 300_000})
    assert reply["pid"] != parent  # a process of its own
    assert len(reply["big"]) == 300_000  # larger than a pipe buffer: read while the child writes


def test_a_case_process_that_raises_reports_the_exception() -> None:
    def boom() -> dict:
        raise RuntimeError("case blew up")

    reply = agent._in_child(boom)
    assert reply["agent_error"] == "RuntimeError: case blew up" and "Traceback" in reply["traceback"]


def test_a_case_process_killed_by_a_signal_is_reported() -> None:
    reply = agent._in_child(lambda: os.kill(os.getpid(), signal.SIGKILL))
    assert reply == {"agent_error": "case process killed by signal 9 without an answer"}


def test_a_stray_print_does_not_reach_the_reply_stream(capfd) -> None:
    def noisy() -> dict:
        print("stray output")
        return {"ok": True}

    assert agent._in_child(noisy) == {"ok": True}
    out, err = capfd.readouterr()
    assert "stray output" not in out and "stray output" in err


class FakeWindow:
    """A fake message window: hands out scripted kernel records, one batch per read."""

    def __init__(self, batches: list[list[dict]]) -> None:
        self.batches = list(batches)
        self.records: list[dict] = []

    def read_new(self) -> list[dict]:
        new = self.batches.pop(0) if self.batches else []
        self.records += new
        return new


def test_a_watched_case_streams_messages_and_heartbeats_then_answers() -> None:
    import time

    events: list[dict] = []
    window = FakeWindow([[], [{"seq": 1, "text": "WARNING: something"}]])

    def slow() -> dict:
        time.sleep(0.5)
        return {"status": "observed"}

    reply = agent._watched_case(slow, events.append, window, sample_every=0.1)
    assert reply == {"status": "observed"}
    assert {"event": "kmsg", "records": [{"seq": 1, "text": "WARNING: something"}]} in events
    ticks = [e for e in events if e["event"] == "tick"]
    assert ticks and all(t["uninterruptible"] == [] for t in ticks)  # a sleeping case is not in D state


def test_a_watched_case_returns_only_after_its_process_is_reaped() -> None:
    events: list[dict] = []
    reply = agent._watched_case(lambda: {"pid": os.getpid()}, events.append, FakeWindow([]))
    with pytest.raises(ChildProcessError):
        os.waitpid(reply["pid"], os.WNOHANG)  # already reaped: the window closes after the exit


def test_uninterruptible_tasks_of_a_tree_are_found_by_state() -> None:
    from hmmbench.guest import tasks

    assert tasks.uninterruptible(os.getpid()) == []  # this process runs, it is not in D
    assert os.getpid() in tasks.descendants(os.getppid())
