"""exclusive_shared_and_file: memory that is not private anonymous cannot be made exclusive.

Rule (PASS needs all): for shared anonymous, shared tmpfs and shared ext4 mappings EXCLUSIVE fails
(before the series with EBUSY, after it with EOPNOTSUPP: the expectation is the errno, the check's key
is the same on both), no PTE becomes a swap entry, every PFN stays the same and the data is intact.
A private ext4 mapping is the control: GUP's write fault copies each page-cache page into an anonymous
page (COW), which may be made exclusive: EXCLUSIVE succeeds, the entries are anonymous
device-exclusive ones on new frames, and the data is intact. That success is the negative control of
the refusals and of "page state unchanged": the same call, device and mirror do change a mapping's
page state in this run.
"""

from __future__ import annotations

from hmmbench.cases import CaseSpec
from hmmbench.cases.facts import TargetFacts
from hmmbench.cases.rules import (
    all_present_same,
    decoded,
    errname,
    ioctl_text,
    no_control,
    ok_ioctl,
    pfns,
    pfns_visible,
)
from hmmbench.cases.verdict import Checks, Verdict
from hmmbench.kernel import expected

SPEC = CaseSpec(
    name="exclusive_shared_and_file",
    order=50,
    description="shared anon, tmpfs, ext4 (shared and private page cache): refused, nothing changes",
    rule=__doc__.split("Rule", 1)[1],
)


def judge(obs: dict, facts: TargetFacts) -> Verdict:
    release = facts.release
    want = "EOPNOTSUPP" if expected.has_series(release) else "EBUSY"
    why = "patch 3 rejects non-anonymous memory" if expected.has_series(release) else "before the series"
    c = Checks()
    seen = {}
    for name, m in obs["mappings"].items():
        cmd = m["exclusive"]
        if name == "ext4_private_pagecache":
            after = decoded(m["after"])
            cowed = all(not d["present"] and d["swap"] and not d["file"] for d in after)
            moved = pfns(m["after"]) != pfns(m["before"])
            ok = ok_ioctl(cmd, obs["npages"]) and cowed and moved
            c.check(f"{name}: COW copies become exclusive", ok,
                    f"{ioctl_text(cmd)}, anonymous exclusive entries {cowed}, new frames {moved}")
            c.control("EXCLUSIVE changes the page state of private memory in the same run", ok,
                      f"{ioctl_text(cmd)}, {sum(not d['present'] for d in after)}/{len(after)} non-present")
            c.check(f"{name}: data intact", m["data_intact"], str(m["data_intact"]))
            continue
        seen[name] = errname(cmd.get("errno")) if cmd.get("ret") == -1 else f"ret={cmd.get('ret')}"
        c.check(f"{name}: refused", cmd.get("ret") == -1 and seen[name] == want, ioctl_text(cmd),
                f"ret=-1 errno={want} ({why})")
        same = all_present_same(m["after"], m["before"])
        c.check(f"{name}: page state unchanged", same, "no swap entries, same PFNs" if same else "state changed")
        c.check(f"{name}: data intact", m["data_intact"], str(m["data_intact"]))
    pfns_visible(c, [e for m in obs["mappings"].values() for e in m["before"]])
    no_control(c, "data intact", "a byte comparison of each mapping with the pattern written to it")
    return c.verdict("refused: " + ", ".join(f"{k} {v}" for k, v in seen.items()) + "; private file COW ok")
