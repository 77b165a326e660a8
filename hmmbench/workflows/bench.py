"""``hmmbench bench``: the speed figures, measured side by side in one run, never asserted in a test.

Figures (the accelerator, host CPUs, kernel and its object count are printed with them; each min /
median / max over ``--repeat`` runs, each target checked on the median, and where a figure has one, the
profile of where its time went):
* boot to a ready guest (SSH answers with the pinned key, kernel verified, agent answering), warm caches;
* the warm ``hmmbench run`` as the user sees it: the command in a process of its own, from its start to
  its exit, whole suite, one guest and two (``--jobs 2``), alternating so both see the same machine;
* the cost of one case process: a fresh interpreter per case (one-shot agent) against a process forked
  from the warm agent server, the same case, the same boot;
* the exclusive -> CPU-restore loop in the Python/cffi agent and in a static C program built by the
  harness, the same guest, the same boot, and their ratio;
* with ``--series``: one commit changing one mm/ file on the git import of Debian's 6.12, then build +
  boot + suite: the per-commit cost of a series walk or a bisection step;
* with ``--bisect``: a real bisection over a fresh 14-commit history (one commit does not build, one
  breaks a case), with its build-boot cycles against ceil(log2(commits)) + skips + 2;
* with ``--cold``: the first verdict from an empty cache (fetch, build without ccache, image, boot,
  suite) in a subprocess, as a fresh machine would see it (apt packages excepted).
The kernel and image build times recorded in the cache manifests are shown too.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from hmmbench import cache, cases, data, progress
from hmmbench.errors import HarnessError
from hmmbench.guest import uapi
from hmmbench.kernel import fixture_history
from hmmbench.reports import results
from hmmbench.reports.bench import BenchReport, Figure
from hmmbench.targets.session import Session, open_sessions
from hmmbench.workflows import run as run_workflow

C_SOURCE = data.BENCH_C / "exclusive_loop.c"
DISPATCH_CASE = "exclusive_bad_args"  # short, and touches the device: the per-process cost dominates


@dataclasses.dataclass(frozen=True)
class BenchPlan:
    repeat: int = 3
    iterations: int = 2000
    series: bool = False
    bisect: bool = False
    cold: bool = False


# Targets (issue "Speed, second round"; 2 cores, TCG).
BOOT_TARGET = 4.0
WARM_RUN_TARGET = 15.0
SERIES_STEP_TARGET = 30.0
BISECT_TARGET = 150.0
COLD_TARGET = 360.0
LOOP_RATIO_TARGET = 0.5


def _median(samples: list[float]) -> float:
    return round(statistics.median(samples), 2)


def build_c_loop() -> Path:
    """The static C baseline, cached by its source hash."""
    key = cache.stable_hash(cache.file_sha256(C_SOURCE), "static")
    out = cache.cache_root() / "bench" / key / "exclusive_loop"
    if out.is_file():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run(["gcc", "-static", "-O2", "-Wall", "-o", str(out), str(C_SOURCE)], capture_output=True,
                          text=True)
    if proc.returncode != 0:
        raise HarnessError(f"building the C loop failed: {proc.stderr.strip()[-300:]}",
                           "needs gcc and the static libc (libc6-dev)")
    return out


def loop_pair(session: Session, binary: Path, iterations: int, repeat: int) -> dict:
    """Python/cffi agent loop and C loop, alternating, in the same boot."""
    target = session.agent
    assert target is not None
    number = uapi.numbers_for(target.info["release"], target.uapi)["EXCLUSIVE"]
    target.ssh.put_file(binary, "/tmp/exclusive_loop", 0o755)
    py, c = [], []
    for _ in range(repeat):
        r = target.agent(f"bench-loop {iterations} --uapi {shlex.quote(json.dumps(target.uapi))}", timeout=600)
        if "error" in r:
            raise HarnessError(f"agent loop: {r['error']}")
        py.append(r["iterations"] / r["seconds"])
        out = target.ssh.run(f"/tmp/exclusive_loop {iterations} {number:#x}", timeout=600)
        if out.status != 0:
            raise HarnessError(f"C loop failed: {out.stderr.strip()}")
        rc = json.loads(out.stdout.strip().splitlines()[-1])
        c.append(rc["iterations"] / rc["seconds"])
    return {"python": py, "c": c, "iterations": iterations}


def dispatch_pair(session: Session, repeat: int) -> dict:
    """Seconds per case process: fresh interpreter vs forked from the warm server, alternating."""
    target = session.agent
    assert target is not None
    target.run_case(DISPATCH_CASE, {}, 120)  # start the server: its start-up is paid once per boot
    oneshot, forked = [], []
    for _ in range(max(3, repeat)):
        t0 = time.monotonic()
        target.run_case_oneshot(DISPATCH_CASE, {}, 120)
        oneshot.append(time.monotonic() - t0)
        t0 = time.monotonic()
        target.run_case(DISPATCH_CASE, {}, 120)
        forked.append(time.monotonic() - t0)
    return {"case": DISPATCH_CASE, "oneshot": oneshot, "forked": forked}


def recorded_build(kernel_key: str) -> dict:
    return cache.read_json(cache.cache_root() / "kernels" / kernel_key / "manifest.json") or {}


@dataclasses.dataclass
class UserRun:
    """One ``hmmbench run`` in a process of its own, timed from its start to its exit, with its results."""

    wall: float
    res: results.RunResult

    def profile(self) -> dict[str, float]:
        boot = sum(self.res.target.boot_seconds)
        cases = sum(c.seconds for c in self.res.cases)
        build = self.res.kernel.build_seconds if self.res.kernel.cached is False else 0.0
        build = build or 0.0
        return {"interpreter start, imports, input checks, exit": self.wall - self.res.seconds,
                "kernel build (0 when cached)": build, "boot": boot, "cases": cases,
                "look-ups, accelerator, guest shutdown, results files": self.res.seconds - boot - cases - build}


def user_run(args: list[str], out: Path, env: dict | None = None) -> UserRun:
    """``python -m hmmbench run ARGS --out OUT`` as a user runs it: a process of its own, its progress shown."""
    start = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "hmmbench", "run", *args, "--out", str(out)],
                          env={**os.environ, **(env or {})}, stdout=subprocess.DEVNULL)
    wall = time.monotonic() - start
    if proc.returncode not in (0, 1):
        raise HarnessError(f"bench: hmmbench run {' '.join(args)} failed (exit {proc.returncode}); its output is above")
    return UserRun(wall, results.load(out / "results.json"))


def device_exclusive_suite() -> list[str]:
    """The 17 cases of the device-exclusive suite the warm-run target was set on (order below 200); the
    device-memory families came later and are measured beside it, not against it."""
    return [name for name, spec in cases.load_all().items() if spec.order < 200]


def _medians(profiles: list[dict[str, float]]) -> dict[str, float]:
    return {k: _median([p[k] for p in profiles]) for k in profiles[0]} if profiles else {}


def _kernel_args(req: run_workflow.RunRequest) -> list[str]:
    if req.tree:
        return ["--tree", req.tree]
    return ["--kernel", req.kernel] if req.kernel else []


def series_step(req: run_workflow.RunRequest, out_dir: Path, repeat: int) -> Figure:
    """Commit a one-line change to mm/memory.c on the git import's base, then build + boot + suite, as
    ``hmmbench run --kernel REPO@COMMIT`` (the per-commit cost of a series walk)."""
    repo = fixture_history.ensure_repo()
    base = fixture_history.git(repo, "rev-parse", fixture_history.BASE_BRANCH)
    runs = []
    for i in range(repeat):
        stamp = f"{time.time_ns()}-{i}"
        commit = fixture_history.commit_change(repo, base, f"bench: touch mm/memory.c ({stamp})", {
            "mm/memory.c": ("#include <linux/kernel_stat.h>", f"#include <linux/kernel_stat.h>\n/* bench {stamp} */")})
        progress.say(f"bench: series step {i + 1}/{repeat}: build + boot + device-exclusive suite at {commit[:12]}")
        suite = [a for name in device_exclusive_suite() for a in ("--case", name)]
        runs.append(user_run(["--kernel", f"{repo}@{commit}", *suite], out_dir / f"series-step-{i}"))
    return Figure("one mm/ file changed: build + boot + device-exclusive suite", [r.wall for r in runs], "s",
                  SERIES_STEP_TARGET,
                  profile=_medians([r.profile() for r in runs]))


def bisect14(req: run_workflow.RunRequest, out_dir: Path) -> Figure:
    """A real bisection over 14 fresh commits on the git import: commit 6 does not build, commit 10
    breaks exclusive_basic; its build-boot cycles against ceil(log2(14)) + skips + 2."""
    repo = fixture_history.ensure_repo()
    stamp = str(time.time_ns())
    mark = "#include <linux/init.h>"
    broken = f"#error bench {stamp}: this commit does not build"
    parent = fixture_history.BASE_BRANCH
    commits = []
    for i in range(1, 15):
        if i == 10:
            edits = fixture_history.BREAK_EXCLUSIVE_BASIC
        elif i == 6:
            edits = {"mm/memory.c": ("#include <linux/kernel_stat.h>", f"#include <linux/kernel_stat.h>\n{broken}")}
        elif i == 7:  # the next commit fixes the build again: exactly one unbuildable commit
            edits = {"mm/memory.c": (f"\n{broken}", "")}
        else:
            path, anchor = ("mm/memory.c", "#include <linux/kernel_stat.h>") if i % 2 else ("lib/test_hmm.c", mark)
            edits = {path: (anchor, f"{anchor}\n/* bench {stamp} c{i} */")}
        parent = fixture_history.commit_change(repo, parent, f"bench bisect {stamp} c{i}", edits)
        commits.append(parent)
    from hmmbench.workflows import bisect

    breq = bisect.BisectRequest(repo=repo, good=fixture_history.BASE_BRANCH, bad=commits[-1], case="exclusive_basic",
                                run=dataclasses.replace(req, case_names=[]))
    start = time.monotonic()
    report = bisect.Bisector(breq, out_dir / "bisect14").run()
    seconds = time.monotonic() - start
    if report.first_bad["commit"] != commits[9]:
        raise HarnessError(f"bench bisection named {report.first_bad['commit'][:12]}, not {commits[9][:12]}")
    budget = math.ceil(math.log2(len(commits))) + report.skips + 2
    builds = [s.build_seconds or 0.0 for s in report.steps]
    return Figure("bisection over 14 commits, one unbuildable", [seconds], "s", BISECT_TARGET,
                  note=f"{report.cycles_this_run} build-boot cycles, budget ceil(log2(14)) + {report.skips} skip(s)"
                       f" + 2 = {budget}: {'met' if report.cycles_this_run <= budget else 'NOT met'}",
                  profile={"builds (all cycles)": round(sum(builds), 1),
                           "boots and cases (all cycles)": round(seconds - sum(builds), 1)})


def cold_first_verdict(kernel: str | None, out_dir: Path) -> Figure:
    """``hmmbench run`` from an empty cache and ccache off, in a subprocess (what a fresh clone pays after
    ci/setup), with the profile: where the time went."""
    with tempfile.TemporaryDirectory(prefix="hmmbench-cold-") as tmp:
        progress.say("bench: cold first verdict (empty cache, no ccache): minutes; its progress follows")
        cold = user_run(["--kernel", kernel] if kernel else [], out_dir / "cold",
                        {"HMMBENCH_CACHE": tmp, "CCACHE_DISABLE": "1"})
        images = sorted(Path(tmp, "images").glob("*/manifest.json"))
        image_seconds = (cache.read_json(images[0]) or {}).get("build_seconds") if images else None
    prof = cold.profile()
    prof["guest image (built in parallel with the kernel)"] = image_seconds or 0.0
    return Figure("cold first verdict (empty cache, no ccache)", [cold.wall], "s", COLD_TARGET,
                  profile={k: round(v, 1) for k, v in prof.items()})


def run(req: run_workflow.RunRequest, plan: BenchPlan) -> BenchReport:
    tree_obj, kernel, image = run_workflow.prepare(req)
    out_dir = (req.out_dir or results.RESULTS_DIR / "bench").resolve()
    binary = build_c_loop()
    boots: list[float] = []
    phases: list[dict] = []
    loops: dict = {}
    dispatch: dict = {}
    acc = why = guest_cpus = None
    for i in range(plan.repeat):
        with open_sessions(out_dir / f"boot-{i}", kernel=kernel, image=image, shape=req.shape) as opened:
            session = opened.sessions[0]
            acc, why, guest_cpus = opened.target.accel, opened.target.accel_why, opened.target.cpus
            session.boot()
            boots.append(session.boot_seconds[-1])
            phases.append(session.boot_phases[-1])
            if i == 0:
                with progress.step(f"bench: case process, fresh interpreter vs forked from the server, "
                                   f"{max(3, plan.repeat)} pairs"):
                    dispatch = dispatch_pair(session, plan.repeat)
                with progress.step(f"bench: loop, Python/cffi agent vs C, {plan.iterations} iterations x "
                                   f"{plan.repeat}"):
                    loops = loop_pair(session, binary, plan.iterations, plan.repeat)
    runs: dict[int, list[UserRun]] = {1: [], 2: []}
    whole: list[UserRun] = []
    exclusive_suite = [a for name in device_exclusive_suite() for a in ("--case", name)]
    for i in range(plan.repeat):
        for jobs in (1, 2):
            progress.say(f"bench: warm hmmbench run {i + 1}/{plan.repeat} with {jobs} guest(s)")
            runs[jobs].append(user_run([*_kernel_args(req), *exclusive_suite, "--jobs", str(jobs)],
                                       out_dir / f"suite-j{jobs}-{i}"))
        progress.say(f"bench: warm hmmbench run of every case {i + 1}/{plan.repeat}")
        whole.append(user_run(_kernel_args(req), out_dir / f"all-{i}"))
    built = recorded_build(kernel.key)
    figures = [
        Figure("boot to a ready guest (warm)", boots, "s", BOOT_TARGET, profile=_medians(phases)),
        Figure(f"warm hmmbench run, device-exclusive suite ({len(exclusive_suite) // 2} cases), 1 guest",
               [r.wall for r in runs[1]], "s", WARM_RUN_TARGET, profile=_medians([r.profile() for r in runs[1]])),
        Figure("warm hmmbench run, device-exclusive suite, 2 guests (-j 2)", [r.wall for r in runs[2]], "s"),
        Figure("  speedup of -j 2 (same run)", [a.wall / b.wall for a, b in zip(runs[1], runs[2], strict=True)], "x"),
        Figure(f"warm hmmbench run, every case ({len(whole[0].res.cases) if whole else 0} runs), 1 guest",
               [r.wall for r in whole], "s", profile=_medians([r.profile() for r in whole])),
        Figure(f"one case ({dispatch['case']}), fresh interpreter", dispatch["oneshot"], "s"),
        Figure(f"one case ({dispatch['case']}), forked from the server", dispatch["forked"], "s"),
        Figure("exclusive->restore loop, Python/cffi agent", loops["python"], "ops/s"),
        Figure("exclusive->restore loop, C (static)", loops["c"], "ops/s"),
        Figure("  ratio Python/C (same guest, same boot)",
               [a / b for a, b in zip(loops["python"], loops["c"], strict=True)], "x", LOOP_RATIO_TARGET, True),
    ]
    if plan.series:
        figures.append(series_step(req, out_dir, max(1, plan.repeat - 1)))
    if plan.bisect:
        figures.append(bisect14(req, out_dir))
    if plan.cold:
        figures.append(cold_first_verdict(req.kernel, out_dir))
    figures.append(Figure("kernel build (as recorded in its cache manifest)", [built.get("build_seconds") or 0.0], "s"))
    report = BenchReport(kernel.release, tree_obj.label, acc, why, os.cpu_count(), guest_cpus, built.get("objects"),
                         built.get("compiled_objects"), figures)
    results.write_json(out_dir / "bench.json", report)
    return report
