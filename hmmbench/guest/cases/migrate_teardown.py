"""migrate_teardown: munmap and exit with pages on the device, many times; what comes back to the device.

test_hmm exposes no counters (its calloc/cfree are internal), so what is observed is where each
MIGRATE_TO_DEV's pages land on the device: the device PFN of every page (the swap offset of a
device-private entry, the PFN of a coherent page). test_hmm's allocator is a LIFO free list
(dmirror_devmem_free pushes a freed page, dmirror_devmem_alloc_page pops), so pages freed by a teardown
are the next ones handed out, and pages leaked would make the set of PFNs grow with every cycle.

Observes, for one kind of device memory: hmm-tests migrate_multiple (NTIMES cycles of migrate, back to
system memory by CPU read, or MIGRATE_TO_SYS for coherent memory as hmm-tests does, data check,
munmap); CYCLES cycles of migrate then munmap with every page still on the device (the set of device
PFNs seen); the control: HELD ranges migrated and kept at once (their PFN sets must be disjoint); a
device READ of an unmapped range; hmm-tests anon_teardown with pages on the device (a thread munmaps
half the range while the device READs it); and process exit: children that migrate pages through their
own mirror and then exit (or are killed) with them on the device, each followed by a fresh
MIGRATE_TO_DEV in the parent.
"""

from __future__ import annotations

import threading

from .. import devmem, uapi
from ..child import Child
from ..memops import touch_read

NPAGES, NTIMES, CYCLES, HELD, EXITS, TEARDOWNS = 16, 10, 32, 4, 4, 16


def _device_pfns(ctx, p, n: int) -> list[int]:
    from ..pagemap import decode_pagemap

    out = []
    for raw in ctx.pagemap(p, n):
        d = decode_pagemap(raw)
        out.append(d.get("pfn") if d["present"] else d.get("swap_offset") if d["swap"] else None)
    return out


def observe(ctx, params: dict) -> dict:
    kind = params.get("memory", devmem.PRIVATE)
    n = int(params.get("npages", NPAGES))
    local, remote = devmem.devices_of(kind)
    ps = ctx.page_size
    size = n * ps
    dev = devmem.open_device(ctx, local)
    devices = devmem.all_devices(ctx, dev, devmem.open_device(ctx, remote))
    obs: dict = {"memory": kind, "npages": n, "local": local, "remote": remote,
                 "calibration": devmem.calibrate(ctx, devices)}
    mirror = ctx.ffi.new("char[]", size)

    def migrate(p, data) -> dict:
        r = dev.command("MIGRATE_TO_DEV", ctx.libc.addr(p), n, mirror)
        r["mirror_matches"] = ctx.ffi.buffer(mirror, size)[:] == data
        r["pfns"] = _device_pfns(ctx, p, n)
        return r

    def fresh() -> dict:
        """A fresh MIGRATE_TO_DEV of n pages, its PFNs recorded, then unmapped: nothing of the parent's
        stays on the device (a child's mirror closing at exit evicts every page of the device)."""
        p, data = ctx.base_pages(n, 6900)
        r = migrate(p, data)
        r["munmap"] = ctx.libc.call("munmap", p, size)
        return r

    # hmm-tests migrate_multiple.
    multiple = []
    for i in range(NTIMES):
        p, data = ctx.base_pages(n, 6000 + i)
        rec = migrate(p, data)
        if kind == devmem.COHERENT:
            rec["to_sys"] = dev.command("MIGRATE_TO_SYS", ctx.libc.addr(p), n, mirror)
        else:
            touch_read(p, n, ps)
        if i == 0:
            obs["multiple_views"] = devmem.views(ctx, "migrate_multiple: after the way back", p, n, devices)
        rec["data_intact"] = ctx.ffi.buffer(p, size)[:] == data
        rec["munmap"] = ctx.libc.call("munmap", p, size)
        multiple.append(rec)
    obs["multiple"] = multiple

    # Migrate, then munmap with every page on the device.
    cycles = []
    for i in range(CYCLES):
        p, data = ctx.base_pages(n, 6100 + i)
        rec = migrate(p, data)
        if i == 0:
            obs["cycle_views"] = devmem.views(ctx, "teardown cycle: before munmap", p, n, devices)
            last_addr = ctx.libc.addr(p)
        rec["munmap"] = ctx.libc.call("munmap", p, size)
        cycles.append(rec)
    obs["cycles"] = cycles
    back = ctx.ffi.new("char[]", size)
    obs["read_unmapped"] = dev.command("READ", last_addr, n, back)

    # Control: ranges held at once get disjoint PFNs.
    held, ptrs = [], []
    for i in range(HELD):
        p, data = ctx.base_pages(n, 6200 + i)
        held.append(migrate(p, data))
        ptrs.append(p)
    for p in ptrs:
        ctx.libc.call("munmap", p, size)
    obs["held"] = held
    obs["after_held"] = fresh()

    # hmm-tests anon_teardown, with the pages on the device.
    tear = []
    for i in range(TEARDOWNS):
        p, data = ctx.base_pages(n, 6300 + i)
        rec = migrate(p, data)
        box: dict = {}

        def unmap(p=p, box=box):
            box["munmap"] = ctx.libc.call("munmap", p + size // 2, size // 2)

        t = threading.Thread(target=unmap)
        t.start()
        rec["read"] = dev.command("READ", ctx.libc.addr(p), n, back)
        t.join()
        rec["munmap_half"] = box.get("munmap")
        rec["read_matches"] = ctx.ffi.buffer(back, size)[:] == data
        rec["views_first_half"] = devmem.views(ctx, "anon_teardown: first half after", p, n // 2, devices) \
            if i == 0 else None
        rec["munmap"] = ctx.libc.call("munmap", p, size // 2)
        tear.append(rec)
    obs["anon_teardown"] = tear

    # Exit with pages on the device: a child migrates through its own mirror, then exits or is killed.
    exits = []
    for i in range(EXITS):
        def child_migrate(_args, i=i):
            cdev = uapi.Dmirror(ctx.libc, f"/dev/hmm_dmirror{local}", ctx.numbers)
            p, data = ctx.base_pages(n, 6400 + i)
            r = cdev.command("MIGRATE_TO_DEV", ctx.libc.addr(p), n, mirror)
            r["mirror_matches"] = ctx.ffi.buffer(mirror, size)[:] == data
            r["pfns"] = _device_pfns(ctx, p, n)
            return r

        child = Child({"migrate": child_migrate})
        rec = {"child": child.run("migrate"), "how": "killed" if i % 2 else "exit"}
        rec["status"] = child.kill(9) if i % 2 else child.exit(0)
        rec["parent_after"] = fresh()
        exits.append(rec)
    obs["exits"] = exits
    return obs
