"""End-to-end fixtures: real kernels, a real guest image, real QEMU. Every test here is ``slow``.

Kernels and the image come from hmmbench's content-keyed cache, so each kernel is built once per
machine and reused by every test (and by later CI runs on the same machine).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
HMMBENCH = [sys.executable, "-m", "hmmbench"]


def run_hmmbench(*args: str, timeout: float = 3600, cwd: Path | None = None,
                 env: dict | None = None) -> subprocess.CompletedProcess[str]:
    """Run the real CLI; stderr (progress) is passed through so CI logs show where time goes."""
    proc = subprocess.run([*HMMBENCH, *args], capture_output=True, text=True, timeout=timeout,
                          cwd=cwd or REPO, env={**os.environ, **(env or {})})
    sys.stderr.write(proc.stderr[-6000:])
    return proc


# Every process this test session starts inherits this mark, QEMU included: a guest some other hmmbench
# on the machine runs (a developer's, a second CI job's) is not this session's and never counts as left behind.
SESSION_MARK = f"HMMBENCH_E2E_SESSION={uuid.uuid4().hex}"
os.environ["HMMBENCH_E2E_SESSION"] = SESSION_MARK.split("=", 1)[1]


def _ours(pid: int) -> bool:
    try:
        return SESSION_MARK.encode() in Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    except OSError:  # gone already, or not readable: not a guest this session left behind
        return False


def qemu_pids() -> set[int]:
    """This session's hmmbench QEMU processes."""
    out = subprocess.run(["pgrep", "-f", "qemu-system-x86_64 -name hmmbench"], capture_output=True, text=True)
    return {pid for pid in map(int, out.stdout.split()) if _ours(pid)}


@pytest.fixture(autouse=True)
def no_qemu_left_behind():
    """Every end-to-end test must leave no hmmbench QEMU process behind, whatever happened."""
    before = qemu_pids()
    yield
    left = qemu_pids() - before
    assert not left, f"QEMU processes left behind: {sorted(left)}"


@pytest.fixture(scope="session")
def suite_results(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict]:
    """`hmmbench run` of the whole suite on each default kernel, once per test session."""
    out = {}
    for kernel in ("debian-6.12", "debian-7.2"):
        d = tmp_path_factory.mktemp(kernel)
        proc = run_hmmbench("run", "--kernel", kernel, "--out", str(d))
        assert proc.returncode in (0, 1), f"{kernel}: harness error\n{proc.stderr[-3000:]}"
        out[kernel] = json.loads((d / "results.json").read_text())
        out[kernel]["_exit"] = proc.returncode
    return out
