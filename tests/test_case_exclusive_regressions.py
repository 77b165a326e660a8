"""exclusive_regressions' rule on hand-made (fake) observations of each variant, and on edits of them."""

from __future__ import annotations

import errno

from hmmbench import cases
from hmmbench.cases.facts import KernelConfig, TargetFacts
from hmmbench.cases.verdict import Status
from hmmbench.guest.pagemap import KPF, PM_PRESENT, PM_SWAP, PM_UFFD_WP
from hmmbench.guest.uapi import SNAPSHOT_FLAGS as F

SPEC = cases.load_all()["exclusive_regressions"]
ANON, HEAD, TAIL = 1 << KPF["ANON"], 1 << KPF["COMPOUND_HEAD"], 1 << KPF["COMPOUND_TAIL"]
CONFIG = {"CONFIG_USERFAULTFD": "y", "CONFIG_HAVE_ARCH_USERFAULTFD_WP": "y", "CONFIG_PTE_MARKER_UFFD_WP": "y"}


def fake_calibration() -> dict:
    """This kernel's encoding as a calibration record: device-private 27 (write) / 28, exclusive 29 / 30."""
    def swap(t: int, off: int) -> int:
        return PM_SWAP | (off << 5) | t

    return {"layout": {"spm_addr_dev0": 0x80000000, "spm_addr_dev1": 0x90000000, "devices": [0, 1, 2, 3]},
            "probes": {"0": [{"how": "write", "cmd": {"ret": 0}, "pagemap": swap(27, 1)},
                             {"how": "read-only", "cmd": {"ret": 0}, "pagemap": swap(28, 2)},
                             {"how": "exclusive", "cmd": {"ret": 0}, "pagemap": swap(29, 3),
                              "pagemap_readonly": swap(30, 3)}]}}


def fake_views(label: str, kinds: str) -> dict:
    """Both views of a range whose pages are S (system) or P (device-private of dmirror0), as they should be."""
    def entry(k: str, i: int) -> int:
        return PM_PRESENT | (0x1000 + i) if k == "S" else PM_SWAP | ((0xFFD00 + i) << 5) | 27

    def byte(k: str, d: int) -> int:
        return F["WRITE"] if k == "S" else F["DEV_PRIVATE_LOCAL"] | F["WRITE"] if d == 0 else F["NONE"]

    return {"label": label, "npages": len(kinds),
            "cpu": {"pagemap": [entry(k, i) for i, k in enumerate(kinds)], "kpageflags": [0] * len(kinds),
                    "kpagecount": [1] * len(kinds)},
            "devices": {str(d): {"snapshot_cmd": {"ret": 0}, "snapshot": [byte(k, d) for k in kinds]}
                        for d in (0, 1, 2, 3)}}


def ok(n: int) -> dict:
    return {"ret": 0, "errno": 0, "cpages": n, "faults": 0}


def present(pfn: int) -> int:
    return PM_PRESENT | pfn


def excl(pfn: int) -> int:
    return PM_SWAP | (pfn << 5) | 29


def state(entries: list[int], kpageflags: list[int] | None = None, counts: list[int] | None = None) -> dict:
    n = len(entries)
    return {"pagemap": entries, "kpageflags": kpageflags or [ANON] * n, "kpagecount": counts or [1] * n}


def judge(obs: dict, config: dict | None = None):
    return SPEC.judge()(obs, TargetFacts(release="7.2.13", config=KernelConfig(config)))


# ----------------------------------------------------------------------------------------------- mthp_free

def fake_mthp() -> dict:
    n = 16
    folio = [present(0x5000 + i) for i in range(n)]
    flags = [ANON | HEAD] + [ANON | TAIL] * (n - 1)
    with_excl = folio[:-1] + [excl(0x5000 + n - 1)]
    return {"scenario": "mthp_free", "npages": n, "mthp_enable": [True, ""], "mthp_enabled_before": "[never]",
            "anon_fault_alloc": ["0", "1"], "control": {"state": state([present(0x9000)], counts=[2])},
            "swap": {"ok": True}, "cgroup": {"ok": True}, "before": state(folio, flags),
            "madv_free": [0, 0], "after_free": state(folio, flags), "exclusive": ok(1), "exclusive_data": True,
            "after_exclusive": state(with_excl, flags, [1] * (n - 1) + [0]), "reclaim": [[True, ""]],
            "after_reclaim": state([PM_SWAP | (i << 5) for i in range(n)], [0] * n, [0] * n),
            "pageout": [0, 0], "after_pageout": state([PM_SWAP | (i << 5) for i in range(n)], [0] * n, [0] * n),
            "check_exclusive": ok(0), "pages": ["original"] * n,
            "after_read": state([present(0x6000 + i) for i in range(n)])}


def test_mthp_fake_passes() -> None:
    v = judge(fake_mthp())
    assert v.status == Status.PASS, v.evidence


def test_mthp_a_present_page_with_a_wrong_mapcount_fails() -> None:
    obs = fake_mthp()
    obs["after_read"]["kpagecount"][3] = 2
    assert judge(obs).failed_checks == ["mthp_free: no mapcount damage after read"]


def test_mthp_the_exclusive_page_discarded_fails() -> None:
    obs = fake_mthp()
    obs["pages"][-1] = "zero"
    assert judge(obs).failed_checks == ["mthp_free: the exclusive page keeps its data"]


def test_mthp_a_refused_exclusive_is_noted() -> None:
    obs = fake_mthp()
    obs["exclusive"] = {"ret": -1, "errno": errno.EBUSY, "cpages": 0}
    obs["after_exclusive"] = obs["after_free"]
    v = judge(obs)
    assert v.status == Status.PASS
    assert any(c.key == "mthp_free: EXCLUSIVE of the last page refused" for c in v.checks)


def test_mthp_a_kpagecount_that_cannot_read_2_cannot_pass() -> None:
    obs = fake_mthp()
    obs["control"]["state"]["kpagecount"] = [1]
    assert judge(obs).status == Status.ERROR


# ----------------------------------------------------------------------------------------------- file_cow_munmap

def fake_file() -> dict:
    n = 16
    cow = [present(0x7000 + i) for i in range(n)]
    flags = [ANON] * (n - 1) + [0]
    ex = [excl(0x7000 + i) for i in range(n - 1)] + [cow[-1]]
    holed = ex[:-1] + [0]
    cut = ex[:12] + [0] * 4
    read = cow[:4] + ex[4:8] + cow[8:12] + [0] * 4
    dropped = cow[:4] + [0] * 4 + cow[8:12] + [0] * 4
    again = cow[:4] + [0] * 4 + ex[8:12] + [0] * 4
    return {"scenario": "file_cow_munmap", "npages": n, "file_page_intact": True, "before": state(cow, flags),
            "exclusive": ok(n - 1), "while_exclusive": state(ex, flags), "punch_hole": [0, 0],
            "after_punch_hole": state(holed), "after_truncate": state(cut), "read_back_intact": [True, True],
            "after_read": state(read), "dontneed": [0, 0], "after_dontneed": state(dropped),
            "exclusive_again": ok(4), "before_munmap": state(again), "munmap": [0, 0], "after_munmap": [0] * n}


def test_file_fake_passes() -> None:
    v = judge(fake_file())
    assert v.status == Status.PASS, v.evidence


def test_file_a_hole_punch_that_drops_a_private_copy_fails() -> None:
    obs = fake_file()
    obs["after_punch_hole"]["pagemap"][9] = 0
    assert judge(obs).failed_checks == ["file_cow_munmap: a punched hole keeps the exclusive CoW copies"]


def test_file_an_entry_left_after_munmap_fails() -> None:
    obs = fake_file()
    obs["after_munmap"][9] = excl(0x7009)
    assert judge(obs).failed_checks == ["file_cow_munmap: munmap with exclusive entries leaves nothing"]


def test_file_a_truncation_that_keeps_copies_beyond_the_size_fails() -> None:
    obs = fake_file()
    obs["after_truncate"]["pagemap"][13] = excl(0x700D)
    assert "file_cow_munmap: truncation drops the exclusive copies beyond the new size, keeps the rest" in \
        judge(obs).failed_checks


# ----------------------------------------------------------------------------------------------- close_migrated

def fake_close() -> dict:
    pmd = F["DEV_PRIVATE_LOCAL"] | F["WRITE"] | F["PMD"]
    thp_before = fake_views("THP range before the close", "P" * 512)
    thp_before["devices"]["0"]["snapshot"] = [pmd] * 512
    return {"scenario": "close_migrated", "local": 0, "calibration": fake_calibration(), "madv_hugepage": [0, 0],
            "thp_before": state([present(0x8000)], [ANON | HEAD | 1 << KPF["THP"]]), "migrate_base": ok(16),
            "migrate_thp": ok(512), "closed": True, "base_intact": True, "thp_intact": True,
            "views": [fake_views("base pages before the close", "P" * 16), thp_before,
                      fake_views("base pages after the close", "S" * 16),
                      fake_views("THP range after the close", "S" * 512),
                      fake_views("base pages after a CPU read", "S" * 16),
                      fake_views("THP range after a CPU read", "S" * 512)]}


def test_close_fake_passes_with_the_pmd_bit_noted() -> None:
    v = judge(fake_close())
    assert v.status == Status.PASS, v.evidence
    assert any(c.key == "close_migrated: device-private pages reported with the PMD bit" and c.seen == "512"
               for c in v.checks)


def test_close_pages_left_on_the_device_fail() -> None:
    obs = fake_close()
    obs["views"][2] = fake_views("base pages after the close", "P" + "S" * 15)
    assert judge(obs).failed_checks == ["close_migrated: the close evicts the base pages to system memory"]


def test_close_remote_devices_reporting_error_on_a_device_private_pmd_disagree() -> None:
    obs = fake_close()
    obs["views"][1]["devices"]["1"]["snapshot"] = [F["ERROR"]] * 512
    assert judge(obs).failed_checks == ["views agree: THP range before the close"]


# ----------------------------------------------------------------------------------------------- uffd_wp

def fake_uffd() -> dict:
    addr = 0x7F0000000000
    ex = [excl(0x3000 + i) for i in range(4)]
    wp = [e | PM_UFFD_WP for e in ex[:2]] + ex[2:]
    return {"scenario": "uffd_wp", "npages": 4, "addr": addr, "userfaultfd": [0, 0], "api": [0, 0],
            "register": [0, 0], "exclusive": ok(4), "after_exclusive": ex, "writeprotect": [0, 0], "after_wp": wp,
            "event": {"event": 0x12, "flags": 3, "address": addr + 8}, "finished_before_resolve": False,
            "while_waiting": [present(0x3000) | PM_UFFD_WP] + wp[1:], "page0_before_resolve": False,
            "resolve": [0, 0], "finished_after_resolve": True, "after_resolve": [present(0x3000)] + wp[1:],
            "unprotected_finished": True, "unprotected_event": None, "writer_seconds": [0.2, 0.01],
            "end": [present(0x3000), wp[1], present(0x3002), wp[3]], "snapshot_end": [2, 0, 2, 0],
            "page_data": [True] * 4, "unprotect_all": [0, 0], "writer_alive_at_end": False}


def test_uffd_fake_passes() -> None:
    v = judge(fake_uffd(), CONFIG)
    assert v.status == Status.PASS, v.evidence


def test_uffd_a_write_that_goes_through_the_protection_fails() -> None:
    obs = fake_uffd()
    obs.update(event=None, finished_before_resolve=True, page0_before_resolve=True)
    obs["while_waiting"][0] = present(0x3000)
    assert judge(obs, CONFIG).failed_checks == [
        "uffd_wp: the write to a protected page raises a WP fault event for it",
        "uffd_wp: the write waits while protected", "uffd_wp: protection kept on the page while the writer waits"]


def test_uffd_an_event_for_another_page_fails() -> None:
    obs = fake_uffd()
    obs["event"]["address"] = obs["addr"] + 2 * 4096
    assert judge(obs, CONFIG).failed_checks == ["uffd_wp: the write to a protected page raises a WP fault event for it"]


def test_uffd_a_writer_that_never_finishes_fails() -> None:
    obs = fake_uffd()
    obs.update(finished_after_resolve=False, writer_alive_at_end=True)
    assert judge(obs, CONFIG).failed_checks == ["uffd_wp: resolving the protection lets the write finish",
                                                "uffd_wp: no writer left blocked"]


def test_uffd_refused_is_decided_by_the_configuration() -> None:
    obs = {"scenario": "uffd_wp", "npages": 4, "addr": 0, "userfaultfd": [0, 0], "api": [0, 0],
           "register": [-1, errno.EINVAL]}
    assert judge(obs, CONFIG).failed_checks == ["uffd_wp: userfaultfd write-protect accepted"]
    assert judge(obs, {"CONFIG_USERFAULTFD": "n"}).status == Status.SKIP
    assert judge(obs, None).status == Status.ERROR


def test_mthp_reclaim_without_madv_free_allows_no_zero_page() -> None:
    obs = fake_mthp()
    obs.update(scenario="mthp_reclaim", free=False, madv_free=None)
    assert judge(obs).status == Status.PASS
    obs["pages"][3] = "zero"
    assert judge(obs).failed_checks == ["mthp_reclaim: every page reads its data"]
