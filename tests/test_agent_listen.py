"""The agent as a guest's init starts it: listening on the loopback, one conversation per connection.

Runs the real agent module on the host (standard library + cffi, as in the guest). The host has no
/dev/hmm_dmirror0, so a case answers SKIP: the point here is the server's protocol, not the kernel.
"""

from __future__ import annotations

import io
import json
import socket
import subprocess
import sys
import tarfile
import time

import pytest

from hmmbench.targets.agent import agent_bundle


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def listening_agent():
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "hmmbench.guest.agent", "serve", "--listen", f"127.0.0.1:{port}"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        yield port
    finally:
        proc.kill()
        proc.wait()


def connect(port: int, wait: float = 30.0) -> socket.socket:
    deadline = time.monotonic() + wait
    while True:
        try:
            return socket.create_connection(("127.0.0.1", port), timeout=30)
        except ConnectionRefusedError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def lines(sock: socket.socket):
    return sock.makefile("r", encoding="utf-8")


def test_each_connection_is_a_conversation_and_a_case_answers(listening_agent: int) -> None:
    for _ in range(2):  # a second connection after the first hung up gets a fresh conversation
        sock = connect(listening_agent)
        reader = lines(sock)
        assert json.loads(reader.readline())["ready"] is True
        sock.sendall(json.dumps({"cmd": "case", "name": "exclusive_bad_args", "params": {}}).encode() + b"\n")
        while "event" in (reply := json.loads(reader.readline())):
            pass
        assert reply["status"] == "skip" and "/dev/hmm_dmirror0" in reply["reason"]
        assert "tainted_before" in reply and "kmsg" in reply or "kmsg_error" in reply
        sock.close()


def test_the_bundle_holds_the_guest_package_and_its_byte_code() -> None:
    names = tarfile.open(fileobj=io.BytesIO(agent_bundle())).getnames()
    assert "hmmbench_guest/agent.py" in names and "hmmbench_guest/cases/exclusive_basic.py" in names
    assert any(n.startswith("hmmbench_guest/__pycache__/agent.") and n.endswith(".pyc") for n in names)
