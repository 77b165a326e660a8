"""migrate_fork: fork() while pages are on the device; parent and child each write their copy.

Observes, for one kind of device memory (private: dmirror0 with 1 as the remote device; coherent: 2
with 3), on base pages migrated to the local device: both views of the parent's range (its pagemap and
every mirror's SNAPSHOT through the parent's own files) and the child's pagemap (/proc/CHILD/pagemap,
read by the parent while the child waits) at every moment:

  after fork; then, with ``first=cpu`` (hmm_cow_in_device, then anon_write_child's CPU side): the
  parent writes its copy while the child lives, the child reads (must see the original) and writes its
  own, the child reads and writes through a mirror of its own (anon_write_child: "the child needs its
  own mirror to its own mm"); with ``first=device`` (anon_write_child with migrate=1): the child's first
  access is a device WRITE through its own mirror of the local device, then its CPU read, a device READ,
  the parent's write and the child's CPU write; ``first=device_read`` is the same after a device READ
  through the child's mirror as the very first access. In all, the child writes a MAP_SHARED anonymous
  range through its mirror and by CPU, which the parent must see (anon_write_child_shared; the control
  that "parent unchanged" is a real observation). The child exits through the parent's request and is reaped.
"""

from __future__ import annotations

from .. import devmem, uapi
from ..child import Child, page_state_of
from ..memops import pattern

NPAGES = 16


def _matches(ctx, ptr, size: int, **datas: bytes) -> dict:
    now = ctx.ffi.buffer(ptr, size)[:]
    return {name: now == data for name, data in datas.items()}


def observe(ctx, params: dict) -> dict:
    kind = params.get("memory", devmem.PRIVATE)
    first = params.get("first", "cpu")
    n = int(params.get("npages", NPAGES))
    local, remote = devmem.devices_of(kind)
    ps = ctx.page_size
    size = n * ps
    dev = devmem.open_device(ctx, local)
    devices = devmem.all_devices(ctx, dev, devmem.open_device(ctx, remote))
    obs: dict = {"memory": kind, "first": first, "npages": n, "local": local, "remote": remote,
                 "calibration": devmem.calibrate(ctx, devices)}

    buf, original = ctx.base_pages(n, 2000)
    addr = ctx.libc.addr(buf)
    parent_data, child_data = pattern(n, ps, 2100), pattern(n, ps, 2200)
    device_data, shared_device = pattern(n, ps, 2300), pattern(n, ps, 2400)
    shared = ctx.libc.mmap(size, uapi.PROT_READ | uapi.PROT_WRITE, uapi.MAP_SHARED | uapi.MAP_ANONYMOUS)
    shared_original = pattern(n, ps, 2500)
    ctx.ffi.memmove(shared, shared_original, size)
    saddr = ctx.libc.addr(shared)

    obs["views"] = [devmem.views(ctx, "before", buf, n, devices)]
    mirror = ctx.ffi.new("char[]", size)
    obs["migrate"] = dev.command("MIGRATE_TO_DEV", addr, n, mirror)
    obs["mirror_matches"] = ctx.ffi.buffer(mirror, size)[:] == original
    obs["views"].append(devmem.views(ctx, "after MIGRATE_TO_DEV", buf, n, devices))

    own: dict = {}

    def child_mirror():
        if "dev" not in own:
            own["dev"] = uapi.Dmirror(ctx.libc, f"/dev/hmm_dmirror{local}", ctx.numbers)
        return own["dev"]

    def look(_args):
        return {"matches": _matches(ctx, buf, size, original=original, child=child_data, device=device_data,
                                    parent=parent_data)}

    def cpu_write(_args):
        before = _matches(ctx, buf, size, original=original, device=device_data, parent=parent_data)
        ctx.ffi.memmove(buf, child_data, size)
        ctx.ffi.memmove(shared, child_data[:ps], ps)  # page 0 of the shared range: by CPU
        return {"before": before, "after": _matches(ctx, buf, size, child=child_data)}

    def device_read(_args):
        back = ctx.ffi.new("char[]", size)
        r = child_mirror().command("READ", addr, n, back)
        got = ctx.ffi.buffer(back, size)[:]
        return {"cmd": r, "read": {"original": got == original, "child": got == child_data,
                                   "device": got == device_data}}

    def device_write(_args):
        src = ctx.ffi.new("char[]", device_data)
        return {"cmd": child_mirror().command("WRITE", addr, n, src)}

    def shared_device_write(_args):
        src = ctx.ffi.new("char[]", shared_device[ps:])  # pages 1.. of the shared range: by the device
        r = child_mirror().command("WRITE", saddr + ps, n - 1, src)
        return {"cmd": r, "child_sees": ctx.ffi.buffer(shared + ps, size - ps)[:] == shared_device[ps:]}

    child = Child({"look": look, "cpu_write": cpu_write, "device_read": device_read,
                   "device_write": device_write, "shared_device_write": shared_device_write})
    obs["child_views"] = {}
    obs["parent_matches"] = {}

    def moment(label: str) -> None:
        obs["views"].append(devmem.views(ctx, label, buf, n, devices))
        obs["child_views"][label] = page_state_of(child.pid, addr, n, ps)

    def parent_look(label: str) -> None:
        obs["parent_matches"][label] = _matches(ctx, buf, size, original=original, parent=parent_data)

    steps: dict = {}
    try:
        moment("after fork")
        if first == "cpu":
            ctx.ffi.memmove(buf, parent_data, size)
            moment("after the parent's write")
            steps["cpu_write"] = child.run("cpu_write")
            moment("after the child's write")
            parent_look("after the child's write")
            steps["device_read"] = child.run("device_read")
            steps["device_write"] = child.run("device_write")
            moment("after the child's device write")
            steps["look"] = child.run("look")
            parent_look("after the child's device write")
        else:
            if first == "device_read":  # the child's mirror reads the pages the parent put on the device
                steps["first_device_read"] = child.run("device_read")
                moment("after the child's device read")
            steps["device_write"] = child.run("device_write")
            moment("after the child's device write")
            parent_look("after the child's device write")
            steps["look"] = child.run("look")
            moment("after the child's read")
            steps["device_read"] = child.run("device_read")
            ctx.ffi.memmove(buf, parent_data, size)
            moment("after the parent's write")
            steps["cpu_write"] = child.run("cpu_write")
            moment("after the child's write")
            parent_look("after the child's write")
        steps["shared_device_write"] = child.run("shared_device_write")
    finally:
        obs["child_exit"] = child.exit(0)
    obs["steps"] = steps
    now = ctx.ffi.buffer(shared, size)[:]
    obs["parent_sees_shared"] = {"device": now[ps:] == shared_device[ps:], "child_cpu": now[:ps] == child_data[:ps]}
    obs["views"].append(devmem.views(ctx, "after the child exited", buf, n, devices))
    parent_look("after the child exited")
    return obs
