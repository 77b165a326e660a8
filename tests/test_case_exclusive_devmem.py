"""exclusive_devmem's rule on hand-made (fake) observations shaped like the guest's, and on edits of them.

Each fake page is one letter: S a system page, P a writable device-private entry of dmirror0, R a
read-only one, X a device-exclusive entry held by dmirror0, W an ordinary swap entry; every device's
SNAPSHOT and CHECK_EXCLUSIVE are what hmmbench.cases.views says they should be for it.
"""

from __future__ import annotations

import copy

from hmmbench import cases
from hmmbench.cases.facts import TargetFacts
from hmmbench.cases.verdict import Status
from hmmbench.guest.pagemap import PM_PRESENT, PM_SWAP
from hmmbench.guest.uapi import SNAPSHOT_FLAGS as F

SPEC = cases.load_all()["exclusive_devmem"]
DEVICES = (0, 1, 2, 3)


def swap(t: int, offset: int) -> int:
    return PM_SWAP | (offset << 5) | t


def fake_calibration() -> dict:
    return {"layout": {"spm_addr_dev0": 0x80000000, "spm_addr_dev1": 0x90000000, "devices": list(DEVICES)},
            "probes": {"0": [{"how": "write", "cmd": {"ret": 0}, "pagemap": swap(27, 1)},
                             {"how": "read-only", "cmd": {"ret": 0}, "pagemap": swap(28, 2)},
                             {"how": "exclusive", "cmd": {"ret": 0}, "pagemap": swap(29, 3),
                              "pagemap_readonly": swap(30, 3)}]}}


def fake_entry(kind: str, i: int) -> int:
    return {"S": PM_PRESENT | (0x1000 + i), "P": swap(27, 0xFFD00 + i), "R": swap(28, 0xFFD00 + i),
            "X": swap(29, 0x1000 + i), "W": swap(0, 0x40 + i)}[kind]


def fake_snapshot(kind: str, device: int) -> int:
    if kind == "S":
        return F["WRITE"]
    if kind in "PR" and device == 0:
        return F["DEV_PRIVATE_LOCAL"] | (F["WRITE"] if kind == "P" else F["READ"])
    return F["NONE"]


def fake_views(label: str, kinds: str, pfn_base: int = 0, holder: int = 0) -> dict:
    devices = {str(d): {"snapshot_cmd": {"ret": 0}, "snapshot": [fake_snapshot(k, d) for k in kinds],
                        "check_exclusive": [int(k == "X" and d == holder) for k in kinds]} for d in DEVICES}
    return {"label": label, "npages": len(kinds),
            "cpu": {"pagemap": [fake_entry(k, pfn_base + i) for i, k in enumerate(kinds)],
                    "kpageflags": [0] * len(kinds), "kpagecount": [1] * len(kinds)}, "devices": devices}


def ok(n: int) -> dict:
    return {"ret": 0, "errno": 0, "cpages": n, "faults": 0}


def fake_obs() -> dict:
    """What a kernel that behaves as mm/ and lib/test_hmm.c say records (8 pages a flow)."""
    return {
        "npages": 8, "local": 0, "remote": 1, "calibration": fake_calibration(),
        "on_device": {"migrate": ok(8), "exclusive": ok(4), "exclusive_cpu_faults": 4,
                      "exclusive_mirror_matches": True, "data_intact": True, "views": [
                          fake_views("on_device: after MIGRATE_TO_DEV", "PPPPPPPP"),
                          fake_views("on_device: after EXCLUSIVE of the first half", "XXXXPPPP"),
                          fake_views("on_device: after a CPU read of every page", "SSSSSSSS")]},
        "on_remote_device": {"migrate": ok(8), "exclusive": ok(4), "exclusive_mirror_matches": True,
                             "data_intact": True, "views": [
                                 fake_views("on_remote_device: after MIGRATE_TO_DEV", "PPPPPPPP", holder=1),
                                 fake_views("on_remote_device: after EXCLUSIVE of the first half by the remote "
                                            "device", "XXXXPPPP", holder=1),
                                 fake_views("on_remote_device: after a CPU read of every page", "SSSSSSSS",
                                            holder=1)]},
        "migrate_exclusive": {"exclusive": ok(4), "migrate": ok(8), "migrate_mirror_matches": True,
                              "data_intact": True, "views": [
                                  fake_views("migrate_exclusive: after EXCLUSIVE of the first half", "XXXXSSSS"),
                                  fake_views("migrate_exclusive: after MIGRATE_TO_DEV of the whole range",
                                             "XXXXPPPP"),
                                  fake_views("migrate_exclusive: after a CPU read of every page", "SSSSSSSS")]},
        "fork": {"exclusive": ok(2), "migrate": ok(2), "quarter": 2, "child_timed_out": False,
                 "child_exit": {"exited": True, "code": 0, "signal": None}, "data_intact": True,
                 "child": {"data_intact": True, "views": [
                     fake_views("fork: in the child after fork", "SSRRSSSS"),
                     fake_views("fork: in the child after its read of every page", "SSSSSSSS")]},
                 "views": [fake_views("fork: parent before fork", "XXPPSSSS"),
                           fake_views("fork: parent after fork", "SSRRSSSS"),
                           fake_views("fork: parent after the child's reads", "SSSSSSSS"),
                           fake_views("fork: parent after its own read of every page", "SSSSSSSS")]},
        "ksm": {"npages": 6, "madvise_mergeable": [0, 0], "exclusive": ok(1), "migrate": ok(1),
                "ksm_run": [True, ""], "full_scans": 3, "pages_sharing": "1", "device_write": ok(1),
                "data": {"exclusive_is_new": True, "others_intact": True},
                "views": [fake_views("ksm: before KSM", "XPSSSS"),
                          _merged(fake_views("ksm: after KSM", "XPSSSS")),
                          _merged(fake_views("ksm: after a device WRITE of the exclusive page", "SPSSSS")),
                          fake_views("ksm: after a CPU read of every page", "SSSSSS")]},
        "reclaim": {"npages": 32, "quarter": 8, "swap": {"ok": True, "already": True}, "exclusive": ok(8),
                    "migrate": ok(8), "pageout": [0, 0], "data_intact": True, "views": [
                        fake_views("reclaim: before MADV_PAGEOUT", "X" * 8 + "P" * 8 + "S" * 16),
                        fake_views("reclaim: after MADV_PAGEOUT", "X" * 8 + "P" * 8 + "W" * 16),
                        fake_views("reclaim: after a CPU read of every page", "S" * 32)]},
    }


def _merged(views: dict) -> dict:
    """KSM merged pages 3 and 4 (the control pair): both on page 4's PFN."""
    views["cpu"]["pagemap"][3] = views["cpu"]["pagemap"][4]
    return views


def judge(obs: dict):
    return SPEC.judge()(obs, TargetFacts(release="7.2.13"))


def _views(flow: dict, label: str) -> dict:
    return next(v for v in flow["views"] if v["label"] == label)


def test_the_fake_run_passes() -> None:
    v = judge(fake_obs())
    assert v.status == Status.PASS, v.evidence


def test_an_exclusive_page_held_by_the_wrong_device_disagrees() -> None:
    obs = fake_obs()
    label = "on_remote_device: after EXCLUSIVE of the first half by the remote device"
    idx = obs["on_remote_device"]["views"].index(_views(obs["on_remote_device"], label))
    obs["on_remote_device"]["views"][idx] = fake_views(label, "XXXXPPPP", holder=0)
    assert judge(obs).failed_checks == [f"views agree: {label}"]


def test_an_exclusive_entry_migrated_fails() -> None:
    obs = fake_obs()
    flow = obs["migrate_exclusive"]
    idx = flow["views"].index(_views(flow, "migrate_exclusive: after MIGRATE_TO_DEV of the whole range"))
    flow["views"][idx] = fake_views("migrate_exclusive: after MIGRATE_TO_DEV of the whole range", "PXXXPPPP")
    assert judge(obs).failed_checks == ["migrate_exclusive: exclusive entries are skipped, kept on their PFNs"]


def test_an_exclusive_entry_moved_to_another_pfn_fails() -> None:
    obs = fake_obs()
    flow = obs["migrate_exclusive"]
    idx = flow["views"].index(_views(flow, "migrate_exclusive: after MIGRATE_TO_DEV of the whole range"))
    flow["views"][idx] = fake_views("migrate_exclusive: after MIGRATE_TO_DEV of the whole range", "XXXXPPPP", 100)
    assert "migrate_exclusive: exclusive entries are skipped, kept on their PFNs" in judge(obs).failed_checks


def test_a_device_that_still_claims_an_exclusive_page_after_the_restore_disagrees() -> None:
    obs = fake_obs()
    views = _views(obs["on_device"], "on_device: after a CPU read of every page")
    views["devices"]["0"]["check_exclusive"][2] = 1
    v = judge(obs)
    assert v.failed_checks == ["views agree: on_device: after a CPU read of every page"]
    assert v.disagreements and v.disagreements[0].page == 2


def test_a_writable_device_private_entry_after_fork_fails() -> None:
    obs = fake_obs()
    idx = obs["fork"]["views"].index(_views(obs["fork"], "fork: parent after fork"))
    obs["fork"]["views"][idx] = fake_views("fork: parent after fork", "SSPPSSSS")
    assert judge(obs).failed_checks == ["fork: parent after fork: exclusive restored, device-private kept read-only"]


def test_a_child_that_saw_other_data_fails() -> None:
    obs = fake_obs()
    obs["fork"]["child"]["data_intact"] = False
    obs["fork"]["child_exit"]["code"] = 1
    assert judge(obs).failed_checks == ["fork: child reads its data intact and exits 0"]


def test_ksm_that_merged_nothing_cannot_pass() -> None:
    obs = fake_obs()
    for v in obs["ksm"]["views"]:
        v["cpu"]["pagemap"][3] = fake_entry("S", 3)
    v = judge(obs)
    assert v.status == Status.ERROR and "ksm: KSM merged the control pair" in v.summary


def test_an_exclusive_page_lost_to_reclaim_fails() -> None:
    obs = fake_obs()
    flow = obs["reclaim"]
    idx = flow["views"].index(_views(flow, "reclaim: after MADV_PAGEOUT"))
    flow["views"][idx] = fake_views("reclaim: after MADV_PAGEOUT", "W" + "X" * 7 + "P" * 8 + "W" * 16)
    assert judge(obs).failed_checks == ["reclaim: exclusive and device-private pages kept"]


def test_without_swap_the_pageout_is_noted_not_judged() -> None:
    obs = copy.deepcopy(fake_obs())
    obs["reclaim"]["swap"] = {"ok": False, "absent": "no active swap and no /dev/vdb swap disk"}
    flow = obs["reclaim"]
    idx = flow["views"].index(_views(flow, "reclaim: after MADV_PAGEOUT"))
    flow["views"][idx] = fake_views("reclaim: after MADV_PAGEOUT", "X" * 8 + "P" * 8 + "S" * 16)
    v = judge(obs)
    assert v.status == Status.PASS
    assert any(c.key == "reclaim: swap not set up, MADV_PAGEOUT not judged" for c in v.checks)
