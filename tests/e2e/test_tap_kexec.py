"""Issue "Real machines over SSH, kexec, guest networking with pyroute2": tap guests in a namespace.

Two guests on one bridge in hmmbench's namespace reach each other; the suite runs through ssh:// to one
of them from inside the namespace and gives the same verdicts as a local run; --kexec switches the
other from 6.12.117 to 7.2.13; afterwards no namespace and no link is left behind, and a namespace left
by a dead run is removed by the next one.
"""

from __future__ import annotations

import json
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from .conftest import HMMBENCH, REPO, run_hmmbench

# "tapnet": needs root, /dev/net/tun and network namespaces (`pytest -m "not tapnet"` leaves them out on a
# machine without them). The intermittent hang these tests once showed (a forked pyroute2 helper that
# unwound hmmbench's stack on SIGTERM and removed the namespace under a live guest) is fixed; CI runs them.
pytestmark = [pytest.mark.slow, pytest.mark.tapnet]
CASES = ["--case", "exclusive_basic", "--case", "exclusive_thp"]


def netns_names() -> set[str]:
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    return {line.split()[0] for line in out.splitlines() if line.strip()}


def host_links() -> str:
    return subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout


@pytest.fixture(scope="module")
def tap_guests(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[dict]]:
    out = tmp_path_factory.mktemp("tap")
    before = netns_names()
    proc = subprocess.Popen([*HMMBENCH, "guest", "--kernel", "debian-6.12", "--net", "tap", "--count", "2",
                             "--out", str(out)], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    assert proc.stdout is not None
    guests = [json.loads(proc.stdout.readline()) for _ in range(2)]
    yield guests
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=60)
    assert netns_names() == before, "hmmbench left a network namespace behind"
    assert "hmmbr0" not in host_links() and "hmmtap" not in host_links()


def in_ns(guest: dict, *cmd: str, timeout: float = 3600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", "netns", "exec", guest["netns"], *cmd], capture_output=True, text=True,
                          timeout=timeout, cwd=REPO)


def hmmbench_in_ns(guest: dict, *args: str) -> subprocess.CompletedProcess[str]:
    proc = in_ns(guest, *HMMBENCH, *args)
    print(proc.stderr[-4000:])
    return proc


def test_guests_share_a_bridge_and_nothing_is_on_the_host(tap_guests: list[dict]) -> None:
    a, b = tap_guests
    assert a["netns"] == b["netns"] and a["netns"] in netns_names()
    assert "hmmbr0" not in host_links()  # the bridge and taps live only in the namespace
    host_b = b["url"].removeprefix("ssh://root@").split(":")[0]
    ping = in_ns(a, "ssh", "-i", a["identity"], "-o", f"UserKnownHostsFile={a['known_hosts']}",
                 "-o", "BatchMode=yes", a["url"].removeprefix("ssh://").split(":")[0], "busybox", "ping", "-c", "2",
                 host_b, timeout=120)
    assert ping.returncode == 0, ping.stdout + ping.stderr


def test_suite_over_ssh_in_the_namespace_matches_local(tap_guests: list[dict], tmp_path: Path) -> None:
    a = tap_guests[0]
    remote = hmmbench_in_ns(a, "run", "--target", a["url"], "--identity", a["identity"], "--known-hosts",
                            a["known_hosts"], *CASES, "--out", str(tmp_path / "remote"))
    local = run_hmmbench("run", "--kernel", "debian-6.12", *CASES, "--out", str(tmp_path / "local"))
    r = json.loads((tmp_path / "remote" / "results.json").read_text())
    loc = json.loads((tmp_path / "local" / "results.json").read_text())
    assert remote.returncode == local.returncode
    assert {c["id"]: c["verdict"]["status"] for c in r["cases"]} == {
        c["id"]: c["verdict"]["status"] for c in loc["cases"]}


def _inventory(path: Path, *guests: dict) -> Path:
    path.write_text("".join(f'[[target]]\nurl = "{g["url"]}"\nidentity = "{g["identity"]}"\n'
                            f'known_hosts = "{g["known_hosts"]}"\n\n' for g in guests))
    return path


def test_inventory_runs_the_suite_on_both_guests(tap_guests: list[dict], tmp_path: Path) -> None:
    a, b = tap_guests
    inv = _inventory(tmp_path / "inventory.toml", a, b)
    proc = hmmbench_in_ns(a, "run", "--inventory", str(inv), *CASES, "--case", "exclusive_bad_args",
                          "--case", "exclusive_fork", "--out", str(tmp_path / "inv"))
    assert proc.returncode in (0, 1), proc.stderr[-3000:]
    res = json.loads((tmp_path / "inv" / "results.json").read_text())
    assert {w["name"] for w in res["target"]["workers"]} == {f"{a['url']}", f"{b['url']}"}
    assert {c["verdict"]["status"] for c in res["cases"] if c["case"] == "exclusive_thp"} == {"FAIL"}  # 6.12
    assert all(c["verdict"]["status"] == "PASS" for c in res["cases"] if c["case"] != "exclusive_thp")


def test_kexec_switches_612_to_72(tap_guests: list[dict], tmp_path: Path) -> None:
    b = tap_guests[1]
    assert b["release"].startswith("6.12.")
    proc = hmmbench_in_ns(b, "run", "--target", b["url"], "--identity", b["identity"], "--known-hosts",
                          b["known_hosts"], "--kexec", "debian-7.2", "--case", "exclusive_basic",
                          "--out", str(tmp_path / "kexec"))
    assert proc.returncode == 0, proc.stdout + proc.stderr[-3000:]
    res = json.loads((tmp_path / "kexec" / "results.json").read_text())
    assert res["target"]["kexec"]["before"]["release"].startswith("6.12.")
    assert res["target_info"]["release"].startswith("7.2.") and res["kernel"]["release"].startswith("7.2.")
    assert res["kernel"]["release"] in proc.stdout

    # Now the two guests run different kernels: an inventory of both is refused before any case runs.
    a = tap_guests[0]
    inv = _inventory(tmp_path / "inventory.toml", a, b)
    mixed = hmmbench_in_ns(a, "run", "--inventory", str(inv), "--case", "exclusive_basic",
                           "--out", str(tmp_path / "mixed"))
    assert mixed.returncode == 2 and "run different kernels" in mixed.stderr, mixed.stderr[-2000:]


def test_leftover_namespace_of_a_dead_run_is_removed(tmp_path: Path) -> None:
    before = netns_names()  # the tap_guests fixture's namespace may still be alive: it is not a leftover
    subprocess.run(["ip", "netns", "add", "hmmbench-999999"], check=True)  # pid 999999 is not running
    proc = run_hmmbench("run", "--kernel", "debian-6.12", "--net", "tap", "--case", "exclusive_bad_args",
                        "--out", str(tmp_path / "r"))
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "hmmbench-999999" not in netns_names()
    assert netns_names() == before  # and this run's own namespace is gone too
