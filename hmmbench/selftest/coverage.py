"""Which hmmbench case checks, with page-state evidence, what each of hmm-tests' tests checks.

hmm-tests (tools/testing/selftests/mm/hmm-tests.c, 38 tests in Linux 7.2) judges by return codes and
data; the hmmbench case beside each test checks the same behaviour and the page state behind it. The
table is used three ways: ``hmmbench selftest`` runs these cases after hmm-tests and sets each result
beside its test, README's table is this table (a unit test keeps them equal), and a test with no case
says why not.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Coverage:
    test: str  # hmm-tests' TEST_F name (the same in the hmm and hmm2 fixtures)
    case: str | None  # the hmmbench case, or None
    how: str  # what the case checks of it, or why no case does


COVERAGE: tuple[Coverage, ...] = (
    Coverage("open_close", None, "opening and closing the device: every case does it; nothing to see in page state"),
    Coverage("migrate", "migrate_to_device", "every page becomes a device-private entry (or a present PTE on the "
             "device's coherent PFNs), SNAPSHOT agrees on every device, mirror holds the data"),
    Coverage("migrate_fault", "migrate_to_device", "half the pages faulted back by the CPU (one fault each, system "
             "PFNs), the mix migrated again, both views after each step"),
    Coverage("migrate_release", "migrate_to_device", "RELEASE evicts every page to system memory, data intact"),
    Coverage("migrate_multiple", "migrate_teardown", "migrate, come back and munmap, cycle after cycle: every "
             "page on the device and back each time, data intact"),
    Coverage("migrate_file_private", "migrate_refused", "written MAP_PRIVATE file pages move, untouched and "
             "read-only ones are refused with no PTE changed, on tmpfs and ext4"),
    Coverage("migrate_shared", "migrate_refused", "MAP_SHARED file and anonymous memory refused (ENOENT, cpages 0), "
             "every PTE the same before and after"),
    Coverage("migrate_mixed", "migrate_refused", "PROT_NONE and a hole refused with EINVAL; zero, read-only and "
             "read-write pages move with the entry type each should get"),
    Coverage("anon_teardown", "migrate_teardown", "device READs racing munmap succeed or fail cleanly; the "
             "remaining pages' views agree"),
    Coverage("anon_write_child", "migrate_fork", "fork with device pages: both page tables (the child's via "
             "/proc/PID/pagemap) at every step, each side's writes its own"),
    Coverage("anon_write_child_shared", "migrate_fork", "the child's CPU and device writes seen by the parent in "
             "MAP_SHARED anonymous memory (the control of the private copies)"),
    Coverage("hmm_cow_in_device", "migrate_fork", "copy-on-write of shared device-private pages: the write "
             "migrates the page back for both processes, each ends on its own PFN"),
    Coverage("hmm_gup_test", "migrate_gup", "GUP (gup_test, /proc/self/mem, O_DIRECT) of device pages: exactly "
             "the pinned half back on system PFNs (long-term pins only, for coherent memory)"),
    Coverage("migrate_anon_huge_empty", "device_thp", "an empty 2 MiB region becomes one PMD-level device-private "
             "entry; SKIP where device-private THP is absent"),
    Coverage("migrate_anon_huge_zero", "device_thp", "the huge zero page migrated as one PMD-level entry"),
    Coverage("migrate_anon_huge_free", "device_thp", "MADV_FREE of a device-private THP: data or zeros, "
             "nothing lost"),
    Coverage("migrate_anon_huge_fault", "device_thp", "a CPU read of one tail page brings the whole folio back "
             "as a PMD-mapped THP"),
    Coverage("migrate_anon_huge_err", "device_thp_fail_alloc", "FLAGS(FAIL_ALLOC): 512 PTE-level entries, one "
             "fault brings back one page, MIGRATE_TO_SYS gives 4 KiB pages, data intact"),
    Coverage("migrate_anon_huge_zero_err", "device_thp_fail_alloc", "the huge zero page under FAIL_ALLOC: 512 "
             "PTE-level read-type entries"),
    Coverage("migrate_partial_unmap_fault", "device_thp_unmap_remap", "partial munmap of a device-private THP: "
             "what stays mapped stays on the device, faults back intact"),
    Coverage("migrate_remap_fault", "device_thp_unmap_remap", "mremap of a device-private THP (and "
             "MREMAP_DONTUNMAP): the moved range keeps its entries, faults back intact"),
    Coverage("anon_read", "device_access", "a device READ of written pages returns the data and maps nothing new; "
             "of unpopulated memory it faults in the zero page (ZERO|READ in SNAPSHOT)"),
    Coverage("anon_read_prot", "device_access", "READ of PROT_NONE memory fails with EFAULT, the buffer and the page "
             "state untouched"),
    Coverage("anon_write", "device_access", "a device WRITE lands in the CPU's pages, which become present and "
             "writable"),
    Coverage("anon_write_prot", "device_access", "WRITE to read-only memory fails with EPERM and changes no page"),
    Coverage("anon_write_huge", "device_access", "WRITE into a THP: lands, the THP stays PMD-mapped"),
    Coverage("anon_write_hugetlbfs", "device_access", "WRITE into a hugetlb page (SKIP only without "
             "CONFIG_HUGETLBFS)"),
    Coverage("file_read", "device_access", "READ of a MAP_SHARED PROT_READ file (tmpfs and ext4)"),
    Coverage("file_write", "device_access", "WRITE to a MAP_SHARED file lands in the file"),
    Coverage("double_map", "device_access", "two devices READ the same memory: the local device's READ brings the "
             "remote device's private pages back, coherent pages stay"),
    Coverage("snapshot", "device_snapshot", "one range of every page kind (none, zero, RO, RW, THP, hugetlb, device "
             "local/remote, coherent, exclusive, PROT_NONE, hole): every device's byte for every page"),
    Coverage("mixedmap", "device_snapshot", "a page of the device's own mmap reads READ; SNAPSHOT faults nothing in"),
    Coverage("compound", "device_snapshot", "hugetlb and THP pages read PMD, then PMD|READ after mprotect"),
    Coverage("anon_read_multiple", None, "device READs repeated between CPU writes: return codes and data only; "
             "no page state to see beyond device_access's READ"),
    Coverage("exclusive", "exclusive_basic", "exclusive entries' swap type and PFN, CHECK_EXCLUSIVE, restore on "
             "CPU access"),
    Coverage("exclusive_mprotect", "exclusive_mprotect", "mprotect of exclusive entries: type, writability on "
             "restore"),
    Coverage("exclusive_cow", "exclusive_fork", "fork with exclusive entries: copy-on-write, both sides' data"),
)


def by_test() -> dict[str, Coverage]:
    return {c.test: c for c in COVERAGE}


def case_for(test: str) -> str | None:
    row = by_test().get(test)
    return row.case if row else None


def cases() -> list[str]:
    """The hmmbench cases that check an hmm-tests behaviour, each once, in table order."""
    return list(dict.fromkeys(c.case for c in COVERAGE if c.case))


def readme_table() -> str:
    """The table README.md shows (kept equal to it by a unit test)."""
    rows = ["| hmm-tests test | hmmbench case | checked with page-state evidence |", "|---|---|---|"]
    for c in COVERAGE:
        rows.append(f"| `{c.test}` | {f'`{c.case}`' if c.case else '-'} | {c.how} |")
    return "\n".join(rows)
