"""device_access's rule on observations recorded on Linux 6.12.118 (tests/data, every buffer cut to 8 pages and
the huge ones to 4 so the file stays small), and on fake edits of them."""

from __future__ import annotations

import copy
import errno
import json
from pathlib import Path

import pytest

from hmmbench import cases
from hmmbench.cases.facts import KernelConfig, TargetFacts
from hmmbench.cases.verdict import Status
from hmmbench.guest.uapi import SNAPSHOT_FLAGS as F

DATA = json.loads((Path(__file__).parent / "data" / "device_access_6.12.json").read_text())
SPEC = cases.load_all()["device_access"]
CONFIG = {"CONFIG_TRANSPARENT_HUGEPAGE": "y", "CONFIG_HUGETLBFS": "y"}


def judge(obs: dict, config: dict | None = CONFIG):
    return SPEC.judge()(obs, TargetFacts(release=DATA["release"], config=KernelConfig(config)))


def fake(memory: str = "private") -> dict:
    return copy.deepcopy(DATA["observations"][memory])


@pytest.mark.parametrize("memory", ["private", "coherent"])
def test_the_recorded_runs_pass(memory: str) -> None:
    v = judge(fake(memory))
    assert v.status == Status.PASS, v.failed_checks


def test_a_write_to_read_only_memory_that_succeeds_fails() -> None:
    obs = fake()
    obs["sections"]["anon_write_prot"]["write_ro"] = {"ret": 0, "errno": 0, "cpages": 8, "faults": 1}
    assert judge(obs).failed_checks == ["anon_write_prot: WRITE to read-only memory refused"]


def test_a_read_of_prot_none_with_another_errno_fails() -> None:
    obs = fake()
    obs["sections"]["anon_read_prot"]["read"]["errno"] = errno.EPERM
    assert judge(obs).failed_checks == ["anon_read_prot: READ of PROT_NONE memory refused"]


def test_a_refused_write_that_faulted_pages_in_fails() -> None:
    obs = fake()
    sec = obs["sections"]["anon_write_prot"]
    v = next(v for v in sec["views"] if v["label"].endswith("after WRITE to read-only"))
    v["cpu"]["pagemap"][3] = v["cpu"]["pagemap"][0]
    v["cpu"]["kpageflags"][3] = v["cpu"]["kpageflags"][0]
    for dv in v["devices"].values():
        dv["snapshot"][3] = F["ZERO"] | F["READ"]
    failed = judge(obs).failed_checks
    assert "anon_write_prot: refused WRITE changes no page" in failed
    assert "anon_write_prot: device view after the refused WRITE" in failed


def test_a_read_that_leaves_the_unpopulated_page_unmapped_fails_and_its_control_too() -> None:
    obs = fake()
    sec = obs["sections"]["anon_read"]
    sec["views"][1]["cpu"]["pagemap"][0] = 0
    sec["views"][1]["cpu"]["kpageflags"][0] = None
    for dv in sec["views"][1]["devices"].values():
        dv["snapshot"][0] = F["NONE"]
    v = judge(obs)
    assert "anon_read: the unpopulated page now maps the zero page" in v.failed_checks
    assert any(c.key.startswith("a device READ changes the page state") and c.outcome.value == "NOCTRL"
               for c in v.checks)


def test_private_pages_left_on_the_remote_device_after_a_local_read_fail() -> None:
    obs = fake()
    sec = obs["sections"]["double_map"]
    on = next(v for v in sec["views"] if v["label"].endswith("after MIGRATE_TO_DEV to the remote device"))
    after = next(v for v in sec["views"] if v["label"].endswith("after READ by the local device"))
    after["cpu"] = copy.deepcopy(on["cpu"])
    for d, dv in after["devices"].items():
        dv["snapshot"] = list(on["devices"][d]["snapshot"])
    assert judge(obs).failed_checks == [
        "double_map: the local READ brought the remote's private pages back to system memory"]


def test_a_local_write_onto_device_memory_that_faulted_fails() -> None:
    obs = fake("coherent")
    obs["sections"]["device_write"]["write_local"]["faults"] = 1
    assert judge(obs).failed_checks == ["device_write: WRITE by the local device onto its own memory"]


def test_no_thp_decided_with_the_configuration() -> None:
    obs = fake()
    sec = obs["sections"]["anon_write_huge"]
    sec["thp_formed"] = False
    assert judge(obs).failed_checks == ["anon_write_huge: the device's write fault formed a THP"]
    assert judge(obs, {"CONFIG_HUGETLBFS": "y"}).status == Status.PASS
    assert judge(obs, None).status == Status.ERROR


def test_hugetlb_refused_decided_with_the_configuration() -> None:
    obs = fake()
    obs["sections"]["anon_write_hugetlbfs"] = {"nr_hugepages_before": "0", "reserve": [True, ""],
                                               "meminfo": {"HugePages_Free": 1, "Hugepagesize": 2048},
                                               "mmap": {"ok": False, "errno": 12, "error": "mmap failed"}}
    assert judge(obs).failed_checks == ["anon_write_hugetlbfs: MAP_HUGETLB mmap succeeds"]
    assert judge(obs, {"CONFIG_TRANSPARENT_HUGEPAGE": "y"}).status == Status.PASS
