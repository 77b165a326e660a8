"""Device memory in the guest: which dmirror is which kind, a calibration of how this kernel encodes
pages on the device, and both views of a range (the CPU's page tables and every device's own view).

test_hmm (lib/test_hmm.c, dmirror_init) always creates two device-private mirrors,
/dev/hmm_dmirror0 and 1, and two device-coherent ones, 2 and 3, only when both ``spm_addr_dev0`` and
``spm_addr_dev1`` are set (hmmbench's guests reserve that memory with memmap=). The guest only
observes: which swap types and PFN ranges device pages get on this kernel is measured here and judged
on the host (hmmbench.cases.views), never looked up by version.
"""

from __future__ import annotations

import errno
import os

from . import uapi
from .memops import pattern
from .skip import Skip

PRIVATE, COHERENT = "private", "coherent"
PARAMS = "/sys/module/test_hmm/parameters"


def device_kind(index: int) -> str:
    """The memory kind of /dev/hmm_dmirror<index>: test_hmm numbers the private ones first."""
    return PRIVATE if index < 2 else COHERENT


def devices_of(kind: str) -> tuple[int, int]:
    """The two mirrors of a kind (a local and a remote one for every cross-device check)."""
    return (0, 1) if kind == PRIVATE else (2, 3)


def _param(name: str) -> int | None:
    try:
        with open(f"{PARAMS}/{name}") as fh:
            return int(fh.read().strip(), 0)
    except (OSError, ValueError):
        return None


def layout() -> dict:
    """test_hmm's special-purpose memory parameters as the module sees them (0 or None: not set)."""
    return {"spm_addr_dev0": _param("spm_addr_dev0"), "spm_addr_dev1": _param("spm_addr_dev1"),
            "devices": sorted(int(n[len("hmm_dmirror"):]) for n in os.listdir("/dev")
                              if n.startswith("hmm_dmirror") and n[len("hmm_dmirror"):].isdigit())}


def open_device(ctx, index: int, need: tuple[str, ...] = ("MIGRATE_TO_DEV",)) -> uapi.Dmirror:
    """/dev/hmm_dmirror<index>, or Skip naming what is missing: the device (and for a coherent one, the
    spm_addr parameters that create it) or an ioctl of ``need`` in this kernel's uapi."""
    path = f"/dev/hmm_dmirror{index}"
    if not os.path.exists(path):
        if device_kind(index) == COHERENT and os.path.exists("/dev/hmm_dmirror0"):
            lay = layout()
            raise Skip(f"{path} missing: test_hmm creates device-coherent mirrors only with spm_addr_dev0 and "
                       f"spm_addr_dev1 set (seen {lay['spm_addr_dev0']}, {lay['spm_addr_dev1']})")
        raise Skip(f"{path} missing (kernel without CONFIG_TEST_HMM, or test_hmm not loaded)")
    missing = [n for n in need if n not in ctx.numbers]
    if missing:
        raise Skip(f"test_hmm of {ctx.release} has no HMM_DMIRROR_{missing[0]}")
    return ctx.device(index)


def index_of(dev: uapi.Dmirror) -> int:
    return int(dev.path[len("/dev/hmm_dmirror"):])


def all_devices(ctx, *opened: uapi.Dmirror) -> dict[int, uapi.Dmirror]:
    """Every mirror this guest has: the case's own ``opened`` ones, and a new open of each other device.

    Each open of /dev/hmm_dmirrorN is its own mirror (lib/test_hmm.c dmirror_fops_open: its own page
    table), so the device's view of what *the case* did must be read through the file the case used:
    CHECK_EXCLUSIVE on a second open of the same device always says "not held"."""
    mine = {index_of(d): d for d in opened}
    return {i: mine.get(i) or ctx.device(i) for i in layout()["devices"]}


def _page_probe(ctx, dev, how: str) -> dict:
    """One scratch page put on (or handed to) ``dev`` in one way, its pagemap entry, then given back."""
    ps = ctx.page_size
    p = ctx.mmap_anon(1)
    ctx.libc.call("madvise", p, ps, uapi.MADV_NOHUGEPAGE)
    ctx.ffi.memmove(p, pattern(1, ps, 7300), ps)
    addr = ctx.libc.addr(p)
    mirror = ctx.ffi.new("char[]", ps)
    if how == "read-only":
        ctx.libc.call("mprotect", p, ps, uapi.PROT_READ)
    cmd = dev.command("EXCLUSIVE" if how == "exclusive" else "MIGRATE_TO_DEV", addr, 1, mirror)
    state = ctx.page_state(p, 1)
    out = {"how": how, "cmd": cmd, "pagemap": state["pagemap"][0], "kpageflags": state["kpageflags"][0]}
    if how == "exclusive":
        # mprotect read-only while exclusive: kernels with a read variant of the entry switch to it.
        ctx.libc.call("mprotect", p, ps, uapi.PROT_READ)
        out["pagemap_readonly"] = ctx.page_state(p, 1)["pagemap"][0]
    ctx.libc.call("munmap", p, ps)
    return out


def calibrate(ctx, devices: dict[int, uapi.Dmirror]) -> dict:
    """How this kernel encodes device pages, measured: for each device a written page migrated to it, a
    read-only page migrated to it, and (on device 0) a page made exclusive then write-protected. The
    host takes the swap types of device-private and device-exclusive entries, and which PFNs are whose
    coherent memory, from this, not from a version table."""
    out: dict = {"layout": layout(), "probes": {}}
    for index, dev in devices.items():
        probes = []
        for how in ("write", "read-only") + (("exclusive",) if index == min(devices) else ()):
            try:
                probes.append(_page_probe(ctx, dev, how))
            except OSError as exc:
                probes.append({"how": how, "error": str(exc)})
        out["probes"][str(index)] = probes
    return out


def check_exclusive_pages(ctx, dev, ptr, npages: int) -> list[int]:
    """CHECK_EXCLUSIVE of each page alone: 1 where the device holds it exclusive (EPERM), 0 where not,
    -errno for any other answer. One ioctl per page, since the range form only says "some page is"."""
    base = ctx.libc.addr(ptr)
    out = []
    for i in range(npages):
        r = dev.command("CHECK_EXCLUSIVE", base + i * ctx.page_size, 1)
        out.append(0 if r["ret"] == 0 else 1 if r["errno"] == errno.EPERM else -(r["errno"] or 1))
    return out


def views(ctx, label: str, ptr, npages: int, devices: dict[int, uapi.Dmirror], exclusive: bool = False) -> dict:
    """Both views of every page of a range at one moment: the CPU's (pagemap, kpageflags, kpagecount) and
    each device's (SNAPSHOT, which faults nothing in; CHECK_EXCLUSIVE per page when ``exclusive``)."""
    out: dict = {"label": label, "npages": npages, "cpu": ctx.page_state(ptr, npages), "devices": {}}
    for index, dev in devices.items():
        flags = ctx.ffi.new("unsigned char[]", npages)
        cmd = dev.command("SNAPSHOT", ctx.libc.addr(ptr), npages, flags)
        view = {"snapshot_cmd": cmd, "snapshot": list(flags)}
        if exclusive:
            view["check_exclusive"] = check_exclusive_pages(ctx, dev, ptr, npages)
        out["devices"][str(index)] = view
    return out
