"""exclusive_fork: fork() while pages are device-exclusive.

Rule (PASS needs all): EXCLUSIVE succeeds; after fork the child sees the original data although the
parent has changed its copy; the child sees its own change; the parent still sees its own data after
the child changed its copy; the child exits normally with status 0.
"""

from __future__ import annotations

from hmmbench.cases import CaseSpec, register
from hmmbench.cases._rules import decoded, ioctl_text, ok_ioctl
from hmmbench.verdict import Checks, Verdict

SPEC = register(CaseSpec(
    name="exclusive_fork",
    description="fork with exclusive pages: copies stay separate both ways, child exits 0",
    rule=__doc__.split("Rule", 1)[1],
))


def judge(obs: dict, target: dict) -> Verdict:
    n = obs["npages"]
    c = Checks()
    c.check("EXCLUSIVE succeeds", ok_ioctl(obs["exclusive"], n), ioctl_text(obs["exclusive"]))
    child = obs.get("child_report") or {}
    c.check("child sees the original (parent's change did not leak)", child.get("saw_original") is True, str(child))
    c.check("child sees its own change", child.get("saw_own") is True, str(child))
    c.check("parent keeps its own data (child's change did not leak)", obs["parent_sees_own"],
            str(obs["parent_sees_own"]))
    ex = obs["child_exit"]
    c.check("child exits with status 0", ex["exited"] and ex["code"] == 0, str(ex))
    present = sum(d["present"] for d in decoded(obs["parent_after_fork"]))
    c.note("parent PTEs present right after fork", f"{present}/{n}")
    return c.verdict("copies independent both ways; child exited 0")
