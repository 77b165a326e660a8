"""TapNetwork against the real kernel's namespaces (no guest): bridge inside, nothing on the host, all gone.

Needs root (as CI runs); skipped otherwise. Fast: no QEMU.
"""

from __future__ import annotations

import os
import socket
import subprocess

import pytest

from hmmbench.vm import netns

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="network namespaces need root")


def _host_links() -> str:
    return subprocess.run(["ip", "-o", "link"], capture_output=True, text=True, check=True).stdout


def _namespaces() -> str:
    return subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True).stdout


def test_bridge_lives_in_the_namespace_and_everything_goes_at_exit() -> None:
    with netns.TapNetwork() as net:
        assert net.name in _namespaces()
        inside = subprocess.run(["ip", "-n", net.name, "-o", "addr"], capture_output=True, text=True).stdout
        assert netns.BRIDGE in inside and f"{net.gateway}/24" in inside
        assert netns.BRIDGE not in _host_links()
        # a socket made through in_namespace belongs to the namespace: it can bind the bridge address
        sock = netns.in_namespace(net.name, lambda: socket.create_server((net.gateway, 0)))
        sock.close()
        a, b = net.add_guest(), net.add_guest()
        assert (a.ifname, a.ip) != (b.ifname, b.ip)
    assert net.name not in _namespaces()


def test_connect_in_reports_the_namespace_and_address() -> None:
    with netns.TapNetwork() as net, pytest.raises(OSError, match=f"10.77.0.99:22 in {net.name}"):
        net.connect("10.77.0.99", 22, timeout=1.0)


def test_leftover_of_a_dead_run_is_removed() -> None:
    subprocess.run(["ip", "netns", "add", "hmmbench-999998"], check=True)  # no process has pid 999998
    try:
        assert "hmmbench-999998" in netns.remove_leftovers()
    finally:
        subprocess.run(["ip", "netns", "del", "hmmbench-999998"], capture_output=True)
    assert "hmmbench-999998" not in _namespaces()


def test_in_namespace_names_a_missing_namespace() -> None:
    with pytest.raises(FileNotFoundError):
        netns.in_namespace("hmmbench-does-not-exist", lambda: None)
