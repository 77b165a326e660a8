"""device_thp family, host side: views' PMD-level device-private blocks and huge zero page, and device_thp's
rule on hand-made (fake) observation records shaped like the guest's."""

from __future__ import annotations

from hmmbench.cases import device_thp
from hmmbench.cases.facts import TargetFacts
from hmmbench.cases.verdict import Checks, Status
from hmmbench.cases.views import Calibration, compare, cpu_page, device_folio_blocks
from hmmbench.guest.pagemap import KPF, PM_PRESENT, PM_SWAP
from hmmbench.guest.uapi import SNAPSHOT_FLAGS as F

N = 512
W, R = 28, 29  # 7.2.13's device-private write and read types
BASE = 0xFFDFE00  # a 2 MiB-aligned device PFN


def swap(t: int, offset: int) -> int:
    return PM_SWAP | (offset << 5) | t


def fake_calibration() -> dict:
    return {"layout": {"spm_addr_dev0": 0, "spm_addr_dev1": 0, "devices": [0, 1]},
            "probes": {"0": [{"how": "write", "cmd": {"ret": 0}, "pagemap": swap(W, 5)},
                             {"how": "read-only", "cmd": {"ret": 0}, "pagemap": swap(R, 6)}]}}


def fake_view(label: str, entries: list[int], snaps: dict[int, list[int]], kpageflags=None) -> dict:
    return {"label": label, "npages": len(entries),
            "cpu": {"pagemap": entries, "kpageflags": kpageflags or [0] * len(entries)},
            "devices": {str(d): {"snapshot_cmd": {"ret": 0}, "snapshot": s} for d, s in snaps.items()}}


def device_folio(t: int = W, base: int = BASE) -> list[int]:
    return [swap(t, base + i) for i in range(N)]


def test_pmd_flag_allowed_only_on_a_block_of_one_device_folio():
    cal = Calibration.from_obs(fake_calibration())
    pmd = F["DEV_PRIVATE_LOCAL"] | F["WRITE"] | F["PMD"]
    ok = fake_view("one folio", device_folio(), {0: [pmd] * N, 1: [0] * N})
    assert not compare(Checks(), ok, cal, owners=0, pmd_blocks=[0]).disagreements
    # Without the caller saying where 2 MiB blocks begin, the PMD flag disagrees (PTE-level semantics).
    assert len(compare(Checks(), ok, cal, owners=0).disagreements) == N
    # Device PFNs not consecutive (512 base pages from test_hmm's free list): PMD is a disagreement.
    scattered = fake_view("scattered", [swap(W, BASE + N - i) for i in range(N)], {0: [pmd] * N, 1: [0] * N})
    assert len(compare(Checks(), scattered, cal, owners=0, pmd_blocks=[0]).disagreements) == N
    pages = [cpu_page(e, 0, cal) for e in device_folio(base=BASE + 1)]
    assert not any(device_folio_blocks(pages, [0]))  # first device PFN not 2 MiB-aligned


def test_remote_device_error_on_a_pmd_entry_is_a_disagreement():
    cal = Calibration.from_obs(fake_calibration())
    pmd = F["DEV_PRIVATE_LOCAL"] | F["WRITE"] | F["PMD"]
    v = fake_view("remote", device_folio(), {0: [pmd] * N, 1: [F["ERROR"]] * N})
    found = compare(Checks(), v, cal, owners=0, pmd_blocks=[0]).disagreements
    assert len(found) == N and all(d.device == "dmirror1 SNAPSHOT ERROR" for d in found)


def test_huge_zero_page_reads_read_pmd():
    cal = Calibration.from_obs(fake_calibration())
    kpf = [1 << KPF["ZERO_PAGE"] | 1 << KPF["THP"]]
    assert cpu_page(PM_PRESENT | 0x1000, kpf[0], cal).huge
    ok = fake_view("huge zero", [PM_PRESENT | 0x1000], {0: [F["READ"] | F["PMD"]]}, kpageflags=kpf)
    assert not compare(Checks(), ok, cal).disagreements
    small = fake_view("huge zero", [PM_PRESENT | 0x1000], {0: [F["ZERO"] | F["READ"]]}, kpageflags=kpf)
    assert compare(Checks(), small, cal).disagreements


def fake_empty_obs(remote: int = F["NONE"], flags_ioctl: bool = True, pmd: bool = True) -> dict:
    """device_thp[fill=empty] as a kernel with device-private THP gives it (remote: what dmirror1 says)."""
    sys_w = F["READ"] | F["PMD"]
    thp = [1 << KPF["THP"]] * N
    local = F["DEV_PRIVATE_LOCAL"] | F["READ"] | (F["PMD"] if pmd else 0)
    on_dev = device_folio(R) if pmd else [swap(R, BASE + N - i) for i in range(N)]
    back = [PM_PRESENT | (0x40000 + i) for i in range(N)]
    return {
        "fill": "empty", "npages": N, "local": 0, "touched": 2, "flags_ioctl": flags_ioctl,
        "calibration": fake_calibration(), "use_zero_page": "1",
        "system": {"kpageflags_thp": [False] * N, "kpageflags_zero": [False] * N, "anon_huge_kb": 0},
        "pte_control_migrate": {"ret": 0, "errno": 0, "cpages": 1},
        "pte_control": fake_view("a base page on the device", [swap(W, 7)],
                                 {0: [F["DEV_PRIVATE_LOCAL"] | F["WRITE"]], 1: [0]}),
        "migrate": {"ret": 0, "errno": 0, "cpages": N}, "mirror_matches": True,
        "anon_huge_kb_on_device": 2048, "free_2mb_blocks_before_fault": 400, "cpu_read_faults": 6,
        "after_fault": {"anon_huge_kb": 2048}, "data_after_fault": True,
        "views": [fake_view("before MIGRATE_TO_DEV", [0] * N, {0: [0] * N, 1: [0] * N}),
                  fake_view("after MIGRATE_TO_DEV", on_dev, {0: [local] * N, 1: [remote] * N}),
                  fake_view("after a CPU read of one page", back, {0: [sys_w] * N, 1: [sys_w] * N}, thp),
                  fake_view("after a CPU read of every page", back, {0: [sys_w] * N, 1: [sys_w] * N}, thp)],
    }


def test_device_thp_passes_fails_and_skips_by_feature_presence():
    facts = TargetFacts.from_info({"release": "7.2.13"})
    v = device_thp.judge(fake_empty_obs(), facts)
    assert v.status is Status.PASS, v.evidence
    v = device_thp.judge(fake_empty_obs(remote=F["ERROR"]), facts)
    assert v.status is Status.FAIL and v.failed_checks == ["views agree: after MIGRATE_TO_DEV"]
    v = device_thp.judge(fake_empty_obs(flags_ioctl=False, pmd=False), facts)
    assert v.status is Status.SKIP and v.summary.startswith("device-private THP not supported")
    # FLAGS present but no PMD-level entry: the kernel says it has the feature and did not use it.
    v = device_thp.judge(fake_empty_obs(pmd=False), facts)
    assert v.status is Status.FAIL and "migrated as one PMD-level device-private entry" in v.failed_checks
