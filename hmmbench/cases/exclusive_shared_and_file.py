"""exclusive_shared_and_file: memory that is not private anonymous cannot be made exclusive.

Rule (PASS needs all): for shared anonymous, shared tmpfs and shared ext4 mappings EXCLUSIVE fails
(before the series with EBUSY, after it with EOPNOTSUPP), no PTE becomes a swap entry, every PFN stays
the same and the data is intact. A private ext4 mapping is the control: GUP's write fault copies each
page-cache page into an anonymous page (COW), which may be made exclusive: EXCLUSIVE succeeds, the
entries are anonymous device-exclusive ones on new frames, and the data is intact.
"""

from __future__ import annotations

from hmmbench import kernelfacts
from hmmbench.cases import CaseSpec, register
from hmmbench.cases._rules import all_present_same, decoded, errname, ioctl_text, ok_ioctl, pfns
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
        if name == "ext4_private_pagecache":
            after = decoded(m["after"])
            cowed = all(not d["present"] and d["swap"] and not d["file"] for d in after)
            moved = pfns(m["after"]) != pfns(m["before"])
            c.check(f"{name}: COW copies become exclusive", ok_ioctl(cmd, obs["npages"]) and cowed and moved,
                    f"{ioctl_text(cmd)}, anonymous exclusive entries {cowed}, new frames {moved}")
            c.check(f"{name}: data intact", m["data_intact"], str(m["data_intact"]))
            continue
        seen[name] = errname(cmd.get("errno")) if cmd.get("ret") == -1 else f"ret={cmd.get('ret')}"
        c.check(f"{name}: refused with {expected}", cmd.get("ret") == -1 and seen[name] == expected, ioctl_text(cmd))
        c.check(f"{name}: page state unchanged", all_present_same(m["after"], m["before"]),
                "no swap entries, same PFNs" if all_present_same(m["after"], m["before"]) else "state changed")
        c.check(f"{name}: data intact", m["data_intact"], str(m["data_intact"]))
    seen.pop("ext4_private_pagecache", None)
    return c.verdict("refused: " + ", ".join(f"{k} {v}" for k, v in seen.items()) + "; private file COW ok")
