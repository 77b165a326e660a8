"""exclusive_bad_args: invalid arguments and unusable memory are refused without side effects.

Rule (PASS needs all): every attempt (unaligned address, zero pages, overflowing range, unmapped
range, PROT_NONE, read-only mapping) returns an error; the sentinel RW range and the read-only range
keep their page state; the sentinel's data is intact; no kernel message. The errno of each attempt is
recorded (the series changed several from EBUSY to the GUP error). Control: at the end a valid
EXCLUSIVE of the sentinel, with the same device and mirror, succeeds and changes its page state, so
"refused" and "unchanged" could have read the other way.
"""

from __future__ import annotations

from hmmbench.cases import CaseSpec
from hmmbench.cases.facts import TargetFacts
from hmmbench.cases.rules import decoded, errname, ioctl_text, no_control, ok_ioctl
from hmmbench.cases.verdict import Checks, Verdict

SPEC = CaseSpec(
    name="exclusive_bad_args",
    order=70,
    description="unaligned, zero, overflowing, unmapped, PROT_NONE, read-only: an error each, no change",
    rule=__doc__.split("Rule", 1)[1],
)


def judge(obs: dict, facts: TargetFacts) -> Verdict:
    c = Checks()
    errnos = {}
    for name, a in obs["attempts"].items():
        cmd = a["cmd"]
        errnos[name] = errname(cmd.get("errno"))
        c.check(f"{name}: refused", cmd.get("ret") == -1 and bool(cmd.get("errno")), ioctl_text(cmd),
                "ret=-1, an errno")
        if a.get("target_before") is not None:
            c.check(f"{name}: target unchanged", a["target_after"] == a["target_before"],
                    "same pagemap" if a["target_after"] == a["target_before"] else "pagemap changed")
    c.check("sentinel RW range unchanged", obs["sentinel_after"] == obs["sentinel_before"],
            "same pagemap" if obs["sentinel_after"] == obs["sentinel_before"] else "pagemap changed")
    c.check("sentinel data intact", obs["sentinel_intact"], str(obs["sentinel_intact"]))
    valid, after = obs["valid"], decoded(obs["sentinel_after_valid"])
    changed = ok_ioctl(valid, len(after)) and not any(d["present"] for d in after)
    c.control("a valid EXCLUSIVE of the sentinel succeeds and changes its page state", changed,
              f"{ioctl_text(valid)}, {sum(not d['present'] for d in after)}/{len(after)} non-present")
    no_control(c, "sentinel data intact", "a byte comparison with the pattern written to it")
    return c.verdict("errnos: " + ", ".join(f"{k}={v}" for k, v in errnos.items()))
