"""A target: a machine reached over SSH where the guest agent runs (a QEMU guest or a real box).

The agent package is copied over SFTP at connect time (one tar file), so a target needs only python3, cffi
and tar.
"""

from __future__ import annotations

import functools
import importlib.util
import io
import json
import py_compile
import shlex
import tarfile
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from hmmbench.errors import HarnessError
from hmmbench.targets.ssh import CommandTimeout, ConnectionLost, LineChannel, SshConnection

GUEST_PACKAGE = Path(__file__).resolve().parents[1] / "guest"
REMOTE_DIR = "/tmp/hmmbench-agent"
AGENT_PORT = 7722  # where the agent started by a hmmbench guest's init listens (the guest's loopback)
LISTEN_WAIT = 30.0  # how long a listening agent may take to come up (its imports, under TCG)


@functools.cache
def agent_bundle() -> bytes:
    """The guest package as a tar stream, built once per process: ``hmmbench_guest/*.py`` and their
    byte code for this host's Python (unchecked-hash .pyc). A guest with the same Python version (the
    default image's) skips compiling the agent on every boot, which costs a TCG guest about a second; a
    target with another version ignores the .pyc files and compiles as usual."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar, tempfile.TemporaryDirectory() as tmp:
        for path in sorted(GUEST_PACKAGE.rglob("*.py")):
            if "__pycache__" in path.parts:
                continue
            rel = path.relative_to(GUEST_PACKAGE)
            tar.add(path, arcname=f"hmmbench_guest/{rel.as_posix()}")
            pyc = Path(importlib.util.cache_from_source(str(Path(tmp) / rel)))
            py_compile.compile(str(path), cfile=str(pyc), dfile=f"hmmbench_guest/{rel.as_posix()}", doraise=True,
                               invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH)
            tar.add(pyc, arcname=f"hmmbench_guest/{pyc.relative_to(tmp).as_posix()}")
    return buf.getvalue()


class AgentError(Exception):
    """The agent did not produce a JSON answer (it crashed, or python3/cffi is missing)."""


# Called with every event the agent streams while a case runs, and at least once a second with None;
# raises an exception (hmmbench.cases.watch.CaseEnded) to end the case.
EventHook = Callable[[dict | None], None]


class AgentClient:
    def __init__(self, ssh: SshConnection, label: str, sudo: str = "") -> None:
        self.ssh = ssh
        self.label = label
        self.sudo = sudo  # "sudo -n " when the login is not root
        self.info: dict = {}
        self.uapi: dict | None = None  # the kernel tree's test_hmm uapi, sent with every request
        # Where an agent the target started itself listens (a guest hmmbench booted with the agent on a
        # disk of its own): reached through a direct-tcpip channel instead of deployed and started.
        self.listening: tuple[str, int] | None = None
        self._server: LineChannel | None = None  # the warm agent ("agent serve"), started by load_info

    def deploy(self) -> None:
        """Copy the guest package (as ``hmmbench_guest``) over SFTP, as one tar file unpacked in place.

        File by file, plus a separate python3/cffi probe, took 1.8 s of each boot under TCG (a round
        trip per file). python3 and cffi are checked where they can be missing: the preflight of a
        remote machine (the guest image installs both).
        """
        bundle = f"{REMOTE_DIR}.tar"
        self.ssh.put_bytes(agent_bundle(), bundle)
        unpack = f"rm -rf {REMOTE_DIR} && mkdir -p {REMOTE_DIR} && tar -x -C {REMOTE_DIR} -f {bundle} && rm -f {bundle}"
        res = self.ssh.run(unpack, timeout=60)
        if res.status != 0:
            raise HarnessError(f"{self.label}: unpacking the agent failed: {res.stderr.strip()[-200:]}",
                               f"the target needs tar and a writable {REMOTE_DIR.rsplit('/', 1)[0]}")

    def agent(self, args: str, timeout: float) -> dict:
        res = self.ssh.run(f"cd {REMOTE_DIR} && exec {self.sudo}python3 -m hmmbench_guest.agent {args}",
                           timeout=timeout)
        lines = [line for line in res.stdout.splitlines() if line.startswith("{")]
        if res.status != 0 or not lines:
            raise AgentError(f"agent {args.split()[0]} exited {res.status}: {res.stderr.strip()[-400:]}")
        return json.loads(lines[-1])

    def load_info(self, timeout: float = 120) -> dict:
        """What the target runs (release, banner, config, devices), from a process forked by the agent
        server: the server's start-up (the first interpreter after boot, slow on a cold page cache) is
        paid here once, not again by the first case."""
        self.info = self._request({"cmd": "info", "uapi": self.uapi}, timeout, "info")
        return self.info

    def run_case(self, name: str, params: dict, timeout: float, on_event: EventHook | None = None,
                 source: str | None = None) -> dict:
        """One case in a fresh process on the target, forked by the warm agent server.

        While it runs, ``on_event`` sees every event the agent streams (kernel messages, the case's
        uninterruptible tasks) and is called at least once a second; it ends the case by raising
        (hmmbench.cases.watch.CaseEnded). A case that does not answer within ``timeout`` raises
        CommandTimeout and a dead link ConnectionLost; either way (and when the hook raises) the server
        is dropped, and the next case starts a new one.
        """
        request = {"cmd": "case", "name": name, "params": params, "uapi": self.uapi}
        if source is not None:  # a user's observer: its source, not a module of the agent
            request["source"] = source
        return self._request(request, timeout, name, on_event)

    def _request(self, request: dict, timeout: float, what: str, on_event: EventHook | None = None) -> dict:
        if self._server is not None and self._server.ended():  # e.g. killed by the OOM killer between cases
            self._stop_server()
        server = self._server or self._start_server()
        deadline = time.monotonic() + timeout
        try:
            server.send_line(json.dumps(request))
            while True:
                line = self._next_line(server, deadline, on_event)
                if line is None:
                    tail = server.stderr_tail()
                    self._stop_server()
                    raise AgentError(f"agent server ended during {what}: {tail.strip()[-400:]}")
                reply = json.loads(line)
                if "event" not in reply:
                    break
                if on_event is not None:
                    on_event(reply)
        except BaseException:
            self._stop_server()
            raise
        if "agent_error" in reply:
            raise AgentError(f"agent: {reply['agent_error']}")
        return reply

    @staticmethod
    def _next_line(server: LineChannel, deadline: float, on_event: EventHook | None) -> str | None:
        """The next line from the server; without a hook, one wait until the deadline; with one, waits of
        at most a second, calling the hook between them (it watches the console, too)."""
        if on_event is None:
            return server.read_line(max(0.0, deadline - time.monotonic()))
        while True:
            left = deadline - time.monotonic()
            try:
                return server.read_line(max(0.0, min(1.0, left)))
            except CommandTimeout:
                if left <= 1.0:
                    raise
                on_event(None)

    def run_case_oneshot(self, name: str, params: dict, timeout: float) -> dict:
        """The same case in a new interpreter of its own (what the server saves; kept for comparison)."""
        return self.agent(f"case {shlex.quote(name)} --params {shlex.quote(json.dumps(params))} "
                          f"--uapi {shlex.quote(json.dumps(self.uapi))}", timeout)

    def _start_server(self, timeout: float = 120) -> LineChannel:
        if self.listening is not None:
            server = self._connect_listening(timeout)
            if server is not None:
                self._server = server
                return server
            self.listening = None  # an image whose init does not start the agent: deploy it as for a machine
            self.deploy()
        server = self.ssh.open_lines(f"cd {REMOTE_DIR} && exec {self.sudo}python3 -m hmmbench_guest.agent serve")
        line = server.read_line(timeout)
        if line is None or not line.startswith('{"ready"'):
            tail = server.stderr_tail()
            server.close()
            raise AgentError(f"agent server did not start: {(line or '')[:200]} {tail.strip()[-400:]}")
        self._server = server
        return server

    def _connect_listening(self, timeout: float) -> LineChannel | None:
        """The agent the guest's init started, once it listens (its imports may still run: retried for
        LISTEN_WAIT seconds); None when nothing listens."""
        assert self.listening is not None
        deadline = time.monotonic() + LISTEN_WAIT
        while True:
            try:
                server = self.ssh.open_forward(*self.listening)
            except ConnectionLost:
                if time.monotonic() > deadline:
                    return None
                time.sleep(0.1)
                continue
            line = server.read_line(timeout)
            if line is not None and line.startswith('{"ready"'):
                return server
            server.close()
            if time.monotonic() > deadline:
                return None

    def _stop_server(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None

    def close(self) -> None:
        self._stop_server()
        self.ssh.close()
