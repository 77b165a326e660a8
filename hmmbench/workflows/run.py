"""``hmmbench run``: kernel -> image -> boot -> cases -> verdicts, with kernel trouble as a result.

Each case runs in a fresh agent process. A case that does not answer within its timeout is a hang,
and a connection that dies mid-case is a possible crash: either way the console excerpt is saved
beside the results, the verdict is FAIL with the crash signature, and a fresh guest is booted for the
remaining cases.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from hmmbench import __version__, cache, cases, progress
from hmmbench.cases import kernel_reports as console
from hmmbench.cases.verdict import Status
from hmmbench.cases.watch import CaseWatch, is_fatal
from hmmbench.errors import HarnessError
from hmmbench.kernel import sources
from hmmbench.kernel.build import BuiltKernel, KernelBuilder
from hmmbench.reports import results
from hmmbench.reports import text as report
from hmmbench.targets import workers
from hmmbench.targets.agent import AgentError, CaseEnded
from hmmbench.targets.ssh import CommandTimeout, ConnectionLost
from hmmbench.vm import accel, netns
from hmmbench.vm.image import DEFAULT_RECIPE, GuestImage, ImageBuilder
from hmmbench.vm.netns import TapNetwork
from hmmbench.vm.qemu import GuestConfig
from hmmbench.vm.session import QemuSession


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
    remote: object | None = None  # hmmbench.targets.remote.RemoteOptions
    kexec: str | None = None  # with target_url: a KERNEL (built by hmmbench) or a bzImage path to kexec into
    jobs: int = 1  # QEMU guests running cases at once (each a worker of one queue)
    inventory: Path | None = None  # a TOML file of ssh:// machines, one worker each (instead of target_url)
    append: list[str] = field(default_factory=list)  # extra kernel command line words for QEMU guests


def select_cases(names: list[str]) -> list[cases.CaseSpec]:
    known = cases.load_all()
    if not names:
        return list(known.values())
    unknown = [n for n in names if n not in known]
    if unknown:
        raise HarnessError(f"unknown case(s): {', '.join(unknown)}", f"known: {', '.join(known)}")
    return [known[n] for n in names]


def prepare(req: RunRequest) -> tuple[sources.KernelTree, BuiltKernel, GuestImage]:
    """Fetch/identify the tree, build the kernel and the image (all cached).

    On a cold cache the image (mmdebstrap: mostly download and unpack) is built in a thread while the
    source is fetched and the kernel compiles (CPU): the cold first verdict pays for the longer of
    the two, not their sum.
    """
    built: dict = {}

    def build_image() -> None:
        try:
            built["image"] = ImageBuilder(req.recipe).build()
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
            built["error"] = exc

    image_thread = threading.Thread(target=build_image, name="image-build", daemon=True)
    image_thread.start()
    tree = sources.resolve_kernel(req.kernel, req.tree)
    kernel = KernelBuilder(tree, req.fragments, req.base).build()
    image_thread.join()
    if "error" in built:
        raise built["error"]
    return tree, kernel, built["image"]


def default_out_dir(release: str) -> Path:
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    return Path("hmmbench-results") / f"{stamp}-{release}"


def run(req: RunRequest) -> tuple[int, dict]:
    started = time.monotonic()
    specs = select_cases(req.case_names)
    if req.target_url or req.inventory:
        return run_remote(req, specs, started)
    tree, kernel, image = prepare(req)
    return run_prepared(req, specs, tree, kernel, image, started)


def run_prepared(req: RunRequest, specs: list[cases.CaseSpec], tree: sources.KernelTree, kernel: BuiltKernel,
                 image: GuestImage, started: float | None = None) -> tuple[int, dict]:
    """Boot ``kernel`` and run ``specs``; for callers that built the kernel themselves (series, bisect)."""
    started = time.monotonic() if started is None else started
    acc, why = accel.choose(kernel.bzimage, image.rootfs, req.accel)
    out_dir = (req.out_dir or default_out_dir(kernel.release)).resolve()
    cfg = GuestConfig(memory_mib=req.memory_mib, cpus=req.cpus, numa_nodes=req.numa_nodes, accel=acc,
                      extra_append=list(req.append))
    kernel_meta = _kernel_meta(tree.label, kernel)
    target_meta = {"kind": "qemu", "accel": acc, "accel_why": why, "cpus": cfg.cpus, "memory_mib": cfg.memory_mib,
                   "numa_nodes": cfg.numa_nodes, "append": cfg.extra_append}
    image_meta = {"recipe": image.recipe, "key": image.key, "cached": image.cached}
    jobs = max(1, req.jobs)
    if jobs > 1:
        target_meta["jobs"] = jobs
    with TapNetwork() if req.net == "tap" else contextlib.nullcontext() as net:
        sessions = []
        for n in range(jobs):
            guest_cfg = dataclasses.replace(cfg, tap=net.add_guest() if net is not None else None)
            if guest_cfg.tap is not None:
                target_meta.setdefault("net", f"tap on {netns.BRIDGE} in {net.name}")
            sessions.append(QemuSession(kernel, image, out_dir, guest_cfg, net=net,
                                        label=f"w{n + 1}-" if jobs > 1 else ""))
        return _run_session(req, specs, sessions, out_dir, started, kernel_meta, target_meta, image_meta)


def _kernel_meta(label: str, kernel: BuiltKernel) -> dict:
    """results.json's "kernel": what was built, from what, and whether it came from the cache."""
    return {"label": label, "release": kernel.release, "banner": kernel.banner,
            "tree_identity": kernel.tree_identity, "config_hash": kernel.config_hash, "build_key": kernel.key,
            "build_seconds": kernel.build_seconds, "cached": kernel.cached,
            "uapi": kernel.uapi.to_dict() if kernel.uapi else None}


def run_remote(req: RunRequest, specs: list[cases.CaseSpec], started: float) -> tuple[int, dict]:
    """The suite on a machine reached over SSH (already running the kernel under test)."""
    from hmmbench.targets import remote

    if req.inventory:
        from hmmbench.targets import inventory

        machines = [(t.url, t.options) for t in inventory.load(req.inventory)]
    else:
        machines = [(remote.parse_url(req.target_url or ""), req.remote or remote.RemoteOptions())]
    first = machines[0][0]
    target_meta: dict = {"kind": "ssh", "url": str(first)}
    if len(machines) > 1:
        target_meta["inventory"] = [str(url) for url, _ in machines]
    kernel_meta = None
    if req.kexec:
        bzimage, kernel = _kexec_kernel(req)
        kexecs = [remote.kexec_into(url, opts, bzimage, kernel.release if kernel else None,
                                    kernel.banner if kernel else None) for url, opts in machines]
        target_meta["kexec"] = kexecs[0] if len(kexecs) == 1 else kexecs
        if kernel is not None:
            kernel_meta = _kernel_meta(req.kexec, kernel)
    sessions = [remote.RemoteSession(url, opts) for url, opts in machines]
    if len(sessions) > 1:
        _connect_all_one_kernel(sessions)
    out_dir = (req.out_dir or default_out_dir(first.host)).resolve()
    return _run_session(req, specs, sessions, out_dir, started, kernel_meta, target_meta, None)


def _connect_all_one_kernel(sessions: list) -> None:
    """Connect and preflight every inventory machine before the first case: one run judges one kernel."""
    try:
        for s in sessions:
            s.boot()
        releases = {str(s.url): s.target_info.get("proc_version") for s in sessions}
    except BaseException:
        for s in sessions:
            s.close()
        raise
    if len(set(releases.values())) > 1:
        for s in sessions:
            s.close()
        raise HarnessError("inventory machines run different kernels: " +
                           "; ".join(f"{u}: {v}" for u, v in releases.items()),
                           "one run judges one kernel: use --kexec KERNEL to put the same one on all of them")


def _kexec_kernel(req: RunRequest) -> tuple[Path, BuiltKernel | None]:
    """--kexec KERNEL: a bzImage file as it is, or a kernel spec built by hmmbench (cached)."""
    spec = req.kexec or ""
    if Path(spec).is_file():
        return Path(spec), None
    kernel = KernelBuilder(sources.resolve_spec(spec), req.fragments, req.base).build()
    return kernel.bzimage, kernel


def _run_session(req: RunRequest, specs: list[cases.CaseSpec], sessions, out_dir: Path, started: float,
                 kernel_meta: dict | None, target_meta: dict, image_meta: dict | None) -> tuple[int, dict]:
    """Boot or connect, run the cases (on several workers at once if given several sessions), write
    results.json, JUnit and evidence.txt."""
    sessions = sessions if isinstance(sessions, list) else [sessions]
    case_results: list[dict] = []
    with cache.exclusive_dir(out_dir, "results directory"):
        try:
            case_results = execute(sessions, specs, out_dir, req.case_timeout)
        finally:
            for session in sessions:
                session.close()
    session = next((s for s in sessions if s.target_info), sessions[0])
    info = session.target_info
    if kernel_meta is None:  # a remote machine: the kernel is whatever it runs
        config = info.get("config") or {}
        kernel_meta = {"label": target_meta.get("url", ""), "release": info.get("release"),
                       "banner": info.get("proc_version"), "tree_identity": "unknown (running kernel)",
                       "config_hash": cache.stable_hash(sorted(config.items())) if config else "unknown",
                       "build_key": None, "build_seconds": None, "cached": None}
    if len(sessions) > 1:
        target_meta = {**target_meta, "workers": [
            {"name": session_name(s), "release": s.target_info.get("release"), "boots": s.boots,
             "boot_seconds": [round(x, 1) for x in s.boot_seconds]} for s in sessions]}
    res = {
        "schema": results.SCHEMA,
        "hmmbench_version": __version__,
        "started": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "seconds": round(time.monotonic() - started, 1),
        "kernel": kernel_meta,
        "image": image_meta,
        "target": {**target_meta, "cpus": target_meta.get("cpus", info.get("nproc")),
                   "numa_nodes": target_meta.get("numa_nodes", info.get("numa_nodes")),
                   "boots": sum(s.boots for s in sessions),
                   "boot_seconds": [round(x, 1) for s in sessions for x in s.boot_seconds],
                   "boot_phases": [p for s in sessions for p in getattr(s, "boot_phases", [])],
                   "consoles": [str(p) for s in sessions for p in s.consoles]},
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


def execute(sessions, specs: list[cases.CaseSpec], out_dir: Path,
            timeout_override: float | None = None) -> list[dict]:
    """Run every variant of every case on ``sessions`` (one, or several at once); recover from hangs and
    crashes with a fresh guest. Entries come back in suite order whichever worker ran them."""
    sessions = sessions if isinstance(sessions, list) else [sessions]
    case_dir = out_dir / "cases"
    case_dir.mkdir(parents=True, exist_ok=True)
    queue = workers.WorkQueue((spec, params) for spec in specs for params in spec.variants)
    several = len(sessions) > 1

    def work(session, item: tuple[cases.CaseSpec, dict]) -> tuple[dict, str | None]:
        entry, restart_reason = run_case(session, *item, case_dir, timeout_override)
        if several:
            entry["worker"] = session_name(session)
        _announce(entry)
        return entry, restart_reason

    failures = workers.drive(sessions, queue, session_name, work)
    out = queue.results()
    if failures and not out and all(f.stage == "boot" for f in failures):
        raise failures[0].error  # nothing ran: the boot failure is the run's failure
    why = "; ".join(f"{f.worker}: {f.stage} failed: {f.error}" for f in failures) or "no worker left"
    for _index, (spec, params) in queue.untaken():
        v = {"status": str(Status.ERROR), "summary": f"not run: {why}", "evidence": [], "failed_checks": [],
             "crashes": []}
        out.append({"id": spec.variant_id(params), "case": spec.name, "params": params, "seconds": 0,
                    "verdict": v, "record": None, "console_excerpt": None})
    return out


def session_name(session) -> str:
    return getattr(session, "label", "").rstrip("-") or str(getattr(session, "url", "guest"))


def run_case(session, spec: cases.CaseSpec, params: dict, case_dir: Path,
             timeout_override: float | None) -> tuple[dict, str | None]:
    """One case variant on a booted session: (results entry, restart reason or None).

    The case is watched while it runs (:class:`~hmmbench.cases.watch.CaseWatch`): kernel trouble that
    wedges it, or a task stuck in D state, ends it at once instead of at its timeout.
    """
    case_id = spec.variant_id(params)
    assert session.target is not None
    info = session.target.info
    mark = len(session.console_lines())
    watch = CaseWatch(spec.name, params, lambda: session.console_lines()[mark:])
    t0 = time.monotonic()
    restart_reason = None
    timeout = timeout_override or spec.timeout
    try:
        record = session.target.run_case(spec.name, params, timeout, on_event=watch)
    except CaseEnded as ended:
        record = ended.record
        restart_reason = f"{case_id}: {record['status']} ({record['reason']})"
    except CommandTimeout:
        record = watch.record("hang", f"no answer within {timeout:.0f}s")
        record["timeout"] = timeout
        restart_reason = f"{case_id} hung"
    except (ConnectionLost, AgentError) as exc:
        if isinstance(exc, ConnectionLost) or not session.alive():
            record = watch.record("lost", str(exc))
            restart_reason = f"{case_id} lost the target"
        else:
            record = watch.record("error", str(exc))
    seconds = time.monotonic() - t0
    if restart_reason:
        time.sleep(2.0)  # let the console catch the last kernel messages
    console_lines = session.console_lines()[mark:]
    verdict = cases.judge_record(spec, record, info, console_lines)
    fatal = [c["title"] for c in verdict.crashes if is_fatal(console.CrashReport(**_report_fields(c)))]
    if fatal and not restart_reason:  # a kernel that oopsed is not one to run the next case on
        restart_reason = f"{case_id}: {fatal[0]}"
    entry = {"id": case_id, "case": spec.name, "params": params, "seconds": round(seconds, 2),
             "verdict": verdict.to_dict(), "record": record, "console_excerpt": None}
    if verdict.crashes or restart_reason:
        excerpt = case_dir / f"{_safe(case_id)}.console.txt"
        excerpt.write_text("\n".join(console_lines) + "\n")
        entry["console_excerpt"] = str(excerpt)
    results.write_json(case_dir / f"{_safe(case_id)}.json", entry)
    return entry, restart_reason


def _report_fields(crash: dict) -> dict:
    names = {f.name for f in dataclasses.fields(console.CrashReport)}
    return {k: v for k, v in crash.items() if k in names}


def _safe(case_id: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_=," else "_" for ch in case_id)


def _announce(entry: dict) -> None:
    v = entry["verdict"]
    progress.say(f"{entry['id']}: {v['status']} ({entry['seconds']:.1f}s) {v['summary']}")


def rejudge(results_path: Path) -> tuple[int, dict]:
    """Re-run the verdict rules on recorded observations (no target needed)."""
    data = results.load(results_path)
    known = cases.load_all()
    info = {**(data.get("target_info") or {}), "config": data.get("target_config")}
    for entry in data["cases"]:
        spec = known.get(entry["case"])
        if spec is None or entry.get("record") is None:
            continue
        excerpt = Path(entry["console_excerpt"]) if entry.get("console_excerpt") else None
        lines = excerpt.read_text(errors="replace").splitlines() if excerpt and excerpt.is_file() else None
        entry["verdict"] = cases.judge_record(spec, entry["record"], info, lines).to_dict()
    data["summary"] = results.summary(data["cases"])
    return results.exit_code(data["cases"]), data
