"""``hmmbench bisect``: from "it broke somewhere in this range" to the commit, with evidence.

git bisect runs in hmmbench's own worktree of the repository (the user's checkout is never touched)
and every step builds incrementally in that worktree's one build directory, boots, and runs one case.

* good/bad comes from the case's verdict, or with ``--signature TEXT`` from whether a kernel report
  whose title contains TEXT appeared; another crash is *not* bad for that bisection (logged).
* A step that does not build, does not boot, or where the case is SKIP (or ERROR) is skipped
  (``git bisect skip``) with the reason logged.
* ``--repeat N`` runs the case N times per step; a step is bad if *any* run is bad (a flaky failure
  must not be bisected away as good), and every run's verdict is logged so flakiness is visible.
* Before bisecting, the endpoints are confirmed (good passes, bad fails), or the bisection stops.
* The state (every step's result) lives in the cache: interrupting and running the same command
  again replays what is known and goes on from there.
"""

from __future__ import annotations

import dataclasses
import math
import re
import time
from pathlib import Path

from hmmbench import cache, cases, progress, validate
from hmmbench.errors import HarnessError
from hmmbench.kernel import sources
from hmmbench.kernel.build import BuildFailed, KernelBuilder
from hmmbench.kernel.git import git, git_output
from hmmbench.reports.results import CaseResult
from hmmbench.vm.image import GuestImage, ImageBuilder
from hmmbench.workflows import run

GOOD, BAD, SKIP = "good", "bad", "skip"


@dataclasses.dataclass(frozen=True)
class BisectRequest:
    repo: Path
    good: str
    bad: str
    case: str
    signature: str | None = None
    repeat: int = 1
    run: run.RunRequest = dataclasses.field(default_factory=run.RunRequest)

    def resolved(self) -> tuple[str, str]:
        """(good, bad) as full commit hashes: names such as branches move, hashes do not."""
        return (git(self.repo, "rev-parse", "--verify", f"{self.good}^{{commit}}"),
                git(self.repo, "rev-parse", "--verify", f"{self.bad}^{{commit}}"))

    def state_key(self) -> str:
        """Why hashes, not names: a branch moved to a new history must start a new bisect."""
        good, bad = self.resolved()
        return cache.stable_hash(str(self.repo), good, bad, self.case, self.signature, self.repeat,
                                 self.run.config_base, [str(f) for f in self.run.fragments or []])




@dataclasses.dataclass
class StepRun:
    """One run of the case at a step."""

    id: str
    status: str
    summary: str
    crash_titles: list[str]
    results: str

    @classmethod
    def of(cls, case: CaseResult, results_path: str) -> StepRun:
        return cls(case.id, str(case.status), case.verdict.summary, [r.title for r in case.verdict.crashes],
                   results_path)


@dataclasses.dataclass
class BisectStep:
    """What a commit was found to be (good, bad or skip) and why; kept in the resumable state file."""

    commit: str
    subject: str
    runs: list[StepRun] = dataclasses.field(default_factory=list)
    result: str = SKIP
    why: str = ""
    build_seconds: float | None = None

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> BisectStep:
        step = cls(**{k: v for k, v in d.items() if k != "runs"})
        step.runs = [StepRun(**r) for r in d.get("runs", [])]
        return step


def judge_runs(runs: list[StepRun], signature: str | None) -> tuple[str, str]:
    """(good|bad|skip, why) from the verdicts of one step's runs."""
    statuses = [r.status for r in runs]
    if signature:
        hits = [r for r in runs if any(signature in t for t in r.crash_titles)]
        if hits:
            return BAD, f"signature {signature!r} seen in {len(hits)}/{len(runs)} run(s)"
        others = sorted({t for r in runs for t in r.crash_titles})
        if all(s in ("SKIP", "ERROR") for s in statuses) and not others:
            return SKIP, f"case {statuses[0]} and no kernel report: cannot tell"
        return GOOD, "signature not seen" + (f" (other reports, not this bisection's: {others})" if others else "")
    if "FAIL" in statuses:
        return BAD, f"FAIL in {statuses.count('FAIL')}/{len(runs)} run(s)"
    if all(s == "PASS" for s in statuses):
        return GOOD, f"PASS in {len(runs)}/{len(runs)} run(s)"
    return SKIP, f"case {'/'.join(sorted(set(statuses)))}: cannot tell good from bad"


def evaluate_tree(step: BisectStep, tree: sources.KernelTree, spec: cases.CaseSpec, image: GuestImage,
                  run_req: run.RunRequest, out_dir: Path, repeat: int, signature: str | None) -> BisectStep:
    """Build ``tree``, boot it ``repeat`` times and run the case; fill ``step`` with the result.

    The one definition of a bisection step: ``hmmbench bisect`` calls it per commit, and ``hmmbench
    bisect-step`` (for a plain ``git bisect run``) on the tree as it is checked out."""
    t0 = time.monotonic()
    try:
        kernel = KernelBuilder(tree, run_req.fragments, run_req.config_base).build()
        step.build_seconds = round(time.monotonic() - t0, 1)
    except BuildFailed as exc:
        step.build_seconds = round(time.monotonic() - t0, 1)
        step.result, step.why = SKIP, f"does not build: {exc.reason}"
        return step
    for i in range(repeat):
        try:
            sub = dataclasses.replace(run_req, out_dir=out_dir / f"{step.commit[:12]}-run{i + 1}", junit=None)
            res = run.run_prepared(sub, [spec], tree, kernel, image)
        except HarnessError as exc:
            step.result, step.why = SKIP, f"does not boot: {exc.reason}"
            return step
        step.runs += [StepRun.of(c, res.results_path) for c in res.cases]
    step.result, step.why = judge_runs(step.runs, signature)
    return step


@dataclasses.dataclass
class BisectReport:
    repo: str
    good: str
    bad: str
    case: str
    signature: str | None
    repeat: int
    commits_in_range: int
    first_bad: dict  # commit, subject, files
    at_first_bad: BisectStep
    at_parent: BisectStep
    steps: list[BisectStep]
    cycles_this_run: int
    git_bisect_log: str
    seconds: float
    state_file: str

    @property
    def skips(self) -> int:
        return sum(1 for s in self.steps if s.result == SKIP)

    def to_dict(self) -> dict:
        return {
            "schema": "hmmbench.bisect/1", "repo": self.repo, "good": self.good, "bad": self.bad, "case": self.case,
            "signature": self.signature, "repeat": self.repeat, "commits_in_range": self.commits_in_range,
            "first_bad": self.first_bad,
            "evidence": {"first_bad": self.at_first_bad.to_dict(), "parent": self.at_parent.to_dict()},
            "steps": [s.to_dict() for s in self.steps], "skips": self.skips, "cycles_this_run": self.cycles_this_run,
            "cycle_budget": math.ceil(math.log2(self.commits_in_range + 1)) + self.skips + 2,
            "git_bisect_log": self.git_bisect_log, "seconds": self.seconds, "state_file": self.state_file,
        }


class Bisector:
    def __init__(self, req: BisectRequest, out_dir: Path) -> None:
        # Checked before anything is built (the image below is the first slow step).
        validate.commit_range(validate.git_repo(req.repo, "--tree"), req.good, req.bad, ("--good", "--bad"))
        validate.case_names([req.case])
        self.req = req
        self.out_dir = out_dir
        self.state_path = cache.cache_root() / "bisect" / f"{req.state_key()}.json"
        good, bad = req.resolved()
        state = cache.read_json(self.state_path) or {}
        self.request = state.get("request") or {"repo": str(req.repo), "good": good, "bad": bad, "case": req.case,
                                                "signature": req.signature, "repeat": req.repeat}
        self.steps = {c: BisectStep.from_dict(s) for c, s in (state.get("steps") or {}).items()}
        self.spec = run.select_cases([req.case])[0]
        self.image = ImageBuilder(req.run.recipe).build()
        self.cycles = 0  # build-boot cycles run by this invocation

    # -------------------------------------------------------------- one step

    def evaluate(self, commit: str) -> BisectStep:
        """Build, boot and run the case at ``commit`` (or return the recorded result)."""
        known = self.steps.get(commit)
        if known:
            progress.say(f"bisect: {commit[:12]} already known: {known.result} ({known.why})")
            return known
        subject = git(self.req.repo, "log", "-1", "--format=%s", commit)
        progress.say(f"bisect: testing {commit[:12]} {subject}")
        self.cycles += 1
        step = evaluate_tree(BisectStep(commit, subject), sources.tree_at_rev(self.req.repo, commit), self.spec,
                             self.image, self.req.run, self.out_dir, self.req.repeat, self.req.signature)
        self.steps[commit] = step
        cache.write_json(self.state_path, {"request": self.request,
                                           "steps": {c: s.to_dict() for c, s in self.steps.items()}})
        progress.say(f"bisect: {commit[:12]} is {step.result}: {step.why}")
        return step

    # -------------------------------------------------------------- the bisection

    def run(self) -> BisectReport:
        started = time.monotonic()
        repo = self.req.repo
        good, bad = self.req.resolved()
        count = int(git(repo, "rev-list", "--count", f"{good}..{bad}"))
        if count == 0:
            raise HarnessError(f"{self.req.bad} is not a descendant of {self.req.good}", "swap --good and --bad?")
        progress.say(f"bisect: {count} commits in {good[:12]}..{bad[:12]}; case {self.req.case}"
                     + (f", signature {self.req.signature!r}" if self.req.signature else "")
                     + (f", {self.req.repeat} runs per step" if self.req.repeat > 1 else ""))
        for commit, want in ((good, GOOD), (bad, BAD)):
            step = self.evaluate(commit)
            if step.result != want:
                raise HarnessError(
                    f"endpoint {commit[:12]} should be {want} but is {step.result}: {step.why}",
                    "check --good/--bad, the case name and --signature; nothing was bisected")
        worktree = sources.tree_at_rev(repo, bad).path
        git_output(worktree, "bisect", "reset")
        git(worktree, "bisect", "start", bad, good)
        first_bad = None
        try:
            while True:
                commit = git(worktree, "rev-parse", "HEAD")
                step = self.evaluate(commit)
                out = git_output(worktree, "bisect", step.result)
                m = re.search(r"^([0-9a-f]{40}) is the first bad commit", out, re.M)
                if m:
                    first_bad = m.group(1)
                    break
                if "There are only 'skip'ped commits left" in out or "cannot bisect" in out.lower():
                    raise HarnessError(f"bisection ends among skipped commits: {out.strip().splitlines()[0]}")
        finally:
            log = git_output(worktree, "bisect", "log")
            git_output(worktree, "bisect", "reset")
        parent = git(repo, "rev-parse", f"{first_bad}^")
        at, before = self.evaluate(first_bad), self.evaluate(parent)
        files = git(repo, "diff-tree", "--no-commit-id", "--name-only", "-r", first_bad).split()
        return BisectReport(str(repo), good, bad, self.req.case, self.req.signature, self.req.repeat, count,
                            {"commit": first_bad, "subject": at.subject, "files": files}, at, before,
                            list(self.steps.values()), self.cycles, log, round(time.monotonic() - started, 1),
                            str(self.state_path))


def text(report: BisectReport) -> str:
    fb = report.first_bad
    lines = [f"first bad commit: {fb['commit']} {fb['subject']}", f"files: {' '.join(fb['files'])}", ""]
    for label, s in (("at it", report.at_first_bad), ("at its parent", report.at_parent)):
        lines.append(f"{label} ({s.commit[:12]}): {s.result} - {s.why}")
        for r in s.runs[:4]:
            lines.append(f"    {r.id}: {r.status} {r.summary[:90]}")
    lines += ["", "steps:"]
    for s in report.steps:
        runs = ",".join(r.status for r in s.runs)
        build = s.build_seconds if s.build_seconds is not None else "-"
        lines.append(f"  {s.commit[:12]} {s.result:<4} build {build}s  [{runs}]  {s.why}")
    lines.append(f"\n{len(report.steps)} steps ({report.skips} skipped), {report.cycles_this_run} "
                 f"build-boot cycles in this run, {report.seconds:.0f}s; state: {report.state_file}")
    return "\n".join(lines)


def script(req: BisectRequest, python: str) -> str:
    """A script for plain ``git bisect run``: exit 0 good, 1 bad, 125 skip."""
    args = [f"--case {req.case}"]
    if req.signature:
        args.append(f"--signature '{req.signature}'")
    if req.repeat > 1:
        args.append(f"--repeat {req.repeat}")
    return (
        "#!/bin/sh\n"
        "# hmmbench bisect step for `git bisect run`: exit 0 good, 1 bad, 125 skip (no build, no boot, SKIP).\n"
        f"# Usage: git bisect start BAD GOOD && git bisect run {Path('hmmbench-bisect-step.sh')}\n"
        f'exec {python} -m hmmbench bisect-step --tree "$(git rev-parse --show-toplevel)" {" ".join(args)}\n'
    )


def step_exit_code(result: str) -> int:
    return {GOOD: 0, BAD: 1}.get(result, 125)
