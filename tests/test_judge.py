"""Verdict rules on recorded observations, the record-level judge, results files and the report table.

tests/data/observations_6.12.json and observations_7.2.json are REAL observations, recorded by
``hmmbench run`` on Linux 6.12.117 (before "mm: fixes for device-exclusive entries") and 7.2.13 (after
it) under QEMU, with the target's facts and kernel configuration (trimmed as their "about" says).
Every test that changes a recorded value says what it stands for; nothing else is invented.
"""

from __future__ import annotations

import copy
import errno
import functools
import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from hmmbench import cases
from hmmbench.cases.facts import TargetFacts
from hmmbench.cases.judge import judge_record as judge_record_with_facts
from hmmbench.cases.rules import write_fault_signal
from hmmbench.cases.verdict import Checks, Outcome, Status, Verdict
from hmmbench.guest.pagemap import PM_SOFT_DIRTY, PM_UFFD_WP
from hmmbench.reports import results, text

DATA = Path(__file__).parent / "data"
ERRNO_NAMES = set(errno.errorcode.values()) | {"EOPNOTSUPP"}
KERNELS = ("6.12", "7.2")
# Known verdicts: before the series exactly these fail; after it everything passes.
FAIL_ON_612 = {"exclusive_thp", "exclusive_mapcount", "exclusive_migration"}
SPECS = cases.load_all()


@functools.cache
def _recorded(kernel: str) -> dict:
    return json.loads((DATA / f"observations_{kernel}.json").read_text())


def target(kernel: str) -> dict:
    """The recorded target facts (release, thp_enabled, config ...): a fresh copy."""
    return copy.deepcopy(_recorded(kernel)["target"])


def obs(kernel: str, case_id: str) -> dict:
    """The recorded observations of one case: a fresh copy, so a test's edits stay its own."""
    return copy.deepcopy(_recorded(kernel)["cases"][case_id]["record"]["observations"])


def judge(case_id: str, o: dict, tgt: dict) -> Verdict:
    """The case's rule on observations ``o``, with the facts of the (recorded, perhaps edited) info record."""
    return SPECS[case_id.split("[")[0]].judge()(o, TargetFacts.from_info(tgt))


def judge_record(spec, record: dict, tgt: dict, console_lines: list[str] | None = None) -> Verdict:
    return judge_record_with_facts(spec, record, TargetFacts.from_info(tgt), console_lines)


def outcome(v: Verdict, key: str) -> Outcome:
    (check,) = [c for c in v.checks if c.key == key]
    return check.outcome


def failed_controls(v: Verdict) -> list[str]:
    return [c.key for c in v.checks if c.outcome is Outcome.CONTROL_FAILED]


def with_bit(entries: list[int], bit: int, on: bool, pages: slice = slice(None)) -> list[int]:
    """The same raw pagemap entries with one flag bit set or cleared on the pages in ``pages``."""
    out = list(entries)
    for i in range(len(out))[pages]:
        out[i] = out[i] | bit if on else out[i] & ~bit
    return out


# ------------------------------------------------------------------ every case, both recorded kernels


@pytest.mark.parametrize("kernel", KERNELS)
def test_recorded_runs_keep_the_known_verdicts(kernel: str) -> None:
    for case_id, entry in _recorded(kernel)["cases"].items():
        v = judge_record(SPECS[entry["case"]], copy.deepcopy(entry["record"]), target(kernel))
        want = Status.FAIL if kernel == "6.12" and entry["case"] in FAIL_ON_612 else Status.PASS
        assert v.status == want, (kernel, case_id, v.summary, v.evidence)


@pytest.mark.parametrize("kernel", KERNELS)
def test_every_recorded_case_has_controls_that_read_the_other_way(kernel: str) -> None:
    for case_id in _recorded(kernel)["cases"]:
        v = judge(case_id, obs(kernel, case_id), target(kernel))
        assert failed_controls(v) == [], (kernel, case_id)
        assert any(c.outcome is Outcome.CONTROL for c in v.checks), (kernel, case_id)
        # a check without a control says so, with the reason
        assert [c.key for c in v.checks if c.key == "checks without a negative control"], (kernel, case_id)


def test_check_keys_pair_across_the_two_kernels() -> None:
    """The gate pairs checks by key: the same case must produce the same keys before and after the series."""
    for case_id in _recorded("6.12")["cases"]:
        keys = [[c.key for c in judge(case_id, obs(k, case_id), target(k)).checks] for k in KERNELS]
        assert keys[0] == keys[1], case_id
        assert len(set(keys[0])) == len(keys[0]), f"{case_id}: duplicate keys"


def test_keys_carry_no_observed_or_expected_values() -> None:
    for kernel in KERNELS:
        for case_id in _recorded(kernel)["cases"]:
            for c in judge(case_id, obs(kernel, case_id), target(kernel)).checks:
                key = re.sub(r"^\d+ pages", "", c.key)  # exclusive_repeat's range size is a parameter
                assert not set(re.findall(r"\bE[A-Z]+\b", key)) & ERRNO_NAMES, c.key  # no errno names
                assert not re.search(r"\b\d+\b", key), c.key  # no counts, no return values


# ------------------------------------------------------------------ exclusive_basic

BASIC = "exclusive_basic[npages=4]"
WRITABLE_KEYS = ["restored PTEs writable (SNAPSHOT after the read)",
                 "restored PTEs writable (write faults after the read)"]


def test_a_recorded_read_only_restore_fails_both_writability_signals() -> None:
    # The read-only restore recorded on 6.12 by exclusive_mprotect (RO->RW path): SNAPSHOT READ on
    # every page and one write fault per page. The same restore in exclusive_basic's place is a FAIL.
    ro = obs("6.12", "exclusive_mprotect")
    assert ro["b_snapshot"] == [0x01] * 8 and ro["b_write_faults"] == 8  # what was recorded
    o = obs("6.12", BASIC)
    n = o["npages"]
    o["snapshot_after_read"]["flags"] = ro["b_snapshot"][:n]
    o["write_faults"] = o["control_write_faults"] + ro["b_write_faults"] * n // 8
    v = judge(BASIC, o, target("6.12"))
    assert v.status == Status.FAIL
    # On 4 pages the fault count is only a note (too few pages to stand clear of the noise): SNAPSHOT decides.
    assert v.failed_checks == WRITABLE_KEYS[:1]
    assert any(line.startswith(f"note {WRITABLE_KEYS[1]}: ") for line in v.evidence)


def test_on_enough_pages_the_fault_count_fails_a_read_only_restore_too() -> None:
    c = Checks()
    write_fault_signal(c, "w", 1 + 64, 1, 70, 64, expect_writable=True)  # one fault per page beyond the noise
    assert c.failed == ["w"] and not c.failed_controls


def test_snapshot_alone_catches_a_read_only_restore_the_fault_count_would_miss() -> None:
    o = obs("6.12", BASIC)
    o["snapshot_after_read"]["flags"][2] = 0x01  # one page restored read-only: one fault, below the line
    o["write_faults"] = o["control_write_faults"] + 1
    v = judge(BASIC, o, target("6.12"))
    assert v.failed_checks == ["restored PTEs writable (SNAPSHOT after the read)"]


def test_the_old_rule_passed_1024_read_only_pages_the_new_line_does_not() -> None:
    # The case: 1024 pages restored read-only cost 1024 write faults, the control loop saw 1.
    # The old rule "faults - control < pages" read 1023 < 1024: PASS. The line is now at half the pages.
    c = Checks()
    write_fault_signal(c, "writable", 1024, 1, 1024, 1024, expect_writable=True)
    assert c.failed == ["writable"]
    c = Checks()
    write_fault_signal(c, "writable", 3, 1, 1024, 1024, expect_writable=True)  # interpreter noise: writable
    assert c.failed == [] and c.failed_controls == []


def test_the_fault_line_is_at_half_the_pages() -> None:
    for extra, writable in ((0, True), (3, True), (4, False), (8, False)):
        c = Checks()
        write_fault_signal(c, "w", 5 + extra, 5, 13, 8, expect_writable=True)
        assert (c.failed == []) is writable, extra


def test_on_too_few_pages_the_fault_count_is_a_note() -> None:
    c = Checks()
    write_fault_signal(c, "w", 2, 0, 5, 4, expect_writable=True)  # 2 faults for 4 pages: either outcome
    assert c.failed == [] and c.items[0].outcome == "note"


def test_a_fault_count_that_cannot_reach_the_line_is_an_error_not_a_pass() -> None:
    o = obs("6.12", "exclusive_mprotect")
    o["readonly_write_faults"] = o["control_write_faults"]  # writes to read-only PTEs "cost nothing"
    v = judge("exclusive_mprotect", o, target("6.12"))
    assert v.status == Status.ERROR
    assert failed_controls(v) == ["a write to read-only PTEs faults on at least half the pages"]


def test_a_snapshot_that_cannot_read_read_only_is_an_error() -> None:
    o = obs("6.12", BASIC)
    o["snapshot_controls"]["ro"]["flags"] = [0x02]  # SNAPSHOT says WRITE for a read-only page
    v = judge(BASIC, o, target("6.12"))
    assert v.status == Status.ERROR
    assert failed_controls(v) == ["SNAPSHOT reads a writable PTE as WRITE and a read-only one as READ"]


def test_a_fail_wins_over_a_failed_control() -> None:
    o = obs("6.12", BASIC)
    o["snapshot_controls"]["ro"]["flags"] = [0x02]
    o["data_intact"] = False
    assert judge(BASIC, o, target("6.12")).status == Status.FAIL


def test_612_swap_type_on_72_fails() -> None:
    v = judge(BASIC, obs("6.12", BASIC), target("7.2"))
    assert v.status == Status.FAIL
    assert v.failed_checks == ["swap type is this kernel's device-exclusive type"]
    assert any(line.startswith("FAIL swap type") and "expected 30" in line for line in v.evidence)


def test_recorded_swap_types_pass_on_their_own_kernels() -> None:
    for kernel, t in (("6.12", 29), ("7.2", 30)):
        v = judge(BASIC, obs(kernel, BASIC), target(kernel))
        assert f"exclusive type [{t}]" in v.summary


def test_wrong_swap_offset_fails() -> None:
    o = obs("7.2", BASIC)
    o["while_exclusive"]["pagemap"][2] += 1 << 5  # the entry names the next PFN
    v = judge(BASIC, o, target("7.2"))
    assert v.failed_checks == ["swap offset == PFN before"]


def test_hidden_pfns_are_an_error() -> None:
    o = obs("6.12", BASIC)
    # Without CAP_SYS_ADMIN the kernel zeroes bits 0-54: present, but PFN 0.
    o["before"]["pagemap"] = [e & ~((1 << 55) - 1) for e in o["before"]["pagemap"]]
    v = judge(BASIC, o, target("6.12"))
    assert v.status == Status.ERROR
    assert "PFN visible 0/4" in v.evidence[0]


def test_check_exclusive_must_say_held() -> None:
    o = obs("6.12", BASIC)
    o["check_exclusive_while"] = {"ret": 0, "errno": 0, "cpages": 0, "faults": 0}
    v = judge(BASIC, o, target("6.12"))
    assert v.failed_checks == ["CHECK_EXCLUSIVE says the device holds the pages"]


def test_version_without_table_uses_the_calibration() -> None:
    # 5.19 .. 6.1: the types depend on config; the recorded device-private type 27 -> exclusive 29.
    tgt = {**target("6.12"), "release": "6.0.19"}
    assert judge(BASIC, obs("6.12", BASIC), tgt).status == Status.PASS
    o = obs("7.2", BASIC)  # type 30 entries beside 6.12's device-private type 27
    o["calibration"] = obs("6.12", BASIC)["calibration"]
    assert judge(BASIC, o, tgt).failed_checks == ["swap type is this kernel's device-exclusive type"]


# ------------------------------------------------------------------ exclusive_mprotect

RO_RW_KEYS = ["PTE restored after mprotect RO->RW and a CPU read (SNAPSHOT)",
              "PTE restored after mprotect RO->RW (write faults)"]


def test_recorded_612_read_only_restore_is_a_fail_after_the_series() -> None:
    v = judge("exclusive_mprotect", obs("6.12", "exclusive_mprotect"), target("7.2"))
    assert v.status == Status.FAIL
    assert v.failed_checks == RO_RW_KEYS
    assert "expected writable (patch 5" in next(line for line in v.evidence if line.startswith("FAIL PTE restored"))


def test_each_kernel_is_held_to_its_own_restore_rule() -> None:
    assert judge("exclusive_mprotect", obs("7.2", "exclusive_mprotect"), target("6.12")).failed_checks == RO_RW_KEYS
    for kernel in KERNELS:
        assert judge("exclusive_mprotect", obs(kernel, "exclusive_mprotect"), target(kernel)).status == Status.PASS


def test_a_writable_pte_in_a_read_only_vma_fails() -> None:
    o = obs("7.2", "exclusive_mprotect")
    o["a_snapshot"]["flags"][0] = 0x02
    v = judge("exclusive_mprotect", o, target("7.2"))
    assert v.failed_checks == ["PTE restored in a read-only VMA is read-only (SNAPSHOT)"]


def test_a_device_write_that_always_fails_is_no_evidence() -> None:
    o = obs("6.12", "exclusive_mprotect")
    o["control_device_write"] = {"ret": -1, "errno": errno.EPERM, "cpages": 0, "faults": 0}
    v = judge("exclusive_mprotect", o, target("6.12"))
    assert v.status == Status.ERROR
    assert failed_controls(v) == ["the same device WRITE of an ordinary RW buffer succeeds"]


# ------------------------------------------------------------------ exclusive_soft_dirty

SD = "exclusive_soft_dirty"
PAGEMAP_READS = ["plain_after_write", "ro_after_clear", "rw_after_clear", "ro_marked", "ro_after_mprotect",
                 "ro_after_read", "rw_after_read", "rw_after_write"]


def test_a_vma_still_flagged_soft_dirty_is_an_error_not_a_pass() -> None:
    # What pagemap reports while the VMA has VM_SOFTDIRTY (before clear_refs, or after a merge set it
    # again): bit 55 on every page whatever the entry says. The old flow 1 passed on exactly that.
    for kernel in KERNELS:
        o = obs(kernel, SD)
        for k in PAGEMAP_READS:
            o[k] = with_bit(o[k], PM_SOFT_DIRTY, True)
        v = judge(SD, o, target(kernel))
        assert v.status != Status.PASS
        assert "ro path: soft-dirty carried by a read-only restore, untouched half reads clean" in failed_controls(v)


def test_soft_dirty_lost_on_the_read_only_restore_fails() -> None:
    for kernel in KERNELS:
        o = obs(kernel, SD)
        o["ro_after_read"] = with_bit(o["ro_after_read"], PM_SOFT_DIRTY, False)
        v = judge(SD, o, target(kernel))
        assert v.failed_checks == ["ro path: soft-dirty carried by a read-only restore"], kernel


def test_a_writable_clean_pte_after_a_writable_restore_fails() -> None:
    o = obs("6.12", SD)  # recorded: 6.12 restores writable and soft-dirty (pte_mkdirty)
    assert o["rw_snapshot_after_read"]["flags"][:4] == [0x02] * 4
    o["rw_after_read"] = with_bit(o["rw_after_read"], PM_SOFT_DIRTY, False)  # writable, but clean
    v = judge(SD, o, target("6.12"))
    assert v.failed_checks == ["rw path: no restored PTE is writable without soft-dirty"]


def test_both_writable_restore_outcomes_are_correct() -> None:
    notes = {k: next(c.seen for c in judge(SD, obs(k, SD), target(k)).checks
                     if c.key == "rw path: PTE restored by a CPU read after clear_refs") for k in KERNELS}
    assert notes["6.12"].startswith("writable and soft-dirty")
    assert notes["7.2"].startswith("read-only and clean")


def test_uffd_wp_refused_with_pte_marker_uffd_wp_is_a_fail() -> None:
    tgt = target("7.2")
    assert tgt["config"]["CONFIG_PTE_MARKER_UFFD_WP"] == "y"
    o = obs("7.2", SD)
    o["uffd"] = {"userfaultfd": [0, 0], "api": [0, 0], "register": [-1, errno.EINVAL]}
    v = judge(SD, o, tgt)
    assert v.status == Status.FAIL
    assert v.failed_checks == ["uffd-wp registration accepted"]
    assert "CONFIG_PTE_MARKER_UFFD_WP=y" in next(line for line in v.evidence if line.startswith("FAIL"))


def test_uffd_wp_refused_without_the_kernels_config_is_undecided() -> None:
    o = obs("7.2", SD)
    o["uffd"] = {"userfaultfd": [0, 0], "api": [0, 0], "register": [-1, errno.EINVAL]}
    v = judge(SD, o, {**target("7.2"), "config": None})
    assert v.status == Status.ERROR
    assert failed_controls(v) == ["uffd-wp refusal decidable (kernel configuration unknown)"]


def test_uffd_wp_refused_on_a_kernel_without_it_leaves_that_part_out() -> None:
    tgt = target("7.2")
    for option in ("CONFIG_HAVE_ARCH_USERFAULTFD_WP", "CONFIG_PTE_MARKER_UFFD_WP"):
        del tgt["config"][option]
    o = obs("7.2", SD)
    o["uffd"] = {"userfaultfd": [0, 0], "api": [0, 0], "register": [-1, errno.EINVAL]}
    v = judge(SD, o, tgt)
    assert v.status == Status.PASS
    assert v.summary == "soft-dirty kept on both restore paths"
    assert any(c.key == "uffd-wp part not run" for c in v.checks)


def test_userfaultfd_enosys_is_a_fail_only_where_the_config_says_it_exists() -> None:
    o = obs("6.12", SD)
    o["uffd"] = {"userfaultfd": [-1, errno.ENOSYS]}
    assert judge(SD, o, target("6.12")).failed_checks == ["userfaultfd() available"]
    v = judge(SD, o, {**target("6.12"), "config": None})  # ENOSYS: the interface is absent
    assert v.status == Status.PASS and any(c.key.startswith("uffd-wp part not run") for c in v.checks)
    o["uffd"] = {"userfaultfd": [-1, errno.EPERM]}
    assert judge(SD, o, {**target("6.12"), "config": None}).status == Status.ERROR


def test_uffd_wp_bit_lost_or_writable_after_restore_fails() -> None:
    o = obs("6.12", SD)
    o["uffd"]["after_read"] = with_bit(o["uffd"]["after_read"], PM_UFFD_WP, False)
    assert judge(SD, o, target("6.12")).failed_checks == ["uffd-wp bit after restore"]
    o = obs("6.12", SD)
    o["uffd"]["snapshot_after_read"]["flags"][0] = 0x02
    assert judge(SD, o, target("6.12")).failed_checks == ["uffd: write-protected PTEs restored read-only (SNAPSHOT)"]


def test_clear_refs_refused_is_decided_by_the_config() -> None:
    o = obs("6.12", SD)
    o["clear_refs"] = [False, "OSError: errno 22 (Invalid argument)"]
    assert judge(SD, o, target("6.12")).failed_checks == ["clear_refs accepted"]
    tgt = target("6.12")
    del tgt["config"]["CONFIG_MEM_SOFT_DIRTY"]
    v = judge(SD, o, tgt)
    assert v.status == Status.PASS and v.summary == "uffd-wp kept through mprotect and restore"
    o["uffd"] = {"userfaultfd": [-1, errno.ENOSYS]}
    del tgt["config"]["CONFIG_USERFAULTFD"]
    assert judge(SD, o, tgt).status == Status.SKIP


# ------------------------------------------------------------------ exclusive_thp: no THP formed


def not_formed(kernel: str = "7.2", fallback: int = 0) -> dict:
    """The recorded THP observations as the guest reports them when no THP backs the region (7.2 has the
    THP fault counters; 6.12's tinyconfig build, without CONFIG_VM_EVENT_COUNTERS, does not)."""
    o = obs(kernel, "exclusive_thp")
    for k in ("head", "after_head", "tail", "after_tail", "anon_huge_kb_after"):
        o.pop(k)
    o["thp_formed"] = False
    o["head_kpageflags"] = [0x1828, 0x1828]  # an ordinary anonymous page's flags: no KPF_THP
    if o["vmstat_before"]["thp_fault_fallback"] is not None:
        o["vmstat_after"] = {**o["vmstat_before"]}
        o["vmstat_after"]["thp_fault_fallback"] += fallback
    return o


def test_no_thp_although_enabled_and_nothing_failed_is_a_fail() -> None:
    v = judge("exclusive_thp", not_formed(), target("7.2"))
    assert v.status == Status.FAIL
    assert v.failed_checks == ["a THP backs the MADV_HUGEPAGE region"]


def test_no_thp_for_a_reason_the_kernel_had_is_a_skip_with_that_reason() -> None:
    v = judge("exclusive_thp", not_formed(fallback=2), target("7.2"))
    assert v.status == Status.SKIP and "thp_fault_fallback +2" in v.summary
    o = not_formed()
    o["thp_enabled"] = "always madvise [never]"
    assert judge("exclusive_thp", o, target("7.2")).status == Status.SKIP
    tgt = target("7.2")
    del tgt["config"]["CONFIG_TRANSPARENT_HUGEPAGE"]
    v = judge("exclusive_thp", not_formed(), tgt)
    assert v.status == Status.SKIP and "CONFIG_TRANSPARENT_HUGEPAGE is not set" in v.summary


def test_without_fault_counters_free_2mb_blocks_decide() -> None:
    o = not_formed("6.12")  # recorded: no counters, free 2 MiB blocks before the touch
    assert o["vmstat_before"]["thp_fault_fallback"] is None and o["free_2mb_blocks_before"] > 0
    assert judge("exclusive_thp", o, target("6.12")).failed_checks == ["a THP backs the MADV_HUGEPAGE region"]
    o["free_2mb_blocks_before"] = 0
    assert judge("exclusive_thp", o, target("6.12")).status == Status.SKIP
    o["free_2mb_blocks_before"] = None
    assert judge("exclusive_thp", o, target("6.12")).status == Status.ERROR


# ------------------------------------------------------------------ exclusive_hugetlb


def refused_mmap(free: int) -> dict:
    o = obs("7.2", "exclusive_hugetlb")
    for k in ("before", "one_page", "after_one_page", "whole", "after_whole", "data_intact"):
        o.pop(k)
    o["mmap"] = {"ok": False, "errno": errno.ENOMEM, "error": "[Errno 12] mmap failed"}
    o["meminfo"]["HugePages_Free"] = free
    return o


def test_hugetlb_mmap_refused_is_decided_on_the_host() -> None:
    assert judge("exclusive_hugetlb", refused_mmap(2), target("7.2")).failed_checks == ["MAP_HUGETLB mmap succeeds"]
    v = judge("exclusive_hugetlb", refused_mmap(0), target("7.2"))
    assert v.status == Status.SKIP and "HugePages_Free 0" in v.summary
    tgt = target("7.2")
    del tgt["config"]["CONFIG_HUGETLBFS"]
    assert judge("exclusive_hugetlb", refused_mmap(2), tgt).status == Status.SKIP
    assert judge("exclusive_hugetlb", refused_mmap(2), {**tgt, "config": None}).status == Status.ERROR


def test_refusal_errno_is_the_expectation_not_the_key() -> None:
    v = judge("exclusive_hugetlb", obs("6.12", "exclusive_hugetlb"), target("7.2"))  # EBUSY where EOPNOTSUPP
    assert v.failed_checks == ["one_page: refused", "whole: refused"]
    assert "FAIL one_page: refused: ret=-1 errno=EBUSY cpages=0 (expected ret=-1 errno=EOPNOTSUPP" in v.evidence[0]
    v = judge("exclusive_shared_and_file", obs("6.12", "exclusive_shared_and_file"), target("7.2"))
    assert sorted(v.failed_checks) == ["ext4_shared: refused", "shared_anon: refused", "tmpfs_shared: refused"]


# ------------------------------------------------------------------ exclusive_reclaim


def test_swap_or_cgroup_refused_is_decided_on_the_host() -> None:
    o = {"npages": 512, "nexclusive": 64, "swap": {"ok": False, "mkswap": 0, "mkswap_stderr": "", "swapon": 255,
                                                   "swapon_stderr": "swapon: /dev/vdb: Invalid argument"}}
    assert judge("exclusive_reclaim", o, target("7.2")).failed_checks == ["swapon of the swap disk succeeds"]
    assert judge("exclusive_reclaim", o, {**target("7.2"), "config": None}).status == Status.ERROR
    tgt = target("7.2")
    del tgt["config"]["CONFIG_SWAP"]
    assert judge("exclusive_reclaim", o, tgt).status == Status.SKIP
    o["swap"]["mkswap"] = 1  # user space could not prepare the disk: the harness, not the kernel
    assert judge("exclusive_reclaim", o, target("7.2")).status == Status.ERROR
    o = {"npages": 512, "nexclusive": 64, "swap": {"already": True, "ok": True},
         "cgroup": {"ok": False, "error": "OSError: errno 95 (Operation not supported)", "enable_memory": [True, ""]}}
    assert judge("exclusive_reclaim", o, target("7.2")).failed_checks == [
        "moving the case into a memory cgroup succeeds"]


def test_reclaim_that_swapped_nothing_is_no_evidence() -> None:
    o = obs("6.12", "exclusive_reclaim")
    o["after_reclaim"] = list(o["while_exclusive"])  # nothing was swapped out
    v = judge("exclusive_reclaim", o, target("6.12"))
    assert v.status == Status.ERROR
    assert failed_controls(v) == ["reclaim swapped out ordinary pages of the range"]


def test_an_exclusive_page_turned_into_another_kind_of_entry_is_lost() -> None:
    o = obs("7.2", "exclusive_reclaim")  # recorded: all 64 exclusive pages swapped (type 0)
    o["after_reclaim"][0] = o["after_reclaim"][0] & ~0x1F | 25  # a migration entry, not the swap device's
    assert judge("exclusive_reclaim", o, target("7.2")).failed_checks == [
        "no exclusive page lost (still exclusive, or swapped)"]


# ------------------------------------------------------------------ the other cases' controls


@pytest.mark.parametrize(("case_id", "edit", "control"), [
    ("exclusive_fork", lambda o: o["child_report"].update(saw_shared_parent_write=False),
     "child sees the parent's write to a shared page"),
    ("exclusive_ksm", lambda o: o["after_ksm"]["pagemap"].__setitem__(3, o["after_ksm"]["pagemap"][3] + 1),
     "KSM merged the control pair C/D"),  # D on another frame than C: not merged
    ("exclusive_concurrent_cpu", lambda o: o.update(stale_matches=3),
     "no zeroed output buffer matched before its read"),
    ("exclusive_mapcount", lambda o: o["unmapped_control"]["unmapped"].update(kpagecount=[1]),
     "a page cache page mapped by nobody reads unmapped in kpagecount and KPF_MMAP"),
    ("exclusive_bad_args", lambda o: o.update(valid={"ret": -1, "errno": errno.EINVAL, "cpages": 0, "faults": 0}),
     "a valid EXCLUSIVE of the sentinel succeeds and changes its page state"),
    ("exclusive_two_devices", lambda o: o.update(check1_before={"ret": -1, "errno": errno.EPERM, "cpages": 0}),
     "dmirror1's CHECK_EXCLUSIVE said not held before it took the pages"),
    ("exclusive_device_rw", lambda o: o["device_write"].update(faults=0),
     "the device WRITE on exclusive pages reports a fault"),
    ("exclusive_migration", lambda o: o.update(check_exclusive_before_migration={"ret": 0, "errno": 0, "cpages": 0}),
     "CHECK_EXCLUSIVE said held right before the migration"),
    ("exclusive_hugetlb", lambda o: o.update(control_exclusive={"ret": -1, "errno": errno.EBUSY, "cpages": 0}),
     "EXCLUSIVE of an ordinary page succeeds and changes its PTE"),
])
def test_a_control_that_reads_the_same_way_makes_the_verdict_error(case_id: str, edit, control: str) -> None:
    o = obs("7.2", case_id)
    edit(o)
    v = judge(case_id, o, target("7.2"))
    assert v.status == Status.ERROR, v.evidence
    assert failed_controls(v) == [control]


@pytest.mark.parametrize(("case_id", "edit", "failed"), [
    ("exclusive_fork", lambda o: o["child_report"].update(saw_original=False),
     ["child sees the original (parent's change did not leak)"]),
    ("exclusive_two_devices", lambda o: o.update(check0_after_dev1={"ret": -1, "errno": errno.EPERM, "cpages": 0}),
     ["dmirror0 lost exclusivity"]),
    ("exclusive_repeat", lambda o: o["ranges"]["65"].update(mirror_after_second=False),
     ["65 pages, second EXCLUSIVE fills the mirror"]),
    ("exclusive_device_rw", lambda o: o["device_read"].update(faults=1), ["device READ served without a fault"]),
    ("exclusive_bad_args", lambda o: o["attempts"]["read_only"]["cmd"].update(ret=0, errno=0),
     ["read_only: refused"]),
    ("exclusive_concurrent_cpu", lambda o: o.update(rounds_present_after=99), ["the threads' reads restore the page"]),
])
def test_the_checks_beside_those_controls_can_fail(case_id: str, edit, failed: list[str]) -> None:
    o = obs("7.2", case_id)
    edit(o)
    assert judge(case_id, o, target("7.2")).failed_checks == failed


def test_concurrent_faults_need_two_cpus() -> None:
    o = obs("7.2", "exclusive_concurrent_cpu")
    o["cpus"] = 1
    assert judge("exclusive_concurrent_cpu", o, target("7.2")).status == Status.SKIP


# ------------------------------------------------------------------ judge_record

SPEC = SPECS["exclusive_basic"]
TARGET = target("6.12")

WARNING_TEXTS = [
    "------------[ cut here ]------------",
    "WARNING: CPU: 1 PID: 234 at mm/memory.c:4170 restore_exclusive_pte+0x1b2/0x1d0",
    "Modules linked in: test_hmm",
    "RIP: 0010:restore_exclusive_pte+0x1b2/0x1d0",
    "Call Trace:",
    " <TASK>",
    " do_swap_page+0x6a5/0xb80",
    " </TASK>",
    "---[ end trace 0000000000000000 ]---",
]


def record(status: str = "observed", **extra) -> dict:
    rec = {"case": "exclusive_basic", "params": {"npages": 4}, "status": status, "kmsg": []}
    if status == "observed":
        rec["observations"] = obs("6.12", BASIC)
    rec.update(extra)
    return rec


def test_record_observed_pass() -> None:
    v = judge_record(SPEC, record(), TARGET)
    assert v.status == Status.PASS
    assert v.crashes == []


def test_record_skip() -> None:
    v = judge_record(SPEC, record("skip", reason="EXCLUSIVE not in this kernel's test_hmm uapi"), TARGET)
    assert v.status == Status.SKIP
    assert v.summary == "EXCLUSIVE not in this kernel's test_hmm uapi"


def test_record_error_keeps_the_traceback_tail() -> None:
    tb = "\n".join(f"line {n}" for n in range(10))
    v = judge_record(SPEC, record("error", reason="OSError: /dev/hmm_dmirror0", traceback=tb), TARGET)
    assert v.status == Status.ERROR
    assert [c.seen for c in v.checks] == [f"line {n}" for n in range(4, 10)]
    assert {c.key for c in v.checks} == {"guest traceback"}


def test_record_hang() -> None:
    v = judge_record(SPEC, record("hang", timeout=300.0), TARGET)
    assert v.status == Status.FAIL
    assert "hang" in v.summary and "300.0" in v.summary and "no kernel message" in v.summary
    assert v.failed_checks == ["finished"]


def test_record_hang_names_the_console_report() -> None:
    lockup = ["watchdog: BUG: soft lockup - CPU#0 stuck for 26s! [python3:301]",
              "RIP: 0010:dmirror_exclusive+0x1b0/0x2a0 [test_hmm]"]
    v = judge_record(SPEC, record("hang", timeout=300.0), TARGET, console_lines=lockup)
    assert v.status == Status.FAIL
    assert "BUG: soft lockup in dmirror_exclusive" in v.summary
    assert v.crashes[0].kind == "soft_lockup"


def test_record_lost() -> None:
    v = judge_record(SPEC, record("lost", reason="SSH connection reset"), TARGET)
    assert v.status == Status.FAIL
    assert "target lost during the case (possible crash)" in v.summary
    assert v.evidence == ["FAIL target alive: SSH connection reset"]


def test_observed_with_kernel_warning_fails_despite_good_observations() -> None:
    kmsg = [{"seq": 500 + n, "level": 4, "facility": 0, "ts_usec": 12345678, "text": t}
            for n, t in enumerate(WARNING_TEXTS)]
    v = judge_record(SPEC, record(kmsg=kmsg), TARGET)
    assert v.status == Status.FAIL
    assert "WARNING in restore_exclusive_pte" in v.summary
    assert v.failed_checks == ["kernel messages"]
    assert v.crashes[0].location == "mm/memory.c:4170"
    # The case's own checks are still there as evidence (all ok).
    assert any(line.startswith("ok   swap type") for line in v.evidence)


def test_console_lines_are_used_when_kmsg_is_empty() -> None:
    v = judge_record(SPEC, record(), TARGET, console_lines=[f"[   12.3] {t}" for t in WARNING_TEXTS])
    assert v.status == Status.FAIL
    assert "WARNING in restore_exclusive_pte" in v.summary


def test_malformed_observations_are_an_error() -> None:
    rec = record()
    del rec["observations"]["exclusive"]
    v = judge_record(SPEC, rec, TARGET)
    assert v.status == Status.ERROR
    assert "could not read" in v.summary


def test_unknown_status_is_an_error() -> None:
    assert judge_record(SPEC, record("weird"), TARGET).status == Status.ERROR


def test_variant_id() -> None:
    assert SPEC.variant_id({"npages": 4}) == "exclusive_basic[npages=4]"
    assert SPEC.variant_id({}) == "exclusive_basic"


# ------------------------------------------------------------------ results and report


# ------------------------------------------------------------------ results and report


def case_entry(case_id: str, status: str, summary: str, evidence: list[str] | None = None) -> dict:
    return {"id": case_id, "case": "exclusive_basic", "params": {}, "seconds": 1.25,
            "verdict": {"status": status, "summary": summary, "evidence": evidence or [], "failed_checks": [],
                        "crashes": []},
            "record": None, "console_excerpt": None}


@pytest.fixture
def run_results() -> results.RunResult:
    entries = [
        case_entry("exclusive_basic[npages=4]", "PASS", "4 pages: exclusive type [29]", ["ok   data intact: True"]),
        case_entry("exclusive_basic[npages=1024]", "FAIL", "failed: swap offset == PFN before",
                   ["ok   data intact: True", "FAIL swap offset == PFN before: 1023/1024 pages"]),
        case_entry("exclusive_thp", "SKIP", "no THP"),
        case_entry("exclusive_fork", "ERROR", "agent crashed", ["note guest traceback: boom"]),
    ]
    return results.RunResult.from_dict({
        "schema": results.SCHEMA,
        "seconds": 42.0,
        "kernel": {"label": "debian-6.12 (6.12.117-1~deb12u1)", "release": "6.12.117", "tree_identity": "debian:x",
                   "config_hash": "abc123"},
        "target": {"kind": "qemu", "accel": "kvm", "accel_why": "/dev/kvm usable", "cpus": 2, "numa_nodes": 1},
        "cases": entries,
        "results_path": "/tmp/out/results.json",
    })


def test_exit_code() -> None:
    def of(*statuses: str) -> int:
        return results.exit_code([results.CaseResult.from_dict(case_entry("c", s, "")) for s in statuses])

    assert of() == 0
    assert of("PASS", "SKIP") == 0
    assert of("PASS", "ERROR") == 2
    assert of("ERROR", "FAIL", "PASS") == 1


def test_summary_counts(run_results: results.RunResult) -> None:
    assert run_results.summary == {"PASS": 1, "FAIL": 1, "SKIP": 1, "ERROR": 1}


def test_write_junit(tmp_path: Path, run_results: dict) -> None:
    path = tmp_path / "sub" / "junit.xml"
    results.write_junit(path, run_results)
    root = ET.parse(path).getroot()
    assert root.tag == "testsuites"
    (suite,) = root
    assert suite.get("tests") == "4" and suite.get("failures") == "1"
    assert suite.get("errors") == "1" and suite.get("skipped") == "1"
    assert suite.get("name") == "hmmbench 6.12.117"
    tcs = {tc.get("name"): tc for tc in suite.iter("testcase")}
    assert set(tcs) == {c.id for c in run_results.cases}
    failure = tcs["exclusive_basic[npages=1024]"].find("failure")
    assert failure is not None and failure.get("message") == "failed: swap offset == PFN before"
    assert "1023/1024" in failure.text
    skipped = tcs["exclusive_thp"].find("skipped")
    assert skipped is not None and skipped.get("message") == "no THP"
    assert tcs["exclusive_fork"].find("error") is not None
    passed = tcs["exclusive_basic[npages=4]"]
    assert passed.find("failure") is None and passed.find("system-out").text == "ok   data intact: True"
    assert tcs["exclusive_thp"].get("time") == "1.25"


def test_results_json_round_trip(tmp_path: Path, run_results: results.RunResult) -> None:
    path = tmp_path / "results.json"
    results.write_json(path, run_results)
    again = results.load(path)
    assert again.to_dict() == run_results.to_dict()
    assert json.loads(path.read_text())["schema"] == results.SCHEMA
    # The typed checks survive the file (schema 2), the old lines were only their rendering.
    assert again.cases[1].verdict.checks[1].key == "swap offset == PFN before"
    bad = run_results.to_dict()
    bad["schema"] = "hmmbench.results/0"
    results.write_json(path, bad)
    with pytest.raises(ValueError, match="schema"):
        results.load(path)


def test_report_table(run_results: results.RunResult) -> None:
    lines = text.table(run_results).splitlines()
    assert lines[0].startswith("kernel  6.12.117  (debian-6.12")
    assert "qemu kvm" in lines[1] and "2 CPUs" in lines[1]
    for c in run_results.cases:
        (row,) = [line for line in lines if line.startswith(c.id + " ")]
        assert str(c.status) in row.split()
    # FAIL evidence is shown for the failed case, "ok" lines are not.
    assert any(line.strip() == "FAIL swap offset == PFN before: 1023/1024 pages" for line in lines)
    assert not any(line.strip().startswith("ok ") for line in lines)
    # ERROR shows all its evidence.
    assert any(line.strip() == "note guest traceback: boom" for line in lines)
    assert lines[-1].startswith("verdict: 1 ERROR, 1 FAIL, 1 PASS, 1 SKIP")


def test_report_evidence(run_results: results.RunResult) -> None:
    out = text.evidence(run_results)
    assert "exclusive_basic[npages=1024]: FAIL - failed: swap offset == PFN before" in out
    assert "    FAIL swap offset == PFN before: 1023/1024 pages" in out
