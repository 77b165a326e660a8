"""exclusive_hugetlb: EXCLUSIVE on a MAP_HUGETLB mapping (CVE-2025-22034: BUG on 6.10..6.12.22).

Reserves two 2 MiB huge pages through /proc/sys/vm/nr_hugepages, maps one, touches it, asks for
exclusive access to its first page and to the whole 2 MiB, and records results and page state.
Whether the reservation and the mmap worked is an observation (with HugePages_Free and
Hugepagesize from /proc/meminfo): if the mmap is refused the case stops there and the host decides.
Control in the same run: EXCLUSIVE of an ordinary anonymous page, which succeeds and changes its PTE.
"""

from __future__ import annotations

from .. import uapi
from ..memops import pattern, read_file, write_file
from ..skip import Skip

HUGE = 2 << 20


def _meminfo(*names: str) -> dict[str, int | None]:
    lines = (read_file("/proc/meminfo") or "").splitlines()
    have = {line.split(":")[0]: int(line.split()[1]) for line in lines if ":" in line and len(line.split()) >= 2}
    return {n: have.get(n) for n in names}


def observe(ctx, params: dict) -> dict:
    ps = ctx.page_size
    dev = ctx.device(0)
    obs: dict = {"nr_hugepages_before": read_file("/proc/sys/vm/nr_hugepages")}
    if obs["nr_hugepages_before"] is None:
        raise Skip("no /proc/sys/vm/nr_hugepages (kernel without CONFIG_HUGETLBFS)")
    wanted = max(2, int(obs["nr_hugepages_before"]))
    obs["reserve"] = write_file("/proc/sys/vm/nr_hugepages", str(wanted))
    obs["nr_hugepages"] = read_file("/proc/sys/vm/nr_hugepages")
    obs["meminfo"] = _meminfo("HugePages_Total", "HugePages_Free", "Hugepagesize")
    plain, _ = ctx.base_pages(1, 5150)
    plain_mirror = ctx.ffi.new("char[]", ps)
    obs["control_exclusive"] = dev.command("EXCLUSIVE", ctx.libc.addr(plain), 1, plain_mirror)
    obs["control_after"] = ctx.pagemap(plain, 1)
    try:
        try:
            p = ctx.libc.mmap(HUGE, uapi.PROT_READ | uapi.PROT_WRITE,
                              uapi.MAP_PRIVATE | uapi.MAP_ANONYMOUS | uapi.MAP_HUGETLB)
        except OSError as exc:
            obs["mmap"] = {"ok": False, "errno": exc.errno, "error": str(exc)}
            return obs
        obs["mmap"] = {"ok": True, "errno": 0, "error": None}
        data = pattern(HUGE // ps, ps)
        ctx.ffi.memmove(p, data, HUGE)
        addr = ctx.libc.addr(p)
        per = HUGE // ps
        obs["before"] = ctx.pagemap(p, per)
        mirror = ctx.ffi.new("char[]", HUGE)
        obs["one_page"] = dev.command("EXCLUSIVE", addr, 1, mirror)
        obs["after_one_page"] = ctx.pagemap(p, per)
        obs["whole"] = dev.command("EXCLUSIVE", addr, per, mirror)
        obs["after_whole"] = ctx.pagemap(p, per)
        obs["data_intact"] = ctx.ffi.buffer(p, HUGE)[:] == data
        ctx.libc.call("munmap", p, HUGE)
    finally:
        write_file("/proc/sys/vm/nr_hugepages", obs["nr_hugepages_before"])
    return obs
