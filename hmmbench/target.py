"""A target: a machine reached over SSH where the guest agent runs (a QEMU guest or a real box).

The agent package is copied over SFTP at connect time, so a target needs only python3 and cffi.
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path

from hmmbench.errors import HarnessError
from hmmbench.ssh import LineChannel, SshTarget

GUEST_PACKAGE = Path(__file__).resolve().parent / "guest"
REMOTE_DIR = "/tmp/hmmbench-agent"


class AgentError(Exception):
    """The agent did not produce a JSON answer (it crashed, or python3/cffi is missing)."""


class Target:
    def __init__(self, ssh: SshTarget, label: str, sudo: str = "") -> None:
        self.ssh = ssh
        self.label = label
        self.sudo = sudo  # "sudo -n " when the login is not root
        self.info: dict = {}
        self._server: LineChannel | None = None  # the warm agent ("agent serve"), started at the first case

    def deploy(self) -> None:
        """Copy the guest package (as ``hmmbench_guest``) and check python3 + cffi are there."""
        self.ssh.run(f"rm -rf {REMOTE_DIR} && mkdir -p {REMOTE_DIR}", timeout=30)
        self.ssh.put_tree(GUEST_PACKAGE, f"{REMOTE_DIR}/hmmbench_guest")
        probe = self.ssh.run("python3 -c 'import cffi, sys; print(sys.version_info[:2])'", timeout=60)
        if probe.status != 0:
            missing = "python3" if "not found" in probe.stderr else "python3-cffi"
            raise HarnessError(
                f"{self.label}: {missing} is missing on the target ({probe.stderr.strip()[-200:]})",
                "install it there (Debian: apt-get install python3 python3-cffi)",
            )

    def agent(self, args: str, timeout: float) -> dict:
        res = self.ssh.run(f"cd {REMOTE_DIR} && exec {self.sudo}python3 -m hmmbench_guest.agent {args}",
                           timeout=timeout)
        lines = [line for line in res.stdout.splitlines() if line.startswith("{")]
        if res.status != 0 or not lines:
            raise AgentError(f"agent {args.split()[0]} exited {res.status}: {res.stderr.strip()[-400:]}")
        return json.loads(lines[-1])

    def load_info(self, timeout: float = 120) -> dict:
        self.info = self.agent("info", timeout)
        return self.info

    def run_case(self, name: str, params: dict, timeout: float) -> dict:
        """One case in a fresh process on the target, forked by the warm agent server.

        A hang raises CommandTimeout and a dead link ConnectionLost, as a one-shot agent would; the
        server is then dropped, and the next case starts a new one.
        """
        if self._server is not None and self._server.ended():  # e.g. killed by the OOM killer between cases
            self._stop_server()
        server = self._server or self._start_server()
        try:
            server.send_line(json.dumps({"cmd": "case", "name": name, "params": params}))
            line = server.read_line(timeout)
        except BaseException:
            self._stop_server()
            raise
        if line is None:
            tail = server.stderr_tail()
            self._stop_server()
            raise AgentError(f"agent server ended during {name}: {tail.strip()[-400:]}")
        reply = json.loads(line)
        if "agent_error" in reply:
            raise AgentError(f"agent: {reply['agent_error']}")
        return reply

    def run_case_oneshot(self, name: str, params: dict, timeout: float) -> dict:
        """The same case in a new interpreter of its own (what the server saves; kept for comparison)."""
        return self.agent(f"case {shlex.quote(name)} --params {shlex.quote(json.dumps(params))}", timeout)

    def _start_server(self, timeout: float = 120) -> LineChannel:
        server = self.ssh.open_lines(f"cd {REMOTE_DIR} && exec {self.sudo}python3 -m hmmbench_guest.agent serve")
        line = server.read_line(timeout)
        if line is None or not line.startswith('{"ready"'):
            tail = server.stderr_tail()
            server.close()
            raise AgentError(f"agent server did not start: {(line or '')[:200]} {tail.strip()[-400:]}")
        self._server = server
        return server

    def _stop_server(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None

    def close(self) -> None:
        self._stop_server()
        self.ssh.close()
