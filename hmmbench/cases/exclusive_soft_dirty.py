"""exclusive_soft_dirty: soft-dirty and uffd-wp tracking across exclusive -> restore, on each restore path.

Rule (PASS needs every check to hold and every control to read the other way). All bits are read after
clear_refs, on mappings made before it; in every buffer half the pages are written after clear_refs
and half are not, and the unwritten half must read 0: the negative control (a VMA still flagged
VM_SOFTDIRTY, or a path that sets the bit by itself, reads 1 there and makes the verdict ERROR).
  * Baseline: on an ordinary page soft-dirty is tracked (written after clear_refs: 1; not written: 0).
  * clear_refs clears soft-dirty on device-exclusive entries (fs/proc/task_mmu.c clear_soft_dirty():
    pte_swp_clear_soft_dirty(); control: the re-made entries below read 1).
  * Read-only restore path, the one that shows whether an entry's *own* soft-dirty bit is carried
    (both kernels' restore_exclusive_pte() set it from pte_swp_soft_dirty(); no pte_mkdirty() there
    because the entry or VMA is not writable): the written half's re-made exclusive entries carry
    soft-dirty (rmap/folio_walk copy pte_soft_dirty() into the entry), keep it through mprotect(PROT_READ)
    (6.12 converts to a readable entry and copies the bit; 7.2 leaves the entry alone), and the PTEs
    restored by a CPU read in the read-only VMA are soft-dirty; they are read-only (SNAPSHOT READ). The
    clean half reads 0 at every step.
  * Writable restore path: a PTE restored by a CPU read in a RW VMA is never writable without being
    soft-dirty (a writable clean PTE would let the next write go untracked). 6.12 restores it writable
    and dirty, and pte_mkdirty() sets soft-dirty on x86; 7.2 keeps it write-protected
    (can_change_pte_writable() refuses while soft-dirty tracking needs the fault). Either is correct;
    which one happened is a note. A CPU write then leaves those pages soft-dirty; the half left
    exclusive and unwritten reads 0.
  * uffd-wp: UFFDIO_WRITEPROTECT of half the exclusive entries sets pagemap bit 57 on that half; it
    survives mprotect(PROT_READ) + mprotect(RW) and the CPU read that restores the PTEs, which are
    then read-only (SNAPSHOT READ: a writable uffd-wp PTE would bypass the userfault); the other half
    reads 0 at every step.
  * data intact throughout.
What the kernel refused is decided here, not in the guest: clear_refs refused, or soft-dirty not
tracked at all, is a FAIL with CONFIG_MEM_SOFT_DIRTY=y and leaves the soft-dirty part out without it;
userfaultfd() with ENOSYS, or UFFDIO_API / UFFDIO_REGISTER(MODE_WP) refused, is a FAIL on a kernel
with CONFIG_USERFAULTFD=y and uffd-wp support (CONFIG_HAVE_ARCH_USERFAULTFD_WP=y or
CONFIG_PTE_MARKER_UFFD_WP=y) and leaves the uffd part out otherwise; without the kernel's
configuration such a refusal cannot be decided (ERROR), except ENOSYS, which means the interface is
absent. A case with neither part run is a SKIP.
"""

from __future__ import annotations

import errno

from hmmbench.cases import CaseSpec
from hmmbench.cases.facts import TargetFacts
from hmmbench.cases.rules import (
    KernelConfig,
    bits,
    errname,
    ioctl_text,
    no_control,
    ok_ioctl,
    snapshot_controls,
    snapshot_readonly,
    snapshot_text,
    snapshot_writable,
    undecided,
)
from hmmbench.cases.verdict import Checks, Verdict

SPEC = CaseSpec(
    name="exclusive_soft_dirty",
    order=170,
    description="soft-dirty (bit 55) and uffd-wp (bit 57) survive exclusive -> restore, on both restore paths",
    rule=__doc__.split("Rule", 1)[1],
)

UFFD_WP_OPTIONS = ("CONFIG_HAVE_ARCH_USERFAULTFD_WP", "CONFIG_PTE_MARKER_UFFD_WP")


def _split(entries: list[int], key: str, half: int) -> tuple[list[bool], list[bool]]:
    """A pagemap flag of the written (first) half and of the clean (second) half."""
    b = bits(entries, key)
    return b[:half], b[half:]


def _show(flags: list[bool]) -> str:
    return f"{sum(flags)}/{len(flags)}"


def _halves(c: Checks, key: str, entries: list[int], half: int, flag: str = "soft_dirty",
            what: str = "soft-dirty") -> None:
    """Check: the first half has the bit; control: the second half does not."""
    on, off = _split(entries, flag, half)
    c.check(key, all(on), f"{_show(on)} {what}", f"{len(on)}/{len(on)}")
    c.control(f"{key}, untouched half reads clean", not any(off), f"{_show(off)} {what}")


def soft_dirty_part(c: Checks, obs: dict, cfg: KernelConfig) -> bool:
    """The soft-dirty checks; False when this kernel has no soft-dirty tracking (part not run)."""
    n, half = obs["npages"], obs["written"]
    enabled = cfg.enabled("CONFIG_MEM_SOFT_DIRTY")
    if enabled is False:
        c.note("soft-dirty part not run", cfg.describe("CONFIG_MEM_SOFT_DIRTY"))
        return False
    ok, err = obs["clear_refs"]
    plain = bits(obs["plain_after_write"], "soft_dirty")
    tracked = ok and plain == [True, False]
    if not tracked and enabled is None:
        undecided(c, "soft-dirty tracked on an ordinary page (kernel configuration unknown)",
                  f"clear_refs {'ok' if ok else err}; written page {plain[0]}, unwritten page {plain[1]}")
        return True
    c.check("clear_refs accepted", ok, err or "ok", cfg.describe("CONFIG_MEM_SOFT_DIRTY"))
    if not ok:
        return True
    c.check("soft-dirty tracked on an ordinary page", plain[0], f"written page soft-dirty: {plain[0]}", "True")
    c.control("an ordinary page left unwritten after clear_refs reads clean", not plain[1],
              f"unwritten page soft-dirty: {plain[1]}")
    sd_vma = {k: "sd" in v for k, v in obs["vma_flags_after_clear"].items()}
    c.note("VM_SOFTDIRTY (VmFlags sd) after clear_refs / at the end",
           f"{sd_vma} / { {k: 'sd' in v for k, v in obs['vma_flags_at_end'].items()} }")

    c.check("EXCLUSIVE succeeds", ok_ioctl(obs["ro_exclusive"], n) and ok_ioctl(obs["rw_exclusive"], n)
            and ok_ioctl(obs["ro_rewrite_exclusive"], half),
            f"ro {ioctl_text(obs['ro_exclusive'])}; rw {ioctl_text(obs['rw_exclusive'])}; ro written half again "
            f"{ioctl_text(obs['ro_rewrite_exclusive'])}")
    cleared = bits(obs["ro_after_clear"], "soft_dirty") + bits(obs["rw_after_clear"], "soft_dirty")
    swapped = bits(obs["ro_after_clear"], "swap") + bits(obs["rw_after_clear"], "swap")
    c.check("clear_refs clears soft-dirty on exclusive entries", all(swapped) and not any(cleared),
            f"{_show(cleared)} soft-dirty, {_show(swapped)} still exclusive", f"0/{len(cleared)}, all exclusive")
    marked_on, _ = _split(obs["ro_marked"], "soft_dirty", half)
    c.control("an exclusive entry can read soft-dirty (the written half, made exclusive again)", all(marked_on),
              f"{_show(marked_on)} soft-dirty")

    # Read-only restore path.
    _halves(c, "ro path: the written half's exclusive entries are soft-dirty", obs["ro_marked"], half)
    c.check("ro path: mprotect(PROT_READ) succeeds", obs["ro_mprotect"][0] == 0, str(obs["ro_mprotect"]))
    _halves(c, "ro path: soft-dirty kept through mprotect(PROT_READ)", obs["ro_after_mprotect"], half)
    present = bits(obs["ro_after_read"], "present")
    c.check("ro path: CPU read restores every PTE", all(present), _show(present))
    _halves(c, "ro path: soft-dirty carried by a read-only restore", obs["ro_after_read"], half)
    snap = obs["ro_snapshot"]
    ro = [snapshot_readonly(b) for b in snap["flags"]]
    c.check("ro path: the restored PTEs are read-only (SNAPSHOT)", ok_ioctl(snap["cmd"], n) and all(ro),
            snapshot_text(snap["flags"]), f"{n}x READ")
    c.check("ro path: data intact", obs["ro_data_intact"], str(obs["ro_data_intact"]))

    # Writable restore path.
    after_read = obs["rw_snapshot_after_read"]["flags"][:half]
    sd_read, _ = _split(obs["rw_after_read"], "soft_dirty", half)
    untracked = [snapshot_writable(b) and not sd for b, sd in zip(after_read, sd_read, strict=True)]
    c.check("rw path: no restored PTE is writable without soft-dirty", not any(untracked),
            f"{sum(untracked)}/{half} writable and clean; restored {snapshot_text(after_read)}, "
            f"{_show(sd_read)} soft-dirty", "0")
    wrote = obs["rw_snapshot_after_write"]["flags"][:half]
    c.control("rw path: SNAPSHOT reads WRITE once the pages are written", all(snapshot_writable(b) for b in wrote),
              snapshot_text(wrote))
    _, clean_read = _split(obs["rw_after_read"], "soft_dirty", half)
    c.control("rw path: the half left exclusive reads clean after the read", not any(clean_read),
              f"{_show(clean_read)} soft-dirty")
    how = "writable and soft-dirty" if all(snapshot_writable(b) for b in after_read) and all(sd_read) else (
        "read-only and clean" if all(snapshot_readonly(b) for b in after_read) and not any(sd_read) else "mixed")
    c.note("rw path: PTE restored by a CPU read after clear_refs", f"{how} ({snapshot_text(after_read)})")
    _halves(c, "rw path: a write after the restore is tracked", obs["rw_after_write"], half)
    c.check("rw path: data intact", obs["rw_data_intact"], str(obs["rw_data_intact"]))
    return True


def _uffd_wp_supported(cfg: KernelConfig) -> bool | None:
    if not cfg.known:
        return None
    return bool(cfg.enabled("CONFIG_USERFAULTFD")) and any(cfg.enabled(o) for o in UFFD_WP_OPTIONS)


def uffd_part(c: Checks, u: dict, n: int, half: int, cfg: KernelConfig) -> bool:
    """The uffd-wp checks; False when this kernel legitimately has no uffd-wp (part not run)."""
    options = cfg.describe("CONFIG_USERFAULTFD", *UFFD_WP_OPTIONS)
    ret, err = u["userfaultfd"]
    if ret < 0:
        seen = f"userfaultfd() failed: errno {errname(err)}"
        if err == errno.ENOSYS and cfg.enabled("CONFIG_USERFAULTFD") is not True:
            c.note("uffd-wp part not run (no userfaultfd() system call)", f"{seen}; {options}")
            return False
        if cfg.enabled("CONFIG_USERFAULTFD") is False:
            c.note("uffd-wp part not run", f"{seen}; {options}")
            return False
        if not cfg.known:
            undecided(c, "uffd-wp refusal decidable (kernel configuration unknown)", seen)
            return True
        c.check("userfaultfd() available", False, seen, options)
        return True
    refused = next(((k, u[k]) for k in ("api", "register") if k in u and u[k][0] != 0), None)
    if refused is not None:
        seen = f"{'UFFDIO_API' if refused[0] == 'api' else 'UFFDIO_REGISTER(MODE_WP)'} failed: errno " \
               f"{errname(refused[1][1])}"
        supported = _uffd_wp_supported(cfg)
        if supported is False:
            c.note("uffd-wp part not run", f"{seen}; {options}")
            return False
        if supported is None:
            undecided(c, "uffd-wp refusal decidable (kernel configuration unknown)", seen)
            return True
        c.check("uffd-wp registration accepted", False, seen, f"accepted ({options})")
        return True
    c.check("uffd: EXCLUSIVE + UFFDIO_WRITEPROTECT succeed", ok_ioctl(u["exclusive"], n) and u["writeprotect"][0] == 0,
            f"{ioctl_text(u['exclusive'])}, writeprotect {u['writeprotect']}")
    _halves(c, "uffd-wp bit on the exclusive entries", u["after_wp"], half, "uffd_wp", "uffd-wp")
    c.check("uffd: mprotect RO -> RW succeeds", u["mprotect_read"][0] == 0 and u["mprotect_rw"][0] == 0,
            f"{u['mprotect_read']}, {u['mprotect_rw']}")
    _halves(c, "uffd-wp bit after mprotect RO->RW", u["after_mprotect"], half, "uffd_wp", "uffd-wp")
    _halves(c, "uffd-wp bit after restore", u["after_read"], half, "uffd_wp", "uffd-wp")
    snap = u["snapshot_after_read"]["flags"][:half]
    c.check("uffd: write-protected PTEs restored read-only (SNAPSHOT)", all(snapshot_readonly(b) for b in snap),
            snapshot_text(snap), f"{half}x READ")
    c.check("uffd flow data intact", u["data_intact"], str(u["data_intact"]))
    return True


def judge(obs: dict, facts: TargetFacts) -> Verdict:
    cfg = facts.config
    c = Checks()
    snapshot_controls(c, obs["snapshot_controls"])
    ran_sd = soft_dirty_part(c, obs, cfg)
    ran_uffd = uffd_part(c, obs["uffd"], obs["npages"], obs["written"], cfg)
    if not ran_sd and not ran_uffd:
        return c.skip("neither soft-dirty nor uffd-wp on this kernel")
    no_control(c, "EXCLUSIVE / mprotect / UFFDIO_* succeed, data intact, CPU read restores every PTE",
               "return values, byte comparisons with the pattern written, and the present bit whose other way "
               "(non-present) the same entries read one step earlier")
    parts = [p for p, ran in (("soft-dirty kept on both restore paths", ran_sd),
                              ("uffd-wp kept through mprotect and restore", ran_uffd)) if ran]
    return c.verdict("; ".join(parts))
