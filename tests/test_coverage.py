"""The hmm-tests coverage table (hmmbench.selftest.coverage) names real cases and is README's table."""

from __future__ import annotations

from pathlib import Path

from hmmbench import cases
from hmmbench.selftest import coverage

README = Path(__file__).resolve().parents[1] / "README.md"


def test_every_covering_case_exists() -> None:
    known = cases.load_all()
    assert [c for c in coverage.cases() if c not in known] == []


def test_each_test_listed_once() -> None:
    names = [c.test for c in coverage.COVERAGE]
    assert len(names) == len(set(names))


def test_readme_shows_the_table() -> None:
    assert coverage.readme_table() in README.read_text(), "README's hmm-tests table differs: paste readme_table()"
