"""The ``hmmbench`` command line.

Exit codes, one contract for every command: 0 every case passed (or was skipped with a reason), 1 a
verdict failed (a case failed, or the gate saw a regression), 2 hmmbench could not do its job, 130
interrupted. Only verdicts give 0 or 1. Everything else that goes wrong, a bad input, a harness
failure or a bug in hmmbench, is exit 2 with exactly one line on stderr (``hmmbench: error: ...;
next: ...``); a bug's traceback goes to a file that line names, never to the terminal.

Each command is a pair: a check of its inputs (:mod:`hmmbench.validate`: pure and fast, so a bad input
is refused before anything is downloaded, built or booted) and a handler that does the work.
``bisect-step`` is the one exception to exit 2: it is run by ``git bisect run``, which would take 2 as
"this commit is bad", so there a harness failure is 128, which makes git bisect stop.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import NoReturn

from hmmbench import __version__, failures, procs, progress, validate
from hmmbench.errors import HarnessError

HARNESS_FAILED = 2
BISECT_ABORT = 128  # git bisect run: 0 good, 1-127 bad (125 skip), anything above stops the bisection


class _Parser(argparse.ArgumentParser):
    """argparse with its usage errors as one line (its default prints the whole usage first)."""

    usage_exit = HARNESS_FAILED

    def error(self, message: str) -> NoReturn:
        command = self.prog.removeprefix("hmmbench").strip()
        where = f"hmmbench {command} --help" if command else "hmmbench --help"
        self.exit(self.usage_exit, f"{failures.PREFIX}{' '.join(message.split())}; next: see {where}\n")


def _kernel_args(p: argparse.ArgumentParser) -> None:
    g = p.add_mutually_exclusive_group()
    g.add_argument("--kernel", help="debian-6.12 (default; before the series), debian-7.2 (after it), a tree "
                   "path, or PATH@REV (a commit of a git tree, built from a worktree hmmbench owns)")
    g.add_argument("--tree", help="any kernel source tree (git checkout or plain directory), or PATH@REV")
    _config_base_arg(p)
    p.add_argument("--fragment", action="append", type=Path,
                   help="Kconfig fragment (repeatable); default: every file in kernel-config/")


def _config_base_arg(p: argparse.ArgumentParser, deprecated_base: bool = True) -> None:
    """--config-base everywhere; ``--base`` stays an alias for one release where it meant the config base."""
    names = ["--config-base", "--base"] if deprecated_base else ["--config-base"]
    p.add_argument(*names, dest="config_base", default="tinyconfig",
                   help="base config: tinyconfig (default), defconfig, or a FILE"
                        + (" (--base: deprecated spelling)" if deprecated_base else ""))


def _target_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--target", help="ssh://[user@]host[:port]: run on that running machine instead of a QEMU guest")
    p.add_argument("--identity", type=Path, help="SSH private key for --target")
    p.add_argument("--known-hosts", type=Path, help="known_hosts file for --target (default ~/.ssh/known_hosts)")
    p.add_argument("--accept-new-host-key", action="store_true",
                   help="accept and pin an unknown host key (a changed key is always refused)")
    p.add_argument("--kexec", help="with --target: switch the machine to this KERNEL (built by hmmbench) or bzImage "
                   "first (kexec -l with the running command line, kexec -e, wait for SSH, verify)")


def _accel_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--accel", choices=["auto", "kvm", "tcg"], default="auto",
                   help="auto: KVM only after a bounded trial boot proves it works, else TCG")


def _suite_args(p: argparse.ArgumentParser, out_default: str) -> None:
    """The options every command that runs the suite shares."""
    p.add_argument("--case", action="append", default=[], dest="cases", help="case to run (repeatable)")
    p.add_argument("--out", type=Path, help=f"results directory (default {out_default})")
    _accel_arg(p)
    p.add_argument("--timeout", type=float, help="per-case timeout in seconds (default: each case's own)")


def _jobs_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--jobs", "-j", type=int, default=1,
                   help="QEMU guests running cases at once (one queue; each guest a worker)")


def _remote_options(args: argparse.Namespace):
    from hmmbench.targets.remote import RemoteOptions

    return RemoteOptions(identity=args.identity, known_hosts=args.known_hosts,
                         accept_new_host_key=args.accept_new_host_key)


def _command(sub, name: str, check, handler, **kwargs) -> argparse.ArgumentParser:
    """A subcommand with its input check and its handler (main runs the check, then the handler)."""
    p = sub.add_parser(name, **kwargs)
    p.set_defaults(check=check, handler=handler)
    return p


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="hmmbench", description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--version", action="version", version=f"hmmbench {__version__}")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress lines on stderr")
    sub = parser.add_subparsers(dest="command", required=True)

    kernel = sub.add_parser("kernel", help="fetch or build kernels").add_subparsers(dest="kernel_cmd", required=True)
    fetch = _command(kernel, "fetch", validate.check_nothing, _kernel_fetch,
                     help="fetch Debian's kernel source into the cache")
    fetch.add_argument("name", choices=["debian-6.12", "debian-7.2"])
    fetch.add_argument("--refresh", action="store_true", help="check apt for a newer version")
    build = _command(kernel, "build", validate.check_kernel_build, _kernel_build,
                     help="configure, verify and build a kernel (cached)")
    _kernel_args(build)
    build.add_argument("--force", action="store_true", help="rebuild even if cached")
    build.add_argument("--configure-only", action="store_true",
                       help="configure and verify only (every fragment option checked), print the .config; no compile")

    image = sub.add_parser("image", help="guest images").add_subparsers(dest="image_cmd", required=True)
    ib = _command(image, "build", validate.check_image_build, _image_build, help="build the guest image (cached)")
    ib.add_argument("--recipe", default="debian-bookworm")
    ib.add_argument("--force", action="store_true")

    run = _command(sub, "run", validate.check_run, _run, help="build, boot and run the cases; print the verdict")
    _kernel_args(run)
    _suite_args(run, "hmmbench-results/RELEASE-TIME")
    _jobs_arg(run)
    run.add_argument("--recipe", default="debian-bookworm", help="guest image recipe in vm-images/")
    run.add_argument("--cpus", type=int, default=2, help="guest CPUs (1 to the kernel's CONFIG_NR_CPUS, 8)")
    run.add_argument("--memory", type=int, default=2048,
                     help=f"guest memory in MiB (at least {validate.MIN_GUEST_MIB}; divisible by --numa-nodes)")
    run.add_argument("--numa-nodes", type=int, default=2, help="guest NUMA nodes (1 to --cpus)")
    run.add_argument("--junit", type=Path, help="also write JUnit XML here")
    run.add_argument("--net", choices=["user", "tap"], default="user",
                     help="guest networking: QEMU user-mode (default) or a tap on a bridge in a netns (pyroute2)")
    _target_args(run)
    run.add_argument("--inventory", type=Path, help="TOML file of ssh:// machines ([[target]] url = ...): "
                     "one worker each, instead of --target")
    run.add_argument("--json", type=Path, help="also write results.json here")
    run.add_argument("--append", action="append", default=[], metavar="WORDS",
                     help="extra kernel command line for QEMU guests (repeatable), e.g. a module parameter")

    st = _command(sub, "selftest", validate.check_selftest, _selftest,
                  help="run the kernel's own hmm-tests beside hmmbench's exclusive cases")
    _kernel_args(st)
    st.add_argument("--out", type=Path, help="results directory")
    _accel_arg(st)
    st.add_argument("--timeout", type=float, default=900.0, help="seconds hmm-tests may run")
    _target_args(st)

    gate = _command(sub, "gate", validate.check_gate, _gate,
                    help="the suite on a base and a patched kernel: fixed, regressed, changed")
    gate.add_argument("--base", dest="base_kernel", default=None,
                      help="KERNEL before the change (debian-6.12, debian-7.2, a tree path, PATH@REV); "
                           "default debian-6.12")
    gate.add_argument("--patched", default=None, help="KERNEL after the change; default debian-7.2")
    _config_base_arg(gate, deprecated_base=False)
    gate.add_argument("--fragment", action="append", type=Path, help="Kconfig fragment (repeatable)")
    _suite_args(gate, "hmmbench-results/gate-TIME")
    _jobs_arg(gate)
    gate.add_argument("--markdown", type=Path, help="write the mail-ready plain-text report here")
    gate.add_argument("--json", type=Path, help="write the gate report (schema hmmbench.gate/1) here")
    gate.add_argument("--junit", type=Path, help="write JUnit XML here")
    gate.add_argument("--ktap", action="store_true", help="print KTAP instead of the table")
    _target_args(gate)

    ser = _command(sub, "series", validate.check_series, _series,
                   help="build, boot and run the suite at every commit of a series")
    ser.add_argument("--tree", required=True, help="git repository of the kernel")
    ser.add_argument("--base-rev", "--base", dest="base_rev", required=True,
                     help="revision the series starts from (--base: deprecated spelling)")
    ser.add_argument("--tip", default="HEAD", help="last commit to walk to (default HEAD; ignored with --patches)")
    ser.add_argument("--patches", type=Path, help="directory of *.patch files or an mbox, applied with git am "
                     "on a fresh branch from --base-rev")
    _config_base_arg(ser, deprecated_base=False)
    ser.add_argument("--fragment", action="append", type=Path, help="Kconfig fragment (repeatable)")
    _suite_args(ser, "hmmbench-results/series-TIME")
    _jobs_arg(ser)
    ser.add_argument("--json", type=Path, help="also write the series report here")

    bis = _command(sub, "bisect", validate.check_bisect, _bisect,
                   help="find the commit that broke a case (git bisect in hmmbench's worktree)")
    bis.add_argument("--tree", required=True, help="git repository of the kernel")
    bis.add_argument("--good", required=True, help="a revision where the case passes")
    bis.add_argument("--bad", required=True, help="a revision where it fails")
    bis.add_argument("--case", required=True, help="the case (e.g. exclusive_thp)")
    bis.add_argument("--signature", help="bad means: a kernel report whose title contains this text appeared")
    bis.add_argument("--repeat", type=int, default=1, help="runs per step; a step is bad if any run is bad")
    bis.add_argument("--script", action="store_true", help="print a script for plain `git bisect run` and exit")
    _config_base_arg(bis, deprecated_base=False)
    bis.add_argument("--fragment", action="append", type=Path, help="Kconfig fragment (repeatable)")
    bis.add_argument("--out", type=Path, help="results directory")
    _accel_arg(bis)
    bis.add_argument("--timeout", type=float, help="per-case timeout in seconds")
    bis.add_argument("--json", type=Path, help="also write the bisection report here")

    step = _command(sub, "bisect-step", validate.check_bisect_step, _bisect_step,
                    help="evaluate one tree for `git bisect run` (exit 0 good, 1 bad, 125 skip, "
                         f"{BISECT_ABORT} harness failure: stops the bisection)")
    step.usage_exit = BISECT_ABORT
    step.set_defaults(failure_exit=BISECT_ABORT)
    step.add_argument("--tree", required=True)
    step.add_argument("--case", required=True)
    step.add_argument("--signature")
    step.add_argument("--repeat", type=int, default=1)

    bench = _command(sub, "bench", validate.check_bench, _bench,
                     help="measure boot, warm suite, agent-vs-C loop (and per-commit cost)")
    _kernel_args(bench)
    bench.add_argument("--repeat", type=int, default=3)
    bench.add_argument("--iterations", type=int, default=2000, help="exclusive->restore loop iterations")
    bench.add_argument("--series", action="store_true", help="also: one mm/ change on the git import of Debian's "
                       "6.12, build + boot + suite (minutes)")
    bench.add_argument("--bisect", action="store_true",
                       help="also: a real bisection over 14 new commits, one unbuildable (minutes)")
    bench.add_argument("--cold", action="store_true", help="also: the first verdict from an empty cache, no ccache "
                       "(about 6 minutes)")
    bench.add_argument("--all", action="store_true", help="--series --bisect --cold")
    bench.add_argument("--out", type=Path, help="results directory (default hmmbench-results/bench)")
    _accel_arg(bench)
    bench.add_argument("--json", type=Path, help="also write bench.json here")

    guest = _command(sub, "guest", validate.check_guest, _guest,
                     help="boot a guest and keep it running (prints its ssh:// URL and key)")
    _kernel_args(guest)
    guest.add_argument("--out", type=Path, help="directory for the console log and the known_hosts file")
    _accel_arg(guest)
    guest.add_argument("--for", dest="duration", type=float, help="stop after this many seconds (default: until "
                       "Ctrl-C or SIGTERM)")
    guest.add_argument("--net", choices=["user", "tap"], default="user")
    guest.add_argument("--count", type=int, default=1, help="guests to boot (with --net tap: on one bridge)")

    judge = _command(sub, "judge", validate.check_judge, _judge,
                     help="re-run the verdict rules on a recorded results.json")
    judge.add_argument("results", type=Path)
    judge.add_argument("--json", type=Path, help="write the re-judged results (same schema) here")

    _command(sub, "cases", validate.check_nothing, _cases, help="list the cases and their verdict rules")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Parse, check the inputs, run the command; map every way out onto the exit-code contract."""
    args = build_parser().parse_args(argv)
    progress.set_quiet(args.quiet)
    procs.install_signal_handlers()
    failed = getattr(args, "failure_exit", HARNESS_FAILED)
    try:
        args.check(args)
        return args.handler(args)
    except HarnessError as exc:
        print(failures.harness_line(exc), file=sys.stderr)
        return failed
    except KeyboardInterrupt:
        print("hmmbench: interrupted; guests stopped", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - a bug: one line and a traceback file, still exit 2
        print(failures.bug_line(exc, argv), file=sys.stderr)
        return failed
    finally:
        procs.cleanup_all()


# ------------------------------------------------------------------ one handler per command


def _kernel_fetch(args: argparse.Namespace) -> int:
    from hmmbench.kernel import sources

    tree = sources.fetch_debian(args.name, refresh=args.refresh)
    print(f"{tree.label}: {tree.path} ({tree.identity})")
    return 0


def _kernel_build(args: argparse.Namespace) -> int:
    from hmmbench.kernel import sources
    from hmmbench.kernel.build import KernelBuilder

    tree = sources.resolve_kernel(args.kernel, args.tree)
    builder = KernelBuilder(tree, args.fragment, args.config_base)
    if args.configure_only:
        with builder.locked():
            config = builder.configure()
        print(f"{tree.label}: {config} ({args.config_base} + {len(builder.fragments)} fragments: "
              f"{', '.join(f.path.name for f in builder.fragments)}; every requested option verified)")
        return 0
    k = builder.build(force=args.force)
    print(f"{k.release}: {k.bzimage} (tree {k.tree_identity}, config {k.config_hash}, "
          f"{'cached' if k.cached else f'built in {k.build_seconds:.0f}s'})")
    return 0


def _image_build(args: argparse.Namespace) -> int:
    from hmmbench.vm.image import ImageBuilder

    img = ImageBuilder(args.recipe).build(force=args.force)
    print(f"{img.recipe}: {img.rootfs} ({'cached' if img.cached else 'built'})")
    return 0


def _run_request(args: argparse.Namespace, **extra):
    """The RunRequest of a command's options (each command has a subset of them)."""
    from hmmbench.workflows.run import RunRequest

    get = vars(args).get
    fields = dict(
        kernel=get("kernel"), tree=get("tree") if get("command") != "series" else None, case_names=get("cases") or [],
        out_dir=get("out"), accel=get("accel") or "auto", config_base=get("config_base") or "tinyconfig",
        fragments=get("fragment"), case_timeout=get("timeout"), jobs=get("jobs") or 1,
        target_url=get("target"), remote=_remote_options(args) if get("target") else None, kexec=get("kexec"),
        append=[word for words in get("append") or [] for word in words.split()],
    )
    for option, name in (("recipe", "recipe"), ("cpus", "cpus"), ("memory", "memory_mib"),
                         ("numa_nodes", "numa_nodes"), ("junit", "junit"), ("net", "net"), ("inventory", "inventory")):
        if get(option) is not None:
            fields[name] = get(option)
    return RunRequest(**{**fields, **extra})


def _run(args: argparse.Namespace) -> int:
    from hmmbench.reports import results, text
    from hmmbench.workflows import run

    res = run.run(_run_request(args))
    if args.json:
        results.write_json(args.json, res)
    print(text.table(res))
    return res.exit_code


def _selftest(args: argparse.Namespace) -> int:
    from hmmbench.reports.selftest import table
    from hmmbench.workflows.selftest import selftest

    report = selftest(_run_request(args, case_timeout=None), timeout=args.timeout)
    print(table(report))
    return report.exit_code


def _bench(args: argparse.Namespace) -> int:
    from hmmbench.reports import results
    from hmmbench.reports.bench import table
    from hmmbench.workflows import bench

    plan = bench.BenchPlan(repeat=args.repeat, iterations=args.iterations, series=args.series or args.all,
                           bisect=args.bisect or args.all, cold=args.cold or args.all)
    report = bench.run(_run_request(args), plan)
    if args.json:
        results.write_json(args.json, report)
    print(table(report))
    return 0


def _judge(args: argparse.Namespace) -> int:
    from hmmbench.reports import results, text
    from hmmbench.workflows import run

    res = run.rejudge(args.results)
    if args.json:
        results.write_json(args.json, res)
    print(text.evidence(res))
    return res.exit_code


def _cases(_args: argparse.Namespace) -> int:
    from hmmbench import cases

    for spec in cases.load_all().values():
        variants = ", ".join(json.dumps(v) for v in spec.variants)
        print(f"{spec.name}: {spec.description}\n  variants: {variants}\n  rule:{spec.rule.rstrip()}\n")
    return 0


def _guest(args: argparse.Namespace) -> int:
    """Boot and wait; each guest's URL, key and pinned host key are printed as one JSON line for scripts."""
    from hmmbench.workflows import guest

    return guest.keep_up(_run_request(args, out_dir=None), args.count, args.duration, args.out)


def _bisect(args: argparse.Namespace) -> int:
    from hmmbench.reports import results
    from hmmbench.workflows import bisect

    req = bisect.BisectRequest(repo=Path(args.tree).expanduser().resolve(), good=args.good, bad=args.bad,
                               case=args.case, signature=args.signature, repeat=max(1, args.repeat),
                               run=_run_request(args, kernel=None, tree=None, case_names=[], out_dir=None))
    if args.script:
        print(bisect.script(req, sys.executable), end="")
        return 0
    out = (args.out or results.default_out_dir("bisect")).resolve()
    report = bisect.Bisector(req, out).run()
    results.write_json(out / "bisect.json", report)
    if args.json:
        results.write_json(args.json, report)
    print(bisect.text(report))
    return 0


def _bisect_step(args: argparse.Namespace) -> int:
    """For `git bisect run`: the tree as it is checked out now; exit 0 good, 1 bad, 125 skip."""
    from hmmbench.kernel import sources
    from hmmbench.reports import results
    from hmmbench.vm.image import ImageBuilder
    from hmmbench.workflows import bisect
    from hmmbench.workflows.run import RunRequest, select_cases

    tree = sources.tree_from_path(Path(args.tree))
    step = bisect.evaluate_tree(bisect.BisectStep(tree.identity, tree.label), tree, select_cases([args.case])[0],
                                ImageBuilder().build(), RunRequest(), results.default_out_dir("bisect-step"),
                                max(1, args.repeat), args.signature)
    print(f"{step.result}: {step.why}")
    return bisect.step_exit_code(step.result)


def _series(args: argparse.Namespace) -> int:
    from hmmbench.reports import results
    from hmmbench.workflows import series

    repo = Path(args.tree).expanduser().resolve()
    tip = series.apply_patches(repo, args.base_rev, args.patches) if args.patches else args.tip
    out = (args.out or results.default_out_dir("series")).resolve()
    report = series.walk(_run_request(args, kernel=None, out_dir=None), repo, args.base_rev, tip, out)
    if args.json:
        results.write_json(args.json, report)
    print(series.text(report))
    return report.exit_code


def _gate(args: argparse.Namespace) -> int:
    from hmmbench.reports import gate as gate_report
    from hmmbench.reports import results
    from hmmbench.workflows import gate

    base = args.base_kernel or gate.DEFAULT_BASE
    patched = args.patched or gate.DEFAULT_PATCHED
    out = (args.out or results.default_out_dir("gate")).resolve()
    report = gate.gate(_run_request(args, kernel=None, out_dir=None, kexec=None), base, patched, out)
    (out / "gate.txt").write_text(gate_report.mail(report))
    if args.markdown:
        args.markdown.write_text(gate_report.mail(report))
    if args.json:
        results.write_json(args.json, report)
    if args.junit:
        gate_report.junit(report, args.junit)
    print(gate_report.ktap(report) if args.ktap else gate_report.text(report) + "\n" + gate_report.evidence(report))
    return report.exit_code


if __name__ == "__main__":
    raise SystemExit(main())
