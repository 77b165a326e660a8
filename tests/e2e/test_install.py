"""A normal install (a wheel, not ``-e``) carries its data: the fragments, the image recipes, the C bench.

Before the data moved into the package, ``pip install .`` gave a ``hmmbench kernel build`` that said
"tinyconfig + 0 fragments" and compiled a kernel without TEST_HMM, silently.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import REPO

pytestmark = pytest.mark.slow


def test_a_wheel_installed_elsewhere_configures_a_kernel_with_every_fragment(tmp_path: Path) -> None:
    dist = tmp_path / "dist"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(dist), str(REPO)], check=True)
    (wheel,) = dist.glob("hmmbench-*.whl")
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run([venv / "bin" / "pip", "install", "-q", str(wheel)], check=True)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}

    def hmmbench(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([venv / "bin" / "hmmbench", *args], cwd=elsewhere, env=env, capture_output=True,
                              text=True, timeout=1800)

    where = subprocess.run([venv / "bin" / "python", "-c", "import hmmbench, sys; print(hmmbench.__file__)"],
                           cwd=elsewhere, env=env, capture_output=True, text=True, check=True).stdout
    assert where.startswith(str(venv)), where  # the wheel, not the checkout
    listed = hmmbench("cases")
    assert listed.returncode == 0, listed.stderr
    assert "exclusive_basic:" in listed.stdout and "exclusive_exit:" in listed.stdout
    configured = hmmbench("kernel", "build", "--kernel", "debian-6.12", "--configure-only")
    assert configured.returncode == 0, configured.stderr
    assert "tinyconfig + 3 fragments" in configured.stdout, configured.stdout
    config = Path(configured.stdout.split(": ", 1)[1].split(" (", 1)[0])
    text = config.read_text()
    assert "CONFIG_TEST_HMM=y" in text and "CONFIG_VIRTIO_MMIO=y" in text
