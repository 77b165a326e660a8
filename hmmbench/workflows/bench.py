"""``hmmbench bench``: the speed figures, measured side by side in one run, never asserted in a test.

Figures (the accelerator, host CPUs and kernel are printed with them; each min / median / max over
``--repeat`` runs):
* boot to a ready guest (SSH answers, kernel verified, agent deployed), warm caches;
* the warm verdict: ``hmmbench run`` of the whole suite, boot included, with one guest and with two
  (``--jobs 2``), alternating so both see the same machine;
* the cost of one case process: a fresh interpreter per case (one-shot agent) against a process forked
  from the warm agent server, the same case, the same boot;
* the exclusive -> CPU-restore loop in the Python/cffi agent and in a static C program built by the
  harness, the same guest, the same boot, and their ratio;
* with ``--series``: one commit changing one mm/ file on the git import of Debian's 6.12, then build +
  boot + suite: the per-commit cost of a series walk or a bisection step;
* with ``--bisect``: a real bisection over a fresh 16-commit history (one commit breaks a case);
* with ``--cold``: the first verdict from an empty cache (fetch, build without ccache, image, boot,
  suite) in a subprocess, as a fresh machine would see it (apt packages excepted).
The kernel and image build times recorded in the cache manifests are shown too.
"""

from __future__ import annotations

import dataclasses
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from hmmbench import cache, data, progress
from hmmbench.errors import HarnessError
from hmmbench.guest import uapi
from hmmbench.kernel import fixture_history
from hmmbench.reports import results
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


def stats(samples: list[float]) -> dict:
    return {"min": round(min(samples), 3), "median": round(statistics.median(samples), 3),
            "max": round(max(samples), 3), "n": len(samples), "samples": [round(s, 3) for s in samples]}


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
    number = uapi.ioctl_numbers(target.info["release"])["EXCLUSIVE"]
    target.ssh.put_file(binary, "/tmp/exclusive_loop", 0o755)
    py, c = [], []
    for _ in range(repeat):
        r = target.agent(f"bench-loop {iterations}", timeout=600)
        if "error" in r:
            raise HarnessError(f"agent loop: {r['error']}")
        py.append(r["iterations"] / r["seconds"])
        out = target.ssh.run(f"/tmp/exclusive_loop {iterations} {number:#x}", timeout=600)
        if out.status != 0:
            raise HarnessError(f"C loop failed: {out.stderr.strip()}")
        rc = json.loads(out.stdout.strip().splitlines()[-1])
        c.append(rc["iterations"] / rc["seconds"])
    ratio = [a / b for a, b in zip(py, c, strict=True)]
    return {"python_ops_per_s": stats(py), "c_ops_per_s": stats(c), "ratio": stats(ratio), "iterations": iterations}


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
    return {"case": DISPATCH_CASE, "oneshot_seconds": stats(oneshot), "forked_seconds": stats(forked),
            "speedup": stats([a / b for a, b in zip(oneshot, forked, strict=True)])}


def recorded_cold(kernel_key: str, image_dir: Path) -> dict:
    k = cache.read_json(cache.cache_root() / "kernels" / kernel_key / "manifest.json") or {}
    i = cache.read_json(image_dir / "manifest.json") or {}
    return {"kernel_build_seconds": k.get("build_seconds"), "image_build_seconds": i.get("build_seconds")}


def _timed_run(req: run_workflow.RunRequest) -> float:
    start = time.monotonic()
    run_workflow.run(req)
    return time.monotonic() - start


def series_step(req: run_workflow.RunRequest, out_dir: Path, repeat: int) -> list[float]:
    """Commit a one-line change to mm/memory.c on the git import's base, then build + boot + suite."""
    repo = fixture_history.ensure_repo()
    base = fixture_history.git(repo, "rev-parse", fixture_history.BASE_BRANCH)
    samples = []
    for i in range(repeat):
        stamp = f"{time.time_ns()}-{i}"
        commit = fixture_history.commit_change(repo, base, f"bench: touch mm/memory.c ({stamp})", {
            "mm/memory.c": ("#include <linux/kernel_stat.h>", f"#include <linux/kernel_stat.h>\n/* bench {stamp} */")})
        progress.say(f"bench: series step {i + 1}/{repeat}: build + boot + suite at {commit[:12]}")
        samples.append(_timed_run(dataclasses.replace(req, kernel=f"{repo}@{commit}", tree=None,
                                                      out_dir=out_dir / f"series-step-{i}")))
    return samples


def bisect16(req: run_workflow.RunRequest, out_dir: Path) -> dict:
    """A real bisection over 16 fresh commits on the git import (commit 11 breaks exclusive_basic)."""
    from hmmbench.workflows import bisect

    repo = fixture_history.ensure_repo()
    stamp = str(time.time_ns())
    mark = "#include <linux/init.h>"
    parent = fixture_history.BASE_BRANCH
    commits = []
    for i in range(1, 17):
        if i == 11:
            edits = fixture_history.BREAK_EXCLUSIVE_BASIC
        else:
            path, anchor = ("mm/memory.c", "#include <linux/kernel_stat.h>") if i % 2 else ("lib/test_hmm.c", mark)
            edits = {path: (anchor, f"{anchor}\n/* bench {stamp} c{i} */")}
        parent = fixture_history.commit_change(repo, parent, f"bench bisect {stamp} c{i}", edits)
        commits.append(parent)
    breq = bisect.BisectRequest(repo=repo, good=fixture_history.BASE_BRANCH, bad=commits[-1], case="exclusive_basic",
                                   run=dataclasses.replace(req, case_names=[]))
    start = time.monotonic()
    report = bisect.Bisector(breq, out_dir / "bisect16").run()
    seconds = time.monotonic() - start
    if report.first_bad["commit"] != commits[10]:
        raise HarnessError(f"bench bisection named {report.first_bad['commit'][:12]}, not {commits[10][:12]}")
    return {"seconds": round(seconds, 1), "commits": 16, "cycles": report.cycles_this_run}


def cold_first_verdict(kernel: str | None, out_dir: Path) -> dict:
    """``hmmbench run`` from an empty cache and ccache off, in a subprocess (what a fresh clone pays),
    with the profile: where the time went."""
    with tempfile.TemporaryDirectory(prefix="hmmbench-cold-") as tmp:
        env = {**os.environ, "HMMBENCH_CACHE": tmp, "CCACHE_DISABLE": "1"}
        cmd = [sys.executable, "-m", "hmmbench", "run", "--out", str(out_dir / "cold")]
        if kernel:
            cmd += ["--kernel", kernel]
        progress.say("bench: cold first verdict (empty cache, no ccache): minutes; its progress follows")
        start = time.monotonic()
        proc = subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL)  # its progress (stderr) shows live
        seconds = time.monotonic() - start
        images = sorted(Path(tmp, "images").glob("*/manifest.json"))
        image_seconds = (cache.read_json(images[0]) or {}).get("build_seconds") if images else None
    if proc.returncode not in (0, 1):
        raise HarnessError(f"cold run failed (exit {proc.returncode}); its output is above")
    res = results.load(out_dir / "cold" / "results.json")
    kernel_s = res.kernel.build_seconds or 0.0
    boot_s = sum(res.target.boot_seconds)
    cases_s = sum(c.seconds for c in res.cases)
    return {"seconds": round(seconds, 1), "profile": {
        "kernel configure + build": round(kernel_s, 1),
        "guest image (in parallel with the kernel)": image_seconds,
        "boot": round(boot_s, 1), "cases": round(cases_s, 1),
        "fetch, unpack, identity, process start": round(seconds - kernel_s - boot_s - cases_s, 1)}}


def run(req: run_workflow.RunRequest, plan: BenchPlan) -> dict:
    tree_obj, kernel, image = run_workflow.prepare(req)
    out_dir = (req.out_dir or results.RESULTS_DIR / "bench").resolve()
    binary = build_c_loop()
    boots: list[float] = []
    loops: dict = {}
    dispatch: dict = {}
    for i in range(plan.repeat):
        with open_sessions(out_dir / f"boot-{i}", kernel=kernel, image=image, shape=req.shape) as opened:
            session = opened.sessions[0]
            acc, why, guest_cpus = opened.target.accel, opened.target.accel_why, opened.target.cpus
            session.boot()
            boots.append(session.boot_seconds[-1])
            if i == 0:
                with progress.step(f"bench: case process, fresh interpreter vs forked from the server, "
                                   f"{max(3, plan.repeat)} pairs"):
                    dispatch = dispatch_pair(session, plan.repeat)
                with progress.step(f"bench: loop, Python/cffi agent vs C, {plan.iterations} iterations x "
                                   f"{plan.repeat}"):
                    loops = loop_pair(session, binary, plan.iterations, plan.repeat)
    suite: dict[int, list[float]] = {1: [], 2: []}
    for i in range(plan.repeat):
        for jobs in (1, 2):
            progress.say(f"bench: warm verdict {i + 1}/{plan.repeat} with {jobs} guest(s)")
            suite[jobs].append(_timed_run(dataclasses.replace(req, jobs=jobs, out_dir=out_dir / f"suite-j{jobs}-{i}")))
    report = {
        "schema": "hmmbench.bench/2", "accel": acc, "accel_why": why, "host_cpus": os.cpu_count(),
        "guest_cpus": guest_cpus, "kernel": kernel.release, "tree": tree_obj.label,
        "boot_seconds": stats(boots), "warm_suite_seconds": stats(suite[1]),
        "warm_suite_jobs2_seconds": stats(suite[2]),
        "jobs2_speedup": stats([a / b for a, b in zip(suite[1], suite[2], strict=True)]),
        "dispatch": dispatch, "loop": loops, "cold_recorded": recorded_cold(kernel.key, image.rootfs.parent),
    }
    if plan.series:
        report["series_step_seconds"] = stats(series_step(req, out_dir, max(1, plan.repeat - 1)))
    if plan.bisect:
        report["bisect16"] = bisect16(req, out_dir)
    if plan.cold:
        report["cold_first_verdict"] = cold_first_verdict(req.kernel, out_dir)
    results.write_json(out_dir / "bench.json", report)
    return report


def _row(name: str, s: dict | None, unit: str, target: str = "") -> str:
    if not s:
        return f"{name:<50} {'-':>8} {'-':>8} {'-':>8}  {unit:<6} {target}"
    return f"{name:<50} {s['min']:>8.2f} {s['median']:>8.2f} {s['max']:>8.2f}  {unit:<6} {target}"


def _one(name: str, value: float | None, unit: str, target: str = "") -> str:
    shown = f"{value:>8.1f}" if value is not None else f"{'-':>8}"
    return f"{name:<50} {'':>8} {shown} {'':>8}  {unit:<6} {target}"


def table(r: dict) -> str:
    lines = [f"hmmbench bench: {r['kernel']} ({r['tree']}), accelerator {r['accel']} ({r['accel_why']}), "
             f"host CPUs {r['host_cpus']}, guest CPUs {r['guest_cpus']}", "",
             f"{'figure':<50} {'min':>8} {'median':>8} {'max':>8}  {'unit':<6} target"]
    lines.append(_row("boot to ready guest (warm)", r["boot_seconds"], "s"))
    lines.append(_row("warm verdict: boot + whole suite, 1 guest", r["warm_suite_seconds"], "s", "<= 30 s"))
    lines.append(_row("warm verdict: boot + whole suite, 2 guests (-j 2)", r["warm_suite_jobs2_seconds"], "s"))
    lines.append(_row("  speedup of -j 2 (same run)", r["jobs2_speedup"], "x"))
    d = r.get("dispatch") or {}
    lines.append(_row(f"one case ({d.get('case', '-')}), fresh interpreter", d.get("oneshot_seconds"), "s"))
    lines.append(_row(f"one case ({d.get('case', '-')}), forked from server", d.get("forked_seconds"), "s"))
    lines.append(_row("  speedup of the warm server (same boot)", d.get("speedup"), "x"))
    loop = r.get("loop") or {}
    lines.append(_row("exclusive->restore loop, Python/cffi agent", loop.get("python_ops_per_s"), "ops/s"))
    lines.append(_row("exclusive->restore loop, C (static)", loop.get("c_ops_per_s"), "ops/s"))
    lines.append(_row("  ratio Python/C (same guest, same boot)", loop.get("ratio"), "x", ">= 0.5"))
    if "series_step_seconds" in r:
        lines.append(_row("one mm/ file changed: build + boot + suite", r["series_step_seconds"], "s", "<= 90 s"))
    if "bisect16" in r:
        b = r["bisect16"]
        lines.append(_one(f"bisection over 16 commits ({b['cycles']} build-boot cycles)", b["seconds"], "s",
                          "<= 600 s"))
    if "cold_first_verdict" in r:
        lines.append(_one("cold first verdict (empty cache, no ccache)", r["cold_first_verdict"]["seconds"], "s",
                          "<= 360 s"))
    for part, value in (r.get("cold_first_verdict") or {}).get("profile", {}).items():
        lines.append(_one(f"  {part}", value, "s"))
    cold = r["cold_recorded"]
    lines.append(_one("kernel build (recorded in the cache manifest)", cold["kernel_build_seconds"], "s"))
    lines.append(_one("image build (recorded in the cache manifest)", cold["image_build_seconds"], "s"))
    return "\n".join(lines)
