"""The guest agent's forked case processes, run on the host (stdlib only: no guest needed)."""

from __future__ import annotations

import os
import signal

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
