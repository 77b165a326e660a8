"""The cases: each is two modules with one name, a host rule here and a guest observer in hmmbench.guest.

A host module ``hmmbench/cases/NAME.py`` defines ``SPEC = CaseSpec(...)`` and ``judge(obs, facts)``; its
guest twin ``hmmbench/guest/cases/NAME.py`` defines ``observe(ctx, params)``. Both sides are found by
name, so a new case is those two files and nothing else; the suite's order comes from each spec's
``order`` (cheap, non-destructive cases first, the ones that stress the kernel last). A case present on
one side only is an error the unit tests catch (:func:`unpaired`).
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass, field

import hmmbench.cases
import hmmbench.guest.cases

# Modules of hmmbench.cases that are not cases.
_NOT_CASES = {"facts", "judge", "kernel_reports", "registry", "rules", "verdict", "views", "watch"}


@dataclass(frozen=True)
class CaseSpec:
    """A case as the runner sees it."""

    name: str
    description: str
    rule: str
    order: int
    variants: list[dict] = field(default_factory=lambda: [{}])
    timeout: float = 120.0

    def variant_id(self, params: dict) -> str:
        if not params:
            return self.name
        inner = ",".join(f"{k}={v}" for k, v in sorted(params.items()))
        return f"{self.name}[{inner}]"

    def judge(self) -> Callable:
        return importlib.import_module(f"hmmbench.cases.{self.name}").judge


def _names(package) -> set[str]:
    return {m.name for m in pkgutil.iter_modules(package.__path__) if not m.name.startswith("_")}


def host_case_names() -> set[str]:
    return _names(hmmbench.cases) - _NOT_CASES


def guest_case_names() -> set[str]:
    return _names(hmmbench.guest.cases)


def unpaired() -> tuple[set[str], set[str]]:
    """(cases with a host rule but no guest observer, cases with an observer but no rule)."""
    host, guest = host_case_names(), guest_case_names()
    return host - guest, guest - host


def load_all() -> dict[str, CaseSpec]:
    """Every case, in suite order."""
    specs = [importlib.import_module(f"hmmbench.cases.{name}").SPEC for name in host_case_names()]
    return {s.name: s for s in sorted(specs, key=lambda s: (s.order, s.name))}
