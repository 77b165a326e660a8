"""devmem_mixed_sizes: a 2 MiB THP and base pages on one device, in both orders, both must land.

A device takes large and small allocations alike: a driver's memory is not partitioned for good by the
first migration. test_hmm (7.2's lib/test_hmm.c dmirror_allocate_chunk) puts every 2 MiB-aligned block
of a new chunk on its folio list when the allocation that created the chunk was large, every page on
the base-page list when it was small, and never moves memory between the lists; an allocation of the
other size then asks for a new chunk. A device-private mirror gets one (request_free_mem_region); a
device-coherent mirror has exactly one chunk's worth of memory at spm_addr, so memremap_pages refuses
the second at the same address with "WARNING ... Conflicting mapping in same section" and the migration
falls short. This is why 9 of hmm-tests' coherent variants fail on 7.2.13 after its THP tests ran.

Rule (every check must hold, and every control read the other way, for PASS):
  1. RELEASE first returns 0 (the device starts without a chunk, whatever ran before).
  2. MIGRATE_TO_DEV of the 2 MiB region (THP-backed where the kernel formed one: AnonHugePages noted)
     and of 16 base pages, in the variant's order, each returns 0 with every page migrated and the
     mirror holding the data; after each, both ranges' pages are on the device as this kind of memory
     is mapped (device-private entries; present PTEs on the device's coherent PFNs), both views agreeing
     on every page.
  3. MIGRATE_TO_SYS of both brings every page back to system memory, data intact; RELEASE at the end 0.
  The kernel's messages during the case are judged by the harness (a WARNING is a FAIL with its title).
"""

from __future__ import annotations

from hmmbench.cases import CaseSpec
from hmmbench.cases.facts import TargetFacts
from hmmbench.cases.rules import ioctl_text, ok_ioctl
from hmmbench.cases.verdict import Checks, Verdict
from hmmbench.cases.views import ON_DEVICE, calibrated, calibration_gap, compare

SPEC = CaseSpec(
    name="devmem_mixed_sizes",
    order=380,
    description="a 2 MiB THP and base pages migrated to one device (private, coherent), both orders",
    rule=__doc__.split("Rule", 1)[1],
    variants=[{"memory": m, "order": o} for m in ("private", "coherent") for o in ("thp-first", "base-first")],
    timeout=300.0,
)


def judge(obs: dict, facts: TargetFacts) -> Verdict:
    c = Checks()
    kind, local = obs["memory"], obs["local"]
    on_device = ON_DEVICE[kind]
    cal = calibrated(c, obs)
    if gap := calibration_gap(cal, kind, local):
        return c.error(gap)
    sizes = {"thp": obs["huge_pages"], "base": obs["base_pages"]}
    c.note("THP backing the 2 MiB region", f"AnonHugePages {obs.get('anon_huge_kb')} kB")
    rel = obs["release_before"]
    c.check("RELEASE before", rel.get("ret") == 0, ioctl_text(rel))
    judged = {v["label"]: compare(c, v, cal, owners=local, pmd_blocks=[0] if v["npages"] == sizes["thp"] else None)
              for v in obs["views"]}
    order = ["thp", "base"] if obs["order"] == "thp-first" else ["base", "thp"]
    for i, name in enumerate(order):
        mig = obs[f"migrate_{name}"]
        c.check(f"MIGRATE_TO_DEV of the {name} range ({'first' if i == 0 else 'second'})",
                ok_ioctl(mig, sizes[name]) and obs[f"mirror_{name}"],
                f"{ioctl_text(mig)} of {sizes[name]}, mirror holds the data {obs[f'mirror_{name}']}")
        done = order[: i + 1]
        for other in done:
            j = judged[f"{other} range after MIGRATE_TO_DEV of {name}"]
            c.check(f"{other} range on the device after MIGRATE_TO_DEV of {name}", set(j.kinds()) == {on_device},
                    f"CPU {j.kinds()}")
    first = judged[f"{order[1]} range after MIGRATE_TO_DEV of {order[0]}"]
    c.control("the range migrated second was system memory before its migration", set(first.kinds()) == {"system"},
              f"CPU {first.kinds()}")
    for name in ("thp", "base"):
        back = judged[f"{name} range after MIGRATE_TO_SYS"]
        c.check(f"MIGRATE_TO_SYS of the {name} range", obs[f"to_sys_{name}"].get("ret") == 0
                and set(back.kinds()) == {"system"} and obs[f"data_{name}"],
                f"{ioctl_text(obs[f'to_sys_{name}'])}, CPU {back.kinds()}, data {obs[f'data_{name}']}")
    c.check("RELEASE after", obs["release_after"].get("ret") == 0, ioctl_text(obs["release_after"]))
    return c.verdict(f"{kind}, {obs['order']}: 2 MiB and {sizes['base']} base pages on dmirror{local} and back")
