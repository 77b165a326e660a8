"""Host rules of the migrate_* mm cases (migrate_fork, migrate_refused, migrate_gup, migrate_teardown) on
hand-made (fake) observations: each rule reads a leak, a moved page or a missed migration as FAIL."""

from __future__ import annotations

import copy

from hmmbench.cases import migrate_gup, migrate_refused, migrate_teardown
from hmmbench.cases.facts import TargetFacts
from hmmbench.cases.verdict import Status
from hmmbench.guest.pagemap import KPF, PM_PRESENT, PM_SWAP

N = 4
SNAP_NONE, SNAP_WRITE, SNAP_PRIV_W = 0x00, 0x02, 0x22


def swap(t: int, offset: int) -> int:
    return PM_SWAP | (offset << 5) | t


def present(pfn: int) -> int:
    return PM_PRESENT | pfn


def fake_calibration() -> dict:
    return {"layout": {"spm_addr_dev0": 0, "spm_addr_dev1": 0, "devices": [0, 1]},
            "probes": {"0": [{"how": "write", "cmd": {"ret": 0}, "pagemap": swap(27, 1)},
                             {"how": "read-only", "cmd": {"ret": 0}, "pagemap": swap(28, 2)}]}}


def fake_views(label: str, entries: list[int], kinds: list[str]) -> dict:
    """Views where dmirror0 owns every device-private page and dmirror1 sees nothing of them."""
    own = [SNAP_PRIV_W if k == "dev" else SNAP_WRITE for k in kinds]
    other = [SNAP_NONE if k == "dev" else SNAP_WRITE for k in kinds]
    return {"label": label, "npages": len(entries), "cpu": {"pagemap": entries, "kpageflags": [0] * len(entries)},
            "devices": {"0": {"snapshot_cmd": {"ret": 0}, "snapshot": own},
                        "1": {"snapshot_cmd": {"ret": 0}, "snapshot": other}}}


def on_device(label: str, first: int = 0x100) -> dict:
    return fake_views(label, [swap(27, first + i) for i in range(N)], ["dev"] * N)


def on_system(label: str, first: int = 0x5000) -> dict:
    return fake_views(label, [present(first + i) for i in range(N)], ["sys"] * N)


def mig(pfns: list[int]) -> dict:
    return {"ret": 0, "errno": 0, "cpages": N, "faults": 0, "mirror_matches": True, "pfns": pfns}


def teardown_obs() -> dict:
    dev_pfns = [0x100 + i for i in range(N)]
    held = [mig([0x200 + 16 * j + i for i in range(N)]) for j in range(4)]
    return {
        "memory": "private", "npages": N, "local": 0, "remote": 1, "calibration": fake_calibration(),
        "multiple": [dict(mig(dev_pfns), data_intact=True, munmap=[0, 0]) for _ in range(3)],
        "multiple_views": on_system("migrate_multiple: after the way back"),
        "cycles": [dict(mig(dev_pfns), munmap=[0, 0]) for _ in range(8)],
        "cycle_views": on_device("teardown cycle: before munmap"),
        "read_unmapped": {"ret": -1, "errno": 14, "cpages": 0},
        "held": held, "after_held": dict(mig(held[-1]["pfns"]), munmap=[0, 0]),
        "anon_teardown": [{"read": {"ret": 0, "errno": 0, "cpages": N}, "read_matches": True, "munmap_half": [0, 0],
                           "munmap": [0, 0], "views_first_half": None}],
        "exits": [{"how": "exit", "child": mig(dev_pfns), "status": {"exited": True, "code": 0, "signal": None},
                   "parent_after": dict(mig(dev_pfns), munmap=[0, 0])}],
    }


def test_teardown_passes_when_pages_are_reused():
    v = migrate_teardown.judge(teardown_obs(), TargetFacts())
    assert v.status == Status.PASS, v.evidence


def test_teardown_fails_on_a_leak_of_every_cycle():
    obs = teardown_obs()
    for k, cyc in enumerate(obs["cycles"]):
        cyc["pfns"] = [0x1000 + 16 * k + i for i in range(N)]  # fresh pages each cycle: nothing freed
    v = migrate_teardown.judge(obs, TargetFacts())
    assert v.status == Status.FAIL
    assert "teardown cycles: device pages are reused, not leaked" in v.summary, v.summary


def test_teardown_fails_when_an_exited_child_keeps_its_pages():
    obs = teardown_obs()
    obs["exits"][0]["parent_after"]["pfns"] = [0x900 + i for i in range(N)]
    v = migrate_teardown.judge(obs, TargetFacts())
    assert v.status == Status.FAIL


def test_teardown_control_error_when_held_ranges_overlap():
    obs = teardown_obs()
    for h in obs["held"]:
        h["pfns"] = [0x100 + i for i in range(N)]
    obs["after_held"]["pfns"] = [0x100 + i for i in range(N)]
    assert migrate_teardown.judge(obs, TargetFacts()).status == Status.ERROR


def test_refused_allows_only_a_large_folio_to_lose_its_ptes():
    large = 1 << KPF["COMPOUND_HEAD"]
    before = {"pagemap": [present(10), present(11)], "kpageflags": [large, large]}
    assert migrate_refused._unmoved(before, [0, 0]) == (True, 2)
    base = {"pagemap": [present(10), present(11)], "kpageflags": [0, 0]}
    assert migrate_refused._unmoved(base, [0, 0])[0] is False  # a base page's PTE may not vanish
    assert migrate_refused._unmoved(base, [swap(27, 5), present(11)])[0] is False  # moved to the device
    assert migrate_refused._unmoved(base, [present(10), present(11)]) == (True, 0)


def gup_obs() -> dict:
    half = N // 2
    back = fake_views("after pread of /proc/self/mem", [present(0x5000), present(0x5001), swap(27, 0x102),
                                                         swap(27, 0x103)], ["sys", "sys", "dev", "dev"])
    path = {"path": "pread of /proc/self/mem", "migrate": mig([]), "views": back, "data_intact": True,
            "op": {"ret": half * 4096, "read_matches": True}}
    return {"memory": "private", "npages": N, "half": half, "local": 0, "remote": 1,
            "calibration": fake_calibration(), "paths": [path], "gup_test_exists": False}


def test_gup_passes_when_exactly_the_gupd_pages_come_back():
    v = migrate_gup.judge(gup_obs(), TargetFacts())
    assert v.status == Status.PASS, v.evidence


def test_gup_fails_when_a_gupd_page_stays_on_the_device():
    obs = copy.deepcopy(gup_obs())
    obs["paths"][0]["views"] = on_device("after pread of /proc/self/mem")
    v = migrate_gup.judge(obs, TargetFacts())
    assert v.status == Status.FAIL
