"""Issue "Real machines over SSH": a booted guest treated as a remote machine through an ssh:// URL."""

from __future__ import annotations

import json
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import paramiko
import pytest

from .conftest import HMMBENCH, REPO, run_hmmbench

pytestmark = pytest.mark.slow
CASES = ["--case", "exclusive_basic", "--case", "exclusive_thp", "--case", "exclusive_mapcount"]


@pytest.fixture(scope="module")
def guest(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    out = tmp_path_factory.mktemp("guest")
    proc = subprocess.Popen([*HMMBENCH, "guest", "--kernel", "debian-6.12", "--out", str(out)], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line.startswith("{"), "hmmbench guest did not print its URL"
    info = json.loads(line)
    yield info
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=60)


def guest_shell(info: dict, command: str) -> str:
    """Run a command in the guest directly (to break it on purpose), trusting the pinned key."""
    host, port = info["url"].removeprefix("ssh://root@").split(":")
    client = paramiko.SSHClient()
    client.load_host_keys(info["known_hosts"])
    client.connect(host, int(port), "root", key_filename=info["identity"], allow_agent=False, look_for_keys=False)
    _, out, err = client.exec_command(command)
    text = out.read().decode() + err.read().decode()
    client.close()
    return text


def remote_run(info: dict, *extra: str, known_hosts: str | None = None) -> subprocess.CompletedProcess[str]:
    return run_hmmbench("run", "--target", info["url"], "--identity", info["identity"],
                        "--known-hosts", known_hosts or info["known_hosts"], *extra)


def test_same_verdicts_over_ssh_as_locally(guest: dict, tmp_path: Path) -> None:
    remote = remote_run(guest, *CASES, "--out", str(tmp_path / "remote"))
    local = run_hmmbench("run", "--kernel", "debian-6.12", *CASES, "--out", str(tmp_path / "local"))
    assert remote.returncode == local.returncode == 1, remote.stderr[-2000:]
    r = json.loads((tmp_path / "remote" / "results.json").read_text())
    loc = json.loads((tmp_path / "local" / "results.json").read_text())
    assert r["target"]["kind"] == "ssh" and r["kernel"]["release"] == loc["kernel"]["release"]
    assert {c["id"]: c["verdict"]["status"] for c in r["cases"]} == {
        c["id"]: c["verdict"]["status"] for c in loc["cases"]}


def test_host_keys_unknown_pinned_changed(guest: dict, tmp_path: Path) -> None:
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    refused = remote_run(guest, "--case", "exclusive_bad_args", known_hosts=str(empty))
    assert refused.returncode == 2 and "--accept-new-host-key" in refused.stderr
    pinned = remote_run(guest, "--case", "exclusive_bad_args", "--accept-new-host-key", "--out",
                        str(tmp_path / "pin"), known_hosts=str(empty))
    assert pinned.returncode == 0, pinned.stderr[-2000:]
    assert "ssh-ed25519" in empty.read_text()  # pinned
    wrong = tmp_path / "wrong_known_hosts"
    entry = Path(guest["known_hosts"]).read_text().split()[0]
    impostor = tmp_path / "impostor"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(impostor)], check=True)
    wrong.write_text(f"{entry} {' '.join(impostor.with_suffix('.pub').read_text().split()[:2])}\n")
    changed = remote_run(guest, "--case", "exclusive_bad_args", "--accept-new-host-key", known_hosts=str(wrong))
    assert changed.returncode == 2
    assert "presented host key SHA256:" in changed.stderr and "expected SHA256:" in changed.stderr


def test_preflight_errors(guest: dict, tmp_path: Path) -> None:
    host, port = guest["url"].removeprefix("ssh://root@").split(":")
    closed = run_hmmbench("run", "--target", f"ssh://root@{host}:1", "--identity", guest["identity"])
    assert closed.returncode == 2 and "unreachable" in closed.stderr
    stranger = tmp_path / "stranger"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(stranger)], check=True)
    denied = remote_run(guest, "--case", "exclusive_bad_args", "--identity", str(stranger))
    assert denied.returncode == 2 and "authentication failed" in denied.stderr and "--identity" in denied.stderr
    # Break the guest on purpose, one thing at a time, and put it back.
    guest_shell(guest, "mv /usr/lib/python3/dist-packages/cffi /root/cffi.off")
    try:
        nocffi = remote_run(guest, "--case", "exclusive_bad_args")
        assert nocffi.returncode == 2 and "python3-cffi is missing" in nocffi.stderr
    finally:
        guest_shell(guest, "mv /root/cffi.off /usr/lib/python3/dist-packages/cffi")
    guest_shell(guest, "mkdir -p /root/dev.off && mv /dev/hmm_dmirror* /root/dev.off/")
    try:
        nodev = remote_run(guest, "--case", "exclusive_bad_args")
        assert nodev.returncode == 2 and "/dev/hmm_dmirror0" in nodev.stderr and "CONFIG_TEST_HMM" in nodev.stderr
    finally:
        guest_shell(guest, "mv /root/dev.off/* /dev/")
    # -p '*': no password, but not a locked account ("!"), which sshd without PAM refuses outright.
    guest_shell(guest, "useradd -m -p '*' tester && mkdir -p /home/tester/.ssh && cp /root/.ssh/authorized_keys "
                       "/home/tester/.ssh/ && chown -R tester /home/tester/.ssh")
    user_url = guest["url"].replace("root@", "tester@")
    nonroot = run_hmmbench("run", "--target", user_url, "--identity", guest["identity"], "--known-hosts",
                           guest["known_hosts"], "--case", "exclusive_bad_args")
    assert nonroot.returncode == 2 and "sudo" in nonroot.stderr


def test_lost_connection_is_a_possible_crash_and_the_target_is_probed_again(guest: dict, tmp_path: Path) -> None:
    """Inside the guest, a watcher kills every SSH session (not the listening sshd) while the first case
    runs: the case loses its connection. hmmbench reports it as a possible crash, probes until the
    machine answers, and runs the remaining case."""
    # The case is running once an agent process has more than 5 threads (exclusive_concurrent_cpu starts 8;
    # the server and its info child have one). "[.]" and "[@]": the patterns must not match the watcher.
    # "\$": expanded by the watcher's shell on each check, not once by the shell that starts it.
    watcher = ("while [ \\$(ps -eLo args | grep -c 'hmmbench_guest[.]agent serve') -lt 6 ]; do sleep 0.05; done; "
               "pkill -KILL -f 'sshd: root[@]'")
    guest_shell(guest, f"setsid nohup sh -c \"{watcher}\" >/dev/null 2>&1 < /dev/null &")
    proc = remote_run(guest, "--case", "exclusive_concurrent_cpu", "--case", "exclusive_bad_args",
                      "--out", str(tmp_path / "lost"))
    assert proc.returncode == 1, proc.stderr[-3000:]
    res = json.loads((tmp_path / "lost" / "results.json").read_text())
    first, second = res["cases"]
    assert first["record"]["status"] == "lost" and first["verdict"]["status"] == "FAIL"
    assert "possible crash" in first["verdict"]["summary"]
    assert second["verdict"]["status"] == "PASS"  # ran after the probe found the machine again
    assert res["target"]["boots"] == 2  # connected twice: before, and after the probe
    assert "probing until it answers again" in proc.stderr
