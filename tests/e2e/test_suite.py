"""The whole case suite on both default kernels, and the differences the series is known to make.

Linux 6.12.117 is before "mm: fixes for device-exclusive entries (hmm)", Linux 7.2.13 after it. The
facts file (shared/notes/device-exclusive-facts.md) predicts what changed; each prediction is asserted
here against the real guests' observations.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hmmbench.cases.registry import load_all
from hmmbench.guest.pagemap import decode_pagemap

from .conftest import run_hmmbench

pytestmark = pytest.mark.slow

ALL_CASES = len(load_all())  # every case the registry knows runs on both kernels


def test_judge_rederives_every_verdict_offline(suite_results: dict[str, dict], tmp_path: Path) -> None:
    """Observe in the guest, judge on the host: the recorded observations alone give the same verdicts."""
    for kernel, res in suite_results.items():
        proc = run_hmmbench("judge", res["results_path"], "--json", str(tmp_path / f"{kernel}.json"))
        assert proc.returncode == res["_exit"], proc.stderr[-2000:]
        again = json.loads((tmp_path / f"{kernel}.json").read_text())
        assert [(c["id"], c["verdict"]["status"], c["verdict"]["summary"]) for c in again["cases"]] == [
            (c["id"], c["verdict"]["status"], c["verdict"]["summary"]) for c in res["cases"]], kernel


def test_two_guests_at_once_give_the_same_verdicts(suite_results: dict[str, dict], tmp_path) -> None:
    """--jobs 2: the same queue of cases on two guests; every variant once, same verdicts as one guest."""
    proc = run_hmmbench("run", "--kernel", "debian-6.12", "--jobs", "2", "--out", str(tmp_path / "j2"))
    assert proc.returncode in (0, 1), proc.stderr[-3000:]
    par = json.loads((tmp_path / "j2" / "results.json").read_text())
    single = suite_results["debian-6.12"]
    assert [c["id"] for c in par["cases"]] == [c["id"] for c in single["cases"]]  # suite order kept
    assert {c["id"]: c["verdict"]["status"] for c in par["cases"]} == {
        c["id"]: c["verdict"]["status"] for c in single["cases"]}
    assert [w["name"] for w in par["target"]["workers"]] == ["w1", "w2"]
    assert {c["worker"] for c in par["cases"]} == {"w1", "w2"}  # both guests ran cases
    consoles = [Path(c).name for c in par["target"]["consoles"]]
    assert len(set(consoles)) == len(consoles) >= 2  # one console per boot of each guest, no clash


def verdict(res: dict, case_id: str) -> str:
    return next(c["verdict"]["status"] for c in res["cases"] if c["id"] == case_id)


def obs(res: dict, case_id: str) -> dict:
    return next(c["record"]["observations"] for c in res["cases"] if c["id"] == case_id)


def test_every_case_runs_and_gets_a_verdict(suite_results: dict[str, dict]) -> None:
    for kernel, res in suite_results.items():
        cases = {c["case"] for c in res["cases"]}
        assert len(cases) == ALL_CASES, f"{kernel}: {sorted(cases)}"
        for c in res["cases"]:
            v = c["verdict"]
            assert v["status"] in ("PASS", "FAIL", "SKIP"), f"{kernel} {c['id']}: {v}"
            if v["status"] == "SKIP":
                assert v["summary"], "a SKIP must say why"
            if v["status"] == "FAIL":
                assert any(line.startswith("FAIL") for line in v["evidence"]), "a FAIL must carry evidence"


def test_swap_type_of_a_device_exclusive_entry(suite_results: dict[str, dict]) -> None:
    def types(res: dict) -> set[int]:
        entries = obs(res, "exclusive_basic[npages=1024]")["while_exclusive"]["pagemap"]
        return {decode_pagemap(e)["swap_type"] for e in entries}

    assert types(suite_results["debian-6.12"]) == {29}  # SWP_DEVICE_EXCLUSIVE_WRITE
    assert types(suite_results["debian-7.2"]) == {30}  # the single SWP_DEVICE_EXCLUSIVE (patch 6)


def test_basic_round_trip_passes_on_both(suite_results: dict[str, dict]) -> None:
    for res in suite_results.values():
        assert verdict(res, "exclusive_basic[npages=4]") == "PASS"
        assert verdict(res, "exclusive_basic[npages=1024]") == "PASS"


def test_thp_exclusive_fixed_by_the_series(suite_results: dict[str, dict]) -> None:
    pre, post = suite_results["debian-6.12"], suite_results["debian-7.2"]
    assert verdict(pre, "exclusive_thp") == "FAIL"
    o = obs(pre, "exclusive_thp")
    assert o["head"]["ret"] == 0 and sum(not decode_pagemap(e)["present"] for e in o["after_head"]) == 512
    assert o["tail"]["ret"] == -1 and o["tail"]["errno"] == 16  # EBUSY
    assert verdict(post, "exclusive_thp") == "PASS"


def test_mapcount_of_exclusive_pages(suite_results: dict[str, dict]) -> None:
    assert obs(suite_results["debian-6.12"], "exclusive_mapcount")["while_exclusive"]["kpagecount"] == [0] * 4
    assert verdict(suite_results["debian-6.12"], "exclusive_mapcount") == "FAIL"
    assert obs(suite_results["debian-7.2"], "exclusive_mapcount")["while_exclusive"]["kpagecount"] == [1] * 4
    assert verdict(suite_results["debian-7.2"], "exclusive_mapcount") == "PASS"


def test_migration_of_exclusive_pages(suite_results: dict[str, dict]) -> None:
    assert verdict(suite_results["debian-6.12"], "exclusive_migration") == "FAIL"
    assert verdict(suite_results["debian-7.2"], "exclusive_migration") == "PASS"


def test_mprotect_type_and_restored_writability(suite_results: dict[str, dict]) -> None:
    from hmmbench.cases.exclusive_mprotect import restored_writability

    pre, post = (obs(suite_results[k], "exclusive_mprotect") for k in ("debian-6.12", "debian-7.2"))
    pre_types = {decode_pagemap(e)["swap_type"] for e in pre["a_after_mprotect"]}
    post_types = {decode_pagemap(e)["swap_type"] for e in post["a_after_mprotect"]}
    assert pre_types == {30} and post_types == {30}  # 6.12: EXCLUSIVE_READ; 7.2: unchanged single type
    assert restored_writability(pre) == "read-only"  # patch 5
    assert restored_writability(post) == "writable"


def test_errno_for_memory_that_cannot_be_exclusive(suite_results: dict[str, dict]) -> None:
    for kernel, errno_value in (("debian-6.12", 16), ("debian-7.2", 95)):  # EBUSY, EOPNOTSUPP (patch 3)
        res = suite_results[kernel]
        shared = obs(res, "exclusive_shared_and_file")["mappings"]["shared_anon"]["exclusive"]
        assert shared["errno"] == errno_value, kernel
        assert obs(res, "exclusive_hugetlb")["one_page"]["errno"] == errno_value, kernel
        assert verdict(res, "exclusive_shared_and_file") == "PASS"
        assert verdict(res, "exclusive_hugetlb") == "PASS"


# ------------------------------------------------------------------ device memory (issue "The rest of test_hmm")


def test_migration_on_both_kinds_of_device_memory(suite_results: dict[str, dict]) -> None:
    """Private and coherent devices both exist in the guests, and both views agree through a migration."""
    for kernel, res in suite_results.items():
        for memory in ("private", "coherent"):
            cid = f"migrate_to_device[memory={memory}]"
            assert verdict(res, cid) == "PASS", (kernel, cid)
            case = next(c for c in res["cases"] if c["id"] == cid)
            assert case["verdict"]["disagreements"] == []
            assert any(ch["key"].startswith("views agree: ") for ch in case["verdict"]["checks"])


def test_device_private_thp_runs_on_7_2_and_skips_on_6_12(suite_results: dict[str, dict]) -> None:
    thp = [c for c in suite_results["debian-6.12"]["cases"] if c["case"].startswith("device_thp")]
    assert thp and all(c["verdict"]["status"] == "SKIP" for c in thp)
    assert all("device-private THP not supported" in c["verdict"]["summary"] for c in thp)
    post = [c for c in suite_results["debian-7.2"]["cases"] if c["case"].startswith("device_thp")]
    assert post and all(c["verdict"]["status"] in ("PASS", "FAIL") for c in post)
    data = obs(suite_results["debian-7.2"], "device_thp[fill=data]")
    after = next(v for v in data["views"] if v["label"] == "after MIGRATE_TO_DEV")
    assert all(b & 0x04 for b in after["devices"][str(data["local"])]["snapshot"])  # one PMD-level entry


def test_every_disagreement_is_listed_with_both_views(suite_results: dict[str, dict]) -> None:
    """A failed "views agree" check always comes with the pages behind it, each with both sides."""
    for res in suite_results.values():
        for c in res["cases"]:
            failed = [ch for ch in c["verdict"]["checks"] if ch["key"].startswith("views agree: ")
                      and ch["outcome"] == "FAIL"]
            if failed:
                found = c["verdict"]["disagreements"]
                assert found and all(d["cpu"] and d["device"] for d in found), c["id"]
