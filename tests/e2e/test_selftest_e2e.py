"""`hmmbench selftest` on both default kernels: hmm-tests beside our cases, disagreements explained."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hmmbench.selftest import coverage

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
    covered = {c.test for c in coverage.COVERAGE if c.case}
    ran = {n.rsplit(".", 1)[-1] for n in names}
    # every test hmm-tests ran that a case covers is set beside that case, on both kinds of memory
    assert {r.rsplit(".", 1)[-1] for r in private} == covered & ran
    coherent = {n: s for n, s in names.items() if "device_coherent" in n}
    assert coherent and "SKIP" not in coherent.values(), coherent  # spm memory and huge pages are there
    exclusive = {k: v for k, v in private.items() if k.rsplit(".", 1)[-1].startswith("exclusive")}
    assert len(exclusive) == 3  # exclusive, exclusive_mprotect, exclusive_cow
    if kernel == "debian-6.12":
        # THP is "always" in the guest: hmm-tests' 4 MiB buffers are THPs and 6.12 answers EBUSY.
        assert names["hmm.hmm_device_private.exclusive"] == "FAIL"
        assert "THP" in res["explanation"] and "exclusive_thp" in res["explanation"]
    else:
        assert all(r["selftest_status"] == "PASS" and r["case_status"] == "PASS" for r in exclusive.values())
    assert "hmm-tests" in proc.stdout and "disagreements:" in proc.stdout
