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
    Coverage("migrate_multiple", "migrate_to_device", "repeated passes: CPU fault, MIGRATE_TO_SYS and RELEASE "
             "after three migrations of one range"),
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
