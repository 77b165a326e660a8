"""``hmmbench run``: kernel -> image -> boot -> cases -> verdicts, with kernel trouble as a result.

Each case runs in a fresh agent process. A case that does not answer within its timeout is a hang,
and a connection that dies mid-case is a possible crash: either way the console excerpt is saved
beside the results, the verdict is FAIL with the crash signature, and a fresh guest is booted for the
remaining cases.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import time
from dataclasses import dataclass, field
from pathlib import Path

from hmmbench import __version__, accel, cache, cases, progress, report, results, sources
from hmmbench.image import DEFAULT_RECIPE, GuestImage, ImageBuilder
from hmmbench.kbuild import BuiltKernel, KernelBuilder
from hmmbench.netns import TapNetwork
from hmmbench.qemu import GuestConfig
from hmmbench.session import QemuSession
from hmmbench.ssh import CommandTimeout, ConnectionLost
from hmmbench.target import AgentError
from hmmbench.verdict import Status


@dataclass
class RunRequest:
    kernel: str | None = None
    tree: str | None = None
    case_names: list[str] = field(default_factory=list)
    out_dir: Path | None = None
    accel: str = "auto"
    base: str = "tinyconfig"
    fragments: list[Path] | None = None
    recipe: str = DEFAULT_RECIPE
    cpus: int = 2
    memory_mib: int = 2048
    numa_nodes: int = 2
    junit: Path | None = None
    case_timeout: float | None = None
    net: str = "user"  # "user" (QEMU user-mode, SSH forwarded on 127.0.0.1) or "tap" (pyroute2 namespace)
    target_url: str | None = None  # ssh://[user@]host[:port]: a running machine instead of a QEMU guest
    remote: object | None = None  # hmmbench.remote.RemoteOptions
    kexec: str | None = None  # with target_url: a KERNEL (built by hmmbench) or a bzImage path to kexec into


def select_cases(names: list[str]) -> list[cases.CaseSpec]:
    from hmmbench.errors import HarnessError

    known = cases.load_all()
    if not names:
        return list(known.values())
    unknown = [n for n in names if n not in known]
    if unknown:
        raise HarnessError(f"unknown case(s): {', '.join(unknown)}", f"known: {', '.join(known)}")
    return [known[n] for n in names]


def prepare(req: RunRequest) -> tuple[sources.KernelTree, BuiltKernel, GuestImage]:
    """Fetch/identify the tree, build the kernel and the image (all cached)."""
    tree = sources.resolve_kernel(req.kernel, req.tree)
    kernel = KernelBuilder(tree, req.fragments, req.base).build()
    image = ImageBuilder(req.recipe).build()
    return tree, kernel, image


def default_out_dir(release: str) -> Path:
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    return Path("hmmbench-results") / f"{stamp}-{release}"


def run(req: RunRequest) -> tuple[int, dict]:
    started = time.monotonic()
    specs = select_cases(req.case_names)
    if req.target_url:
        return run_remote(req, specs, started)
    tree, kernel, image = prepare(req)
    return run_prepared(req, specs, tree, kernel, image, started)


def run_prepared(req: RunRequest, specs: list[cases.CaseSpec], tree: sources.KernelTree, kernel: BuiltKernel,
                 image: GuestImage, started: float | None = None) -> tuple[int, dict]:
    """Boot ``kernel`` and run ``specs``; for callers that built the kernel themselves (series, bisect)."""
    started = time.monotonic() if started is None else started
    acc, why = accel.choose(kernel.bzimage, image.rootfs, req.accel)
    out_dir = (req.out_dir or default_out_dir(kernel.release)).resolve()
    cfg = GuestConfig(memory_mib=req.memory_mib, cpus=req.cpus, numa_nodes=req.numa_nodes, accel=acc)
    kernel_meta = {
        "label": tree.label, "release": kernel.release, "banner": kernel.banner,
        "tree_identity": kernel.tree_identity, "config_hash": kernel.config_hash, "build_key": kernel.key,
        "build_seconds": kernel.build_seconds, "cached": kernel.cached,
    }
    target_meta = {"kind": "qemu", "accel": acc, "accel_why": why, "cpus": cfg.cpus, "memory_mib": cfg.memory_mib,
                   "numa_nodes": cfg.numa_nodes}
    image_meta = {"recipe": image.recipe, "key": image.key, "cached": image.cached}
    with TapNetwork() if req.net == "tap" else contextlib.nullcontext() as net:
        if net is not None:
            cfg.tap = net.add_guest()
            target_meta["net"] = f"tap {cfg.tap.ifname} {cfg.tap.ip} in {net.name}"
        session = QemuSession(kernel, image, out_dir, cfg, net=net)
        return _run_session(req, specs, session, out_dir, started, kernel_meta, target_meta, image_meta)


def run_remote(req: RunRequest, specs: list[cases.CaseSpec], started: float) -> tuple[int, dict]:
    """The suite on a machine reached over SSH (already running the kernel under test)."""
    from hmmbench import remote

    url = remote.parse_url(req.target_url or "")
    opts = req.remote or remote.RemoteOptions()
    target_meta: dict = {"kind": "ssh", "url": str(url)}
    kernel_meta = None
    if req.kexec:
        bzimage, kernel = _kexec_kernel(req)
        target_meta["kexec"] = remote.kexec_into(url, opts, bzimage, kernel.release if kernel else None,
                                                 kernel.banner if kernel else None)
        if kernel is not None:
            kernel_meta = {"label": req.kexec, "release": kernel.release, "banner": kernel.banner,
                           "tree_identity": kernel.tree_identity, "config_hash": kernel.config_hash,
                           "build_key": kernel.key, "build_seconds": kernel.build_seconds, "cached": kernel.cached}
    session = remote.RemoteSession(url, opts)
    out_dir = (req.out_dir or default_out_dir(url.host)).resolve()
    return _run_session(req, specs, session, out_dir, started, kernel_meta, target_meta, None)


def _kexec_kernel(req: RunRequest) -> tuple[Path, BuiltKernel | None]:
    """--kexec KERNEL: a bzImage file as it is, or a kernel spec built by hmmbench (cached)."""
    spec = req.kexec or ""
    if Path(spec).is_file():
        return Path(spec), None
    kernel = KernelBuilder(sources.resolve_spec(spec), req.fragments, req.base).build()
    return kernel.bzimage, kernel


def _run_session(req: RunRequest, specs: list[cases.CaseSpec], session, out_dir: Path, started: float,
                 kernel_meta: dict | None, target_meta: dict, image_meta: dict | None) -> tuple[int, dict]:
    """Boot or connect, run the cases, write results.json, JUnit and evidence.txt."""
    case_results: list[dict] = []
    with cache.exclusive_dir(out_dir, "results directory"):
        try:
            session.boot()
            case_results = execute(session, specs, out_dir, req.case_timeout)
        finally:
            session.close()
    info = session.target_info
    if kernel_meta is None:  # a remote machine: the kernel is whatever it runs
        config = info.get("config") or {}
        kernel_meta = {"label": target_meta.get("url", ""), "release": info.get("release"),
                       "banner": info.get("proc_version"), "tree_identity": "unknown (running kernel)",
                       "config_hash": cache.stable_hash(sorted(config.items())) if config else "unknown",
                       "build_key": None, "build_seconds": None, "cached": None}
    res = {
        "schema": results.SCHEMA,
        "hmmbench_version": __version__,
        "started": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "seconds": round(time.monotonic() - started, 1),
        "kernel": kernel_meta,
        "image": image_meta,
        "target": {**target_meta, "cpus": target_meta.get("cpus", info.get("nproc")),
                   "numa_nodes": target_meta.get("numa_nodes", info.get("numa_nodes")), "boots": session.boots,
                   "boot_seconds": [round(s, 1) for s in session.boot_seconds],
                   "consoles": [str(p) for p in session.consoles]},
        "target_info": {k: v for k, v in info.items() if k != "config"},
        "target_config": info.get("config"),
        "cases": case_results,
        "summary": results.summary(case_results),
        "results_path": str(out_dir / "results.json"),
    }
    results.write_json(out_dir / "results.json", res)
    results.write_junit(req.junit or out_dir / "junit.xml", res)
    (out_dir / "evidence.txt").write_text(report.evidence(res) + "\n")
    return results.exit_code(case_results), res


def execute(session: QemuSession, specs: list[cases.CaseSpec], out_dir: Path,
            timeout_override: float | None = None) -> list[dict]:
    """Run every variant of every case; recover from hangs and crashes with a fresh guest."""
    out: list[dict] = []
    case_dir = out_dir / "cases"
    case_dir.mkdir(exist_ok=True)
    for spec in specs:
        for params in spec.variants:
            case_id = spec.variant_id(params)
            if session.target is None:
                session.boot()
            assert session.target is not None
            info = session.target.info
            mark = len(session.console_lines())
            t0 = time.monotonic()
            restart_reason = None
            timeout = timeout_override or spec.timeout
            try:
                record = session.target.run_case(spec.name, params, timeout)
            except CommandTimeout:
                record = {"case": spec.name, "params": params, "status": "hang", "timeout": timeout}
                restart_reason = f"{case_id} hung"
            except (ConnectionLost, AgentError) as exc:
                if isinstance(exc, ConnectionLost) or not session.alive():
                    record = {"case": spec.name, "params": params, "status": "lost", "reason": str(exc)}
                    restart_reason = f"{case_id} lost the target"
                else:
                    record = {"case": spec.name, "params": params, "status": "error", "reason": str(exc)}
            seconds = time.monotonic() - t0
            if restart_reason:
                time.sleep(2.0)  # let the console catch the last kernel messages
            console_lines = session.console_lines()[mark:]
            verdict = cases.judge_record(spec, record, info, console_lines)
            entry = {"id": case_id, "case": spec.name, "params": params, "seconds": round(seconds, 2),
                     "verdict": verdict.to_dict(), "record": record, "console_excerpt": None}
            if verdict.crashes or restart_reason:
                excerpt = case_dir / f"{_safe(case_id)}.console.txt"
                excerpt.write_text("\n".join(console_lines) + "\n")
                entry["console_excerpt"] = str(excerpt)
            results.write_json(case_dir / f"{_safe(case_id)}.json", entry)
            out.append(entry)
            _announce(entry)
            if restart_reason:
                try:
                    session.restart(restart_reason)
                except Exception as exc:  # noqa: BLE001 - remaining cases become ERROR, not a crash
                    progress.say(f"could not boot a fresh guest: {exc}")
                    session.target = None
                    return out + _unrun(specs, spec, params, f"no guest after {restart_reason}: {exc}")
    return out


def _unrun(specs: list[cases.CaseSpec], cur: cases.CaseSpec, cur_params: dict, why: str) -> list[dict]:
    entries, started = [], False
    for spec in specs:
        for params in spec.variants:
            if started:
                v = {"status": str(Status.ERROR), "summary": why, "evidence": [], "failed_checks": [], "crashes": []}
                entries.append({"id": spec.variant_id(params), "case": spec.name, "params": params, "seconds": 0,
                                "verdict": v, "record": None, "console_excerpt": None})
            if spec is cur and params is cur_params:
                started = True
    return entries


def _safe(case_id: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_=," else "_" for ch in case_id)


def _announce(entry: dict) -> None:
    v = entry["verdict"]
    progress.say(f"{entry['id']}: {v['status']} ({entry['seconds']:.1f}s) {v['summary']}")


def rejudge(results_path: Path) -> tuple[int, dict]:
    """Re-run the verdict rules on recorded observations (no target needed)."""
    data = results.load(results_path)
    known = cases.load_all()
    info = dict(data.get("target_info") or {})
    for entry in data["cases"]:
        spec = known.get(entry["case"])
        if spec is None or entry.get("record") is None:
            continue
        excerpt = Path(entry["console_excerpt"]) if entry.get("console_excerpt") else None
        lines = excerpt.read_text(errors="replace").splitlines() if excerpt and excerpt.is_file() else None
        entry["verdict"] = cases.judge_record(spec, entry["record"], info, lines).to_dict()
    data["summary"] = results.summary(data["cases"])
    return results.exit_code(data["cases"]), data
