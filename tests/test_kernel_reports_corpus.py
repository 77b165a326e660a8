"""kernel_reports.parse scored against real kernel console logs and the titles syzbot gave them.

The corpus (syzkaller's pkg/report/testdata/linux/report, about half of it) lives outside the project, in
``../shared/corpora/syzkaller-linux-report/`` beside the worktree or under ``$HMMBENCH_CORPORA``; it is read
in place. Each file is a header (``TITLE:``, ``ALT:``, ``CORRUPTED:``, ...), an empty line and the console
text, optionally followed by ``REPORT:`` and the text syzkaller extracted (not console output, not parsed).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from hmmbench.cases import kernel_reports

CORPUS = "syzkaller-linux-report"
# Floors; the figures reached are printed and put in the assertion messages.
FOUND_FLOOR = 0.95   # titled, not corrupted logs in which some trouble is reported
TITLE_FLOOR = 0.60   # ... whose first report has syzbot's title (or one of its ALT titles)


def corpus_dir() -> Path | None:
    """$HMMBENCH_CORPORA, else ``shared/corpora`` beside the checkout (parents[2] is the checkout's
    parent) or one level further up (a checkout nested one directory deeper)."""
    here = Path(__file__).resolve()
    env = os.environ.get("HMMBENCH_CORPORA")
    bases = [Path(env)] if env else [here.parents[2] / "shared" / "corpora", here.parents[3] / "shared" / "corpora"]
    return next((b / CORPUS for b in bases if (b / CORPUS).is_dir()), None)


@dataclass
class Sample:
    name: str
    headers: dict[str, list[str]] = field(default_factory=dict)
    lines: list[str] = field(default_factory=list)

    @property
    def title(self) -> str:
        return (self.headers.get("TITLE") or [""])[0]

    @property
    def titles(self) -> list[str]:
        return [self.title] + self.headers.get("ALT", [])

    @property
    def corrupted(self) -> bool:
        return (self.headers.get("CORRUPTED") or [""])[0] == "Y"


def load(path: Path) -> Sample:
    text = path.read_bytes().decode("utf-8", errors="replace")
    head, _, body = text.partition("\n\n")
    sample = Sample(path.name)
    for line in head.splitlines():
        if line.startswith("#"):
            continue
        key, _, value = line.partition(":")
        sample.headers.setdefault(key.strip(), []).append(value.strip())
    console_text, _, _ = body.partition("\nREPORT:\n")
    sample.lines = console_text.splitlines()
    return sample


@pytest.fixture(scope="module")
def samples() -> list[Sample]:
    path = corpus_dir()
    if path is None:
        pytest.skip(f"no {CORPUS} corpus (looked in ../shared/corpora beside the worktree and $HMMBENCH_CORPORA)")
    found = [load(p) for p in sorted(path.iterdir()) if p.is_file() and not p.name.startswith(".")]
    if not found:
        pytest.skip(f"{path} is empty")
    return found


def test_corpus_conformance(samples: list[Sample]) -> None:
    titled = [s for s in samples if s.title and not s.corrupted]
    clean = [s for s in samples if not s.title]
    found = matched = 0
    misses, false_alarms = [], []
    for sample in titled:
        reports = kernel_reports.parse(sample.lines)
        found += bool(reports)
        if reports and reports[0].title in sample.titles:
            matched += 1
        else:
            misses.append(f"{sample.name}: want {sample.title!r}, got {reports[0].title if reports else None!r}")
    for sample in clean:
        if reports := kernel_reports.parse(sample.lines):
            false_alarms.append(f"{sample.name}: {reports[0].title!r}")
    figures = (f"corpus: {len(samples)} logs; trouble found in {found}/{len(titled)} titled, not corrupted "
               f"({found / len(titled):.1%}); first title equal to syzbot's in {matched}/{len(titled)} "
               f"({matched / len(titled):.1%}); nothing reported in {len(clean) - len(false_alarms)}/{len(clean)} "
               f"logs without a title")
    print(figures)
    for miss in misses:
        print("  title miss:", miss)
    assert not false_alarms, f"{figures}; reported in logs without trouble: {false_alarms}"
    assert found >= FOUND_FLOOR * len(titled), f"{figures}; misses: {misses}"
    assert matched >= TITLE_FLOOR * len(titled), f"{figures}; misses: {misses}"


def test_corpus_reports_are_well_formed(samples: list[Sample]) -> None:
    """Every report of every log (not only the first) has what callers rely on."""
    for sample in samples:
        for report in kernel_reports.parse(sample.lines):
            assert report.title and report.kind and report.first_line, (sample.name, report)
            assert report.excerpt and report.first_line in report.excerpt, (sample.name, report.title)
            assert len(report.title) <= 120 and report.title == report.title.strip(), (sample.name, report.title)
            assert isinstance(report.fatal, bool), sample.name
