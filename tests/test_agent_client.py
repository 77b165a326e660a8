"""AgentClient.run_case and the warm agent server, against fakes (pure logic: no SSH, no guest).

FakeServer is a fake LineChannel: it answers from a script of replies; FakeSsh is a fake SshConnection that
counts how many servers were started.
"""

from __future__ import annotations

import json

import pytest

from hmmbench.targets.agent import AgentClient, AgentError
from hmmbench.targets.ssh import CommandTimeout, ConnectionLost

READY = json.dumps({"ready": True, "pid": 1})


class FakeServer:
    """A fake agent server: ``replies`` are returned by read_line in order (an exception is raised)."""

    def __init__(self, replies: list) -> None:
        self.replies = list(replies)
        self.sent: list[dict] = []
        self.closed = False
        self.dead = False

    def send_line(self, line: str) -> None:
        self.sent.append(json.loads(line))

    def read_line(self, timeout: float) -> str | None:
        reply = self.replies.pop(0)
        if isinstance(reply, BaseException):
            raise reply
        return reply

    def stderr_tail(self) -> str:
        return "Traceback: boom"

    def ended(self) -> bool:
        return self.dead

    def close(self) -> None:
        self.closed = True


class FakeSsh:
    """A fake SshConnection whose open_lines hands out the next scripted FakeServer."""

    def __init__(self, servers: list[FakeServer]) -> None:
        self.servers = servers
        self.started: list[FakeServer] = []

    def open_lines(self, command: str) -> FakeServer:
        assert "hmmbench_guest.agent serve" in command
        server = self.servers[len(self.started)]
        self.started.append(server)
        return server


def _reply(status: str = "observed") -> str:
    return json.dumps({"case": "x", "status": status})


def test_one_server_serves_every_case() -> None:
    ssh = FakeSsh([FakeServer([READY, _reply(), _reply()])])
    t = AgentClient(ssh, "fake")
    assert t.run_case("a", {"n": 1}, 10)["status"] == "observed"
    assert t.run_case("b", {}, 10)["status"] == "observed"
    assert len(ssh.started) == 1
    assert [r["name"] for r in ssh.started[0].sent] == ["a", "b"] and ssh.started[0].sent[0]["params"] == {"n": 1}


def test_a_hang_drops_the_server_and_the_next_case_starts_a_new_one() -> None:
    first, second = FakeServer([READY, CommandTimeout("no answer")]), FakeServer([READY, _reply()])
    t = AgentClient(FakeSsh([first, second]), "fake")
    with pytest.raises(CommandTimeout):
        t.run_case("hangs", {}, 1)
    assert first.closed
    assert t.run_case("next", {}, 10)["status"] == "observed"


def test_a_server_that_ended_between_cases_is_replaced() -> None:
    first, second = FakeServer([READY, _reply()]), FakeServer([READY, _reply()])
    ssh = FakeSsh([first, second])
    t = AgentClient(ssh, "fake")
    t.run_case("a", {}, 10)
    first.dead = True  # e.g. the OOM killer took it
    t.run_case("b", {}, 10)
    assert len(ssh.started) == 2 and first.closed


def test_server_dying_during_a_case_is_an_agent_error_with_its_stderr() -> None:
    t = AgentClient(FakeSsh([FakeServer([READY, None])]), "fake")
    with pytest.raises(AgentError, match="agent server ended during a: Traceback: boom"):
        t.run_case("a", {}, 10)


def test_case_process_failure_is_an_agent_error() -> None:
    t = AgentClient(FakeSsh([FakeServer([READY, json.dumps({"agent_error": "case process killed by signal 9"})])]), "f")
    with pytest.raises(AgentError, match="killed by signal 9"):
        t.run_case("a", {}, 10)


def test_a_server_that_does_not_start_says_why() -> None:
    t = AgentClient(FakeSsh([FakeServer(["ImportError: cffi"])]), "fake")
    with pytest.raises(AgentError, match="did not start"):
        t.run_case("a", {}, 10)


class FakeForwardingSsh(FakeSsh):
    """A fake SshConnection that also forwards to a listening agent: ``forwards`` are what each
    open_forward returns (a FakeServer) or raises; deploy's SFTP copy and unpack are recorded."""

    def __init__(self, servers: list[FakeServer], forwards: list) -> None:
        super().__init__(servers)
        self.forwards = list(forwards)
        self.deployed = False

    def open_forward(self, host: str, port: int):
        item = self.forwards.pop(0) if self.forwards else ConnectionLost("refused")
        if isinstance(item, BaseException):
            raise item
        return item

    def put_bytes(self, data: bytes, remote: str, mode: int = 0o644) -> None:
        self.deployed = True

    def run(self, command: str, timeout: float = 60.0):
        from hmmbench.targets.ssh import CommandResult

        return CommandResult(0, "", "", 0.0)


def test_the_agent_the_guest_started_is_used_once_it_listens() -> None:
    listening = FakeServer([READY, _reply()])
    ssh = FakeForwardingSsh([], [ConnectionLost("refused"), listening])  # still importing, then up
    t = AgentClient(ssh, "fake")
    t.listening = ("127.0.0.1", 7722)
    assert t.run_case("a", {}, 10)["status"] == "observed"
    assert ssh.started == [] and not ssh.deployed  # nothing copied, no interpreter started over SSH


def test_an_image_whose_init_starts_no_agent_falls_back_to_deploying_it(monkeypatch) -> None:
    monkeypatch.setattr("hmmbench.targets.agent.LISTEN_WAIT", 0.0)
    ssh = FakeForwardingSsh([FakeServer([READY, _reply()])], [])
    t = AgentClient(ssh, "fake")
    t.listening = ("127.0.0.1", 7722)
    assert t.run_case("a", {}, 10)["status"] == "observed"
    assert ssh.deployed and len(ssh.started) == 1 and t.listening is None
