"""Kernels with trouble injected on purpose, for the end-to-end tests of kernel trouble as a result.

One kernel per default tree: Debian's 6.12 and 7.2 plus one commit (hmmbench/fixture_history.py, fixed dates,
so the build is cached across CI runs) whose trouble is chosen at boot with the module parameter
``test_hmm.hmmbench_inject=MASK`` (``hmmbench run --append``). One build serves every test:

  1   WARN_ON_ONCE at the start of remove_device_exclusive_entry(): the first CPU fault that restores a
      device-exclusive page
  2   BUG in the EXCLUSIVE ioctl with the mmap lock held: the dying task then waits forever in exit_mmap
      for the mmap lock it still holds (a BUG that leaves the case's process stuck)
  4   a hang in the EXCLUSIVE ioctl that is never woken (the hung-task detector reports it)
  8   a silent hang: an uninterruptible sleep woken every 100 ms (no hung-task report, ever)
  16  WARN_ON_ONCE when a device-exclusive entry is zapped (munmap or exit with pages exclusive)

2, 4 and 8 fire only for a 4-page EXCLUSIVE (exclusive_basic[npages=4]), so the cases after it run on
the fresh guest and show that the run goes on. The 6.12 kernel also carries a renumbered uapi header (an
ioctl inserted before EXCLUSIVE, as an RFC series would do): every test on it runs with the header's
numbers, not the version table's.
"""

from __future__ import annotations

from pathlib import Path

from hmmbench.kernel import fixture_history

MARK = "/* hmmbench test: injected */"
WARN_RESTORE, BUG, HANG, SILENT_HANG, WARN_ZAP = 1, 2, 4, 8, 16

_PARAM = ("#include \"test_hmm_uapi.h\"\n",
          "#include \"test_hmm_uapi.h\"\n\n"
          "int hmmbench_inject; " + MARK + "\nmodule_param(hmmbench_inject, int, 0644);\n")


def _exclusive_ioctl(loop_head: str) -> tuple[str, str]:
    old = "\tmmap_read_lock(mm);\n" + loop_head
    new = ("\twhile ((hmmbench_inject & 4) && cmd->npages == 4) { " + MARK + "\n"
           "\t\tset_current_state(TASK_UNINTERRUPTIBLE);\n\t\tschedule();\n\t}\n"
           "\twhile ((hmmbench_inject & 8) && cmd->npages == 4) " + MARK + "\n"
           "\t\tschedule_timeout_uninterruptible(HZ / 10);\n"
           "\tmmap_read_lock(mm);\n"
           "\tif ((hmmbench_inject & 2) && cmd->npages == 4) {\n"
           "\t\tmmput(mm); /* the task's own reference is the last: its exit runs exit_mmap */\n"
           "\t\tBUG(); " + MARK + "\n\t}\n" + loop_head)
    return old, new


_EXTERN = ("#include \"internal.h\"\n", "#include \"internal.h\"\n\nextern int hmmbench_inject; " + MARK + "\n")
_RESTORE_HEAD = ("static vm_fault_t remove_device_exclusive_entry(struct vm_fault *vmf)\n{\n"
                 "\tstruct folio *folio = page_folio(vmf->page);\n\tstruct vm_area_struct *vma = vmf->vma;\n"
                 "\tstruct mmu_notifier_range range;\n\tvm_fault_t ret;\n")
_RESTORE = (_RESTORE_HEAD, _RESTORE_HEAD + "\n\tWARN_ON_ONCE(hmmbench_inject & 1); " + MARK + "\n")


def _zap(indent: str, test: str, after: str) -> tuple[str, str]:
    old = f"{indent}WARN_ON_ONCE(!folio_test_anon(folio));\n{indent}rss[mm_counter(folio)]--;\n{indent}{after}"
    new = (f"{indent}WARN_ON_ONCE(!folio_test_anon(folio));\n"
           f"{indent}WARN_ON_ONCE((hmmbench_inject & 16) && {test}); {MARK}\n"
           f"{indent}rss[mm_counter(folio)]--;\n{indent}{after}")
    return old, new


def _renumbered_uapi() -> list[tuple[str, str]]:
    edits = []
    for name, nr, tabs in (("RELEASE", 7, "\t\t"), ("CHECK_EXCLUSIVE", 6, "\t"), ("EXCLUSIVE", 5, "\t\t")):
        old = f"#define HMM_DMIRROR_{name}{tabs}_IOWR('H', 0x{nr:02x}, struct hmm_dmirror_cmd)"
        new = f"#define HMM_DMIRROR_{name}{tabs}_IOWR('H', 0x{nr + 1:02x}, struct hmm_dmirror_cmd)"
        if name == "EXCLUSIVE":
            new = f"#define HMM_DMIRROR_HMMBENCH_EXTRA\t_IOWR('H', 0x05, struct hmm_dmirror_cmd) {MARK}\n" + new
        edits.append((old, new))
    return edits


EDITS: dict[str, dict] = {
    "debian-6.12": {
        "lib/test_hmm.c": [_PARAM, _exclusive_ioctl("\tfor (addr = start; addr < end; addr = next) {\n"
                                                    "\t\tunsigned long mapped = 0;\n")],
        "mm/memory.c": [_EXTERN, _zap("\t\t\t", "is_device_exclusive_entry(entry)",
                                      "if (is_device_private_entry(entry))"), _RESTORE],
        "lib/test_hmm_uapi.h": _renumbered_uapi(),
    },
    "debian-7.2": {
        "lib/test_hmm.c": [_PARAM, _exclusive_ioctl("\tfor (addr = start; !ret && addr < end; addr += PAGE_SIZE) {\n")],
        "mm/memory.c": [_EXTERN, _zap("\t\t", "softleaf_is_device_exclusive(entry)",
                                      "folio_remove_rmap_pte(folio, page, vma);"), _RESTORE],
    },
}


def trouble_kernel(kernel: str) -> tuple[Path, str]:
    """(repository, commit) of ``kernel`` with the injections above; build it with ``--kernel REPO@COMMIT``."""
    repo = fixture_history.ensure_repo(kernel)
    commit = fixture_history.commit_change(repo, fixture_history.BASE_BRANCH, f"test: injected trouble ({kernel})",
                                           EDITS[kernel])
    return repo, commit


def injected_line(repo: Path, commit: str, path: str, needle: str) -> int:
    """The line number of the injected statement containing ``needle`` in ``path`` at ``commit``."""
    text = fixture_history.git_raw(repo, "show", f"{commit}:{path}").decode().splitlines()
    return next(i + 1 for i, line in enumerate(text) if MARK in line and needle in line)
