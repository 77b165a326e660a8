"""``hmmbench run``: kernel -> image -> boot -> cases -> verdicts, with kernel trouble as a result.

Each case runs in a fresh agent process and is watched while it runs (:mod:`hmmbench.cases.watch`):
kernel trouble that wedges it, a task stuck in D state, a case that does not answer within its timeout,
or a connection that dies mid-case ends it; the console excerpt is saved beside the results, the
verdict is FAIL with the report's title, and a fresh guest is booted for the remaining cases.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from hmmbench import cache, cases
from hmmbench.cases.judge import judge_record
from hmmbench.errors import HarnessError
from hmmbench.kernel import sources
from hmmbench.kernel.build import BuiltKernel, KernelBuilder
from hmmbench.reports import results
from hmmbench.reports.results import KernelBlock, RunResult
from hmmbench.targets.session import GuestShape
from hmmbench.vm.image import DEFAULT_RECIPE, GuestImage, ImageBuilder
from hmmbench.workflows import engine


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
    started = time.time()
    specs = select_cases(req.case_names)
    if req.target_url or req.inventory:
        return run_remote(req, specs, started)
    tree, kernel, image = prepare(req)
    return run_prepared(req, specs, tree, kernel, image, started)


def _plan(req: RunRequest, specs: list[cases.CaseSpec], out_dir: Path, started: float, **fields) -> engine.Plan:
    request = {k: (str(v) if isinstance(v, Path) else v) for k, v in dataclasses.asdict(req).items()}
    request["fragments"] = [str(f) for f in req.fragments] if req.fragments else None
    request["remote"] = None  # the machines carry their own options
    return engine.Plan(request, [s.variant_id(p) for s in specs for p in s.variants], str(out_dir), started, **fields)


def run_prepared(req: RunRequest, specs: list[cases.CaseSpec], tree: sources.KernelTree, kernel: BuiltKernel,
                 image: GuestImage, started: float | None = None) -> RunResult:
    """Boot ``kernel`` and run ``specs`` (through pytest: :mod:`hmmbench.workflows.engine`); for callers
    that built the kernel themselves (series, bisect) too."""
    started = time.time() if started is None else started
    out_dir = (req.out_dir or results.default_out_dir(kernel.release)).resolve()
    plan = _plan(req, specs, out_dir, started, kernel_dir=str(kernel.bzimage.parent), kernel_label=tree.label,
                 kernel_cached=kernel.cached, image_recipe=image.recipe)
    with cache.exclusive_dir(out_dir, "results directory"):
        return engine.execute(plan, max(1, req.jobs))


def kernel_block(label: str, kernel: BuiltKernel) -> KernelBlock:
    """What was built, from what, and whether it came from the cache."""
    return KernelBlock(label, kernel.release, kernel.banner, kernel.tree_identity, kernel.config_hash, kernel.key,
                       kernel.build_seconds, kernel.cached, kernel.uapi.to_dict() if kernel.uapi else None)


def run_remote(req: RunRequest, specs: list[cases.CaseSpec], started: float) -> RunResult:
    """The suite on machines reached over SSH (already running the kernel under test, or kexec'd to it):
    one pytest-xdist worker per machine."""
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
    if len(machines) > 1:
        _one_kernel(machines)
    out_dir = (req.out_dir or results.default_out_dir(machines[0][0].host)).resolve()
    plan = _plan(req, specs, out_dir, started, kexec=kexecs,
                 machines=[{"url": dataclasses.asdict(u), "options": {k: str(v) if isinstance(v, Path) else v
                                                                      for k, v in dataclasses.asdict(o).items()}}
                           for u, o in machines],
                 kernel_dir=str(kernel.bzimage.parent) if kernel else None, kernel_label=req.kexec)
    with cache.exclusive_dir(out_dir, "results directory"):
        return engine.execute(plan, len(machines))


def _one_kernel(machines: list[tuple]) -> None:
    """Every inventory machine is reachable and runs the same kernel, before the first case: one run
    judges one kernel."""
    from hmmbench.targets.remote import RemoteSession

    releases = {}
    for url, opts in machines:
        session = RemoteSession(url, opts)
        try:
            session.boot()
            releases[str(url)] = session.target_info.get("proc_version")
        finally:
            session.close()
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
