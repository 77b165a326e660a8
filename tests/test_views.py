"""Both views judged (hmmbench.cases.views): pure logic over hand-made (fake) observation records, shaped
like the guest's devmem.views() output."""

from __future__ import annotations

from hmmbench.cases.verdict import Checks, Status, Verdict
from hmmbench.cases.views import Calibration, compare, cpu_page
from hmmbench.guest.pagemap import KPF, PM_PRESENT, PM_SWAP
from hmmbench.guest.uapi import SNAPSHOT_FLAGS as F

SPM0, SPM1 = 0x80000000, 0x90000000  # fake spm_addr_dev0/dev1


def swap(t: int, offset: int = 0x1234) -> int:
    return PM_SWAP | (offset << 5) | t


def present(pfn: int) -> int:
    return PM_PRESENT | pfn


def fake_calibration() -> dict:
    """A calibration record as 6.12.118 gave it: device-private write type 27, read 28, exclusive 29/30,
    and dmirror2 owning spm_addr_dev1's memory (test_hmm's MINOR-2 rule)."""
    return {"layout": {"spm_addr_dev0": SPM0, "spm_addr_dev1": SPM1, "devices": [0, 1, 2, 3]},
            "probes": {"0": [{"how": "write", "cmd": {"ret": 0}, "pagemap": swap(27)},
                             {"how": "read-only", "cmd": {"ret": 0}, "pagemap": swap(28)},
                             {"how": "exclusive", "cmd": {"ret": 0}, "pagemap": swap(29),
                              "pagemap_readonly": swap(30)}],
                       "2": [{"how": "write", "cmd": {"ret": 0}, "pagemap": present(SPM1 // 4096 + 5)}],
                       "3": [{"how": "write", "cmd": {"ret": 0}, "pagemap": present(SPM0 // 4096 + 9)}]}}


def fake_views(label: str, entries: list[int], snapshots: dict[int, list[int]], kpageflags=None,
               exclusive: dict[int, list[int]] | None = None) -> dict:
    devices = {}
    for d, flags in snapshots.items():
        devices[str(d)] = {"snapshot_cmd": {"ret": 0}, "snapshot": flags}
        if exclusive is not None:
            devices[str(d)]["check_exclusive"] = exclusive[d]
    return {"label": label, "npages": len(entries),
            "cpu": {"pagemap": entries, "kpageflags": kpageflags or [0] * len(entries)}, "devices": devices}


def test_calibration_reads_types_and_coherent_owners():
    cal = Calibration.from_obs(fake_calibration())
    assert (cal.private_write, cal.private_read) == (27, 28)
    assert cal.exclusive == {29, 30}
    assert cal.coherent_owner(SPM1 // 4096 + 100) == 2
    assert cal.coherent_owner(SPM0 // 4096) == 3
    assert cal.coherent_owner(0x1000) is None
    assert not cal.problems


def test_cpu_page_kinds():
    cal = Calibration.from_obs(fake_calibration())
    assert cpu_page(swap(27), None, cal).kind == "device-private"
    assert cpu_page(swap(28), None, cal).writable is False
    assert cpu_page(swap(30), None, cal).kind == "device-exclusive"
    assert cpu_page(swap(3), None, cal).kind == "other-swap"
    assert cpu_page(present(0x4242), 0, cal).kind == "system"
    assert cpu_page(present(0x4242), 1 << KPF["ZERO_PAGE"], cal).kind == "zero"
    assert cpu_page(present(SPM1 // 4096 + 1), 0, cal).owner == 2
    assert cpu_page(0, None, cal).kind == "none"


def test_agreeing_views_pass_and_a_wrong_device_view_is_reported_with_both_sides():
    cal = Calibration.from_obs(fake_calibration())
    local = F["DEV_PRIVATE_LOCAL"] | F["WRITE"]
    good = fake_views("after MIGRATE_TO_DEV", [swap(27), swap(27), present(0x4000)],
                      {0: [local, local, F["WRITE"]], 1: [0, 0, F["WRITE"]]})
    c = Checks()
    judged = compare(c, good, cal, owners=0)
    assert not judged.disagreements and not c.failed
    # dmirror1 claims page 1 as its own: test_hmm (or mm/hmm.c) is wrong about the owner.
    bad = fake_views("after MIGRATE_TO_DEV", [swap(27), swap(27), present(0x4000)],
                     {0: [local, local, F["WRITE"]], 1: [0, local, F["WRITE"]]})
    c = Checks()
    judged = compare(c, bad, cal, owners=0)
    assert [(d.page, d.device) for d in judged.disagreements] == [(1, "dmirror1 SNAPSHOT WRITE|DEV_PRIVATE_LOCAL")]
    assert "device-private entry" in judged.disagreements[0].cpu
    assert c.failed == ["views agree: after MIGRATE_TO_DEV"]
    v = c.verdict("x")
    assert v.status is Status.FAIL and len(v.disagreements) == 1
    again = Verdict.from_dict(v.to_dict())
    assert again.disagreements == v.disagreements


def test_coherent_local_and_remote_follow_the_measured_owner_not_the_device_number():
    cal = Calibration.from_obs(fake_calibration())
    pfn = SPM1 // 4096 + 3  # dmirror2's memory
    ok = fake_views("coherent", [present(pfn)], {2: [F["DEV_COHERENT_LOCAL"] | F["WRITE"]],
                                                 3: [F["DEV_COHERENT_REMOTE"] | F["WRITE"]]})
    assert not compare(Checks(), ok, cal).disagreements
    swapped = fake_views("coherent", [present(pfn)], {2: [F["DEV_COHERENT_REMOTE"] | F["WRITE"]],
                                                      3: [F["DEV_COHERENT_LOCAL"] | F["WRITE"]]})
    assert len(compare(Checks(), swapped, cal).disagreements) == 2


def test_check_exclusive_must_match_the_cpu_view():
    cal = Calibration.from_obs(fake_calibration())
    v = fake_views("mixed", [swap(30), present(0x5000)], {0: [0, F["WRITE"]], 1: [0, F["WRITE"]]},
                   exclusive={0: [1, 1], 1: [0, 0]})
    found = compare(Checks(), v, cal, exclusive_owner=0).disagreements
    assert [(d.page, d.device) for d in found] == [(1, "dmirror0 CHECK_EXCLUSIVE held exclusive (EPERM)")]


def test_zero_page_and_prot_none():
    cal = Calibration.from_obs(fake_calibration())
    zero = fake_views("zero", [present(0x10)], {0: [F["ZERO"] | F["READ"]]}, kpageflags=[1 << KPF["ZERO_PAGE"]])
    assert not compare(Checks(), zero, cal).disagreements
    wrong = fake_views("zero", [present(0x10)], {0: [F["READ"]]}, kpageflags=[1 << KPF["ZERO_PAGE"]])
    assert compare(Checks(), wrong, cal).disagreements
    pn = fake_views("prot none", [present(0x10)], {0: [F["ERROR"]]})
    pn["devices"]["0"]["snapshot_cmd"] = {"ret": -1, "errno": 14}
    assert not compare(Checks(), pn, cal, prot_none=True).disagreements
