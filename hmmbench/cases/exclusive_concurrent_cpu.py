"""exclusive_concurrent_cpu: many threads fault one exclusive page at once, many rounds.

Rule (PASS needs all): every round's EXCLUSIVE succeeds; every thread reads the right bytes in every
round; the data is intact at the end; no kernel message (a WARNING or bad-page report during the case
is a FAIL through the kernel-trouble check). With fewer than 2 CPUs the faults cannot be concurrent:
SKIP.
"""

from __future__ import annotations

from hmmbench.cases import CaseSpec, register
from hmmbench.verdict import Checks, Status, Verdict

SPEC = register(CaseSpec(
    name="exclusive_concurrent_cpu",
    description="8 threads fault the same exclusive page at once, 100 rounds",
    rule=__doc__.split("Rule", 1)[1],
    timeout=600.0,
))


def judge(obs: dict, target: dict) -> Verdict:
    if (obs.get("cpus") or 1) < 2:
        return Verdict(Status.SKIP, f"guest has {obs.get('cpus')} CPU: concurrent faults need SMP")
    c = Checks()
    c.check("EXCLUSIVE succeeds every round", obs["ioctl_failure_count"] == 0,
            f"{obs['ioctl_failure_count']} failures in {obs['rounds']} rounds {obs['ioctl_failures'][:2]}")
    c.check("every concurrent read saw the right data", obs["bad_reads"] == 0,
            f"{obs['bad_reads']} bad of {obs['rounds'] * obs['threads']}")
    c.check("data intact", obs["data_intact"], str(obs["data_intact"]))
    return c.verdict(f"{obs['threads']} threads x {obs['rounds']} rounds on {obs['cpus']} CPUs, no trouble")
