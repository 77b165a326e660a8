"""exclusive_shared_and_file: memory that is not private anonymous cannot be made exclusive.

Rule (PASS needs all, for shared anonymous, shared tmpfs, shared ext4 and a private ext4 mapping of
page-cache pages): EXCLUSIVE fails (before the series with EBUSY, after it with EOPNOTSUPP); no PTE
becomes a swap entry and every PFN stays the same; the data is intact.
"""

from __future__ import annotations

from hmmbench import kernelfacts
from hmmbench.cases import CaseSpec, register
from hmmbench.cases._rules import all_present_same, errname, ioctl_text
from hmmbench.verdict import Checks, Verdict

SPEC = register(CaseSpec(
    name="exclusive_shared_and_file",
    description="shared anon, tmpfs, ext4 (shared and private page cache): refused, nothing changes",
    rule=__doc__.split("Rule", 1)[1],
))


def judge(obs: dict, target: dict) -> Verdict:
    release = target.get("release", "")
    expected = "EOPNOTSUPP" if kernelfacts.has_series(release) else "EBUSY"
    c = Checks()
    seen = {}
    for name, m in obs["mappings"].items():
        cmd = m["exclusive"]
        seen[name] = errname(cmd.get("errno")) if cmd.get("ret") == -1 else f"ret={cmd.get('ret')}"
        c.check(f"{name}: refused with {expected}", cmd.get("ret") == -1 and seen[name] == expected, ioctl_text(cmd))
        c.check(f"{name}: page state unchanged", all_present_same(m["after"], m["before"]),
                "no swap entries, same PFNs" if all_present_same(m["after"], m["before"]) else "state changed")
        c.check(f"{name}: data intact", m["data_intact"], str(m["data_intact"]))
    return c.verdict("refused: " + ", ".join(f"{k} {v}" for k, v in seen.items()))
