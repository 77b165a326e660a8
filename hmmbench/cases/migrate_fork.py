"""migrate_fork: fork() with pages on the device; copy-on-write across the device, both processes seen.

Covers hmm-tests hmm_cow_in_device (the parent writes while the child lives), anon_write_child (a child
sees the parent's values, reads and writes them through a mirror of its own, the parent's copy does not
change; ``first=device`` is its migrate=1 path: the child's first access is a device WRITE;
``first=device_read`` a device READ before it) and anon_write_child_shared (a MAP_SHARED anonymous range
the child's device writes is seen by the parent), with page state of both processes at every step.

Rule (every check must hold, and every control read the other way, for PASS):
  1. MIGRATE_TO_DEV moves every page to the local device (cpages == npages, the mirror holds the data).
  2. After fork, parent and child map the same device pages: device-private, both PTEs are
     device-private entries of the read type (mm/memory.c copy_nonpresent_pte write-protects a writable
     entry in a COW mapping on both sides) naming the same device PFN; device-coherent, both PTEs are
     present on the same PFN of the device's coherent memory.
  3. At every step both views of the parent's range agree (hmmbench.cases.views, the local device owning
     device-private pages).
  4. The first write (the parent's by CPU with ``first=cpu``, else the child's through its own mirror)
     gives the writer its own copy: device-private, the write fault migrates the shared device page back
     to system memory first (dmirror_devmem_fault; the rmap walk unmaps it from both processes), so both
     processes end on system pages, on different PFNs; device-coherent, the writer's COW copy is a system
     page and the other process keeps the coherent page. After both have written, each process is on its
     own pages and no PTE is device-private.
  5. Copies stay separate: the child sees its copy unchanged by the parent's write, the parent keeps its
     data after the child's CPU and device writes and after its exit (control: the parent sees what the
     child wrote by CPU and by device into a MAP_SHARED anonymous range, so an unchanged private copy is
     a real observation, and the device WRITE there returns 0 with cpages == npages).
  6. The child's own mirror reads what the child's memory holds (with ``first=device_read``, the
     original from the shared device pages) and its device WRITE lands in the child's memory (ret 0,
     cpages == npages); the child exits with status 0.
  7. The child's exit closes its mirror, and lib/test_hmm.c dmirror_fops_release evicts every chunk of
     the device: pages the parent still had on the device are system pages after it.
  Kernel trouble (a WARNING or an oops under any step) fails the case by itself.
"""

from __future__ import annotations

from hmmbench.cases import CaseSpec
from hmmbench.cases.facts import TargetFacts
from hmmbench.cases.rules import ioctl_text, no_control, ok_ioctl
from hmmbench.cases.verdict import Checks, Verdict
from hmmbench.cases.views import ON_DEVICE, calibrated, calibration_gap, compare, cpu_page

SPEC = CaseSpec(
    name="migrate_fork",
    order=210,
    description="fork with pages on the device: both processes' views, copy-on-write across the device",
    rule=__doc__.split("Rule", 1)[1],
    variants=[{"memory": "private", "first": "cpu"}, {"memory": "coherent", "first": "cpu"},
              {"memory": "private", "first": "device"}, {"memory": "coherent", "first": "device"},
              {"memory": "private", "first": "device_read"}],
    timeout=300.0,
)


def _child_pages(state: dict, cal) -> list:
    flags = state.get("kpageflags") or [None] * len(state["pagemap"])
    return [cpu_page(raw, kf, cal) for raw, kf in zip(state["pagemap"], flags, strict=False)]


def _ids(state: dict) -> list[int]:
    from hmmbench.cases.rules import pfns

    return pfns(state["pagemap"])


def _kinds(pages) -> dict[str, int]:
    out: dict[str, int] = {}
    for p in pages:
        out[p.kind] = out.get(p.kind, 0) + 1
    return out


def _step(steps: dict, name: str) -> dict:
    return steps.get(name) or {"error": "step not run"}


def judge(obs: dict, facts: TargetFacts) -> Verdict:
    c = Checks()
    n, kind, local, first = obs["npages"], obs["memory"], obs["local"], obs["first"]
    cal = calibrated(c, obs)
    on_device = ON_DEVICE[kind]
    if gap := calibration_gap(cal, kind, local):
        return c.error(gap)
    judged = {v["label"]: compare(c, v, cal, owners=local) for v in obs["views"]}
    child = {label: _child_pages(st, cal) for label, st in obs["child_views"].items()}
    steps = obs["steps"]

    c.control("pages were system pages before MIGRATE_TO_DEV", set(judged["before"].kinds()) == {"system"},
              str(judged["before"].kinds()))
    mig = obs["migrate"]
    c.check("MIGRATE_TO_DEV moves every page", ok_ioctl(mig, n) and obs["mirror_matches"],
            f"{ioctl_text(mig)} of {n}, mirror {obs['mirror_matches']}")
    after = judged["after MIGRATE_TO_DEV"]
    c.check("every page on the device before fork", after.kinds() == {on_device: n}, str(after.kinds()))

    # 2. after fork: the same device pages on both sides, write-protected.
    pf, cf = judged["after fork"].pages, child["after fork"]
    same = _ids(obs["child_views"]["after fork"]) == [p for p in _parent_ids(obs, "after fork")]
    both = all(p.kind == on_device for p in pf) and all(p.kind == on_device for p in cf)
    c.check("after fork both processes map the same device pages", both and same,
            f"parent {_kinds(pf)}, child {_kinds(cf)}, same PFNs {same}")
    if kind == "private":
        ro = [p.writable is False for p in pf + cf]
        c.check("after fork device-private entries are of the read type on both sides", all(ro),
                f"{sum(ro)}/{2 * n} read type")
        c.control("device-private entries were of the write type before fork",
                  all(p.writable for p in after.pages), str(sum(bool(p.writable) for p in after.pages)))

    # 4. the first write (the parent's by CPU, or the child's by its device) and who ends where.
    if first == "cpu":
        label, writer, other = "after the parent's write", "parent", "child"
        wpages, opages = judged[label].pages, child[label]
    else:
        label, writer, other = "after the child's device write", "child", "parent"
        wpages, opages = child[label], judged[label].pages
    separate = all(a != b for a, b in zip(_parent_ids(obs, label), _ids(obs["child_views"][label]), strict=False))
    seen = f"{writer} {_kinds(wpages)}, {other} {_kinds(opages)}, PFNs separate {separate}"
    if kind == "private":
        c.check("the first write brings the shared device pages back for both processes",
                _kinds(wpages) == {"system": n} and _kinds(opages) == {"system": n} and separate, seen)
    else:
        c.check("the first writer gets a system copy, the other process keeps the coherent page",
                _kinds(wpages) == {"system": n} and _kinds(opages) == {"coherent": n} and separate, seen)
    last = "after the child's write"
    cwr, pcw = child[last], judged[last].pages
    c.check("after both wrote each process is on its own pages, none device-private",
            all(a != b for a, b in zip(_parent_ids(obs, last), _ids(obs["child_views"][last]), strict=False))
            and not any(p.kind == "device-private" for p in cwr + pcw),
            f"parent {_kinds(pcw)}, child {_kinds(cwr)}")
    # The child's exit closes its mirror: lib/test_hmm.c dmirror_fops_release evicts every chunk of the
    # device, so pages the parent still had on it come back to system memory.
    held = [p.on_device for p in pcw]
    gone = judged["after the child exited"]
    if any(held):
        c.check("the child's mirror closing at exit evicts the parent's device pages",
                gone.kinds() == {"system": n}, f"before exit {_kinds(pcw)}, after {gone.kinds()}")
    else:
        c.note("parent's pages after the child exited", str(gone.kinds()))

    # 5. separate copies.
    cpu = _step(steps, "cpu_write")
    want_child_before = "original" if first == "cpu" else "device"
    c.check("the child sees its copy unchanged by the parent's write",
            (cpu.get("before") or {}).get(want_child_before) is True, str(cpu.get("before") or cpu))
    c.check("the child sees its own CPU write", (cpu.get("after") or {}).get("child") is True, str(cpu.get("after")))
    pm = obs["parent_matches"]
    parent_after_child = pm.get("after the child's write") or {}
    c.check("the parent keeps its data after the child's CPU write", parent_after_child.get("parent") is True,
            str(parent_after_child))
    pdev = pm.get("after the child's device write") or {}
    c.check("the parent keeps its data after the child's device write",
            pdev.get("parent" if first == "cpu" else "original") is True, str(pdev))
    c.check("the parent keeps its data after the child exited", (pm.get("after the child exited") or {}).get("parent")
            is True, str(pm.get("after the child exited")))
    shared = obs["parent_sees_shared"]
    sdw = _step(steps, "shared_device_write")
    c.control("the parent sees the child's CPU write to a shared page", shared["child_cpu"] is True,
              str(shared["child_cpu"]))
    c.check("the child's device WRITE to shared anonymous memory reaches the parent",
            ok_ioctl(sdw.get("cmd") or {}, n - 1) and shared["device"] is True and sdw.get("child_sees") is True,
            f"{ioctl_text(sdw.get('cmd') or {})}, parent sees {shared['device']}, child sees {sdw.get('child_sees')}")

    # 6. the child's own mirror.
    rd, wr, look = _step(steps, "device_read"), _step(steps, "device_write"), _step(steps, "look")
    want_read = "child" if first == "cpu" else "device"
    if first == "device_read":
        fr = _step(steps, "first_device_read")
        c.check("the child's mirror reads the original from the shared device pages",
                ok_ioctl(fr.get("cmd") or {}, n) and (fr.get("read") or {}).get("original") is True,
                f"{ioctl_text(fr.get('cmd') or {})}, {fr.get('read')}" + (f", {fr['error']}" if "error" in fr else ""))
    c.check("the child's mirror reads the child's memory", ok_ioctl(rd.get("cmd") or {}, n)
            and (rd.get("read") or {}).get(want_read) is True, f"{ioctl_text(rd.get('cmd') or {})}, {rd.get('read')}"
            + (f", {rd['error']}" if "error" in rd else ""))
    c.check("the child's device WRITE lands in the child's memory", ok_ioctl(wr.get("cmd") or {}, n)
            and (look.get("matches") or {}).get("device") is True,
            f"{ioctl_text(wr.get('cmd') or {})}, child reads {look.get('matches')}"
            + (f", {wr['error']}" if "error" in wr else ""))
    c.note("child's pages after its device write", str(_kinds(child["after the child's device write"])))
    ex = obs["child_exit"]
    c.check("the child exits with status 0", ex.get("exited") is True and ex.get("code") == 0, str(ex))
    no_control(c, "MIGRATE_TO_DEV, the child's mirror, the child's exit",
               "return values and byte comparisons with what the process itself wrote; the page kinds read the "
               "other way in the same run (before MIGRATE_TO_DEV, after the writes)")
    return c.verdict(f"{n} {kind} pages across fork ({first} first): copies separate both ways, both "
                     f"processes' page tables as the kernel defines")


def _parent_ids(obs: dict, label: str) -> list[int]:
    from hmmbench.cases.rules import pfns

    for v in obs["views"]:
        if v["label"] == label:
            return pfns(v["cpu"]["pagemap"])
    return []
