"""The ``hmmbench`` command line.

Exit codes: 0 every case passed (or was skipped with a reason), 1 a case failed, 2 the harness could
not do its job (one-line reason on stderr, with what to do next), 130 interrupted.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from hmmbench import __version__, procs, progress
from hmmbench.errors import HarnessError


def _kernel_args(p: argparse.ArgumentParser) -> None:
    g = p.add_mutually_exclusive_group()
    g.add_argument("--kernel", help="debian-6.12 (default; before the series), debian-7.2 (after it), a tree "
                   "path, or PATH@REV (a commit of a git tree, built from a worktree hmmbench owns)")
    g.add_argument("--tree", help="any kernel source tree (git checkout or plain directory), or PATH@REV")
    p.add_argument("--base", default="tinyconfig", help="base config: tinyconfig (default), defconfig, or a FILE")
    p.add_argument("--fragment", action="append", type=Path,
                   help="Kconfig fragment (repeatable); default: every file in kernel-config/")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hmmbench", description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--version", action="version", version=f"hmmbench {__version__}")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress lines on stderr")
    sub = parser.add_subparsers(dest="command", required=True)

    kernel = sub.add_parser("kernel", help="fetch or build kernels").add_subparsers(dest="kernel_cmd", required=True)
    fetch = kernel.add_parser("fetch", help="fetch Debian's kernel source into the cache")
    fetch.add_argument("name", choices=["debian-6.12", "debian-7.2"])
    fetch.add_argument("--refresh", action="store_true", help="check apt for a newer version")
    build = kernel.add_parser("build", help="configure, verify and build a kernel (cached)")
    _kernel_args(build)
    build.add_argument("--force", action="store_true", help="rebuild even if cached")

    image = sub.add_parser("image", help="guest images").add_subparsers(dest="image_cmd", required=True)
    ib = image.add_parser("build", help="build the guest image (cached)")
    ib.add_argument("--recipe", default="debian-bookworm")
    ib.add_argument("--force", action="store_true")

    run = sub.add_parser("run", help="build, boot and run the cases; print the verdict")
    _kernel_args(run)
    run.add_argument("--case", action="append", default=[], dest="cases", help="case to run (repeatable)")
    run.add_argument("--out", type=Path, help="results directory (default hmmbench-results/TIME-RELEASE)")
    run.add_argument("--accel", choices=["auto", "kvm", "tcg"], default="auto")
    run.add_argument("--recipe", default="debian-bookworm", help="guest image recipe in vm-images/")
    run.add_argument("--cpus", type=int, default=2)
    run.add_argument("--memory", type=int, default=2048, help="guest memory in MiB")
    run.add_argument("--numa-nodes", type=int, default=2)
    run.add_argument("--junit", type=Path, help="also write JUnit XML here")
    run.add_argument("--timeout", type=float, help="per-case timeout in seconds (default: each case's own)")
    run.add_argument("--json", type=Path, help="also write results.json here")

    st = sub.add_parser("selftest", help="run the kernel's own hmm-tests beside hmmbench's exclusive cases")
    _kernel_args(st)
    st.add_argument("--out", type=Path, help="results directory")
    st.add_argument("--accel", choices=["auto", "kvm", "tcg"], default="auto")
    st.add_argument("--timeout", type=float, default=900.0, help="seconds hmm-tests may run")

    judge = sub.add_parser("judge", help="re-run the verdict rules on a recorded results.json")
    judge.add_argument("results", type=Path)

    sub.add_parser("cases", help="list the cases and their verdict rules")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    progress.set_quiet(args.quiet)
    procs.install_signal_handlers()
    try:
        return dispatch(args)
    except HarnessError as exc:
        print(f"hmmbench: error: {exc.reason}", file=sys.stderr)
        detail = getattr(exc, "detail", None)
        if detail:
            print(detail, file=sys.stderr)
        if exc.hint:
            print(f"hmmbench: next: {exc.hint}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("hmmbench: interrupted; guests stopped", file=sys.stderr)
        return 130
    finally:
        procs.cleanup_all()


def dispatch(args: argparse.Namespace) -> int:
    from hmmbench import report, runner, sources
    from hmmbench.image import ImageBuilder
    from hmmbench.kbuild import KernelBuilder

    if args.command == "kernel" and args.kernel_cmd == "fetch":
        tree = sources.fetch_debian(args.name, refresh=args.refresh)
        print(f"{tree.label}: {tree.path} ({tree.identity})")
        return 0
    if args.command == "kernel" and args.kernel_cmd == "build":
        tree = sources.resolve_kernel(args.kernel, args.tree)
        k = KernelBuilder(tree, args.fragment, args.base).build(force=args.force)
        print(f"{k.release}: {k.bzimage} (tree {k.tree_identity}, config {k.config_hash}, "
              f"{'cached' if k.cached else f'built in {k.build_seconds:.0f}s'})")
        return 0
    if args.command == "image":
        img = ImageBuilder(args.recipe).build(force=args.force)
        print(f"{img.recipe}: {img.rootfs} ({'cached' if img.cached else 'built'})")
        return 0
    if args.command == "run":
        req = runner.RunRequest(
            kernel=args.kernel, tree=args.tree, case_names=args.cases, out_dir=args.out, accel=args.accel,
            base=args.base, fragments=args.fragment, recipe=args.recipe, cpus=args.cpus,
            memory_mib=args.memory, numa_nodes=args.numa_nodes, junit=args.junit, case_timeout=args.timeout,
        )
        code, res = runner.run(req)
        if args.json:
            from hmmbench import results

            results.write_json(args.json, res)
        print(report.table(res))
        return code
    if args.command == "selftest":
        from hmmbench import selftest_run

        req = runner.RunRequest(kernel=args.kernel, tree=args.tree, out_dir=args.out, accel=args.accel,
                                base=args.base, fragments=args.fragment)
        code, res = selftest_run.run(req, timeout=args.timeout)
        print(selftest_run.table(res))
        return code
    if args.command == "judge":
        code, res = runner.rejudge(args.results)
        print(report.evidence(res))
        return code
    if args.command == "cases":
        from hmmbench import cases

        for spec in cases.load_all().values():
            variants = ", ".join(json.dumps(v) for v in spec.variants)
            print(f"{spec.name}: {spec.description}\n  variants: {variants}\n  rule:{spec.rule.rstrip()}\n")
        return 0
    raise HarnessError(f"unknown command {args.command}")


if __name__ == "__main__":
    raise SystemExit(main())
