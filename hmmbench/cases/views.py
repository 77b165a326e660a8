"""Both views of a page, judged: what the CPU's page tables say and what each device says about it.

The guest records, at each moment a case chooses (hmmbench.guest.devmem.views), every page's pagemap
entry and kpageflags and every mirror's SNAPSHOT byte (and CHECK_EXCLUSIVE per page). This module
decides, page by page, what each device *should* say given the CPU's view, and reports every page where
it does not as a typed Disagreement with both views: hmmbench tests test_hmm as well as mm/.

What a device should say follows lib/test_hmm.c dmirror_mkentry() and mm/hmm.c
hmm_vma_handle_pte(): SNAPSHOT asks hmm_range_fault() for no fault, with the mirror's own device as
dev_private_owner, so

  CPU view                         SNAPSHOT of the owning device    of any other device
  not mapped                       NONE                             NONE
  system page                      READ or WRITE                    same
  shared zero page                 ZERO|READ                        same
  huge zero page (PMD)             READ|PMD (is_zero_pfn() is       same
                                   false for it: no ZERO nibble)
  device-coherent page (present)   DEV_COHERENT_LOCAL|READ/WRITE    DEV_COHERENT_REMOTE|READ/WRITE
  device-private entry             DEV_PRIVATE_LOCAL|WRITE (write   NONE (not its owner: no PFN
                                   type) or |READ (read type)       without a fault)
                                   |PMD too where the entry may be
                                   PMD-level (below)
  device-exclusive entry           NONE                             NONE
  other swap entry                 NONE                             NONE

and CHECK_EXCLUSIVE says "held" (EPERM) on the device that made a page exclusive while, and only
while, the CPU's PTE is a device-exclusive entry. The swap types and coherent PFN ranges come from the
case's calibration (this kernel's own encoding, measured in the same boot), never from a version.

A device-private THP (6.19+: mm/migrate_device.c migrate_vma_insert_huge_pmd_page) is one PMD-level
device-private entry. pagemap shows it as 512 swap entries of the same device-private types as a PTE's
(fs/proc/task_mmu.c pagemap_pmd_range_thp: swp_type of the PMD entry, offset = device PFN + index), and
hmm_range_fault gives its pages map order PMD (mm/hmm.c hmm_vma_handle_absent_pmd), so SNAPSHOT adds
the PMD flag. The CPU view alone cannot tell a PMD entry from 512 PTEs on the same device folio (a
split PMD keeps the PFNs), so ``compare(pmd_blocks=...)`` allows, not requires, the PMD flag on the
pages of a 2 MiB-aligned block whose 512 entries are device-private on consecutive device PFNs from a
2 MiB-aligned one; anywhere else the PMD flag on a device-private page is a disagreement.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from hmmbench.cases.verdict import Checks, Disagreement
from hmmbench.guest.pagemap import KPF, decode_pagemap
from hmmbench.guest.uapi import SNAPSHOT_FLAGS, decode_snapshot

DEVMEM_CHUNK_PAGES = 256 * 1024 * 1024 // 4096  # lib/test_hmm.c DEVMEM_CHUNK_SIZE, in 4 KiB pages
PMD_PAGES = 512  # HPAGE_PMD_NR on x86-64 with 4 KiB pages
_NIBBLE = {"zero": SNAPSHOT_FLAGS["ZERO"], "private": SNAPSHOT_FLAGS["DEV_PRIVATE_LOCAL"],
           "coherent_local": SNAPSHOT_FLAGS["DEV_COHERENT_LOCAL"],
           "coherent_remote": SNAPSHOT_FLAGS["DEV_COHERENT_REMOTE"]}
_RW = SNAPSHOT_FLAGS["READ"] | SNAPSHOT_FLAGS["WRITE"]


@dataclass(frozen=True)
class Calibration:
    """This kernel's encoding of device pages, as measured by the case (see devmem.calibrate)."""

    private_write: int | None = None  # swap type of a writable device-private entry
    private_read: int | None = None  # of a read-only one
    exclusive: frozenset[int] = frozenset()  # swap types of device-exclusive entries (write, read)
    coherent_ranges: tuple[tuple[int, int, int], ...] = ()  # (first PFN, end PFN, owning device)
    problems: tuple[str, ...] = ()  # what the calibration could not measure

    @property
    def private_types(self) -> frozenset[int]:
        return frozenset(t for t in (self.private_write, self.private_read) if t is not None)

    def coherent_owner(self, pfn: int) -> int | None:
        for lo, hi, owner in self.coherent_ranges:
            if lo <= pfn < hi:
                return owner
        return None

    @classmethod
    def from_obs(cls, cal: dict) -> Calibration:
        """From the guest's calibration record: each probe's pagemap entry names its kind's encoding."""
        lay = cal.get("layout") or {}
        spm = [(lay.get(f"spm_addr_dev{i}") or 0) // 4096 for i in (0, 1)]
        w = r = None
        exclusive: set[int] = set()
        ranges: list[tuple[int, int, int]] = []
        problems: list[str] = []
        for index_text, probes in (cal.get("probes") or {}).items():
            index = int(index_text)
            for p in probes:
                if "error" in p or (p.get("cmd") or {}).get("ret") != 0:
                    problems.append(f"dmirror{index} {p.get('how')}: {p.get('error') or p.get('cmd')}")
                    continue
                d = decode_pagemap(p["pagemap"])
                if p["how"] == "exclusive":
                    exclusive |= {x["swap_type"] for x in (d, decode_pagemap(p.get("pagemap_readonly", 0)))
                                  if x["swap"]}
                elif d["swap"] and index < 2:
                    if p["how"] == "write":
                        w = d["swap_type"]
                    else:
                        r = d["swap_type"]
                elif d["present"] and index >= 2:
                    for base in spm:
                        if base and base <= d["pfn"] < base + DEVMEM_CHUNK_PAGES:
                            ranges.append((base, base + DEVMEM_CHUNK_PAGES, index))
        return cls(w, r, frozenset(exclusive), tuple(sorted(set(ranges))), tuple(problems))

    def describe(self) -> str:
        parts = [f"device-private write type {self.private_write}, read type {self.private_read}",
                 f"device-exclusive types {sorted(self.exclusive)}"]
        parts += [f"PFNs {lo:#x}-{hi:#x} coherent memory of dmirror{owner}" for lo, hi, owner in self.coherent_ranges]
        return "; ".join(parts)


@dataclass(frozen=True)
class CpuPage:
    """One page as the CPU's page tables show it."""

    kind: str  # none, system, zero, coherent, device-private, device-exclusive, other-swap
    writable: bool | None = None  # for device-private entries: the write type (None: unknown)
    owner: int | None = None  # for coherent pages: whose memory the PFN is
    text: str = ""
    device_pfn: int | None = None  # for device-private entries: the device PFN (swap offset)
    huge: bool = False  # for the zero page: the huge zero page (KPF_THP with KPF_ZERO_PAGE)

    @property
    def on_device(self) -> bool:
        return self.kind in ("coherent", "device-private")


def cpu_page(raw: int, kpageflags: int | None, cal: Calibration) -> CpuPage:
    d = decode_pagemap(raw)
    if d["present"]:
        pfn = d.get("pfn", 0)
        owner = cal.coherent_owner(pfn)
        if owner is not None:
            return CpuPage("coherent", owner=owner, text=f"present on PFN {pfn:#x}, coherent memory of dmirror{owner}")
        if kpageflags is not None and kpageflags >> KPF["ZERO_PAGE"] & 1:
            if kpageflags >> KPF["THP"] & 1:
                return CpuPage("zero", huge=True, text=f"present on the huge zero page (PFN {pfn:#x})")
            return CpuPage("zero", text=f"present on the shared zero page (PFN {pfn:#x})")
        return CpuPage("system", text=f"present on system PFN {pfn:#x}")
    if d["swap"]:
        t = d["swap_type"]
        if t in cal.private_types:
            return CpuPage("device-private", writable=t == cal.private_write, device_pfn=d["swap_offset"],
                           text=f"device-private entry (swap type {t}, device PFN {d['swap_offset']:#x})")
        if t in cal.exclusive:
            return CpuPage("device-exclusive", text=f"device-exclusive entry (swap type {t})")
        return CpuPage("other-swap", text=f"swap entry of type {t}")
    return CpuPage("none", text="not mapped")


def _name(byte: int) -> str:
    return "|".join(decode_snapshot(byte))


def device_should_say(page: CpuPage, device: int, owner: int | None,
                      pmd: bool = False) -> tuple[set[int] | None, str]:
    """The SNAPSHOT bytes ``device`` may report for ``page`` (None: any READ/WRITE byte of kind nibble 0),
    and the rule in words. ``owner`` is the device a device-private page was migrated to; ``pmd`` that
    the page's device-private entry may be PMD-level (see the module docstring)."""
    if page.kind in ("none", "device-exclusive", "other-swap"):
        return {SNAPSHOT_FLAGS["NONE"]}, f"{page.kind}: hmm_range_fault without a fault gives no PFN"
    if page.kind == "zero" and page.huge:
        return {SNAPSHOT_FLAGS["READ"] | SNAPSHOT_FLAGS["PMD"]}, \
            "the huge zero page reads READ|PMD (dmirror_mkentry's is_zero_pfn() is false for it)"
    if page.kind == "zero":
        return {_NIBBLE["zero"] | SNAPSHOT_FLAGS["READ"]}, "the zero page reads ZERO|READ"
    if page.kind == "coherent":
        nib = _NIBBLE["coherent_local" if page.owner == device else "coherent_remote"]
        # A coherent page is a present PTE (or, a device THP, a PMD) on the device's PFNs: PMD may be set.
        rw = {nib | SNAPSHOT_FLAGS["READ"], nib | SNAPSHOT_FLAGS["WRITE"]}
        return rw | {b | SNAPSHOT_FLAGS["PMD"] for b in rw}, \
            f"coherent memory of dmirror{page.owner}: {'LOCAL' if page.owner == device else 'REMOTE'}"
    if page.kind == "device-private":
        if owner is None or owner != device:
            if owner is None:
                return None, "device-private page of an unknown owner"
            if pmd:
                return {SNAPSHOT_FLAGS["NONE"]}, (
                    f"device-private page of dmirror{owner}: not this device's, no PFN, as for a PTE-level entry "
                    "(include/linux/hmm.h: HMM_PFN_ERROR is for a page the device cannot reach at all)")
            return {SNAPSHOT_FLAGS["NONE"]}, f"device-private page of dmirror{owner}: not this device's, no PFN"
        want = SNAPSHOT_FLAGS["WRITE"] if page.writable else SNAPSHOT_FLAGS["READ"]
        if pmd:
            return {_NIBBLE["private"] | want, _NIBBLE["private"] | want | SNAPSHOT_FLAGS["PMD"]}, \
                "its own device-private page, in a 2 MiB block of one device folio: DEV_PRIVATE_LOCAL, " \
                "writability of the entry, PMD where the entry is PMD-level"
        return {_NIBBLE["private"] | want}, "its own device-private page: DEV_PRIVATE_LOCAL, writability of the entry"
    return None, "system page: READ or WRITE"


def _byte_ok(byte: int, allowed: set[int] | None) -> bool:
    if allowed is None:  # a system page: READ or WRITE (with PMD or PUD), no kind nibble
        return byte != 0xFF and byte & 0xF0 == 0 and bool(byte & _RW)
    return byte in allowed


@dataclass
class ViewsJudged:
    """The result of comparing one moment's views: each page's CPU view and the disagreements."""

    label: str
    pages: list[CpuPage] = field(default_factory=list)
    disagreements: list[Disagreement] = field(default_factory=list)

    def kinds(self, lo: int = 0, hi: int | None = None) -> dict[str, int]:
        """How many pages of each kind the CPU shows (in pages ``lo`` to ``hi``)."""
        out: dict[str, int] = {}
        for p in self.pages[lo:hi]:
            out[p.kind] = out.get(p.kind, 0) + 1
        return out


def device_folio_blocks(pages: list[CpuPage], block_starts: list[int] | None) -> list[bool]:
    """Per page: whether it lies in a 2 MiB-aligned block (one of ``block_starts``, page indices of the
    range where a PMD-aligned virtual block begins) whose 512 entries are device-private on consecutive
    device PFNs from a 2 MiB-aligned one: where a PMD-level device-private entry can be."""
    out = [False] * len(pages)
    for b in block_starts or []:
        block = pages[b:b + PMD_PAGES]
        if len(block) < PMD_PAGES or b < 0 or any(p.kind != "device-private" for p in block):
            continue
        first = block[0].device_pfn
        if first is None or first % PMD_PAGES or any(p.device_pfn != first + i for i, p in enumerate(block)):
            continue
        out[b:b + PMD_PAGES] = [True] * PMD_PAGES
    return out


def compare(c: Checks, views: dict, cal: Calibration, owners: int | list[int | None] | None = None,
            exclusive_owner: int | None = None, prot_none: bool = False,
            pmd_blocks: list[int] | None = None) -> ViewsJudged:
    """Judge one moment: every page, every device. Adds the check ``views agree: LABEL`` and the
    disagreements to ``c``; returns the CPU view of each page for the case's own checks. ``owners`` is the
    device each device-private page was migrated to (one for all, or per page); ``exclusive_owner`` the
    device that made pages exclusive; ``prot_none`` a range the CPU may not read (SNAPSHOT says ERROR);
    ``pmd_blocks`` the page indices where 2 MiB-aligned virtual blocks begin (see device_folio_blocks)."""
    label, n = views["label"], views["npages"]
    cpu = views["cpu"]
    flags = cpu.get("kpageflags") or [None] * n
    pages = [cpu_page(raw, kf, cal) for raw, kf in zip(cpu["pagemap"], flags, strict=False)]
    judged = ViewsJudged(label, pages)
    per_page = owners if isinstance(owners, list) else [owners] * n
    pmd = device_folio_blocks(pages, pmd_blocks)
    for dev_text, view in sorted(views["devices"].items()):
        device = int(dev_text)
        cmd = view["snapshot_cmd"]
        if cmd.get("ret") != 0 and not prot_none:
            judged.disagreements.append(Disagreement(label, -1, "range as a whole", f"dmirror{device} SNAPSHOT "
                                        f"ret={cmd.get('ret')} errno={cmd.get('errno')}", "SNAPSHOT should succeed"))
            continue
        for i, page in enumerate(pages):
            byte = view["snapshot"][i]
            if prot_none:
                allowed, why = {SNAPSHOT_FLAGS["ERROR"]}, "PROT_NONE: hmm_range_fault reports an error"
            else:
                allowed, why = device_should_say(page, device, per_page[i], pmd[i])
            if not _byte_ok(byte, allowed):
                want = "READ or WRITE" if allowed is None else " or ".join(_name(b) for b in sorted(allowed))
                judged.disagreements.append(Disagreement(label, i, page.text, f"dmirror{device} SNAPSHOT {_name(byte)}",
                                                         f"expected {want}: {why}"))
        held = view.get("check_exclusive")
        if held is not None:
            for i, page in enumerate(pages):
                want = int(page.kind == "device-exclusive" and device == exclusive_owner)
                if held[i] != want:
                    seen = {1: "held exclusive (EPERM)", 0: "not held"}.get(held[i], f"errno {-held[i]}")
                    judged.disagreements.append(Disagreement(
                        label, i, page.text, f"dmirror{device} CHECK_EXCLUSIVE {seen}",
                        "held only by the device that made it exclusive, while the PTE is device-exclusive"))
    c.disagree(judged.disagreements)
    devices = ", ".join(f"dmirror{d}" for d in sorted(views["devices"], key=int))
    first = "; ".join(d.line() for d in judged.disagreements[:2])
    c.check(f"views agree: {label}", not judged.disagreements,
            f"{n} pages x {devices}: CPU {judged.kinds()}" + (f"; {len(judged.disagreements)} disagree: {first}"
                                                             if judged.disagreements else ""))
    return judged


# What a page migrated to each kind of device memory is, as cpu_page names it.
ON_DEVICE = {"private": "device-private", "coherent": "coherent"}


def calibration_gap(cal: Calibration, memory: str, *devices: int) -> str | None:
    """Why the calibration cannot back a rule about ``memory`` on ``devices`` (None: it can): the rule
    must then say ERROR, never guess the encoding."""
    if memory == "private" and cal.private_write is None:
        return "calibration found no device-private swap type (MIGRATE_TO_DEV of a scratch page failed)"
    if memory == "coherent":
        owners = {owner for _, _, owner in cal.coherent_ranges}
        missing = [f"dmirror{d}" for d in devices if d not in owners]
        if missing:
            return f"calibration found no coherent memory of {' and '.join(missing)}"
    return None


def calibrated(c: Checks, obs: dict) -> Calibration:
    """The case's calibration, noted in its evidence (what this kernel's encoding was measured to be)."""
    cal = Calibration.from_obs(obs.get("calibration") or {})
    c.note("calibration", cal.describe())
    for p in cal.problems:
        c.note("calibration problem", p)
    return cal
