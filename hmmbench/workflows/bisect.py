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
import subprocess
import time
from pathlib import Path

from hmmbench import cache, progress, validate
from hmmbench.errors import HarnessError
from hmmbench.kernel import sources
from hmmbench.kernel.build import BuildFailed, KernelBuilder
from hmmbench.vm.image import ImageBuilder
from hmmbench.workflows import run as runner

GOOD, BAD, SKIP = "good", "bad", "skip"


@dataclasses.dataclass(frozen=True)
class BisectRequest:
    repo: Path
    good: str
    bad: str
    case: str
    signature: str | None = None
    repeat: int = 1
    run: runner.RunRequest = dataclasses.field(default_factory=runner.RunRequest)

    def resolved(self) -> tuple[str, str]:
        """(good, bad) as full commit hashes: names such as branches move, hashes do not."""
        return (_git(self.repo, "rev-parse", "--verify", f"{self.good}^{{commit}}"),
                _git(self.repo, "rev-parse", "--verify", f"{self.bad}^{{commit}}"))

    def state_key(self) -> str:
        """Why hashes, not names: a branch moved to a new history must start a new bisection."""
        good, bad = self.resolved()
        return cache.stable_hash(str(self.repo), good, bad, self.case, self.signature, self.repeat,
                                 self.run.base, [str(f) for f in self.run.fragments or []])


def _git(path: Path, *args: str, check: bool = True) -> str:
    proc = subprocess.run(["git", "-C", str(path), *args], capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise HarnessError(f"git {' '.join(args[:3])}: {proc.stderr.strip()[-300:]}")
    return proc.stdout.strip()


def judge_runs(runs: list[dict], signature: str | None) -> tuple[str, str]:
    """(good|bad|skip, why) from the verdicts of one step's runs."""
    statuses = [r["status"] for r in runs]
    if signature:
        hits = [r for r in runs if any(signature in t for t in r["crash_titles"])]
        if hits:
            return BAD, f"signature {signature!r} seen in {len(hits)}/{len(runs)} run(s)"
        others = sorted({t for r in runs for t in r["crash_titles"]})
        if all(s in ("SKIP", "ERROR") for s in statuses) and not others:
            return SKIP, f"case {statuses[0]} and no kernel report: cannot tell"
        return GOOD, "signature not seen" + (f" (other reports, not this bisection's: {others})" if others else "")
    if "FAIL" in statuses:
        return BAD, f"FAIL in {statuses.count('FAIL')}/{len(runs)} run(s)"
    if all(s == "PASS" for s in statuses):
        return GOOD, f"PASS in {len(runs)}/{len(runs)} run(s)"
    return SKIP, f"case {'/'.join(sorted(set(statuses)))}: cannot tell good from bad"


class Bisector:
    def __init__(self, req: BisectRequest, out_dir: Path) -> None:
        # Checked before anything is built (the image below is the first slow step).
        validate.commit_range(validate.git_repo(req.repo, "--tree"), req.good, req.bad, ("--good", "--bad"))
        validate.case_names([req.case])
        self.req = req
        self.out_dir = out_dir
        self.state_path = cache.cache_root() / "bisect" / f"{req.state_key()}.json"
        good, bad = req.resolved()
        self.state = cache.read_json(self.state_path) or {
            "request": {"repo": str(req.repo), "good": good, "bad": bad, "case": req.case,
                        "signature": req.signature, "repeat": req.repeat},
            "steps": {}}
        self.spec = runner.select_cases([req.case])[0]
        self.image = ImageBuilder(req.run.recipe).build()
        self.cycles = 0  # build-boot cycles run by this invocation

    # -------------------------------------------------------------- one step

    def evaluate(self, commit: str) -> dict:
        """Build, boot and run the case at ``commit`` (or return the recorded result)."""
        known = self.state["steps"].get(commit)
        if known:
            progress.say(f"bisect: {commit[:12]} already known: {known['result']} ({known['why']})")
            return known
        subject = _git(self.req.repo, "log", "-1", "--format=%s", commit)
        progress.say(f"bisect: testing {commit[:12]} {subject}")
        step: dict = {"commit": commit, "subject": subject, "runs": []}
        t0 = time.monotonic()
        self.cycles += 1
        try:
            tree = sources.tree_at_rev(self.req.repo, commit)
            kernel = KernelBuilder(tree, self.req.run.fragments, self.req.run.base).build()
            step["build_seconds"] = round(time.monotonic() - t0, 1)
        except BuildFailed as exc:
            step.update(result=SKIP, why=f"does not build: {exc.reason}", build_seconds=round(time.monotonic() - t0, 1))
            return self._record(step)
        for i in range(self.req.repeat):
            try:
                sub = dataclasses.replace(self.req.run, out_dir=self.out_dir / f"{commit[:12]}-run{i + 1}", junit=None)
                _code, res = runner.run_prepared(sub, [self.spec], tree, kernel, self.image)
            except HarnessError as exc:
                step.update(result=SKIP, why=f"does not boot: {exc.reason}")
                return self._record(step)
            for c in res["cases"]:
                v = c["verdict"]
                step["runs"].append({"id": c["id"], "status": v["status"], "summary": v["summary"],
                                     "crash_titles": [x["title"] for x in v.get("crashes", [])],
                                     "results": res["results_path"]})
        step["result"], step["why"] = judge_runs(step["runs"], self.req.signature)
        return self._record(step)

    def _record(self, step: dict) -> dict:
        self.state["steps"][step["commit"]] = step
        cache.write_json(self.state_path, self.state)
        progress.say(f"bisect: {step['commit'][:12]} is {step['result']}: {step['why']}")
        return step

    # -------------------------------------------------------------- the bisection

    def run(self) -> dict:
        started = time.monotonic()
        repo = self.req.repo
        good, bad = self.req.resolved()
        count = int(_git(repo, "rev-list", "--count", f"{good}..{bad}"))
        if count == 0:
            raise HarnessError(f"{self.req.bad} is not a descendant of {self.req.good}", "swap --good and --bad?")
        progress.say(f"bisect: {count} commits in {good[:12]}..{bad[:12]}; case {self.req.case}"
                     + (f", signature {self.req.signature!r}" if self.req.signature else "")
                     + (f", {self.req.repeat} runs per step" if self.req.repeat > 1 else ""))
        for commit, want in ((good, GOOD), (bad, BAD)):
            step = self.evaluate(commit)
            if step["result"] != want:
                raise HarnessError(
                    f"endpoint {commit[:12]} should be {want} but is {step['result']}: {step['why']}",
                    "check --good/--bad, the case name and --signature; nothing was bisected")
        worktree = sources.tree_at_rev(repo, bad).path
        _git(worktree, "bisect", "reset", check=False)
        _git(worktree, "bisect", "start", bad, good)
        first_bad = None
        try:
            while True:
                commit = _git(worktree, "rev-parse", "HEAD")
                step = self.evaluate(commit)
                out = _git(worktree, "bisect", step["result"], check=False)
                m = re.search(r"^([0-9a-f]{40}) is the first bad commit", out, re.M)
                if m:
                    first_bad = m.group(1)
                    break
                if "There are only 'skip'ped commits left" in out or "cannot bisect" in out.lower():
                    raise HarnessError(f"bisection ends among skipped commits: {out.strip().splitlines()[0]}")
        finally:
            log = _git(worktree, "bisect", "log", check=False)
            _git(worktree, "bisect", "reset", check=False)
        parent = _git(repo, "rev-parse", f"{first_bad}^")
        at, before = self.evaluate(first_bad), self.evaluate(parent)
        skips = sum(1 for s in self.state["steps"].values() if s["result"] == SKIP)
        return {
            "schema": "hmmbench.bisect/1", "repo": str(repo), "good": good, "bad": bad, "case": self.req.case,
            "signature": self.req.signature, "repeat": self.req.repeat, "commits_in_range": count,
            "first_bad": {"commit": first_bad, "subject": at["subject"],
                          "files": _git(repo, "diff-tree", "--no-commit-id", "--name-only", "-r", first_bad).split()},
            "evidence": {"first_bad": at, "parent": before},
            "steps": list(self.state["steps"].values()), "skips": skips,
            "cycles_this_run": self.cycles, "cycle_budget": math.ceil(math.log2(count + 1)) + skips + 2,
            "git_bisect_log": log, "seconds": round(time.monotonic() - started, 1),
            "state_file": str(self.state_path),
        }


def text(report: dict) -> str:
    fb = report["first_bad"]
    lines = [f"first bad commit: {fb['commit']} {fb['subject']}", f"files: {' '.join(fb['files'])}", ""]
    for label, key in (("at it", "first_bad"), ("at its parent", "parent")):
        s = report["evidence"][key]
        lines.append(f"{label} ({s['commit'][:12]}): {s['result']} - {s['why']}")
        for r in s.get("runs", [])[:4]:
            lines.append(f"    {r['id']}: {r['status']} {r['summary'][:90]}")
    lines += ["", "steps:"]
    for s in report["steps"]:
        runs = ",".join(r["status"] for r in s.get("runs", []))
        build = s.get("build_seconds", "-")
        lines.append(f"  {s['commit'][:12]} {s['result']:<4} build {build}s  [{runs}]  {s['why']}")
    lines.append(f"\n{len(report['steps'])} steps ({report['skips']} skipped), {report['cycles_this_run']} "
                 f"build-boot cycles in this run, {report['seconds']:.0f}s; state: {report['state_file']}")
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
