"""migrate_gup: a GUP of a page on the device brings a device-private page back; coherent pages stay.

Covers hmm-tests hmm_gup_test (gup_test's GUP_BASIC_TEST, GUP_FAST_BENCHMARK, PIN_FAST_BENCHMARK with
FOLL_LONGTERM and PIN_LONGTERM_BENCHMARK on one page each, then SNAPSHOT and the data), and the same
property through the paths a process has without gup_test: /proc/self/mem pread and pwrite
(access_remote_vm), process_vm_readv, and O_DIRECT I/O from and into the range (pin_user_pages).

Why: GUP cannot return a device-private page (no CPU mapping), so mm/gup.c faults it and the fault
migrates it back (dmirror_devmem_fault); a device-coherent page is CPU-addressable and is returned as
it is, except that a FOLL_LONGTERM pin migrates it out of device memory (mm/gup.c
check_and_migrate_movable_folios: coherent folios are not long-term pinnable).

Rule (every check must hold, and every control read the other way, for PASS):
  1. Each path starts from a range all on the local device (MIGRATE_TO_DEV ret 0, cpages == npages).
  2. After a GUP of the first half by each path that succeeded: device-private, exactly the first half
     is on system PFNs and the second half still device-private (the control that the views can say
     "on the device" after a GUP elsewhere in the range); device-coherent, every page is still coherent.
     Both views of the whole range agree, and the operation moved the right bytes (pread returns the
     data, pwrite and O_DIRECT read land in the range, O_DIRECT write puts the data in the file); the
     range's data is intact.
  3. process_vm_readv and O_DIRECT on tmpfs are judged where the kernel offers them: ENOSYS (no
     CONFIG_CROSS_MEMORY_ATTACH) and an open refused with EINVAL are notes, and then nothing moved.
  4. gup_test (must exist when the kernel has CONFIG_GUP_TEST and debugfs): every call returns 0; after
     them, device-private: all four pages on system PFNs; device-coherent: the two pages of the
     non-long-term calls stay coherent and the two long-term-pinned ones are system pages (hmm-tests'
     SNAPSHOT expectations: DEV_COHERENT_LOCAL|WRITE, then WRITE); the data intact.
"""

from __future__ import annotations

from hmmbench.cases import CaseSpec
from hmmbench.cases.facts import TargetFacts
from hmmbench.cases.rules import errname, ioctl_text, ok_ioctl
from hmmbench.cases.verdict import Checks, Verdict
from hmmbench.cases.views import ON_DEVICE, calibrated, calibration_gap, compare

SPEC = CaseSpec(
    name="migrate_gup",
    order=230,
    description="GUP of device pages (/proc/self/mem, process_vm_readv, O_DIRECT, gup_test): private come back",
    rule=__doc__.split("Rule", 1)[1],
    variants=[{"memory": "private"}, {"memory": "coherent"}],
    timeout=300.0,
)


def _op_ok(rec: dict, half: int, ps: int = 4096) -> tuple[bool, str]:
    op, path = rec["op"], rec["path"]
    if "errno" in op and op.get("ret") == -1:
        return False, f"ret -1 errno {errname(op['errno'])}"
    if path.startswith("pread") or path == "process_vm_readv":
        ok = op.get("ret") == half * ps and op.get("read_matches") is True
        return ok, f"ret {op.get('ret')}, read {op.get('read_matches')}"
    if "write from" in path:
        ok = op.get("ret") == half * ps and op.get("file_matches") is True
        return ok, f"ret {op.get('ret')}, file {op.get('file_matches')}"
    return op.get("ret") == half * ps, f"ret {op.get('ret')}"


def judge(obs: dict, facts: TargetFacts) -> Verdict:
    c = Checks()
    n, half, kind, local = obs["npages"], obs["half"], obs["memory"], obs["local"]
    cal = calibrated(c, obs)
    on_device = ON_DEVICE[kind]
    if gap := calibration_gap(cal, kind, local):
        return c.error(gap)
    stayed = False
    for rec in obs["paths"]:
        path, mig = rec["path"], rec["migrate"]
        v = compare(c, rec["views"], cal, owners=local)
        c.check(f"range on the device before: {path}", ok_ioctl(mig, n), ioctl_text(mig), f"cpages={n}")
        op = rec["op"]
        if path == "process_vm_readv" and op.get("ret") == -1 and errname(op.get("errno")) == "ENOSYS":
            c.note("process_vm_readv", f"ENOSYS (CONFIG_CROSS_MEMORY_ATTACH "
                   f"{facts.config.enabled('CONFIG_CROSS_MEMORY_ATTACH')})")
            c.check(f"nothing moved: {path}", v.kinds() == {on_device: n}, str(v.kinds()))
            continue
        ok, seen = _op_ok(rec, half)
        c.check(f"the operation succeeds: {path}", ok, seen)
        if kind == "private":
            good = v.kinds(0, half) == {"system": half} and v.kinds(half, n) == {on_device: n - half}
            stayed |= v.kinds(half, n) == {on_device: n - half}
            c.check(f"exactly the pages GUP'd come back: {path}", good,
                    f"first half {v.kinds(0, half)}, second half {v.kinds(half, n)}")
        else:
            c.check(f"coherent pages stay on the device: {path}", v.kinds() == {on_device: n}, str(v.kinds()))
        c.check(f"data intact: {path}", rec["data_intact"], str(rec["data_intact"]))
    if kind == "private":
        c.control("pages not GUP'd read as device-private after a GUP in their range", stayed,
                  "see 'exactly the pages GUP'd come back'")
    else:
        moved = "gup_test" in obs and compare(c, obs["gup_test"]["views"], cal, owners=local).kinds(2, 4) \
            == {"system": 2}
        c.control("a long-term pin does move coherent pages out (the views can say 'system')", moved,
                  "see the gup_test checks")
    for fs in ("ext4", "tmpfs"):
        od = obs.get(f"o_direct_{fs}") or {}
        if od.get("open_errno"):
            c.note(f"O_DIRECT on {fs}", f"open refused: {errname(od['open_errno'])}")
            if fs == "ext4":
                c.check("O_DIRECT opens on ext4", False, errname(od["open_errno"]))

    has_gup = facts.config.enabled("CONFIG_GUP_TEST")
    if not obs["gup_test_exists"]:
        c.check("gup_test exists where CONFIG_GUP_TEST is set", has_gup is not True,
                f"/sys/kernel/debug/gup_test missing, CONFIG_GUP_TEST {has_gup}")
    else:
        g = obs["gup_test"]
        calls = g["op"]["calls"]
        v = compare(c, g["views"], cal, owners=local)
        c.check("gup_test: range on the device before", ok_ioctl(g["migrate"], n), ioctl_text(g["migrate"]))
        c.check("gup_test: every call returns 0", all(x["ret"] == 0 for x in calls),
                ", ".join(f"{x['call']} ret {x['ret']} errno {errname(x['errno'])}" for x in calls))
        if kind == "private":
            c.check("gup_test: every page back on a system PFN", v.kinds() == {"system": n}, str(v.kinds()))
        else:
            c.check("gup_test: plain GUP keeps coherent pages, long-term pins move them to system memory",
                    v.kinds(0, 2) == {"coherent": 2} and v.kinds(2, 4) == {"system": 2},
                    f"GUP_BASIC/GUP_FAST {v.kinds(0, 2)}, PIN_FAST LONGTERM/PIN_LONGTERM {v.kinds(2, 4)}")
        c.check("gup_test: data intact", g["data_intact"], str(g["data_intact"]))
    return c.verdict(f"{len(obs['paths'])} GUP paths and gup_test on {kind} pages: as mm/gup.c defines")
