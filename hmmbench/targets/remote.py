"""Real machines over SSH: ``--target ssh://[user@]host[:port]``.

The same agent and cases as in a QEMU guest, with preflight checks that each fail with one line saying
what to do: reachable and authenticated; root or passwordless sudo; python3 and cffi; the kernel
release; /dev/hmm_dmirror* present (or made present by ``modprobe test_hmm``); /proc/kpageflags
readable; an ioctl table known for this release. Without a serial console, kernel messages come from
the agent's /dev/kmsg cursor and the taint flags per case; a connection lost during a case is reported
as a possible crash and the target is probed again.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import paramiko

from hmmbench import progress
from hmmbench.errors import GuestUnreachable, HarnessError, HostKeyMismatch, InputError
from hmmbench.guest import uapi
from hmmbench.targets.agent import AgentClient
from hmmbench.targets.ssh import SshConnection

DEFAULT_KNOWN_HOSTS = Path.home() / ".ssh" / "known_hosts"


@dataclass(frozen=True)
class SshUrl:
    user: str
    host: str
    port: int

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host  # an IPv6 address
        return f"ssh://{self.user}@{host}:{self.port}"


URL_FORM = "ssh://[user@]host[:port]"


def parse_url(url: object, what: str = "--target") -> SshUrl:
    """``ssh://[user@]host[:port]`` (user root, port 22 by default); anything else is an InputError
    naming ``what`` (the option or inventory entry it came from). Pure: no name lookup, no connection."""
    if not isinstance(url, str):
        raise InputError(f"{what} {url!r}: a URL must be a string, not {type(url).__name__}",
                         f'write it quoted: "{URL_FORM}"')
    hint = f"write it as {URL_FORM}, e.g. ssh://root@lab-a:22"
    u = urlparse(url.strip())
    if u.scheme != "ssh" or not u.hostname:
        raise InputError(f"{what} {url!r}: expected {URL_FORM}", hint)
    if u.password is not None:
        raise InputError(f"{what} {url!r}: a password in the URL is not supported", "use --identity KEY")
    if u.path not in ("", "/") or u.query or u.fragment or u.params:
        raise InputError(f"{what} {url!r}: a path, query or fragment is not part of {URL_FORM}", hint)
    try:
        port = u.port
    except ValueError as exc:
        raise InputError(f"{what} {url!r}: bad port ({exc})", "a port is a number from 1 to 65535") from exc
    if port == 0:
        raise InputError(f"{what} {url!r}: port 0", "a port is a number from 1 to 65535")
    return SshUrl(u.username or "root", u.hostname, port or 22)


@dataclass
class RemoteOptions:
    identity: Path | None = None
    known_hosts: Path | None = None
    accept_new_host_key: bool = False
    pinned_host_key: str | None = None  # an OpenSSH public key line; overrides known_hosts


def connect(url: SshUrl, opts: RemoteOptions, timeout: float = 15.0) -> SshConnection:
    """An authenticated connection, or a one-line HarnessError saying what is wrong."""
    ssh = SshConnection(url.host, url.port, url.user, opts.identity, pinned_host_key=opts.pinned_host_key,
                    known_hosts=opts.known_hosts or DEFAULT_KNOWN_HOSTS, accept_new=opts.accept_new_host_key)
    try:
        return ssh.connect(timeout=timeout)
    except (HostKeyMismatch, HarnessError):
        raise
    except paramiko.AuthenticationException as exc:
        raise HarnessError(f"{url}: authentication failed for {url.user}",
                           "pass --identity KEY (a private key the target accepts)") from exc
    except TimeoutError as exc:
        raise GuestUnreachable(f"{url}: no answer within {timeout:.0f}s", "check host, port and network") from exc
    except OSError as exc:
        raise GuestUnreachable(f"{url}: unreachable ({exc.strerror or exc})",
                               "check host, port and that sshd runs") from exc
    except paramiko.SSHException as exc:
        raise GuestUnreachable(f"{url}: SSH failed ({exc})", "is that port an SSH server?") from exc


def preflight(ssh: SshConnection, label: str) -> tuple[str, dict]:
    """Check the target can run the suite; returns (command prefix for root, agent info)."""
    uid = ssh.run("id -u", timeout=30).stdout.strip()
    prefix = ""
    if uid != "0":
        sudo = ssh.run("sudo -n true", timeout=30)
        if sudo.status != 0:
            why = "there is no sudo" if sudo.status == 127 else "sudo needs a password"
            raise HarnessError(f"{label}: logged in as uid {uid}, and {why}",
                               "log in as root, or allow passwordless sudo for this user")
        prefix = "sudo -n "
    py = ssh.run(f"{prefix}python3 -c 'import cffi'", timeout=60)
    if py.status != 0:
        missing = "python3" if "not found" in py.stderr else "python3-cffi"
        raise HarnessError(f"{label}: {missing} is missing", "install python3 and python3-cffi on the target")
    release = ssh.run("uname -r", timeout=30).stdout.strip()
    if not ssh.run("ls /dev/hmm_dmirror0", timeout=30).status == 0:
        probe = ssh.run(f"{prefix}modprobe test_hmm", timeout=120)
        if ssh.run("ls /dev/hmm_dmirror0", timeout=30).status != 0:
            raise HarnessError(
                f"{label}: no /dev/hmm_dmirror0 on {release}, and modprobe test_hmm did not create it "
                f"({probe.stderr.strip()[-120:] or 'no message'})",
                "boot a kernel with CONFIG_TEST_HMM (hmmbench kernel build; --kexec can switch to it)")
    if ssh.run(f"{prefix}head -c 8 /proc/kpageflags > /dev/null", timeout=30).status != 0:
        raise HarnessError(f"{label}: /proc/kpageflags is not readable",
                           "needs CONFIG_PROC_PAGE_MONITOR and root")
    try:
        uapi.ioctl_numbers(release)
    except (uapi.UnknownUapi, ValueError) as exc:
        raise HarnessError(f"{label}: no test_hmm ioctl table for {release}: {exc}") from exc
    return prefix, {"release": release}


class RemoteSession:
    """A real machine as the runner uses it (same interface as QemuSession)."""

    def __init__(self, url: SshUrl, opts: RemoteOptions, probe_timeout: float = 300.0) -> None:
        self.url = url
        self.opts = opts
        self.probe_timeout = probe_timeout
        self.agent: AgentClient | None = None
        self.boots = 0
        self.boot_seconds: list[float] = []
        self.consoles: list[Path] = []
        self.last_info: dict = {}

    def boot(self) -> AgentClient:
        """Connect, preflight, deploy the agent (no boot: the machine is already running)."""
        start = time.monotonic()
        with progress.step(f"connecting to {self.url}"):
            ssh = connect(self.url, self.opts)
            prefix, _ = preflight(ssh, str(self.url))
            agent = AgentClient(ssh, str(self.url), sudo=prefix)
            agent.deploy()
            agent.load_info()
        self.boots += 1
        self.boot_seconds.append(time.monotonic() - start)
        self.agent = agent
        self.last_info = agent.info
        return agent

    def restart(self, why: str) -> AgentClient:
        """After a lost connection: probe until the machine answers again (it may be rebooting)."""
        progress.say(f"{self.url}: {why}; probing until it answers again (up to {self.probe_timeout:.0f}s)")
        self.close()
        deadline = time.monotonic() + self.probe_timeout
        last: Exception | None = None
        while time.monotonic() < deadline:
            try:
                return self.boot()
            except GuestUnreachable as exc:
                last = exc
                time.sleep(5)
        raise GuestUnreachable(f"{self.url} did not come back within {self.probe_timeout:.0f}s: {last}")

    @property
    def name(self) -> str:
        return str(self.url)

    @property
    def target_info(self) -> dict:
        return self.agent.info if self.agent else self.last_info

    def alive(self) -> bool:
        try:
            connect(self.url, self.opts, timeout=5).close()
            return True
        except HarnessError:
            return False

    def console_lines(self) -> list[str]:
        return []  # no serial console: the agent's kmsg cursor is the source

    def close(self) -> None:
        if self.agent is not None:
            self.agent.close()
            self.agent = None


def kexec_into(url: SshUrl, opts: RemoteOptions, bzimage: Path, release: str | None, banner: str | None,
               timeout: float = 600.0) -> dict:
    """Load ``bzimage`` on the target with its running command line, ``kexec -e``, and wait for it.

    Returns what was seen: the release and /proc/version before and after, and how long it took.
    Raises a HarnessError saying so (with the last dmesg lines saved from before the switch) if the
    target does not come back with the expected kernel.
    """
    ssh = connect(url, opts)
    before = {"release": ssh.run("uname -r", timeout=30).stdout.strip(),
              "proc_version": ssh.run("cat /proc/version", timeout=30).stdout.strip()}
    prefix = "" if ssh.run("id -u", timeout=30).stdout.strip() == "0" else "sudo -n "
    if ssh.run("command -v kexec", timeout=30).status != 0:
        raise HarnessError(f"{url}: kexec is not installed", "install kexec-tools on the target")
    dmesg_tail = ssh.run(f"{prefix}dmesg | tail -n 50", timeout=30).stdout
    remote_image = "/tmp/hmmbench-kexec-bzImage"
    with progress.step(f"copying {bzimage} to {url}"):
        ssh.put_file(bzimage, remote_image, 0o644)
    load = ssh.run(f"{prefix}kexec -l {remote_image} --reuse-cmdline", timeout=300)
    if load.status != 0:
        raise HarnessError(f"{url}: kexec -l failed: {load.stderr.strip()[-200:]}",
                           "the running kernel needs CONFIG_KEXEC (and KEXEC_FILE for signed setups)")
    start = time.monotonic()
    with progress.step(f"kexec -e on {url} ({before['release']} -> {release or bzimage.name})"):
        try:
            ssh.run(f"{prefix}sh -c 'sync; (sleep 1; kexec -e) >/dev/null 2>&1 &'", timeout=30)
        except Exception:  # noqa: BLE001 - the connection may die as the kernel switches
            pass
        ssh.close()
        time.sleep(3)
        deadline = start + timeout
        back = None
        while time.monotonic() < deadline:
            try:
                back = connect(url, opts, timeout=10)
                now = back.run("uname -r", timeout=30).stdout.strip()
                if now != before["release"] or release is None or now == release:
                    break
                back.close()
                back = None
            except HarnessError:
                pass
            time.sleep(3)
    if back is None:
        raise GuestUnreachable(
            f"{url} did not come back within {timeout:.0f}s after kexec -e",
            f"check its console; last dmesg before the switch:\n{dmesg_tail[-1500:]}")
    after = {"release": back.run("uname -r", timeout=30).stdout.strip(),
             "proc_version": back.run("cat /proc/version", timeout=30).stdout.strip()}
    back.close()
    if (release and after["release"] != release) or (banner and after["proc_version"] != banner):
        raise HarnessError(f"{url} came back running {after['release']} ({after['proc_version']}), "
                           f"expected {release} ({banner})", "the kexec'd kernel did not take over")
    return {"before": before, "after": after, "seconds": round(time.monotonic() - start, 1)}
