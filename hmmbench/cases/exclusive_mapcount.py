"""exclusive_mapcount: a device-exclusive page must still count as mapped.

Rule (PASS needs all): EXCLUSIVE succeeds; while exclusive, /proc/kpagecount of each page is 1 and
KPF_MMAP is set (the page is still mapped, by the exclusive entry); after the CPU takes the pages back
kpagecount is 1 again; data intact. Before the series the conversion dropped the mapcount to 0, which
is the root cause of the broken swap-out, migration, split and hwpoison handling: a FAIL there.
"""

from __future__ import annotations

from hmmbench.cases import CaseSpec, register
from hmmbench.cases._rules import ioctl_text, ok_ioctl
from hmmbench.guest.pagemap import KPF
from hmmbench.verdict import Checks, Verdict

SPEC = register(CaseSpec(
    name="exclusive_mapcount",
    description="kpagecount and KPF_MMAP of exclusive pages (0 before the series: FAIL)",
    rule=__doc__.split("Rule", 1)[1],
))


def _mmap_bits(flags: list[int | None]) -> list[bool]:
    return [bool(f is not None and f >> KPF["MMAP"] & 1) for f in flags]


def judge(obs: dict, target: dict) -> Verdict:
    n = obs["npages"]
    c = Checks()
    c.check("EXCLUSIVE succeeds", ok_ioctl(obs["exclusive"], n), ioctl_text(obs["exclusive"]))
    before = obs["before"]["kpagecount"]
    during = obs["while_exclusive"]["kpagecount"]
    mmap = _mmap_bits(obs["while_exclusive"]["kpageflags"])
    c.note("kpagecount before", str(before))
    c.check("kpagecount is 1 while exclusive", during == [1] * n, f"{during}")
    c.check("KPF_MMAP set while exclusive", all(mmap), f"{sum(mmap)}/{n} pages")
    c.check("kpagecount is 1 after the CPU takes them back", obs["after_restore"]["kpagecount"] == [1] * n,
            f"{obs['after_restore']['kpagecount']}")
    c.check("data intact", obs["data_intact"], str(obs["data_intact"]))
    return c.verdict(f"mapcount kept while exclusive: kpagecount {during}")
