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
import subprocess
import time
from dataclasses import replace
from pathlib import Path

from hmmbench import progress, validate
from hmmbench.errors import HarnessError
from hmmbench.kernel import sources
from hmmbench.kernel.build import BuildFailed, KernelBuilder
from hmmbench.reports import results
from hmmbench.vm.image import ImageBuilder
from hmmbench.workflows import run as runner


def _git(path: Path, *args: str, check: bool = True) -> str:
    proc = subprocess.run(["git", "-C", str(path), *args], capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise HarnessError(f"git {' '.join(args[:3])} failed in {path}: {proc.stderr.strip()[-300:]}")
    return proc.stdout.strip()


def patch_files(patches: Path) -> list[Path]:
    return validate.patch_list(patches)


def apply_patches(repo: Path, base: str, patches: Path) -> str:
    """``git am`` the patches on a fresh branch from ``base``; returns the tip commit."""
    tree = sources.tree_at_rev(repo, base)
    branch = f"hmmbench/series-{dt.datetime.now():%Y%m%d-%H%M%S}"
    _git(tree.path, "checkout", "--quiet", "-b", branch)
    ident = [] if _git(tree.path, "config", "user.email", check=False) else [
        "-c", "user.name=hmmbench", "-c", "user.email=hmmbench@localhost"]
    files = patch_files(patches)
    with progress.step(f"git am {len(files)} file(s) on {branch} (from {base})"):
        proc = subprocess.run(["git", *ident, "-C", str(tree.path), "am", "--3way", "--committer-date-is-author-date",
                               *map(str, files)], capture_output=True, text=True)
    if proc.returncode != 0:
        subprocess.run(["git", "-C", str(tree.path), "am", "--abort"], capture_output=True)
        failing = re.search(r"Patch failed at \d+ (.*)", proc.stdout + proc.stderr)
        raise HarnessError(f"git am failed{': ' + failing.group(1) if failing else ''}",
                           f"the patches do not apply on {base}; branch {branch} holds what applied")
    tip = _git(tree.path, "rev-parse", "HEAD")
    _git(tree.path, "checkout", "--quiet", "--detach", tip)
    progress.say(f"series applied on branch {branch}: tip {tip[:12]}")
    return tip


def commits_between(repo: Path, base: str, tip: str) -> list[tuple[str, str]]:
    """(hash, subject) of the base commit and every commit after it up to ``tip``, oldest first."""
    base_hash = _git(repo, "rev-parse", "--verify", f"{base}^{{commit}}")
    log = _git(repo, "log", "--reverse", "--format=%H %s", f"{base_hash}..{tip}")
    out = [(base_hash, _git(repo, "log", "-1", "--format=%s", base_hash))]
    out += [tuple(line.split(" ", 1)) if " " in line else (line, "") for line in log.splitlines() if line]
    return out


def touched_files(repo: Path, commit: str) -> list[str]:
    return _git(repo, "diff-tree", "--no-commit-id", "--name-only", "-r", "--root", commit).splitlines()


def warnings_in(warnings: tuple[str, ...] | list[str], files: list[str]) -> list[str]:
    """The compiler warnings whose file is one the commit touched."""
    out = []
    for w in warnings:
        path = w.split(":", 1)[0]
        if any(path == f or path.endswith("/" + f) for f in files):
            out.append(w)
    return out


def walk(req: runner.RunRequest, repo: Path, base: str, tip: str, out_dir: Path) -> dict:
    """Build, boot and run at every commit; returns the series report."""
    specs = runner.select_cases(req.case_names)
    image = ImageBuilder(req.recipe).build()
    commits = commits_between(repo, base, tip)
    progress.say(f"series: {len(commits)} commits ({commits[0][0][:12]} .. {commits[-1][0][:12]})")
    steps = []
    for i, (commit, subject) in enumerate(commits):
        progress.say(f"series [{i + 1}/{len(commits)}] {commit[:12]} {subject}")
        step: dict = {"commit": commit, "subject": subject, "files": touched_files(repo, commit) if i else []}
        t0 = time.monotonic()
        try:
            tree = sources.tree_at_rev(repo, commit)
            builder = KernelBuilder(tree, req.fragments, req.base)
            kernel = builder.build()
            step["build"] = {"ok": True, "seconds": round(time.monotonic() - t0, 1), "cached": kernel.cached,
                             "release": kernel.release,
                             "new_warnings": warnings_in(kernel.warnings, step["files"]) if i else []}
        except BuildFailed as exc:
            step["build"] = {"ok": False, "seconds": round(time.monotonic() - t0, 1), "error": exc.reason,
                             "log": str(exc.log), "errors": exc.errors[:10]}
            steps.append(step)
            continue
        try:
            side_req = replace(req, out_dir=out_dir / f"{i:03d}-{commit[:12]}", junit=None)
            _code, res = runner.run_prepared(side_req, specs, tree, kernel, image)
            step["boot"] = {"ok": True, "seconds": res["target"]["boot_seconds"]}
            step["results_path"] = res["results_path"]
            step["verdicts"] = {c["id"]: c["verdict"]["status"] for c in res["cases"]}
            step["summaries"] = {c["id"]: c["verdict"]["summary"] for c in res["cases"]}
        except HarnessError as exc:
            step["boot"] = {"ok": False, "error": exc.reason}
        steps.append(step)
    report = {"schema": "hmmbench.series/1", "repo": str(repo), "base": base, "tip": tip, "steps": steps,
              "first_changes": first_changes(steps)}
    results.write_json(out_dir / "series.json", report)
    return report


def first_changes(steps: list[dict]) -> list[dict]:
    """For each case: the first commit whose verdict differs from the base commit's."""
    if not steps or "verdicts" not in steps[0]:
        return []
    base = steps[0]["verdicts"]
    out = []
    for case_id, base_status in base.items():
        for step in steps[1:]:
            status = step.get("verdicts", {}).get(case_id)
            if status is not None and status != base_status:
                out.append({"case": case_id, "from": base_status, "to": status, "commit": step["commit"],
                            "subject": step["subject"], "summary": step["summaries"].get(case_id, "")})
                break
    return out


def text(report: dict) -> str:
    lines = [f"series {report['repo']} {report['base']}..{report['tip'][:12]}", ""]
    for s in report["steps"]:
        b = s["build"]
        build = (f"build ok {b['seconds']:.0f}s" + (" (cached)" if b.get("cached") else "")) if b["ok"] \
            else f"BUILD FAILED: {b['error']}"
        boot = "" if "boot" not in s else ("boot ok" if s["boot"]["ok"] else f"BOOT FAILED: {s['boot']['error']}")
        counts = {}
        for v in s.get("verdicts", {}).values():
            counts[v] = counts.get(v, 0) + 1
        verdicts = " ".join(f"{n} {k}" for k, n in sorted(counts.items()))
        lines.append(f"{s['commit'][:12]} {s['subject'][:50]:<50}  {build}  {boot}  {verdicts}")
        for w in (b.get("new_warnings") or [])[:5]:
            lines.append(f"    new warning: {w}")
    lines.append("")
    if report["first_changes"]:
        lines.append("first commit at which each case changed:")
        for ch in report["first_changes"]:
            lines.append(f"  {ch['case']}: {ch['from']} -> {ch['to']} at {ch['commit'][:12]} {ch['subject']}")
            lines.append(f"      {ch['summary']}")
    else:
        lines.append("no case changed its verdict across the series")
    return "\n".join(lines)


def exit_code(report: dict) -> int:
    """1 if a commit did not build or boot, or a case went from PASS to FAIL somewhere in the series."""
    broken = any(not s["build"]["ok"] or not s.get("boot", {}).get("ok") for s in report["steps"])
    regressed = any(ch["from"] == "PASS" and ch["to"] == "FAIL" for ch in report["first_changes"])
    return 1 if broken or regressed else 0


def series_out_dir() -> Path:
    return Path("hmmbench-results") / f"series-{dt.datetime.now():%Y%m%d-%H%M%S}"

