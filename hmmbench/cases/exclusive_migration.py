"""exclusive_migration: device-exclusive pages can be migrated (soft offline or memory offline).

Rule (PASS needs all): EXCLUSIVE succeeds; every migration write finishes (no timeout) and succeeds;
each page ends on a new PFN; the device lost access (CHECK_EXCLUSIVE returns 0); the data is intact.
Before the series migration of such pages fails (or, for memory offline, retries forever: bounded
here by a timeout and reported as such): a FAIL.
"""

from __future__ import annotations

from hmmbench.cases import CaseSpec, register
from hmmbench.cases._rules import ioctl_text, ok_ioctl, pfns
from hmmbench.verdict import Checks, Verdict

SPEC = register(CaseSpec(
    name="exclusive_migration",
    description="soft-offline (migrate) exclusive pages: migrated, data intact, device access revoked",
    rule=__doc__.split("Rule", 1)[1],
    timeout=400.0,
))


def _outcome(write: dict) -> str:
    if write.get("timeout"):
        return "timeout"
    return "ok" if write.get("ok") else str(write.get("error"))


def judge(obs: dict, target: dict) -> Verdict:
    n = obs["npages"]
    c = Checks()
    c.check("EXCLUSIVE succeeds", ok_ioctl(obs["exclusive"], n), ioctl_text(obs["exclusive"]))
    writes = obs["writes"]
    desc = "; ".join(f"{w.get('action', 'soft_offline')} {_outcome(w)} in {w.get('seconds')}s" for w in writes)
    c.check(f"{obs['method']} finishes", not obs["write_hung"], desc)
    c.check(f"{obs['method']} succeeds", bool(writes) and all(w.get("ok") for w in writes), desc)
    old, new = pfns(obs["before"]["pagemap"]), pfns(obs["after_cpu"]["pagemap"])
    moved = [a != b for a, b in zip(old, new, strict=True)]
    c.check("pages moved to new frames", all(moved), f"{sum(moved)}/{n} moved")
    c.check("device access revoked by the migration", obs["check_exclusive_after_migration"].get("ret") == 0,
            ioctl_text(obs["check_exclusive_after_migration"]))
    c.check("data intact", obs["data_intact"], str(obs["data_intact"]))
    return c.verdict(f"{obs['method']}: {sum(moved)}/{n} pages migrated, data intact")
