"""exclusive_concurrent_cpu: many threads fault one exclusive page at once, many rounds.

Rule (PASS needs all): every round's EXCLUSIVE succeeds and leaves a non-present entry that the
threads' reads fault back to a present PTE (each side is the other's control); every thread reads the
right bytes in every round (control: its output buffer, zeroed before the round, did not already
match); the data is intact at the end; no kernel message (a WARNING or bad-page report during the case
is a FAIL through the kernel-trouble check). With fewer than 2 CPUs the faults cannot be concurrent:
SKIP. That the threads' faults overlap in time cannot be observed from user space; the barrier and
the GIL-free memcpy make it likely, not certain (said in a note).
"""

from __future__ import annotations

from hmmbench.cases import CaseSpec
from hmmbench.cases.facts import TargetFacts
from hmmbench.cases.rules import no_control
from hmmbench.cases.verdict import Checks, Status, Verdict

SPEC = CaseSpec(
    name="exclusive_concurrent_cpu",
    order=120,
    description="8 threads fault the same exclusive page at once, 100 rounds",
    rule=__doc__.split("Rule", 1)[1],
    timeout=600.0,
)


def judge(obs: dict, facts: TargetFacts) -> Verdict:
    if (obs.get("cpus") or 1) < 2:
        return Verdict(Status.SKIP, f"guest has {obs.get('cpus')} CPU: concurrent faults need SMP")
    c = Checks()
    rounds = obs["rounds"]
    done = rounds - obs["ioctl_failure_count"]
    c.check("EXCLUSIVE succeeds every round", obs["ioctl_failure_count"] == 0,
            f"{obs['ioctl_failure_count']} failures in {rounds} rounds {obs['ioctl_failures'][:2]}")
    c.check("the page is exclusive when the threads start", obs["rounds_exclusive_before"] == done,
            f"{obs['rounds_exclusive_before']}/{done} rounds non-present")
    c.check("the threads' reads restore the page", obs["rounds_present_after"] == done,
            f"{obs['rounds_present_after']}/{done} rounds present after")
    c.control("the same pagemap read shows both states (non-present before, present after)",
              obs["rounds_exclusive_before"] > 0 and obs["rounds_present_after"] > 0,
              f"{obs['rounds_exclusive_before']} non-present, {obs['rounds_present_after']} present")
    c.check("every concurrent read saw the right data", obs["bad_reads"] == 0,
            f"{obs['bad_reads']} bad of {done * obs['threads']}")
    c.control("no zeroed output buffer matched before its read", obs["stale_matches"] == 0,
              f"{obs['stale_matches']} stale matches")
    c.check("data intact", obs["data_intact"], str(obs["data_intact"]))
    no_control(c, "EXCLUSIVE succeeds every round, data intact; that the faults overlap in time",
               "ioctl return values and a byte comparison; fault overlap is not visible from user space")
    return c.verdict(f"{obs['threads']} threads x {rounds} rounds on {obs['cpus']} CPUs, no trouble")
