"""devmem_mixed_sizes' host rule on hand-made (fake) observations shaped like the guest's record."""

from __future__ import annotations

import copy

from test_views import fake_calibration, fake_views, present, swap

from hmmbench.cases.devmem_mixed_sizes import judge
from hmmbench.cases.facts import TargetFacts
from hmmbench.cases.verdict import Status
from hmmbench.guest.uapi import SNAPSHOT_FLAGS as F

OK = {"ret": 0, "errno": 0, "cpages": 0, "faults": 0}


def ioctl(cpages: int, ret: int = 0, err: int = 0) -> dict:
    return {"ret": ret, "errno": err, "cpages": cpages, "faults": 0}


def fake_private(order: str = "thp-first") -> dict:
    """Every step as a kernel that handles both sizes gives it (device-private write type 27)."""
    local = F["DEV_PRIVATE_LOCAL"] | F["WRITE"]

    def on_device(n: int) -> dict:
        return {"pagemap": [swap(27, 0x1000 + i) for i in range(n)], "snap": {0: [local] * n, 1: [0] * n}}

    def system(n: int) -> dict:
        return {"pagemap": [present(0x4000 + i) for i in range(n)], "snap": {0: [F["WRITE"]] * n, 1: [F["WRITE"]] * n}}

    sizes = {"thp": 512, "base": 16}
    steps = ["thp", "base"] if order == "thp-first" else ["base", "thp"]
    views, done = [], []
    for name in steps:
        done.append(name)
        for other in ("thp", "base"):
            state = on_device(sizes[other]) if other in done else system(sizes[other])
            views.append(fake_views(f"{other} range after MIGRATE_TO_DEV of {name}", state["pagemap"], state["snap"]))
    for name in ("thp", "base"):
        state = system(sizes[name])
        views.append(fake_views(f"{name} range after MIGRATE_TO_SYS", state["pagemap"], state["snap"]))
    return {"memory": "private", "order": order, "local": 0, "huge_pages": 512, "base_pages": 16,
            "calibration": fake_calibration(), "release_before": OK, "anon_huge_kb": 2048,
            "migrate_thp": ioctl(512), "mirror_thp": True, "migrate_base": ioctl(16), "mirror_base": True,
            "to_sys_thp": ioctl(512), "to_sys_base": ioctl(16), "data_thp": True, "data_base": True,
            "views": views, "release_after": OK}


def test_both_sizes_landing_passes_in_either_order() -> None:
    for order in ("thp-first", "base-first"):
        v = judge(fake_private(order), TargetFacts())
        assert v.status is Status.PASS, (order, v.summary)


def test_the_second_size_falling_short_fails_with_its_own_checks() -> None:
    obs = fake_private()
    obs["migrate_base"] = ioctl(0, -1, 2)  # ENOENT: no memory of that size
    obs["mirror_base"] = False
    for v in obs["views"]:
        if v["label"] == "base range after MIGRATE_TO_DEV of base":
            v.update(copy.deepcopy(fake_views(v["label"], [present(0x5000 + i) for i in range(16)],
                                              {0: [F["WRITE"]] * 16, 1: [F["WRITE"]] * 16})))
    v = judge(obs, TargetFacts())
    assert v.status is Status.FAIL
    assert set(v.failed_checks) == {"MIGRATE_TO_DEV of the base range (second)",
                                    "base range on the device after MIGRATE_TO_DEV of base"}
