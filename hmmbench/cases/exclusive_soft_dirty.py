"""exclusive_soft_dirty: soft-dirty and uffd-wp tracking across exclusive -> restore.

Rule (PASS needs all): (1) a soft-dirty page stays soft-dirty while exclusive and after the CPU read
restores it; (2) after clear_refs while exclusive, a CPU read and then a CPU write, the page is
soft-dirty again (the write was tracked); (3) with uffd-wp: the write-protect bit (pagemap bit 57)
is set on the exclusive entries by UFFDIO_WRITEPROTECT, survives mprotect(PROT_READ) + mprotect(RW),
and is still set after the CPU read restores the PTEs; data intact throughout. If userfaultfd is
unavailable, part (3) is reported as skipped and (1)-(2) decide.
"""

from __future__ import annotations

from hmmbench.cases import CaseSpec, register
from hmmbench.cases._rules import decoded, ioctl_text, ok_ioctl
from hmmbench.verdict import Checks, Verdict

SPEC = register(CaseSpec(
    name="exclusive_soft_dirty",
    description="soft-dirty (bit 55) and uffd-wp (bit 57) survive exclusive -> restore",
    rule=__doc__.split("Rule", 1)[1],
))


def _bits(entries: list[int], key: str) -> list[bool]:
    return [d[key] for d in decoded(entries)]


def _show(bits: list[bool]) -> str:
    return f"{sum(bits)}/{len(bits)}"


def judge(obs: dict, target: dict) -> Verdict:
    c = Checks()
    c.check("EXCLUSIVE succeeds", ok_ioctl(obs["f1_exclusive"]) and ok_ioctl(obs["f2_exclusive"]),
            f"{ioctl_text(obs['f1_exclusive'])}; {ioctl_text(obs['f2_exclusive'])}")
    sd_w = _bits(obs["f1_after_write"], "soft_dirty")
    c.check("written pages are soft-dirty", all(sd_w), _show(sd_w))
    sd_x = _bits(obs["f1_while_exclusive"], "soft_dirty")
    c.check("soft-dirty kept on the exclusive entries", all(sd_x), _show(sd_x))
    sd_r = _bits(obs["f1_after_read"], "soft_dirty")
    c.check("soft-dirty kept after restore", all(sd_r), _show(sd_r))
    c.check("flow 1 data intact", obs["f1_data_intact"], str(obs["f1_data_intact"]))
    cleared = _bits(obs["f2_after_clear"], "soft_dirty")
    c.check("clear_refs clears soft-dirty on exclusive entries", not any(cleared), _show(cleared))
    tracked = _bits(obs["f2_after_write"], "soft_dirty")
    c.check("a write after restore is tracked (soft-dirty set)", all(tracked), _show(tracked))
    c.check("flow 2 data intact", obs["f2_data_intact"], str(obs["f2_data_intact"]))
    u = obs["uffd"]
    if "skipped" in u:
        c.note("uffd-wp part skipped", u["skipped"])
        return c.verdict("soft-dirty kept and tracked; uffd-wp not tested")
    c.check("uffd: EXCLUSIVE + UFFDIO_WRITEPROTECT succeed", ok_ioctl(u["exclusive"]) and u["writeprotect"][0] == 0,
            f"{ioctl_text(u['exclusive'])}, writeprotect {u['writeprotect']}")
    for key, label in (("after_wp", "on the exclusive entries"), ("after_mprotect", "after mprotect RO->RW"),
                       ("after_read", "after restore")):
        wp = _bits(u[key], "uffd_wp")
        c.check(f"uffd-wp bit {label}", all(wp), _show(wp))
    c.check("uffd flow data intact", u["data_intact"], str(u["data_intact"]))
    return c.verdict("soft-dirty kept and tracked; uffd-wp kept through mprotect and restore")
