"""exclusive_mapcount: a device-exclusive page must still count as mapped.

Rule (PASS needs all): EXCLUSIVE succeeds; while exclusive, /proc/kpagecount of each page is 1 and
KPF_MMAP is set (the page is still mapped, by the exclusive entry); after the CPU takes the pages back
kpagecount is 1 again; data intact. Before the series the conversion dropped the mapcount to 0, which
is the root cause of the broken swap-out, migration, split and hwpoison handling: a FAIL there.
Control: a tmpfs page that stays in the page cache after munmap reads kpagecount 0 and KPF_MMAP clear
(and 1 / set while it was mapped), so both readers can read the other way in this guest.
"""

from __future__ import annotations

from hmmbench.cases import CaseSpec
from hmmbench.cases.facts import TargetFacts
from hmmbench.cases.rules import ioctl_text, no_control, ok_ioctl
from hmmbench.cases.verdict import Checks, Verdict
from hmmbench.guest.pagemap import KPF

SPEC = CaseSpec(
    name="exclusive_mapcount",
    order=130,
    description="kpagecount and KPF_MMAP of exclusive pages (0 before the series: FAIL)",
    rule=__doc__.split("Rule", 1)[1],
)


def _mmap_bits(flags: list[int | None]) -> list[bool]:
    return [bool(f is not None and f >> KPF["MMAP"] & 1) for f in flags]


def judge(obs: dict, facts: TargetFacts) -> Verdict:
    n = obs["npages"]
    c = Checks()
    c.check("EXCLUSIVE succeeds", ok_ioctl(obs["exclusive"], n), ioctl_text(obs["exclusive"]))
    before = obs["before"]["kpagecount"]
    during = obs["while_exclusive"]["kpagecount"]
    mmap = _mmap_bits(obs["while_exclusive"]["kpageflags"])
    c.note("kpagecount before", str(before))
    c.check("kpagecount counts the exclusive entry as a mapping", during == [1] * n, f"{during}", str([1] * n))
    c.check("KPF_MMAP set while exclusive", all(mmap), f"{sum(mmap)}/{n} pages", f"{n}/{n}")
    c.check("kpagecount after the CPU takes them back", obs["after_restore"]["kpagecount"] == [1] * n,
            f"{obs['after_restore']['kpagecount']}", str([1] * n))
    ctl = obs["unmapped_control"]
    mapped_count, gone_count = ctl["mapped"]["kpagecount"][0], ctl["unmapped"]["kpagecount"][0]
    mapped_mmap = _mmap_bits(ctl["mapped"]["kpageflags"])[0]
    gone_mmap = _mmap_bits(ctl["unmapped"]["kpageflags"])[0]
    c.control("a page cache page mapped by nobody reads unmapped in kpagecount and KPF_MMAP",
              mapped_count == 1 and mapped_mmap and gone_count == 0 and not gone_mmap,
              f"mapped: kpagecount {mapped_count}, KPF_MMAP {mapped_mmap}; after munmap: kpagecount {gone_count}, "
              f"KPF_MMAP {gone_mmap}")
    c.check("data intact", obs["data_intact"], str(obs["data_intact"]))
    no_control(c, "EXCLUSIVE succeeds, data intact", "an ioctl's return value and a byte comparison")
    return c.verdict(f"mapcount kept while exclusive: kpagecount {during}")
