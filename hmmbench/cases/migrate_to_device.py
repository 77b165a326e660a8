"""migrate_to_device: anonymous base pages to device memory and back, every page seen from both sides.

Rule (every check must hold, and every control read the other way, for PASS):
  1. MIGRATE_TO_DEV returns 0 with cpages == npages and the mirror holds the data.
  2. After it, every page is on the device as this kind of memory is mapped: device-private, a
     non-present entry of the device-private write type measured by the calibration; device-coherent,
     a present PTE on a PFN of the owning device's coherent memory (control: system pages before).
  3. At every step, every page's CPU view and every device's view agree (hmmbench.cases.views: SNAPSHOT
     DEV_PRIVATE_LOCAL on the owner and NONE elsewhere for device-private, DEV_COHERENT_LOCAL/REMOTE for
     coherent, READ/WRITE on system pages; CHECK_EXCLUSIVE only where the PTE is device-exclusive).
  4. A READ by the owning device returns the data without a CPU fault and moves no page.
  5. A CPU read of the first half, MIGRATE_TO_DEV of the resulting mix (every page on the device again,
     mirror holds the data), and a CPU write of the second half: device-private pages come back to
     system PFNs, exactly the touched ones (the rest stay on the device until touched), each with a
     fault (beyond the noise of the same write loop on ordinary pages, at least half as many minor faults
     as pages: the line halfway between one per page and none, because the noise of one loop is not
     the noise of the next: 33 write faults for 32 pages with 2 faults of noise was seen on 6.12.118);
     device-coherent pages stay on the device (the CPU reaches coherent memory directly). Data intact.
     (Checked in hmm-tests by return codes and data only: migrate, migrate_fault, migrate_release,
     migrate_multiple, anon_read_multiple's device READ; hmmbench adds both views of every page.)
  6. MIGRATE_TO_SYS after a second MIGRATE_TO_DEV, and RELEASE after a third, each return 0 and leave
     every page present on a system PFN with the data intact.
  7. In a range of exclusive, migrated and ordinary quarters, each quarter reads as its kind on both
     sides; a CPU read of every page restores all of them with the data intact.
"""

from __future__ import annotations

from hmmbench.cases import CaseSpec
from hmmbench.cases.facts import TargetFacts
from hmmbench.cases.rules import ioctl_text, ok_ioctl
from hmmbench.cases.verdict import Checks, Verdict
from hmmbench.cases.views import ON_DEVICE, calibrated, calibration_gap, compare

SPEC = CaseSpec(
    name="migrate_to_device",
    order=200,
    description="anonymous pages -> device memory (private, coherent) -> CPU fault, MIGRATE_TO_SYS, RELEASE",
    rule=__doc__.split("Rule", 1)[1],
    variants=[{"memory": "private"}, {"memory": "coherent"}],
    timeout=300.0,
)


def _kinds(judged, lo: int, hi: int) -> set[str]:
    return set(judged.kinds(lo, hi))


def judge(obs: dict, facts: TargetFacts) -> Verdict:
    c = Checks()
    n, kind, local = obs["npages"], obs["memory"], obs["local"]
    half = n // 2
    cal = calibrated(c, obs)
    on_device = ON_DEVICE[kind]
    if gap := calibration_gap(cal, kind, local):
        return c.error(gap)
    views = {v["label"]: v for v in obs["views"]}
    judged = {label: compare(c, v, cal, owners=local, exclusive_owner=local) for label, v in views.items()}

    before = judged["before"]
    c.control("pages were system pages before MIGRATE_TO_DEV", _kinds(before, 0, n) == {"system"},
              str(before.kinds()))
    mig = obs["migrate"]
    c.check("MIGRATE_TO_DEV moves every page", ok_ioctl(mig, n), f"{ioctl_text(mig)} of {n}")
    c.check("mirror holds the data after MIGRATE_TO_DEV", obs["mirror_matches"], str(obs["mirror_matches"]))
    after = judged["after MIGRATE_TO_DEV"]
    owned = [p.kind == on_device and (kind == "private" or p.owner == local) for p in after.pages]
    c.check("every page on the device after MIGRATE_TO_DEV", all(owned), f"{sum(owned)}/{n} {on_device}, "
            f"CPU {after.kinds()}", f"{n} {on_device} of dmirror{local}")
    if kind == "private":
        writable = [p.writable for p in after.pages if p.kind == on_device]
        c.check("device-private entries are of the write type", all(writable), f"{sum(map(bool, writable))}/{n}")

    rd = obs["device_read"]
    read = judged["after a READ by the owning device"]
    c.check("READ by the owning device returns the data", ok_ioctl(rd, n) and obs["device_read_matches"],
            f"{ioctl_text(rd)}, data {obs['device_read_matches']}")
    c.check("READ by the owning device moves no page", _kinds(read, 0, n) == {on_device},
            f"CPU {read.kinds()}, {obs['device_read_cpu_faults']} CPU faults")

    r = judged["after a CPU read of the first half"]
    w = judged["after a CPU write of the second half"]
    noise = obs["control_write_faults"]
    if kind == "private":
        c.check("CPU read brings the touched pages back to system memory", _kinds(r, 0, half) == {"system"},
                f"first half {r.kinds()}; {obs['cpu_read_faults']} faults for {half} reads")
        c.check("untouched pages stay on the device", _kinds(r, half, n) == {on_device},
                f"second half {r.kinds(half, n)}")
        c.check("CPU write brings the touched pages back to system memory", _kinds(w, half, n) == {"system"},
                f"{w.kinds()}; {obs['cpu_write_faults']} faults for {n - half} writes")
        c.check("a fault for the pages brought back", 2 * (obs["cpu_read_faults"] - noise) >= half
                and 2 * (obs["cpu_write_faults"] - noise) >= n - half,
                f"read {obs['cpu_read_faults']}/{half}, write {obs['cpu_write_faults']}/{n - half} "
                f"(noise {noise})", "beyond the noise, at least half as many faults as pages")
        c.control("the same write loop on ordinary pages faults less than once per page", noise < (n - half) / 2,
                  f"{noise} faults for {n - half} writes")
    else:
        c.check("CPU access leaves coherent pages on the device", _kinds(w, 0, n) == {on_device},
                f"after the read {r.kinds()}, after the write {w.kinds()}")
    mix = obs["migrate_mix"]
    mx = judged["after MIGRATE_TO_DEV of the mix"]
    c.check("MIGRATE_TO_DEV of a mix of system and device pages", mix.get("ret") == 0
            and _kinds(mx, 0, n) == {on_device} and obs["mirror_matches_mix"],
            f"{ioctl_text(mix)}, CPU {mx.kinds()}, mirror holds the data {obs['mirror_matches_mix']}")
    c.check("data intact after CPU access", obs["data_after_cpu"], str(obs["data_after_cpu"]))

    again, sys_ = obs["migrate_again"], obs["migrate_to_sys"]
    s = judged["after MIGRATE_TO_SYS"]
    c.check("MIGRATE_TO_SYS brings every page back", ok_ioctl(again, n) and sys_.get("ret") == 0
            and _kinds(s, 0, n) == {"system"}, f"MIGRATE_TO_DEV {ioctl_text(again)}, MIGRATE_TO_SYS "
            f"{ioctl_text(sys_)}, CPU {s.kinds()}")
    c.check("data intact after MIGRATE_TO_SYS", obs["data_after_sys"], str(obs["data_after_sys"]))
    third, rel = obs["migrate_third"], obs["release"]
    if rel.get("unsupported"):
        c.note("RELEASE", rel["unsupported"])
    else:
        rl = judged["after RELEASE"]
        c.check("RELEASE evicts every page to system memory", ok_ioctl(third, n) and rel.get("ret") == 0
                and _kinds(rl, 0, n) == {"system"}, f"MIGRATE_TO_DEV {ioctl_text(third)}, RELEASE "
                f"{ioctl_text(rel)}, CPU {rl.kinds()}")
        c.check("data intact after RELEASE", obs["data_after_release"], str(obs["data_after_release"]))

    q = obs["mixed_quarter"]
    m = judged["mixed range: exclusive, migrated, ordinary"]
    ex, mg = obs["mixed_exclusive"], obs["mixed_migrate"]
    c.check("mixed range: each quarter is its kind", ok_ioctl(ex, q) and ok_ioctl(mg, q)
            and _kinds(m, 0, q) == {"device-exclusive"} and _kinds(m, q, 2 * q) == {on_device}
            and _kinds(m, 2 * q, n) == {"system"},
            f"EXCLUSIVE {ioctl_text(ex)}, MIGRATE_TO_DEV {ioctl_text(mg)}; quarters "
            f"{[sorted(_kinds(m, i * q, min(n, (i + 1) * q))) for i in range(4)]}")
    mr = judged["mixed range after a CPU read of every page"]
    back = {"system"} if kind == "private" else None
    restored = _kinds(mr, 0, q) == {"system"} and (back is None or _kinds(mr, q, 2 * q) == back)
    c.check("mixed range: a CPU read restores every page", restored and obs["mixed_data"],
            f"CPU {mr.kinds()}, data {obs['mixed_data']}")
    return c.verdict(f"{n} pages to dmirror{local} ({kind}) and back 4 ways; both views agree at "
                     f"{len(judged)} steps")

