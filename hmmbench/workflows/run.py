"""``hmmbench run``: kernel -> image -> boot -> cases -> verdicts, with kernel trouble as a result.

Each case runs in a fresh agent process and is watched while it runs (:mod:`hmmbench.cases.watch`):
kernel trouble that wedges it, a task stuck in D state, a case that does not answer within its timeout,
or a connection that dies mid-case ends it; the console excerpt is saved beside the results, the
verdict is FAIL with the report's title, and a fresh guest is booted for the remaining cases.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from hmmbench import __version__, cache, cases, progress
from hmmbench.cases.facts import TargetFacts
from hmmbench.cases.judge import judge_record
from hmmbench.cases.verdict import Status, Verdict
from hmmbench.cases.watch import CaseEnded, CaseWatch
from hmmbench.errors import HarnessError
from hmmbench.kernel import sources
from hmmbench.kernel.build import BuiltKernel, KernelBuilder
from hmmbench.reports import results, text
from hmmbench.reports.results import CaseResult, ImageBlock, KernelBlock, RunResult, TargetBlock, WorkerBlock
from hmmbench.targets import workers
from hmmbench.targets.agent import AgentError
from hmmbench.targets.session import GuestShape, Opened, Session, open_sessions
from hmmbench.targets.ssh import CommandTimeout, ConnectionLost
from hmmbench.vm.image import DEFAULT_RECIPE, GuestImage, ImageBuilder


@dataclass
class RunRequest:
    kernel: str | None = None
    tree: str | None = None
    case_names: list[str] = field(default_factory=list)
    out_dir: Path | None = None
    accel: str = "auto"
    config_base: str = "tinyconfig"
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

    @property
    def shape(self) -> GuestShape:
        return GuestShape(self.cpus, self.memory_mib, self.numa_nodes, tuple(self.append), self.accel, self.net)


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
    kernel = KernelBuilder(tree, req.fragments, req.config_base).build()
    image_thread.join()
    if "error" in built:
        raise built["error"]
    return tree, kernel, built["image"]


def run(req: RunRequest) -> RunResult:
    started = time.monotonic()
    specs = select_cases(req.case_names)
    if req.target_url or req.inventory:
        return run_remote(req, specs, started)
    tree, kernel, image = prepare(req)
    return run_prepared(req, specs, tree, kernel, image, started)


def run_prepared(req: RunRequest, specs: list[cases.CaseSpec], tree: sources.KernelTree, kernel: BuiltKernel,
                 image: GuestImage, started: float | None = None) -> RunResult:
    """Boot ``kernel`` and run ``specs``; for callers that built the kernel themselves (series, bisect)."""
    started = time.monotonic() if started is None else started
    out_dir = (req.out_dir or results.default_out_dir(kernel.release)).resolve()
    image_block = ImageBlock(image.recipe, image.key, image.cached)
    with open_sessions(out_dir, kernel=kernel, image=image, shape=req.shape, count=max(1, req.jobs)) as opened:
        return _run_sessions(req, specs, opened, out_dir, started, kernel_block(tree.label, kernel), image_block)


def kernel_block(label: str, kernel: BuiltKernel) -> KernelBlock:
    """What was built, from what, and whether it came from the cache."""
    return KernelBlock(label, kernel.release, kernel.banner, kernel.tree_identity, kernel.config_hash, kernel.key,
                       kernel.build_seconds, kernel.cached, kernel.uapi.to_dict() if kernel.uapi else None)


def run_remote(req: RunRequest, specs: list[cases.CaseSpec], started: float) -> RunResult:
    """The suite on machines reached over SSH (already running the kernel under test, or kexec'd to it)."""
    from hmmbench.targets import remote

    if req.inventory:
        from hmmbench.targets import inventory

        machines = [(t.url, t.options) for t in inventory.load(req.inventory)]
    else:
        machines = [(remote.parse_url(req.target_url or ""), req.remote or remote.RemoteOptions())]
    kernel = None
    kexecs = None
    if req.kexec:
        bzimage, kernel = _kexec_kernel(req)
        kexecs = [remote.kexec_into(url, opts, bzimage, kernel.release if kernel else None,
                                    kernel.banner if kernel else None) for url, opts in machines]
    out_dir = (req.out_dir or results.default_out_dir(machines[0][0].host)).resolve()
    with open_sessions(out_dir, machines=machines) as opened:
        if kexecs is not None:
            opened.target.kexec = kexecs[0] if len(kexecs) == 1 else kexecs
        if len(opened.sessions) > 1:
            _connect_all_one_kernel(opened.sessions)
        return _run_sessions(req, specs, opened, out_dir, started,
                             kernel_block(req.kexec, kernel) if kernel else None, None)


def _connect_all_one_kernel(sessions: list[Session]) -> None:
    """Connect and preflight every inventory machine before the first case: one run judges one kernel."""
    for s in sessions:
        s.boot()
    releases = {s.name: s.target_info.get("proc_version") for s in sessions}
    if len(set(releases.values())) > 1:
        raise HarnessError("inventory machines run different kernels: " +
                           "; ".join(f"{u}: {v}" for u, v in releases.items()),
                           "one run judges one kernel: use --kexec KERNEL to put the same one on all of them")


def _kexec_kernel(req: RunRequest) -> tuple[Path, BuiltKernel | None]:
    """--kexec KERNEL: a bzImage file as it is, or a kernel spec built by hmmbench (cached)."""
    spec = req.kexec or ""
    if Path(spec).is_file():
        return Path(spec), None
    kernel = KernelBuilder(sources.resolve_spec(spec), req.fragments, req.config_base).build()
    return kernel.bzimage, kernel


def _running_kernel(target: TargetBlock, info: dict) -> KernelBlock:
    """A machine's kernel when hmmbench did not build it: whatever it runs."""
    config = info.get("config") or {}
    return KernelBlock(target.url or "", info.get("release"), info.get("proc_version"), "unknown (running kernel)",
                       cache.stable_hash(sorted(config.items())) if config else "unknown")


def _run_sessions(req: RunRequest, specs: list[cases.CaseSpec], opened: Opened, out_dir: Path, started: float,
                  kernel: KernelBlock | None, image: ImageBlock | None) -> RunResult:
    """Boot or connect, run the cases (on several workers at once if given several sessions), write
    results.json, JUnit and evidence.txt."""
    sessions = opened.sessions
    with cache.exclusive_dir(out_dir, "results directory"):
        try:
            case_results = execute(sessions, specs, out_dir, req.case_timeout)
        finally:
            for session in sessions:
                session.close()
    info = next((s.target_info for s in sessions if s.target_info), {})
    target = opened.target
    target.cpus = target.cpus or info.get("nproc")
    target.numa_nodes = target.numa_nodes or info.get("numa_nodes")
    target.boots = sum(s.boots for s in sessions)
    target.boot_seconds = [round(x, 1) for s in sessions for x in s.boot_seconds]
    target.boot_phases = [p for s in sessions for p in getattr(s, "boot_phases", [])]
    target.consoles = [str(p) for s in sessions for p in s.consoles]
    if len(sessions) > 1:
        target.workers = [WorkerBlock(s.name, s.target_info.get("release"), s.boots,
                                      [round(x, 1) for x in s.boot_seconds]) for s in sessions]
    res = RunResult(kernel or _running_kernel(target, info), target, image,
                    {k: v for k, v in info.items() if k != "config"}, info.get("config"), case_results,
                    started=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
                    seconds=round(time.monotonic() - started, 1), hmmbench_version=__version__,
                    results_path=str(out_dir / "results.json"))
    results.write_json(out_dir / "results.json", res)
    results.write_junit(req.junit or out_dir / "junit.xml", res)
    (out_dir / "evidence.txt").write_text(text.evidence(res) + "\n")
    return res


def execute(sessions: list[Session], specs: list[cases.CaseSpec], out_dir: Path,
            timeout_override: float | None = None) -> list[CaseResult]:
    """Run every variant of every case on ``sessions`` (one, or several at once); recover from hangs and
    crashes with a fresh guest. Results come back in suite order whichever worker ran them."""
    case_dir = out_dir / "cases"
    case_dir.mkdir(parents=True, exist_ok=True)
    queue = workers.WorkQueue((spec, params) for spec in specs for params in spec.variants)
    several = len(sessions) > 1

    def work(session: Session, item: tuple[cases.CaseSpec, dict]) -> tuple[CaseResult, str | None]:
        result, restart_reason = run_case(session, *item, case_dir, timeout_override)
        if several:
            result.worker = session.name
        progress.say(f"{result.id}: {result.status} ({result.seconds:.1f}s) {result.verdict.summary}")
        return result, restart_reason

    failures = workers.drive(sessions, queue, lambda s: s.name, work)
    out = queue.results()
    if failures and not out and all(f.stage == "boot" for f in failures):
        raise failures[0].error  # nothing ran: the boot failure is the run's failure
    why = "; ".join(f"{f.worker}: {f.stage} failed: {f.error}" for f in failures) or "no worker left"
    for _index, (spec, params) in queue.untaken():
        out.append(CaseResult(spec.variant_id(params), spec.name, params, 0,
                              Verdict(Status.ERROR, f"not run: {why}")))
    return out


def run_case(session: Session, spec: cases.CaseSpec, params: dict, case_dir: Path,
             timeout_override: float | None) -> tuple[CaseResult, str | None]:
    """One case variant on a booted session: (its result, restart reason or None)."""
    case_id = spec.variant_id(params)
    assert session.agent is not None
    info = session.agent.info
    mark = len(session.console_lines())
    watch = CaseWatch(spec.name, params, lambda: session.console_lines()[mark:])
    t0 = time.monotonic()
    restart_reason = None
    timeout = timeout_override or spec.timeout
    try:
        record = session.agent.run_case(spec.name, params, timeout, on_event=watch)
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
    verdict = judge_record(spec, record, TargetFacts.from_info(info), console_lines)
    if verdict.fatal_crashes and not restart_reason:  # a kernel that oopsed is not one to run the next case on
        restart_reason = f"{case_id}: {verdict.fatal_crashes[0].title}"
    result = CaseResult(case_id, spec.name, params, round(seconds, 2), verdict, record)
    if verdict.crashes or restart_reason:
        excerpt = case_dir / f"{_safe(case_id)}.console.txt"
        excerpt.write_text("\n".join(console_lines) + "\n")
        result.console_excerpt = str(excerpt)
    results.write_json(case_dir / f"{_safe(case_id)}.json", result)
    return result, restart_reason


def _safe(case_id: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_=," else "_" for ch in case_id)


def rejudge(results_path: Path) -> RunResult:
    """Re-run the verdict rules on recorded observations (no target needed)."""
    res = results.load(results_path)
    known = cases.load_all()
    facts = res.facts
    for c in res.cases:
        spec = known.get(c.case)
        if spec is None or c.record is None:
            continue
        excerpt = Path(c.console_excerpt) if c.console_excerpt else None
        lines = excerpt.read_text(errors="replace").splitlines() if excerpt and excerpt.is_file() else None
        c.verdict = judge_record(spec, c.record, facts, lines)
    return res
