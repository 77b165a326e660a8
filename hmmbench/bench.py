"""``hmmbench bench``: the speed figures, measured side by side in one run, never asserted in a test.

Figures (2 cores; the accelerator is named in the output):
* boot to a ready guest (SSH answers, kernel verified, agent deployed), warm caches;
* the whole suite, warm (boot included), the "warm verdict";
* the exclusive -> CPU-restore loop in the Python/cffi agent and the same loop in a static C program
  built by the harness, both in the same guest in the same boot, and their ratio;
* with ``--tree REPO`` (a git tree, e.g. the git import of Debian's 6.12): one commit changing one mm/
  file, then build + boot + suite: the per-commit cost of a series walk or a bisection step, and the
  derived estimate for a 16-commit bisection (ceil(log2 16) + 2 steps);
* the cold costs recorded when the cached kernels and image were built (fetch + build + image).
Every figure is min / median / max over ``--repeat`` runs.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import statistics
import subprocess
import time
from pathlib import Path

from hmmbench import accel, cache, gitrepo, progress, results, runner
from hmmbench.errors import HarnessError
from hmmbench.guest import uapi
from hmmbench.qemu import GuestConfig
from hmmbench.session import QemuSession

C_SOURCE = Path(__file__).resolve().parent / "bench_c" / "exclusive_loop.c"


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
        raise HarnessError(f"building the C loop failed: {proc.stderr.strip()[-300:]}")
    return out


def loop_pair(session: QemuSession, binary: Path, iterations: int, repeat: int) -> dict:
    """Python/cffi agent loop and C loop, alternating, in the same boot."""
    target = session.target
    assert target is not None
    release = target.info["release"]
    number = uapi.ioctl_numbers(release)["EXCLUSIVE"]
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


def recorded_cold(kernel_key: str, image_dir: Path) -> dict:
    k = cache.read_json(cache.cache_root() / "kernels" / kernel_key / "manifest.json") or {}
    i = cache.read_json(image_dir / "manifest.json") or {}
    return {"kernel_build_seconds": k.get("build_seconds"), "image_build_seconds": i.get("build_seconds")}


def series_step(req: runner.RunRequest, repo: Path, repeat: int) -> list[float]:
    """Commit a one-line change to mm/memory.c on the repo's base, then build + boot + suite at it."""
    samples = []
    base = gitrepo.git(repo, "rev-parse", gitrepo.BASE_BRANCH)
    for i in range(repeat):
        stamp = f"{time.time_ns()}-{i}"
        commit = gitrepo.commit_change(repo, base, f"bench: touch mm/memory.c ({stamp})", {
            "mm/memory.c": ("#include <linux/kernel_stat.h>", f"#include <linux/kernel_stat.h>\n/* bench {stamp} */")})
        start = time.monotonic()
        sub = dataclasses.replace(req, kernel=f"{repo}@{commit}", tree=None,
                                  out_dir=(req.out_dir or Path("hmmbench-results/bench")) / f"series-step-{i}")
        runner.run(sub)
        samples.append(time.monotonic() - start)
    return samples


def run(req: runner.RunRequest, repeat: int = 3, iterations: int = 2000, tree: str | None = None) -> dict:
    tree_obj, kernel, image = runner.prepare(req)
    acc, why = accel.choose(kernel.bzimage, image.rootfs, req.accel)
    out_dir = (req.out_dir or Path("hmmbench-results") / "bench").resolve()
    cfg = GuestConfig(memory_mib=req.memory_mib, cpus=req.cpus, numa_nodes=req.numa_nodes, accel=acc)
    binary = build_c_loop()
    boots, suite = [], []
    loops: dict = {}
    for i in range(repeat):
        session = QemuSession(kernel, image, out_dir / f"boot-{i}", cfg)
        try:
            session.boot()
            boots.append(session.boot_seconds[-1])
            if i == 0:
                with progress.step(f"loop: Python/cffi agent vs C, {iterations} iterations x {repeat}"):
                    loops = loop_pair(session, binary, iterations, repeat)
        finally:
            session.close()
    for i in range(repeat):
        start = time.monotonic()
        runner.run(dataclasses.replace(req, out_dir=out_dir / f"suite-{i}"))
        suite.append(time.monotonic() - start)
    report = {
        "schema": "hmmbench.bench/1", "accel": acc, "accel_why": why, "host_cpus": os.cpu_count(),
        "guest_cpus": cfg.cpus, "kernel": kernel.release, "tree": tree_obj.label,
        "boot_seconds": stats(boots), "warm_suite_seconds": stats(suite), "loop": loops,
        "cold_recorded": recorded_cold(kernel.key, image.rootfs.parent),
    }
    if tree:
        repo = Path(tree).expanduser().resolve() if tree != "debian-6.12" else gitrepo.ensure_repo()
        steps = series_step(req, repo, max(1, repeat - 1))
        report["series_step_seconds"] = stats(steps)
        report["bisect16_estimate_seconds"] = round(statistics.median(steps) * (math.ceil(math.log2(16)) + 2), 1)
    results.write_json(out_dir / "bench.json", report)
    return report


def _row(name: str, s: dict | None, unit: str, target: str = "") -> str:
    if not s:
        return f"{name:<46} {'-':>9} {'-':>9} {'-':>9}  {unit:<6} {target}"
    return f"{name:<46} {s['min']:>9.2f} {s['median']:>9.2f} {s['max']:>9.2f}  {unit:<6} {target}"


def table(r: dict) -> str:
    lines = [f"hmmbench bench: {r['kernel']} ({r['tree']}), accelerator {r['accel']} ({r['accel_why']}), "
             f"host CPUs {r['host_cpus']}, guest CPUs {r['guest_cpus']}", "",
             f"{'figure':<46} {'min':>9} {'median':>9} {'max':>9}  {'unit':<6} target"]
    lines.append(_row("boot to ready guest (warm)", r["boot_seconds"], "s"))
    lines.append(_row("warm verdict: boot + whole suite", r["warm_suite_seconds"], "s", "<= 30 s"))
    loop = r.get("loop") or {}
    lines.append(_row("exclusive->restore loop, Python/cffi agent", loop.get("python_ops_per_s"), "ops/s"))
    lines.append(_row("exclusive->restore loop, C (static)", loop.get("c_ops_per_s"), "ops/s"))
    lines.append(_row("ratio Python/C (same guest, same boot)", loop.get("ratio"), "x", ">= 0.5"))
    if "series_step_seconds" in r:
        lines.append(_row("one mm/ file changed: build + boot + suite", r["series_step_seconds"], "s", "<= 90 s"))
        lines.append(f"{'bisection over 16 commits (6 steps, derived)':<46} {'':>9} "
                     f"{r['bisect16_estimate_seconds']:>9.1f} {'':>9}  s      <= 600 s")
    cold = r["cold_recorded"]
    lines.append(f"{'cold kernel build (recorded when built)':<46} {'':>9} {cold['kernel_build_seconds'] or 0:>9.1f}")
    lines.append(f"{'cold image build (recorded when built)':<46} {'':>9} {cold['image_build_seconds'] or 0:>9.1f}")
    return "\n".join(lines)

