"""exclusive_fork: fork() while pages are device-exclusive.

Rule (PASS needs every check to hold and every control to read the other way): EXCLUSIVE succeeds and
every PTE is device-exclusive when fork() runs; after fork the child sees the original data although
the parent has changed its copy (control: a MAP_SHARED page the parent wrote at the same moment *is*
seen changed by the child); the child sees its own change; the parent still sees its own data after
the child changed its copy (control: the shared page the child wrote is seen changed by the parent);
the child exits normally with status 0.
"""

from __future__ import annotations

from hmmbench.cases import CaseSpec
from hmmbench.cases.facts import TargetFacts
from hmmbench.cases.rules import decoded, ioctl_text, no_control, ok_ioctl
from hmmbench.cases.verdict import Checks, Verdict

SPEC = CaseSpec(
    name="exclusive_fork",
    order=30,
    description="fork with exclusive pages: copies stay separate both ways, child exits 0",
    rule=__doc__.split("Rule", 1)[1],
)


def judge(obs: dict, facts: TargetFacts) -> Verdict:
    n = obs["npages"]
    c = Checks()
    c.check("EXCLUSIVE succeeds", ok_ioctl(obs["exclusive"], n), ioctl_text(obs["exclusive"]))
    excl = [not d["present"] and d["swap"] for d in decoded(obs["while_exclusive"])]
    c.check("every PTE device-exclusive at fork", all(excl), f"{sum(excl)}/{n}")
    child = obs.get("child_report") or {}
    c.check("child sees the original (parent's change did not leak)", child.get("saw_original") is True, str(child))
    c.control("child sees the parent's write to a shared page", child.get("saw_shared_parent_write") is True,
              str(child.get("saw_shared_parent_write")))
    c.check("child sees its own change", child.get("saw_own") is True, str(child))
    c.check("parent keeps its own data (child's change did not leak)", obs["parent_sees_own"],
            str(obs["parent_sees_own"]))
    c.control("parent sees the child's write to a shared page", obs["parent_saw_shared_child_write"] is True,
              str(obs["parent_saw_shared_child_write"]))
    ex = obs["child_exit"]
    c.check("child exits normally", ex["exited"] and ex["code"] == 0, str(ex), "exited with status 0")
    present = sum(d["present"] for d in decoded(obs["parent_after_fork"]))
    c.note("parent PTEs present right after fork", f"{present}/{n}")
    no_control(c, "EXCLUSIVE succeeds, every PTE exclusive at fork, child sees its own change, child exits normally",
               "return values, a pagemap read whose other way (present) the same case shows after fork, and "
               "a byte comparison with what the child itself wrote")
    return c.verdict("copies independent both ways; child exited 0")
