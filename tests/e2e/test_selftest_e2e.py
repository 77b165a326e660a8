"""`hmmbench selftest` on both default kernels: hmm-tests beside our cases, disagreements explained."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from .conftest import run_hmmbench

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("kernel", ["debian-6.12", "debian-7.2"])
def test_selftest_runs_and_is_compared(kernel: str, tmp_path: Path) -> None:
    out = tmp_path / "st"
    proc = run_hmmbench("selftest", "--kernel", kernel, "--out", str(out))
    assert proc.returncode in (0, 1), proc.stderr[-3000:]
    res = json.loads((out / "selftest.json").read_text())
    names = {r["name"]: r["status"] for r in res["selftest"]}
    assert len(names) >= 50 and "hmm.hmm_device_private.exclusive" in names
    assert res["ended"] == "exit status 0" or res["ended"].startswith("exit status")
    private = {r["selftest"]: r for r in res["comparison"] if "device_private" in r["selftest"]}
    assert len(private) == 3  # exclusive, exclusive_mprotect, exclusive_cow
    if kernel == "debian-6.12":
        # THP is "always" in the guest: hmm-tests' 4 MiB buffers are THPs and 6.12 answers EBUSY.
        assert names["hmm.hmm_device_private.exclusive"] == "FAIL"
        assert "THP" in res["explanation"] and "exclusive_thp" in res["explanation"]
    else:
        assert all(r["selftest_status"] == "PASS" for r in private.values()), private
        assert res["disagreements"] == []
    assert "hmm-tests" in proc.stdout and "disagreements:" in proc.stdout
