"""``hmmbench series``: build, boot and run the suite at every commit of a patch series.

Patches (a directory of ``*.patch`` files or an mbox) are applied with ``git am`` on a fresh branch
from the base revision, in hmmbench's own worktree: the user's checkout and branches are never
touched. The walk goes from the base revision to the tip in order, in one worktree and one build
directory, so each step recompiles only what the commit changed. A commit that does not build or boot
is reported as such and the walk goes on. For each case the report names the first commit at which its
verdict changed, and for each commit the new compiler warnings in the files it touched (like ktest's
patchcheck).
"""

from __future__ import annotations

import datetime as dt
import re
import time
from collections import Counter
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from hmmbench import progress, validate
from hmmbench.errors import HarnessError
from hmmbench.kernel import sources
from hmmbench.kernel.build import BuildFailed, KernelBuilder
from hmmbench.kernel.git import git, git_output, probe
from hmmbench.reports import results
from hmmbench.vm.image import ImageBuilder
from hmmbench.workflows import run


def patch_files(patches: Path) -> list[Path]:
    return validate.patch_list(patches)


def apply_patches(repo: Path, base: str, patches: Path) -> str:
    """``git am`` the patches on a fresh branch from ``base``; returns the tip commit."""
    tree = sources.tree_at_rev(repo, base)
    branch = f"hmmbench/series-{dt.datetime.now():%Y%m%d-%H%M%S}"
    git(tree.path, "checkout", "--quiet", "-b", branch)
    ident = {} if git_output(tree.path, "config", "user.email") else {
        "GIT_COMMITTER_NAME": "hmmbench", "GIT_COMMITTER_EMAIL": "hmmbench@localhost"}
    files = patch_files(patches)
    with progress.step(f"git am {len(files)} file(s) on {branch} (from {base})"):
        proc = probe(tree.path, "am", "--3way", "--committer-date-is-author-date", *map(str, files), env=ident)
    if proc.returncode != 0:
        probe(tree.path, "am", "--abort")
        failing = re.search(r"Patch failed at \d+ (.*)", (proc.stdout + proc.stderr).decode(errors="replace"))
        raise HarnessError(f"git am failed{': ' + failing.group(1) if failing else ''}",
                           f"the patches do not apply on {base}; branch {branch} holds what applied")
    tip = git(tree.path, "rev-parse", "HEAD")
    git(tree.path, "checkout", "--quiet", "--detach", tip)
    progress.say(f"series applied on branch {branch}: tip {tip[:12]}")
    return tip


def commits_between(repo: Path, base: str, tip: str) -> list[tuple[str, str]]:
    """(hash, subject) of the base commit and every commit after it up to ``tip``, oldest first."""
    base_hash = git(repo, "rev-parse", "--verify", f"{base}^{{commit}}")
    log = git(repo, "log", "--reverse", "--format=%H %s", f"{base_hash}..{tip}")
    out = [(base_hash, git(repo, "log", "-1", "--format=%s", base_hash))]
    out += [tuple(line.split(" ", 1)) if " " in line else (line, "") for line in log.splitlines() if line]
    return out


def touched_files(repo: Path, commit: str) -> list[str]:
    return git(repo, "diff-tree", "--no-commit-id", "--name-only", "-r", "--root", commit).splitlines()


def warnings_in(warnings: tuple[str, ...] | list[str], files: list[str]) -> list[str]:
    """The compiler warnings whose file is one the commit touched."""
    out = []
    for w in warnings:
        path = w.split(":", 1)[0]
        if any(path == f or path.endswith("/" + f) for f in files):
            out.append(w)
    return out


@dataclass
class BuildStep:
    """How one commit's kernel build went."""

    ok: bool
    seconds: float
    cached: bool | None = None
    release: str | None = None
    new_warnings: list[str] = field(default_factory=list)
    error: str | None = None
    log: str | None = None
    errors: list[str] = field(default_factory=list)


@dataclass
class BootStep:
    ok: bool
    seconds: list[float] = field(default_factory=list)
    error: str | None = None


@dataclass
class SeriesStep:
    """One commit of the walk: build, boot, and each case variant's verdict."""

    commit: str
    subject: str
    files: list[str]
    build: BuildStep | None = None
    boot: BootStep | None = None
    results_path: str | None = None
    verdicts: dict[str, str] = field(default_factory=dict)
    summaries: dict[str, str] = field(default_factory=dict)

    @property
    def broken(self) -> bool:
        return not (self.build and self.build.ok and self.boot and self.boot.ok)


@dataclass
class FirstChange:
    """The first commit at which a case's verdict differs from the base commit's."""

    case: str
    before: str
    after: str
    commit: str
    subject: str
    summary: str

    def to_dict(self) -> dict:
        return {"case": self.case, "from": self.before, "to": self.after, "commit": self.commit,
                "subject": self.subject, "summary": self.summary}


@dataclass
class SeriesReport:
    repo: str
    base: str
    tip: str
    steps: list[SeriesStep]

    @property
    def first_changes(self) -> list[FirstChange]:
        return first_changes(self.steps)

    @property
    def exit_code(self) -> int:
        """1 if a commit did not build or boot, or a case went from PASS to FAIL somewhere in the series."""
        regressed = any(ch.before == "PASS" and ch.after == "FAIL" for ch in self.first_changes)
        return 1 if regressed or any(s.broken for s in self.steps) else 0

    def to_dict(self) -> dict:
        return {"schema": "hmmbench.series/1", "repo": self.repo, "base": self.base, "tip": self.tip,
                "steps": [asdict(s) for s in self.steps], "first_changes": [c.to_dict() for c in self.first_changes]}


def walk(req: run.RunRequest, repo: Path, base: str, tip: str, out_dir: Path) -> SeriesReport:
    """Build, boot and run at every commit; returns the series report."""
    specs = run.select_cases(req.case_names)
    image = ImageBuilder(req.recipe).build()
    commits = commits_between(repo, base, tip)
    progress.say(f"series: {len(commits)} commits ({commits[0][0][:12]} .. {commits[-1][0][:12]})")
    report = SeriesReport(str(repo), base, tip, [])
    for i, (commit, subject) in enumerate(commits):
        progress.say(f"series [{i + 1}/{len(commits)}] {commit[:12]} {subject}")
        step = SeriesStep(commit, subject, touched_files(repo, commit) if i else [])
        report.steps.append(step)
        t0 = time.monotonic()
        try:
            tree = sources.tree_at_rev(repo, commit)
            kernel = KernelBuilder(tree, req.fragments, req.config_base).build()
            step.build = BuildStep(True, round(time.monotonic() - t0, 1), kernel.cached, kernel.release,
                                   warnings_in(kernel.warnings, step.files) if i else [])
        except BuildFailed as exc:
            step.build = BuildStep(False, round(time.monotonic() - t0, 1), error=exc.reason, log=str(exc.log),
                                   errors=exc.errors[:10])
            continue
        try:
            side_req = replace(req, out_dir=out_dir / f"{i:03d}-{commit[:12]}", junit=None)
            res = run.run_prepared(side_req, specs, tree, kernel, image)
            step.boot = BootStep(True, res.target.boot_seconds)
            step.results_path = res.results_path
            step.verdicts = {c.id: str(c.status) for c in res.cases}
            step.summaries = {c.id: c.verdict.summary for c in res.cases}
        except HarnessError as exc:
            step.boot = BootStep(False, error=exc.reason)
    results.write_json(out_dir / "series.json", report)
    return report


def first_changes(steps: list[SeriesStep]) -> list[FirstChange]:
    """For each case: the first commit whose verdict differs from the base commit's."""
    if not steps or not steps[0].verdicts:
        return []
    out = []
    for case_id, base_status in steps[0].verdicts.items():
        for step in steps[1:]:
            status = step.verdicts.get(case_id)
            if status is not None and status != base_status:
                out.append(FirstChange(case_id, base_status, status, step.commit, step.subject,
                                       step.summaries.get(case_id, "")))
                break
    return out


def text(report: SeriesReport) -> str:
    lines = [f"series {report.repo} {report.base}..{report.tip[:12]}", ""]
    for s in report.steps:
        b = s.build
        assert b is not None
        build = (f"build ok {b.seconds:.0f}s" + (" (cached)" if b.cached else "")) if b.ok \
            else f"BUILD FAILED: {b.error}"
        boot = "" if s.boot is None else ("boot ok" if s.boot.ok else f"BOOT FAILED: {s.boot.error}")
        counts = Counter(s.verdicts.values())
        verdicts = " ".join(f"{n} {k}" for k, n in sorted(counts.items()))
        lines.append(f"{s.commit[:12]} {s.subject[:50]:<50}  {build}  {boot}  {verdicts}")
        for w in b.new_warnings[:5]:
            lines.append(f"    new warning: {w}")
    lines.append("")
    if report.first_changes:
        lines.append("first commit at which each case changed:")
        for ch in report.first_changes:
            lines.append(f"  {ch.case}: {ch.before} -> {ch.after} at {ch.commit[:12]} {ch.subject}")
            lines.append(f"      {ch.summary}")
    else:
        lines.append("no case changed its verdict across the series")
    return "\n".join(lines)
