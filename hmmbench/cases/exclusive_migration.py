"""exclusive_migration: device-exclusive pages can be migrated (soft offline or memory offline).

Rule (PASS needs all): EXCLUSIVE succeeds; every migration write finishes (no timeout) and succeeds;
each page ends present on a new PFN (control: the PFNs read before are visible and distinct); the
device lost access (CHECK_EXCLUSIVE returns 0; control: it read EPERM right before the migration);
the data is intact. Before the series migration of such pages fails (or, for memory offline, retries
forever: bounded here by a timeout and reported as such): a FAIL.
"""

from __future__ import annotations

from hmmbench.cases import CaseSpec
from hmmbench.cases.facts import TargetFacts
from hmmbench.cases.rules import decoded, failed_with, ioctl_text, no_control, ok_ioctl, pfns, pfns_visible
from hmmbench.cases.verdict import Checks, Verdict

SPEC = CaseSpec(
    name="exclusive_migration",
    order=140,
    description="soft-offline (migrate) exclusive pages: migrated, data intact, device access revoked",
    rule=__doc__.split("Rule", 1)[1],
    timeout=400.0,
)


def _outcome(write: dict) -> str:
    if write.get("timeout"):
        return "timeout"
    return "ok" if write.get("ok") else str(write.get("error"))


def judge(obs: dict, facts: TargetFacts) -> Verdict:
    n = obs["npages"]
    c = Checks()
    c.check("EXCLUSIVE succeeds", ok_ioctl(obs["exclusive"], n), ioctl_text(obs["exclusive"]))
    writes = obs["writes"]
    desc = "; ".join(f"{w.get('action', 'soft_offline')} {_outcome(w)} in {w.get('seconds')}s" for w in writes)
    c.note("migration method", obs["method"])
    c.check("migration finishes", not obs["write_hung"], desc)
    c.check("migration succeeds", bool(writes) and all(w.get("ok") for w in writes), desc)
    old, new = pfns(obs["before"]["pagemap"]), pfns(obs["after_cpu"]["pagemap"])
    present = [d["present"] for d in decoded(obs["after_cpu"]["pagemap"])]
    moved = [p and a != b for a, b, p in zip(old, new, present, strict=True)]
    c.check("pages moved to new frames", all(moved), f"{sum(moved)}/{n} present on a new frame")
    pfns_visible(c, obs["before"]["pagemap"])
    after = obs["check_exclusive_after_migration"]
    c.check("device access revoked by the migration", after.get("ret") == 0, ioctl_text(after), "ret=0")
    held = obs["check_exclusive_before_migration"]
    c.control("CHECK_EXCLUSIVE said held right before the migration", failed_with(held, "EPERM"), ioctl_text(held))
    c.check("data intact", obs["data_intact"], str(obs["data_intact"]))
    no_control(c, "EXCLUSIVE succeeds, migration finishes and succeeds, data intact",
               "an ioctl's and a sysfs write's results, and a byte comparison with the pattern written")
    return c.verdict(f"{obs['method']}: {sum(moved)}/{n} pages migrated, data intact")
