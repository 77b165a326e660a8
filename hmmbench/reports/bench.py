"""The bench report: every figure with its samples, its target and whether the median meets it.

Figures are measured in one ``hmmbench bench`` run, side by side where there is a pair; a target is
checked on the median. Where a figure has a profile (where its time went), the profile is printed under
it, so a target not met says why. Serialised as ``hmmbench.bench/3`` only at the edge.
"""

from __future__ import annotations

import statistics
from dataclasses import asdict, dataclass, field


@dataclass
class Figure:
    """One measured figure: its samples, unit, and the target its median is held to (if any)."""

    name: str
    samples: list[float]
    unit: str
    target: float | None = None
    higher_is_better: bool = False
    note: str = ""
    profile: dict[str, float] = field(default_factory=dict)  # where the time went (medians, seconds)

    @property
    def median(self) -> float | None:
        return statistics.median(self.samples) if self.samples else None

    @property
    def met(self) -> bool | None:
        if self.target is None or self.median is None:
            return None
        return self.median >= self.target if self.higher_is_better else self.median <= self.target

    def target_text(self) -> str:
        if self.target is None:
            return ""
        sign = ">=" if self.higher_is_better else "<="
        verdict = {True: "met", False: "NOT met", None: ""}[self.met]
        return f"{sign} {self.target:g} {self.unit}: {verdict}"

    def to_dict(self) -> dict:
        d = asdict(self)
        d.update(median=self.median, met=self.met)
        return d


@dataclass
class BenchReport:
    kernel: str
    tree: str
    accel: str | None
    accel_why: str | None
    host_cpus: int | None
    guest_cpus: int | None
    objects: int | None  # make steps of the kernel's last full build (CC, AS, AR, LD)
    compiled_objects: int | None  # CC and AS among them
    figures: list[Figure] = field(default_factory=list)

    def figure(self, name: str) -> Figure | None:
        return next((f for f in self.figures if f.name == name), None)

    def to_dict(self) -> dict:
        d = {k: v for k, v in asdict(self).items() if k != "figures"}
        return {"schema": "hmmbench.bench/3", **d, "figures": [f.to_dict() for f in self.figures]}


def _num(x: float | None) -> str:
    if x is None:
        return f"{'-':>8}"
    return f"{x:>8.2f}" if abs(x) < 100 else f"{x:>8.1f}"


def table(r: BenchReport) -> str:
    objects = (f"{r.compiled_objects} compiled objects ({r.objects} make steps)" if r.objects
               else "object count unknown (no full build recorded)")
    lines = [f"hmmbench bench: {r.kernel} ({r.tree}), accelerator {r.accel} ({r.accel_why}), host CPUs "
             f"{r.host_cpus}, guest CPUs {r.guest_cpus}; kernel: {objects}", "",
             f"{'figure':<56} {'min':>8} {'median':>8} {'max':>8}  {'unit':<6} target"]
    for f in r.figures:
        low, high = (min(f.samples), max(f.samples)) if len(f.samples) > 1 else (None, None)
        lines.append(f"{f.name:<56} {_num(low)} {_num(f.median)} {_num(high)}  {f.unit:<6} {f.target_text()}"
                     .rstrip())
        if f.note:
            lines.append(f"    {f.note}")
        for part, seconds in f.profile.items():
            lines.append(f"    {part:<52} {'':>8} {_num(seconds)} {'':>8}  s")
    return "\n".join(lines)
