"""SSH to targets (QEMU guests and real machines alike) with paramiko, host key pinned.

A guest's host key is generated at image build and pinned: any other key is refused with both
fingerprints printed. Commands run with a deadline enforced from the host (a guest kernel may lack
working timers, and a hung kernel never answers), and a lost connection is reported as such, because
for a kernel test it usually means the kernel died.
"""

from __future__ import annotations

import base64
import hashlib
import io
import logging
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import paramiko

from hmmbench.errors import GuestUnreachable, HarnessError, HostKeyMismatch

# paramiko logs every failed banner read from its transport thread; while a guest boots those are
# expected, and the harness reports the real outcome itself.
logging.getLogger("paramiko").setLevel(logging.CRITICAL)


class CommandTimeout(Exception):
    """The remote command did not finish before its deadline (the target may be hung).

    Carries what the command printed until then: for a test program, the results so far.
    """

    def __init__(self, message: str, stdout: str = "", stderr: str = "") -> None:
        super().__init__(message)
        self.stdout = stdout
        self.stderr = stderr


class ConnectionLost(Exception):
    """The SSH connection died while a command ran (the target may have crashed)."""


@dataclass
class CommandResult:
    status: int
    stdout: str
    stderr: str
    seconds: float


def fingerprint(key: paramiko.PKey) -> str:
    digest = hashlib.sha256(key.asbytes()).digest()
    return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")


def parse_public_key(line: str) -> paramiko.PKey:
    """An OpenSSH public key line (``ssh-ed25519 AAAA... comment``) as a paramiko key."""
    kind, blob = line.split()[:2]
    return paramiko.PKey.from_type_string(kind, base64.b64decode(blob))


def host_entry(host: str, port: int) -> str:
    return host if port == 22 else f"[{host}]:{port}"


class SshConnection:
    """One authenticated SSH connection to a target."""

    def __init__(self, host: str, port: int, user: str = "root", key_file: Path | None = None,
                 pinned_host_key: str | None = None, known_hosts: Path | None = None,
                 accept_new: bool = False, sock_factory: Callable[[], socket.socket] | None = None) -> None:
        self.host, self.port, self.user = host, port, user
        self.sock_factory = sock_factory  # e.g. a socket connected from inside a network namespace
        self.key_file = key_file
        self.pinned = parse_public_key(pinned_host_key) if pinned_host_key else None
        self.known_hosts = known_hosts
        self.accept_new = accept_new
        self.client: paramiko.SSHClient | None = None

    @property
    def url(self) -> str:
        return f"ssh://{self.user}@{self.host}:{self.port}"

    def connect(self, timeout: float = 10.0) -> SshConnection:
        client = paramiko.SSHClient()
        entry = host_entry(self.host, self.port)
        if self.pinned is not None:
            client.get_host_keys().add(entry, self.pinned.get_name(), self.pinned)
            client.set_missing_host_key_policy(paramiko.RejectPolicy())
        else:
            if self.known_hosts and self.known_hosts.exists():
                client.load_host_keys(str(self.known_hosts))
            policy = paramiko.AutoAddPolicy() if self.accept_new else paramiko.RejectPolicy()
            client.set_missing_host_key_policy(policy)
        try:
            client.connect(
                self.host, port=self.port, username=self.user,
                sock=self.sock_factory() if self.sock_factory else None,
                key_filename=str(self.key_file) if self.key_file else None,
                timeout=timeout, banner_timeout=timeout, auth_timeout=timeout,
                allow_agent=self.key_file is None, look_for_keys=self.key_file is None,
            )
        except paramiko.BadHostKeyException as exc:
            client.close()
            raise HostKeyMismatch(
                f"{self.host}:{self.port} presented host key {fingerprint(exc.key)}, "
                f"expected {fingerprint(exc.expected_key)}: refusing to connect",
                "a guest answering with another key is not the guest hmmbench built",
            ) from exc
        except paramiko.SSHException as exc:
            client.close()
            if "not found in known_hosts" in str(exc):
                raise HarnessError(
                    f"{self.host}:{self.port}: host key not in known_hosts",
                    "check its fingerprint, then pass --accept-new-host-key to pin it",
                ) from exc
            raise
        if self.accept_new and self.known_hosts:
            self.known_hosts.parent.mkdir(parents=True, exist_ok=True)
            client.save_host_keys(str(self.known_hosts))
        transport = client.get_transport()
        if transport is not None:
            transport.set_keepalive(5)
        self.client = client
        return self

    def run(self, command: str, timeout: float = 60.0, stdin: bytes | None = None) -> CommandResult:
        """Run ``command``; raise CommandTimeout after ``timeout`` s, ConnectionLost if the link dies."""
        if self.client is None:
            raise ConnectionLost("not connected")
        start = time.monotonic()
        try:
            transport = self.client.get_transport()
            if transport is None or not transport.is_active():
                raise ConnectionLost("SSH transport is not active")
            chan = transport.open_session(timeout=10)
            chan.settimeout(1.0)
            chan.exec_command(command)
            if stdin:
                chan.sendall(stdin)
            chan.shutdown_write()
            out, err = bytearray(), bytearray()
            deadline = start + timeout
            while True:
                while chan.recv_ready():
                    out += chan.recv(65536)
                while chan.recv_stderr_ready():
                    err += chan.recv_stderr(65536)
                if chan.exit_status_ready() and not chan.recv_ready() and not chan.recv_stderr_ready():
                    break
                if not transport.is_active():
                    raise ConnectionLost("SSH connection lost while the command ran")
                if time.monotonic() > deadline:
                    chan.close()
                    raise CommandTimeout(f"{command!r} did not finish within {timeout:.0f}s",
                                         out.decode(errors="replace"), err.decode(errors="replace"))
                time.sleep(0.02)
            status = chan.recv_exit_status()
            chan.close()
        except (OSError, EOFError, paramiko.SSHException) as exc:
            raise ConnectionLost(f"SSH failure while running {command!r}: {exc}") from exc
        return CommandResult(status, out.decode(errors="replace"), err.decode(errors="replace"),
                             time.monotonic() - start)

    def open_lines(self, command: str) -> LineChannel:
        """Start ``command`` and talk to it in lines (a long-lived helper such as the agent server)."""
        if self.client is None:
            raise ConnectionLost("not connected")
        transport = self.client.get_transport()
        if transport is None or not transport.is_active():
            raise ConnectionLost("SSH transport is not active")
        try:
            chan = transport.open_session(timeout=10)
            chan.settimeout(0.05)
            chan.exec_command(command)
        except (OSError, EOFError, paramiko.SSHException) as exc:
            raise ConnectionLost(f"SSH failure starting {command!r}: {exc}") from exc
        return LineChannel(chan, transport, command)

    def open_forward(self, host: str, port: int, timeout: float = 10.0) -> LineChannel:
        """A line channel to a TCP port on the target's side of the connection (``direct-tcpip``): a
        server the target started itself (the agent the guest's init starts), reached without a process
        of SSH's own. Raises ConnectionLost when the port does not answer."""
        if self.client is None:
            raise ConnectionLost("not connected")
        transport = self.client.get_transport()
        if transport is None or not transport.is_active():
            raise ConnectionLost("SSH transport is not active")
        try:
            chan = transport.open_channel("direct-tcpip", (host, port), ("127.0.0.1", 0), timeout=timeout)
            chan.settimeout(0.05)
        except (OSError, EOFError, paramiko.SSHException) as exc:
            raise ConnectionLost(f"SSH forward to {host}:{port} failed: {exc}") from exc
        return LineChannel(chan, transport, f"{host}:{port}")

    def put_file(self, local: Path, remote: str, mode: int = 0o644) -> None:
        """Copy a local file to the target over SFTP."""
        self.put_bytes(local.read_bytes(), remote, mode)

    def put_bytes(self, data: bytes, remote: str, mode: int = 0o644) -> None:
        """Write ``data`` to ``remote`` on the target over SFTP."""
        if self.client is None:
            raise ConnectionLost("not connected")
        try:
            sftp = self.client.open_sftp()
            try:
                sftp.putfo(io.BytesIO(data), remote)
                sftp.chmod(remote, mode)
            finally:
                sftp.close()
        except (OSError, EOFError, paramiko.SSHException) as exc:
            raise ConnectionLost(f"SFTP copy to {remote} failed: {exc}") from exc

    def close(self) -> None:
        if self.client is not None:
            self.client.close()
            self.client = None


class LineChannel:
    """A remote process spoken to in newline-terminated lines, with host-side deadlines.

    Why: the agent server answers one JSON line per request; a hung kernel never answers, so every read
    has a deadline enforced here, and stderr is kept (its tail explains a server that died).
    """

    def __init__(self, chan: paramiko.Channel, transport: paramiko.Transport, command: str) -> None:
        self.chan, self.transport, self.command = chan, transport, command
        self._out = bytearray()
        self._err = bytearray()

    def send_line(self, line: str) -> None:
        try:
            self.chan.sendall(line.encode() + b"\n")
        except (OSError, EOFError, paramiko.SSHException) as exc:
            raise ConnectionLost(f"SSH failure writing to {self.command!r}: {exc}") from exc

    def read_line(self, timeout: float) -> str | None:
        """The next line; None if the remote process ended first; CommandTimeout after ``timeout``."""
        deadline = time.monotonic() + timeout
        while b"\n" not in self._out:
            self._drain_stderr()
            try:
                chunk = self.chan.recv(65536)
            except TimeoutError:
                chunk = None
            except (OSError, EOFError, paramiko.SSHException) as exc:
                raise ConnectionLost(f"SSH failure reading from {self.command!r}: {exc}") from exc
            if chunk == b"":  # EOF: the process ended (or the channel closed)
                self._drain_stderr()
                if not self.transport.is_active():
                    raise ConnectionLost(f"SSH connection lost while {self.command!r} ran")
                return None
            if chunk:
                self._out += chunk
                continue
            if not self.transport.is_active():
                raise ConnectionLost(f"SSH connection lost while {self.command!r} ran")
            if time.monotonic() > deadline:
                raise CommandTimeout(f"no answer from {self.command!r} within {timeout:.0f}s",
                                     stderr=self.stderr_tail())
        line, _, rest = bytes(self._out).partition(b"\n")
        self._out = bytearray(rest)
        return line.decode(errors="replace")

    def _drain_stderr(self) -> None:
        while self.chan.recv_stderr_ready():
            self._err += self.chan.recv_stderr(65536)
        del self._err[:-16384]

    def stderr_tail(self, limit: int = 2000) -> str:
        return self._err.decode(errors="replace")[-limit:]

    def ended(self) -> bool:
        """The remote process has exited or the channel is closed (a fresh one is needed)."""
        return self.chan.closed or self.chan.exit_status_ready()

    def close(self) -> None:
        try:
            self.chan.close()
        except Exception:  # noqa: BLE001 - closing a dead channel
            pass


def wait_for_ssh(make: callable, deadline: float, alive: callable, describe: callable) -> SshConnection:
    """Connect with ``make()`` until it works, the deadline passes, or ``alive()`` turns False."""
    last: Exception | None = None
    while time.monotonic() < deadline:
        if not alive():
            raise GuestUnreachable(f"guest exited before SSH answered: {describe()}")
        try:
            return make().connect(timeout=8.0)
        except (HostKeyMismatch, HarnessError):
            raise
        except (TimeoutError, OSError, EOFError, paramiko.SSHException) as exc:
            last = exc
            time.sleep(0.1)  # a refused or reset connection costs little; a second of sleep costs a boot
    raise GuestUnreachable(f"SSH did not answer before the deadline (last error: {last}); {describe()}")
