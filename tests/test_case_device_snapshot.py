"""device_snapshot's rule on observations recorded on Linux 6.12.118 (tests/data, the THP and hugetlb regions cut
to 4 pages each so the file stays small), and on fake edits of them."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from hmmbench import cases
from hmmbench.cases.facts import KernelConfig, TargetFacts
from hmmbench.cases.verdict import Status
from hmmbench.guest.uapi import SNAPSHOT_FLAGS as F

DATA = json.loads((Path(__file__).parent / "data" / "device_snapshot_6.12.json").read_text())
SPEC = cases.load_all()["device_snapshot"]
CONFIG = {"CONFIG_TRANSPARENT_HUGEPAGE": "y", "CONFIG_HUGETLBFS": "y"}


def judge(obs: dict, config: dict | None = CONFIG):
    return SPEC.judge()(obs, TargetFacts(release=DATA["release"], config=KernelConfig(config)))


def fake(memory: str = "private") -> dict:
    return copy.deepcopy(DATA["observations"][memory])


@pytest.mark.parametrize("memory", ["private", "coherent"])
def test_the_recorded_runs_pass(memory: str) -> None:
    v = judge(fake(memory))
    assert v.status == Status.PASS, v.failed_checks


def test_a_read_only_page_read_as_writable_fails_exactly_there() -> None:
    obs = fake()
    i = obs["row_page"]["read-only"]
    obs["views"][0]["devices"]["1"]["snapshot"][i] = F["WRITE"]
    v = judge(obs)
    assert v.status == Status.FAIL
    assert "initial: read-only page: SNAPSHOT of every device" in v.failed_checks
    assert not any(k.startswith("initial, again") for k in v.failed_checks)


def test_a_remote_private_page_reported_as_remote_instead_of_none_fails() -> None:
    obs = fake()
    i = obs["row_page"]["device-remote"]
    obs["views"][1]["devices"]["0"]["snapshot"][i] = F["DEV_PRIVATE_REMOTE"] | F["WRITE"]
    v = judge(obs)
    assert "initial, again: device-remote page: SNAPSHOT of every device" in v.failed_checks
    assert "views agree: initial, again: one page of each kind" in v.failed_checks


def test_a_thp_without_pmd_flag_fails() -> None:
    obs = fake()
    obs["views"][2]["devices"]["0"]["snapshot"][1] = F["READ"]
    assert "after mprotect(PROT_READ) of the huge regions: THP region: SNAPSHOT of every device" in \
        judge(obs).failed_checks


def test_a_snapshot_that_faulted_a_page_in_fails() -> None:
    obs = fake()
    i = obs["row_page"]["unpopulated"]
    obs["views"][1]["cpu"]["pagemap"][i] = obs["views"][0]["cpu"]["pagemap"][obs["row_page"]["zero"]]
    assert "SNAPSHOT of every device changes no page of the CPU's" in judge(obs).failed_checks


def test_no_thp_on_a_kernel_without_thp_is_noted_not_failed() -> None:
    obs = fake()
    obs["thp_formed"] = False
    for v in obs["views"]:
        for dv in v["devices"].values():
            dv["snapshot"][:4] = [F["WRITE"]] * 4
    v = judge(obs, {"CONFIG_HUGETLBFS": "y"})
    assert v.status == Status.PASS
    assert any(c.key == "THP rows not judged (no THP on this kernel)" for c in v.checks)
    assert judge(obs).failed_checks == ["a THP backs the MADV_HUGEPAGE region"]
    assert judge(obs, None).status == Status.ERROR


def test_hugetlb_refused_leaves_a_hole_that_must_read_error() -> None:
    obs = fake()
    obs["hugetlb"] = {"ok": False, "errno": 12, "error": "mmap failed"}
    for v in obs["views"]:
        v["cpu"]["pagemap"][4:8] = [0] * 4
        for dv in v["devices"].values():
            dv["snapshot"][4:8] = [F["ERROR"]] * 4
    assert judge(obs, {"CONFIG_TRANSPARENT_HUGEPAGE": "y"}).status == Status.PASS
    assert judge(obs).failed_checks == ["MAP_HUGETLB mmap succeeds"]
    obs["views"][0]["devices"]["2"]["snapshot"][5] = F["NONE"]
    assert "initial: hugetlb page: SNAPSHOT of every device" in \
        judge(obs, {"CONFIG_TRANSPARENT_HUGEPAGE": "y"}).failed_checks


def test_the_read_control_must_see_the_zero_page() -> None:
    obs = fake()
    obs["views"][3]["cpu"]["pagemap"][obs["row_page"]["unpopulated"]] = 0
    obs["views"][3]["cpu"]["kpageflags"][obs["row_page"]["unpopulated"]] = None
    for dv in obs["views"][3]["devices"].values():
        dv["snapshot"][obs["row_page"]["unpopulated"]] = F["NONE"]
    v = judge(obs)
    assert v.status == Status.FAIL  # the exact check of the moment fails, and the control reads NOCTRL
    assert "after a device READ of the unpopulated page: unpopulated page: SNAPSHOT of every device" in v.failed_checks


def test_coherent_remote_must_say_remote() -> None:
    obs = fake("coherent")
    i = obs["row_page"]["device-remote"]
    obs["views"][0]["devices"]["2"]["snapshot"][i] = F["NONE"]
    assert "initial: device-remote page: SNAPSHOT of every device" in judge(obs).failed_checks
