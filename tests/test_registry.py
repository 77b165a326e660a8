"""A case is two files found by name: the host rule and the guest observer; the suite order is the specs'."""

from __future__ import annotations

from hmmbench import cases
from hmmbench.cases import registry


def test_every_case_has_both_halves() -> None:
    host_only, guest_only = registry.unpaired()
    assert host_only == set(), f"host rules without a guest observer (hmmbench/guest/cases/): {sorted(host_only)}"
    assert guest_only == set(), f"guest observers without a host rule (hmmbench/cases/): {sorted(guest_only)}"


def test_the_registry_lists_every_host_module_in_order() -> None:
    specs = cases.load_all()
    assert set(specs) == registry.host_case_names()
    orders = [s.order for s in specs.values()]
    assert orders == sorted(orders) and len(set(orders)) == len(orders), "each case has its own place in the suite"
    assert list(specs)[0] == "exclusive_basic"  # cheap, non-destructive cases first


def test_unpaired_sees_a_case_on_one_side(monkeypatch) -> None:
    real = registry._names
    monkeypatch.setattr(registry, "_names", lambda package: real(package) | (
        {"exclusive_new"} if package is registry.hmmbench.guest.cases else set()))
    assert registry.unpaired() == (set(), {"exclusive_new"})


def test_every_spec_is_named_after_its_module() -> None:
    for name, spec in cases.load_all().items():
        assert spec.name == name and spec.rule.strip() and spec.variants
