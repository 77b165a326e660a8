"""exclusive_bad_args: invalid arguments and unusable memory are refused without side effects.

Rule (PASS needs all): every attempt (unaligned address, zero pages, overflowing range, unmapped
range, PROT_NONE, read-only mapping) returns an error; the sentinel RW range and the read-only range
keep their page state; the sentinel's data is intact; no kernel message. The errno of each attempt is
recorded (the series changed several from EBUSY to the GUP error).
"""

from __future__ import annotations

from hmmbench.cases import CaseSpec, register
from hmmbench.cases._rules import errname, ioctl_text
from hmmbench.verdict import Checks, Verdict

SPEC = register(CaseSpec(
    name="exclusive_bad_args",
    description="unaligned, zero, overflowing, unmapped, PROT_NONE, read-only: an error each, no change",
    rule=__doc__.split("Rule", 1)[1],
))


def judge(obs: dict, target: dict) -> Verdict:
    c = Checks()
    errnos = {}
    for name, a in obs["attempts"].items():
        cmd = a["cmd"]
        errnos[name] = errname(cmd.get("errno"))
        c.check(f"{name}: refused", cmd.get("ret") == -1 and bool(cmd.get("errno")), ioctl_text(cmd))
        if a.get("target_before") is not None:
            c.check(f"{name}: target unchanged", a["target_after"] == a["target_before"],
                    "same pagemap" if a["target_after"] == a["target_before"] else "pagemap changed")
    c.check("sentinel RW range unchanged", obs["sentinel_after"] == obs["sentinel_before"],
            "same pagemap" if obs["sentinel_after"] == obs["sentinel_before"] else "pagemap changed")
    c.check("sentinel data intact", obs["sentinel_intact"], str(obs["sentinel_intact"]))
    return c.verdict("errnos: " + ", ".join(f"{k}={v}" for k, v in errnos.items()))
