"""Every command's inputs, checked before anything is downloaded, built or booted.

Why a step of its own: a bad input noticed after a kernel build (minutes), or after the whole base
suite of a gate, wastes that work and reads as a harness failure; noticed first, it is one line that
says what is wrong and what to run next. The checks are pure and fast: they read the files named, ask
git about local revisions, read /proc/meminfo, and never touch the network, the cache or a guest.
Each raises :class:`~hmmbench.errors.InputError`.

The first half holds one check per kind of input; the second, one function per command that applies
them to that command's parsed arguments (``check_run`` for ``hmmbench run``, ...).
"""

from __future__ import annotations

import argparse
import difflib
import math
import os
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

from hmmbench.errors import HarnessError, InputError
from hmmbench.kernel import kconfig, sources
from hmmbench.kernel.git import probe

# The floor for --memory: below it the guest boots but the suite no longer means what it says. Linux
# turns THP off when totalram is under 512 MiB (mm/huge_memory.c, hugepage_init), and exclusive_thp then
# SKIPs instead of judging. Measured with 6.12.117 (2 NUMA nodes, TCG): -m 512 gives MemTotal 492 MiB and
# THP [never], exclusive_thp SKIP (the rest of the suite as at 2048); -m 544 gives 522 MiB and THP on.
# 576 leaves a margin for a kernel that reserves more.
MIN_GUEST_MIB = 576
QEMU_MAX_CPUS = 255  # QEMU's pc machine
# The ceiling is MemTotal (host_memory_mib), not MemAvailable: QEMU allocates guest RAM lazily, and a
# check that moves with the page cache would refuse a run that would have worked.
CONFIG_BASES = ("tinyconfig", "defconfig", "allnoconfig")
_FRAGMENT_VALUE = re.compile(r'(y|m|n|-?\d+|0x[0-9a-fA-F]+|"(?:[^"\\]|\\.)*")')
_FRAGMENT_SET = re.compile(r"(CONFIG_[A-Za-z0-9_]+)=(.*)")
_MAIL_HEADER = re.compile(r"(From |[A-Za-z][A-Za-z0-9-]*: )")


# ================================================================== one check per kind of input


def _show(value: object, limit: int = 60) -> str:
    text = str(value)
    return repr(text if len(text) <= limit else text[:limit] + "...")


@dataclass(frozen=True)
class KernelSpec:
    """A KERNEL argument as checked: which form it is, and for a commit the hash it resolved to."""

    text: str
    kind: str  # "debian" (a name hmmbench fetches), "tree" (a directory), "git" (PATH@REV), "bzimage" (a file)
    path: Path | None = None
    commit: str | None = None


def kernel_spec(text: str, option: str, *, names: bool = True, bzimage: bool = False) -> KernelSpec:
    """``debian-6.12``/``debian-7.2`` (if ``names``), a kernel tree, ``PATH@REV``, or (if ``bzimage``)
    a bzImage file. A word that names nothing on disk is an unknown kernel *name*, not a missing path."""
    forms = sources.KERNEL_FORMS if names else "a kernel tree path or PATH@REV"
    if bzimage:
        forms += ", or a bzImage file"
    if not text.strip():
        raise InputError(f"{option}: empty kernel", f"pass {forms}")
    if names and text in sources.DEBIAN_KERNELS:
        return KernelSpec(text, "debian")
    path = Path(text).expanduser()
    if "@" in text and not path.exists():
        repo_text, _, rev = text.rpartition("@")
        if not repo_text or not rev:
            raise InputError(f"{option} {_show(text)}: PATH@REV needs both a repository and a revision",
                             "e.g. ~/linux@v6.12 or ~/linux@HEAD~3")
        repo = git_repo(Path(repo_text), option)
        commit = git_commit(repo, rev, option)
        _kernel_at_commit(repo, commit, f"{option} {text}")
        return KernelSpec(text, "git", repo, commit)
    if not path.exists():
        if names and sources.looks_like_name(text):
            err = sources.unknown_kernel(text, option)
            raise InputError(err.reason, err.hint)
        raise InputError(f"{option} {text}: no such file or directory", f"pass {forms}")
    if path.is_file() and bzimage:
        _bzimage(path, option)
        return KernelSpec(text, "bzimage", path.resolve())
    try:
        sources.check_kernel_tree(path.resolve())
    except HarnessError as exc:
        raise InputError(f"{option} {exc.reason}", f"pass {forms}") from exc
    return KernelSpec(text, "tree", path.resolve())


def _bzimage(path: Path, option: str) -> None:
    """The x86 boot protocol's "HdrS" magic at 0x202 is what QEMU's -kernel and kexec look for."""
    try:
        with open(path, "rb") as fh:
            fh.seek(0x202)
            magic = fh.read(4)
    except OSError as exc:
        raise InputError(f"{option} {path}: cannot be read ({exc.strerror})", "pass a readable bzImage") from exc
    if magic != b"HdrS":
        raise InputError(f"{option} {path}: not a bzImage (no 'HdrS' boot header)",
                         "pass arch/x86/boot/bzImage of a build, or a kernel hmmbench builds (debian-6.12, a tree)")


def _git(repo: Path, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    """git's answer as text (the checks read its exit status and stdout)."""
    proc = probe(repo, *args, input=stdin.encode() if stdin is not None else None)
    return subprocess.CompletedProcess(proc.args, proc.returncode, proc.stdout.decode(errors="replace"),
                                       proc.stderr.decode(errors="replace"))


def git_repo(path: Path, option: str) -> Path:
    """An existing git repository (a checkout, or a worktree of one)."""
    path = path.expanduser()
    if not path.is_dir():
        what = "is not a directory" if path.exists() else "does not exist"
        raise InputError(f"{option} {path}: {what}", "pass the path of a git checkout of a kernel")
    proc = _git(path, "rev-parse", "--git-dir")
    if proc.returncode != 0:
        said = proc.stderr.strip().splitlines()[-1:] or [""]
        why = "" if "not a git repository" in said[0] else f" (git: {said[0]})"  # e.g. dubious ownership
        raise InputError(f"{option} {path}: not a git repository{why}",
                         "pass a git checkout of a kernel (a plain directory works with --tree PATH, not @REV)")
    return path.resolve()


def git_commit(repo: Path, rev: str, option: str) -> str:
    """The commit ``rev`` names in ``repo``, as a full hash."""
    if not rev.strip() or rev.startswith("-"):
        raise InputError(f"{option} {_show(rev)}: not a revision", "a commit, tag or branch, e.g. v6.12 or HEAD~2")
    proc = _git(repo, "rev-parse", "--verify", "--quiet", "--end-of-options", f"{rev}^{{commit}}")
    if proc.returncode != 0:
        raise InputError(f"{option} {rev}: no such commit in {repo}",
                         f"check with: git -C {repo} log --oneline -5 {rev}")
    return proc.stdout.strip()


def _kernel_at_commit(repo: Path, commit: str, what: str) -> None:
    """The commit holds a Linux tree (checked in git's object store: no checkout)."""
    query = "".join(f"{commit}:{name}\n" for name in sources.TREE_MARKERS)
    out = _git(repo, "cat-file", "--batch-check", stdin=query).stdout.splitlines()
    for name, line in zip(sources.TREE_MARKERS, out, strict=False):
        if line.endswith("missing"):
            raise InputError(f"{what}: commit {commit[:12]} is not a Linux kernel tree ({name} is missing)",
                             "pass a revision of a kernel repository")


def commit_range(repo: Path, older: str, newer: str, options: tuple[str, str]) -> tuple[str, str]:
    """Both revisions resolve, differ, and ``older`` is an ancestor of ``newer`` (a walk or bisection
    from one to the other is defined); returns their hashes."""
    a, b = git_commit(repo, older, options[0]), git_commit(repo, newer, options[1])
    if a == b:
        raise InputError(f"{options[0]} {older} and {options[1]} {newer} are the same commit ({a[:12]})",
                         "nothing lies between them; pass two different revisions")
    if _git(repo, "merge-base", "--is-ancestor", a, b).returncode != 0:
        raise InputError(f"{options[1]} {newer} is not a descendant of {options[0]} {older}",
                         f"swap them? check with: git -C {repo} log --oneline {older}..{newer}")
    _kernel_at_commit(repo, a, f"{options[0]} {older}")
    return a, b


def _read_text(path: Path, option: str, what: str) -> str:
    if path.is_dir():
        raise InputError(f"{option} {path}: is a directory", f"pass the {what} file itself")
    try:
        return path.read_text()
    except FileNotFoundError as exc:
        raise InputError(f"{option} {path}: no such file", f"pass an existing {what} file") from exc
    except UnicodeDecodeError as exc:
        raise InputError(f"{option} {path}: not text (not UTF-8)", f"pass a {what} file") from exc
    except OSError as exc:
        raise InputError(f"{option} {path}: cannot be read ({exc.strerror})", f"pass a readable {what} file") from exc


def config_lines(path: Path, option: str, what: str) -> dict[str, str]:
    """A Kconfig fragment or .config: every line is ``CONFIG_X=VALUE``, ``# CONFIG_X is not set``, a
    ``#`` comment or blank; at least one option. A line kconfig would reject (or silently ignore)
    is named with its line number."""
    text = _read_text(path, option, what)
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):  # '# CONFIG_FOO is not set' is parsed below, with the options
            continue
        m = _FRAGMENT_SET.fullmatch(line)
        if m and _FRAGMENT_VALUE.fullmatch(m.group(2)):
            continue
        if m:
            reason = f"value {_show(m.group(2))} is not y, m, n, a number or a \"quoted string\""
        else:
            reason = f"{_show(line)} is not a Kconfig line"
        raise InputError(f"{option} {path}:{n}: {reason}",
                         "lines are CONFIG_FOO=y|m|n|NUMBER|\"TEXT\", '# CONFIG_FOO is not set', or # comments")
    options = kconfig.parse_config(text)
    if not options:
        raise InputError(f"{option} {path}: no CONFIG_ option in it", f"is it the right file? a {what} sets options")
    return options


def fragments(paths: list[Path] | None, option: str = "--fragment") -> dict[str, str]:
    """Every fragment parses; returns what they ask for together (a later one overrides)."""
    merged: dict[str, str] = {}
    for path in paths or []:
        merged.update(config_lines(path, option, "Kconfig fragment"))
    return merged


def config_base(base: str, option: str) -> None:
    if base in CONFIG_BASES:
        return
    path = Path(base).expanduser()
    if not path.exists():
        raise InputError(f"{option} {base}: not {', '.join(CONFIG_BASES)}, nor an existing config file",
                         f"pass {' or '.join(CONFIG_BASES)}, or a .config file")
    config_lines(path, option, "kernel .config")


def at_least(value: int | None, minimum: int, option: str) -> None:
    if value is not None and value < minimum:
        raise InputError(f"{option} {value}: must be at least {minimum}", f"pass {option} {minimum} or more")


def positive_seconds(value: float | None, option: str) -> None:
    if value is not None and not (math.isfinite(value) and value > 0):
        raise InputError(f"{option} {value}: must be a positive number of seconds", f"e.g. {option} 120")


def host_memory_mib() -> int | None:
    """MemTotal: QEMU's guest RAM can never exceed it (None if /proc/meminfo cannot be read)."""
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) // 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def max_guest_cpus(fragment_paths: list[Path] | None) -> tuple[int, str]:
    """The most CPUs the guest kernel will bring up, and why: CONFIG_NR_CPUS of the fragments the kernel
    is built with (kernel-config/ sets 8), 1 without CONFIG_SMP, else QEMU's own limit."""
    from hmmbench.kernel.build import default_fragments

    paths = fragment_paths if fragment_paths is not None else default_fragments()
    request = kconfig.merged_request(kconfig.load_fragments(paths))
    if request.get("CONFIG_SMP") == "n":
        return 1, "CONFIG_SMP is off in the kernel fragments"
    nr = request.get("CONFIG_NR_CPUS")
    if nr and nr.isdigit():
        names = ", ".join(p.name for p in paths if "CONFIG_NR_CPUS=" in p.read_text())
        return int(nr), f"the kernel is built with CONFIG_NR_CPUS={nr} ({names})"
    return QEMU_MAX_CPUS, "QEMU's pc machine"


def guest_shape(memory_mib: int, cpus: int, numa_nodes: int, guests: int, fragment_paths: list[Path] | None) -> None:
    """What QEMU and the guest kernel accept: enough memory to boot, no more than the host has (for
    every guest at once), CPUs the kernel can bring up, NUMA nodes that each have a CPU and an equal
    share of the memory (QEMU refuses node sizes that do not add up to -m)."""
    at_least(cpus, 1, "--cpus")
    at_least(numa_nodes, 1, "--numa-nodes")
    limit, why = max_guest_cpus(fragment_paths)
    if cpus > limit:
        raise InputError(f"--cpus {cpus}: more than the guest kernel can use ({why})", f"pass --cpus 1 to {limit}")
    if numa_nodes > cpus:
        raise InputError(f"--numa-nodes {numa_nodes}: more nodes than CPUs ({cpus})",
                         f"pass --numa-nodes 1 to {cpus}, or more --cpus")
    if memory_mib < MIN_GUEST_MIB:
        raise InputError(f"--memory {memory_mib}: too little for the suite (MiB; at least {MIN_GUEST_MIB}: "
                         "below it the guest kernel turns THP off)",
                         f"pass --memory {MIN_GUEST_MIB} or more (default 2048)")
    host = host_memory_mib()
    if host is not None and memory_mib * guests > host:
        each = f" x {guests} guests" if guests > 1 else ""
        raise InputError(f"--memory {memory_mib}{each}: more than this host has ({host} MiB)",
                         f"pass --memory {host // guests} or less" + (" or fewer --jobs" if guests > 1 else ""))
    if memory_mib % numa_nodes:
        raise InputError(f"--memory {memory_mib}: not divisible into {numa_nodes} equal NUMA nodes",
                         f"pass a multiple of {numa_nodes}, e.g. --memory {memory_mib - memory_mib % numa_nodes}")


def accelerator(accel: str) -> None:
    """``--accel kvm`` is taken as asked (no trial boot): without a usable /dev/kvm QEMU would fail late."""
    from hmmbench.vm.accel import kvm_usable_device

    if accel == "kvm" and not kvm_usable_device():
        raise InputError("--accel kvm: no usable /dev/kvm on this host", "pass --accel auto or --accel tcg")


def network(net: str) -> None:
    """``--net tap`` makes a network namespace, a bridge and taps: root and /dev/net/tun, known now."""
    if net != "tap":
        return
    if os.geteuid() != 0:
        raise InputError("--net tap needs root (network namespaces, bridges, tap devices)",
                         "run as root, or use the default --net user")
    if not os.path.exists("/dev/net/tun"):
        raise InputError("--net tap: no /dev/net/tun on this host", "load the tun module, or use --net user")


def case_names(names: list[str], option: str = "--case") -> None:
    if not names:  # every case (and loading them costs a third of a second)
        return
    from hmmbench import cases

    known = cases.load_all()
    for name in names:
        if name not in known:
            close = difflib.get_close_matches(name, list(known), n=1)
            guess = f"did you mean {close[0]}? " if close else ""
            raise InputError(f"{option} {name}: unknown case",
                             f"{guess}known: {', '.join(known)} (hmmbench cases describes them)")


def existing_file(path: Path, option: str, what: str) -> None:
    path = path.expanduser()
    if not path.is_file():
        problem = "is a directory" if path.is_dir() else "no such file"
        raise InputError(f"{option} {path}: {problem}", f"pass an existing {what}")
    if not os.access(path, os.R_OK):
        raise InputError(f"{option} {path}: not readable", f"pass a readable {what}")


def _writable_place(path: Path, option: str) -> None:
    """The nearest existing ancestor of ``path`` is a directory this process can write in."""
    parent = path.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise InputError(f"{option} {path}: {parent} is a file, not a directory", "pass a path in a directory")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise InputError(f"{option} {path}: cannot write in {parent}", "pass a path in a writable directory")


def output_dir(path: Path | None, option: str = "--out") -> None:
    """Where results go (default hmmbench-results/ in the current directory): a directory, writable."""
    from hmmbench.reports.results import RESULTS_DIR

    path = (path or RESULTS_DIR).expanduser().absolute()
    if path.exists() and not path.is_dir():
        raise InputError(f"{option} {path}: exists and is not a directory", "pass a new or existing directory")
    _writable_place(path / "x", option)


def output_file(path: Path | None, option: str) -> None:
    """A report written at the end of the run: not a directory, in a writable place."""
    if path is None:
        return
    path = path.expanduser().absolute()
    if path.is_dir():
        raise InputError(f"{option} {path}: is a directory", f"pass a file name for {option}")
    _writable_place(path, option)


def recipe(name: str) -> None:
    from hmmbench.vm.image import RECIPE_DIR

    if "/" in name or name in ("", ".", "..") or not (RECIPE_DIR / name / "recipe.toml").is_file():
        known = ", ".join(sorted(p.name for p in RECIPE_DIR.iterdir() if (p / "recipe.toml").is_file()))
        raise InputError(f"--recipe {name}: no such image recipe in {RECIPE_DIR}", f"known recipes: {known}")


def ssh_url(url: str, option: str = "--target") -> None:
    from hmmbench.targets.remote import parse_url

    parse_url(url, option)


def inventory_file(path: Path) -> None:
    """The inventory parses (TOML, types, URLs) and every file it names exists."""
    from hmmbench.targets import inventory

    for n, t in enumerate(inventory.load(path.expanduser()), 1):
        where = f"inventory {path}: target {n} ({t.url})"
        if t.options.identity is not None:
            existing_file(t.options.identity, f"{where}: identity", "private key file")
        if t.options.known_hosts is not None and not t.options.accept_new_host_key:
            existing_file(t.options.known_hosts, f"{where}: known_hosts",
                          "known_hosts file (or set accept_new_host_key = true to create it)")


PATCH_SUFFIXES = (".patch", ".diff", ".eml", ".mbox")


def patch_list(patches: Path) -> list[Path]:
    """The files ``--patches`` names, in order: a directory's *.patch (.diff, .eml, .mbox) files, or the
    one file given (an mbox)."""
    if patches.is_dir():
        files = sorted(p for p in patches.iterdir() if p.suffix in PATCH_SUFFIXES)
        if not files:
            raise InputError(f"--patches {patches}: no *.patch files",
                             "git format-patch writes NNNN-subject.patch files")
        return files
    if patches.is_file():
        return [patches]
    raise InputError(f"--patches {patches}: no such file or directory",
                     "pass a directory of git format-patch files or an mbox")


def patches(path: Path) -> None:
    """``--patches``: a directory of *.patch files or one mbox, each a mail that ``git am`` can take."""
    for f in patch_list(path.expanduser()):
        text = _read_text(f, "--patches", "patch")
        first = next((line for line in text.splitlines() if line.strip()), "")
        if not _MAIL_HEADER.match(first):
            plain = first.startswith(("diff ", "--- ", "Index: "))
            raise InputError(f"--patches {f}: " + ("a plain diff, not a mail" if plain else "not a patch mail"),
                             "git am takes git format-patch output (an mbox); commit the change and format-patch it")


def results_file(path: Path) -> None:
    from hmmbench.reports import results

    results.load(path.expanduser())


# ================================================================== one check per command


def _kernel_inputs(args: argparse.Namespace) -> None:
    """--kernel / --tree, the config base and the fragments (the options of _kernel_args)."""
    if getattr(args, "kernel", None) is not None:
        kernel_spec(args.kernel, "--kernel")
    if getattr(args, "tree", None) is not None:
        kernel_spec(args.tree, "--tree", names=False)
    config_base(args.config_base, "--config-base")
    fragments(args.fragment)


def _remote_inputs(args: argparse.Namespace, *, with_inventory: bool = False) -> None:
    """--target and the options that only mean something with it."""
    remote_given = args.target is not None or (with_inventory and args.inventory is not None)
    if args.kexec is not None and not remote_given:
        raise InputError("--kexec needs --target ssh://..." + (" or --inventory FILE" if with_inventory else ""),
                         "hmmbench's own QEMU guests boot the kernel directly: drop --kexec")
    for flag, given in (("--identity", args.identity is not None), ("--known-hosts", args.known_hosts is not None),
                        ("--accept-new-host-key", args.accept_new_host_key)):
        if given and args.target is None:
            inv = with_inventory and args.inventory is not None
            raise InputError(f"{flag} is for --target" + (", not --inventory" if inv else ""),
                             "set it per machine in the inventory" if inv else "add --target ssh://..., or drop it")
    if args.target is not None:
        ssh_url(args.target)
    if args.identity is not None:
        existing_file(args.identity, "--identity", "SSH private key file")
    if args.known_hosts is not None and not args.accept_new_host_key:
        existing_file(args.known_hosts, "--known-hosts", "known_hosts file (or add --accept-new-host-key)")


def _suite_inputs(args: argparse.Namespace) -> None:
    """--case, --out, --timeout (the options of _suite_args)."""
    case_names(args.cases)
    output_dir(args.out)
    positive_seconds(args.timeout, "--timeout")


def check_nothing(_args: argparse.Namespace) -> None:
    """Commands whose every input argparse already checks (kernel fetch's name is a choice)."""


def check_kernel_build(args: argparse.Namespace) -> None:
    _kernel_inputs(args)


def check_image_build(args: argparse.Namespace) -> None:
    recipe(args.recipe)


def check_run(args: argparse.Namespace) -> None:
    if args.target is not None and args.inventory is not None:
        raise InputError("--target and --inventory both given", "list the machine in the inventory instead")
    remote = args.target is not None or args.inventory is not None
    if remote and not args.kexec and (args.kernel is not None or args.tree is not None):
        flag = "--kernel" if args.kernel is not None else "--tree"
        raise InputError(f"{flag} with --target/--inventory: the machine runs its own kernel",
                         f"to test another kernel there, pass it as --kexec instead of {flag}")
    if remote and args.jobs != 1:
        raise InputError(f"--jobs {args.jobs} with --target/--inventory: each machine is one worker",
                         "list more machines in an --inventory file to run cases at once")
    if remote and args.append:
        raise InputError("--append with --target/--inventory: a running machine keeps its command line",
                         "pass kernel parameters to hmmbench's own QEMU guests only")
    _kernel_inputs(args)
    _suite_inputs(args)
    at_least(args.jobs, 1, "--jobs")
    recipe(args.recipe)
    if not remote:
        guest_shape(args.memory, args.cpus, args.numa_nodes, args.jobs, args.fragment)
        accelerator(args.accel)
        network(args.net)
    output_file(args.junit, "--junit")
    output_file(args.json, "--json")
    _remote_inputs(args, with_inventory=True)
    if args.kexec is not None:
        kernel_spec(args.kexec, "--kexec", bzimage=True)
    if args.inventory is not None:
        inventory_file(args.inventory)


def check_selftest(args: argparse.Namespace) -> None:
    _kernel_inputs(args)
    if args.target is None:
        accelerator(args.accel)
    output_dir(args.out)
    positive_seconds(args.timeout, "--timeout")
    _remote_inputs(args)
    if args.kexec is not None:  # selftest builds hmm-tests from the kernel's tree: a bare bzImage has none
        kernel_spec(args.kexec, "--kexec")


def check_gate(args: argparse.Namespace) -> None:
    # Unset, each side is one of the Debian kernels (gate.DEFAULT_*): nothing to check. With --target
    # each side is kexec'd, so a bzImage file is a kernel too.
    for option, spec in (("--base", args.base_kernel), ("--patched", args.patched)):
        if spec is not None:
            kernel_spec(spec, option, bzimage=args.target is not None)
    config_base(args.config_base, "--config-base")
    fragments(args.fragment)
    _suite_inputs(args)
    at_least(args.jobs, 1, "--jobs")
    if args.target is None:
        accelerator(args.accel)
    for option, path in (("--markdown", args.markdown), ("--json", args.json), ("--junit", args.junit)):
        output_file(path, option)
    if args.kexec is not None:
        raise InputError("--kexec with gate: each side's kernel is kexec'd by itself", "drop --kexec")
    _remote_inputs(args)


def check_series(args: argparse.Namespace) -> None:
    repo = git_repo(Path(args.tree), "--tree")
    if args.patches is not None:
        base = git_commit(repo, args.base_rev, "--base-rev")
        _kernel_at_commit(repo, base, f"--base-rev {args.base_rev}")
        patches(args.patches)
    else:
        commit_range(repo, args.base_rev, args.tip, ("--base-rev", "--tip"))
    config_base(args.config_base, "--config-base")
    fragments(args.fragment)
    _suite_inputs(args)
    at_least(args.jobs, 1, "--jobs")
    accelerator(args.accel)
    output_file(args.json, "--json")


def check_bisect(args: argparse.Namespace) -> None:
    repo = git_repo(Path(args.tree), "--tree")
    commit_range(repo, args.good, args.bad, ("--good", "--bad"))
    case_names([args.case])
    if args.signature is not None and not args.signature.strip():
        raise InputError("--signature is empty", "pass the text of the kernel report title, e.g. 'WARNING in'")
    at_least(args.repeat, 1, "--repeat")
    config_base(args.config_base, "--config-base")
    fragments(args.fragment)
    output_dir(args.out)
    accelerator(args.accel)
    positive_seconds(args.timeout, "--timeout")
    output_file(args.json, "--json")


def check_bisect_step(args: argparse.Namespace) -> None:
    kernel_spec(args.tree, "--tree", names=False)
    case_names([args.case])
    at_least(args.repeat, 1, "--repeat")


def check_bench(args: argparse.Namespace) -> None:
    _kernel_inputs(args)
    at_least(args.repeat, 1, "--repeat")
    at_least(args.iterations, 1, "--iterations")
    accelerator(args.accel)
    output_dir(args.out)
    output_file(args.json, "--json")


def check_guest(args: argparse.Namespace) -> None:
    from hmmbench.vm.qemu import GuestConfig

    _kernel_inputs(args)
    output_dir(args.out)
    positive_seconds(args.duration, "--for")
    at_least(args.count, 1, "--count")
    if args.net == "user" and args.count != 1:
        raise InputError(f"--count {args.count} needs --net tap", "user-mode guests cannot reach each other")
    network(args.net)
    accelerator(args.accel)
    cfg = GuestConfig()
    guest_shape(cfg.memory_mib, cfg.cpus, cfg.numa_nodes, args.count, args.fragment)


def check_judge(args: argparse.Namespace) -> None:
    results_file(args.results)
    output_file(args.json, "--json")
