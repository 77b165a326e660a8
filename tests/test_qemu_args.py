"""Paths QEMU is given that have limits of their own."""

from __future__ import annotations

import os
from pathlib import Path

from hmmbench.vm.qemu import UNIX_PATH_MAX, qmp_socket_path


def test_the_qmp_socket_stays_beside_the_console_when_it_fits(tmp_path: Path) -> None:
    assert qmp_socket_path(tmp_path, "boot1") == tmp_path.resolve() / ".boot1-qmp.sock"


def test_a_results_directory_too_deep_for_a_unix_socket_gets_a_short_one(tmp_path: Path) -> None:
    deep = tmp_path / ("d" * 60) / ("e" * 60)
    path = qmp_socket_path(deep, "boot1")
    assert len(os.fsencode(path)) < UNIX_PATH_MAX
    assert deep not in path.parents and path.name.endswith("boot1-qmp.sock")
    assert qmp_socket_path(deep, "boot1") != path  # unique per guest object: two runs never share one
