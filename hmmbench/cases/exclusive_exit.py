"""exclusive_exit: tearing down device-exclusive entries (exit and munmap) is silent and complete.

Rule (every check must hold for PASS):
  1. EXCLUSIVE succeeds on the anonymous pages and on the CoW'd private file pages, and every PTE of
     both is then a device-exclusive entry on the PFN it had (so the teardown below has exclusive
     entries to zap; this is the precondition and its own control: the same pages read present before).
  2. The anonymous pages are still exclusive when the case returns: the process exits with them.
  3. munmap() of a CoW'd private file range while exclusive returns 0, and pagemap then shows no entry
     at all for it (neither present nor swap: nothing left behind).
  4. No kernel message during the case, its exit included (the agent reads the kernel log after the case
     process has been reaped): a warning at munmap or exit of device-exclusive pages is this case's FAIL
     (a 2026 stable fix was for such a spurious warning with CoW'd private file pages).
"""

from __future__ import annotations

from hmmbench.cases import CaseSpec
from hmmbench.cases.facts import TargetFacts
from hmmbench.cases.rules import count, decoded, exclusive_types, ioctl_text, is_exclusive, ok_ioctl, pfns
from hmmbench.cases.verdict import Checks, Verdict

SPEC = CaseSpec(
    name="exclusive_exit",
    order=110,
    description="exit and munmap with pages device-exclusive: no message, nothing left",
    rule=__doc__.split("Rule", 1)[1],
)


def _exclusive_checks(c: Checks, what: str, part: dict, n: int, types: set[int]) -> None:
    before = decoded(part["before"]["pagemap"])
    c.control(f"{what}: pages present before EXCLUSIVE", all(d["present"] for d in before),
              f"{count([d['present'] for d in before])} present")
    c.check(f"{what}: EXCLUSIVE succeeds", ok_ioctl(part["exclusive"], n), ioctl_text(part["exclusive"]),
            f"ret=0 cpages={n}")
    during = decoded(part["while_exclusive"]["pagemap"])
    same = pfns(part["while_exclusive"]["pagemap"]) == pfns(part["before"]["pagemap"])
    ok = [is_exclusive(d, types) for d in during]
    c.check(f"{what}: every PTE device-exclusive on its PFN", all(ok) and same,
            f"{count(ok)} exclusive, PFNs {'kept' if same else 'changed'}", f"swap type in {sorted(types)}")


def judge(obs: dict, facts: TargetFacts) -> Verdict:
    n = obs["npages"]
    types = exclusive_types(facts.release)
    c = Checks()
    _exclusive_checks(c, "anonymous", obs["anon"], n, types)
    _exclusive_checks(c, "private file CoW", obs["file_cow"], n, types)
    at_exit = [is_exclusive(d, types) for d in decoded(obs["at_exit"]["anon"])]
    c.check("anonymous pages still exclusive when the process exits", all(at_exit), f"{count(at_exit)} exclusive")
    m = obs["munmapped"]
    _exclusive_checks(c, "unmapped range", m, n, types)
    c.check("munmap of the exclusive range succeeds", m["munmap"][0] == 0, f"munmap returned {m['munmap']}", "0")
    left = [d["present"] or d["swap"] for d in decoded(m["after_munmap"])]
    c.check("nothing left in the page table after munmap", not any(left), f"{count(left)} entries left", "0")
    c.note("kernel messages of the teardown", "judged with every case's messages: the window closes after exit")
    return c.verdict(f"{n}+{n} exclusive pages torn down at exit, {n} at munmap: silent and complete")
