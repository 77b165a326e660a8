"""Kernel source trees: Debian's packaged sources fetched into the cache, or any tree the user names.

A tree has an *identity* that keys every build made from it: for a git checkout the HEAD commit plus a
hash of uncommitted (and untracked) changes; for a plain directory a hash of its content, sped up by a
per-tree cache of (size, mtime, inode) -> file hash so that re-checking an unchanged tree costs a walk,
not a re-read.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from hmmbench import cache, progress
from hmmbench.errors import HarnessError
from hmmbench.kernel import apt
from hmmbench.kernel.git import probe


@dataclass(frozen=True)
class DebianKernel:
    """A kernel named by hmmbench (``debian-6.12``) and where Debian ships its source."""

    name: str
    package: str
    suites: tuple[str, ...]
    with_security: bool
    note: str


DEBIAN_KERNELS: dict[str, DebianKernel] = {
    "debian-6.12": DebianKernel(
        "debian-6.12", "linux-source-6.12", ("bookworm", "bookworm-updates"), True,
        "Linux 6.12 LTS as Debian bookworm ships it: before 'mm: fixes for device-exclusive entries'",
    ),
    "debian-7.2": DebianKernel(
        "debian-7.2", "linux-source-7.2", ("sid",), False,
        "Linux 7.2 from Debian's sid suite: after 'mm: fixes for device-exclusive entries'",
    ),
}
DEFAULT_KERNEL = "debian-6.12"


@dataclass(frozen=True)
class KernelTree:
    """A kernel source tree and its identity."""

    path: Path
    identity: str
    label: str

    def kernelversion(self) -> str:
        """The version the tree's Makefile declares (e.g. 6.12.117)."""
        fields: dict[str, str] = {}
        with open(self.path / "Makefile") as fh:
            for line in fh:
                for key in ("VERSION", "PATCHLEVEL", "SUBLEVEL", "EXTRAVERSION"):
                    if line.startswith(f"{key} =") and key not in fields:
                        fields[key] = line.split("=", 1)[1].strip()
                if len(fields) == 4:
                    break
        v = f"{fields.get('VERSION', '?')}.{fields.get('PATCHLEVEL', '?')}"
        if fields.get("SUBLEVEL"):  # as the Makefile's KERNELVERSION: "6.12.0", "7.2.0-rc3"
            v += f".{fields['SUBLEVEL']}"
        return v + fields.get("EXTRAVERSION", "")


KERNEL_FORMS = "debian-6.12 or debian-7.2, a kernel tree path, or PATH@REV"
TREE_MARKERS = ("Makefile", "Kconfig", "arch/x86/Kconfig", "mm/Kconfig")  # what makes a dir a kernel tree


def check_kernel_tree(path: Path) -> None:
    """Refuse a path that is not a Linux source tree, naming what is missing."""
    if not path.is_dir():
        what = "is not a directory" if path.exists() else "does not exist"
        raise HarnessError(f"kernel tree {path} {what}", f"pass {KERNEL_FORMS}")
    for needed in TREE_MARKERS:
        if not (path / needed).exists():
            raise HarnessError(
                f"{path} is not a Linux kernel tree: {needed} is missing",
                "pass --tree with the top of a kernel source tree, or --kernel debian-6.12",
            )


def is_git_tree(path: Path) -> bool:
    proc = probe(path, "rev-parse", "--show-toplevel")
    return proc.returncode == 0 and Path(proc.stdout.decode().strip()).resolve() == path.resolve()


def git_identity(path: Path) -> str:
    """``git:<commit>`` plus ``+dirty:<hash>`` when the work tree differs from HEAD."""
    head = probe(path, "rev-parse", "HEAD")
    if head.returncode != 0:
        raise HarnessError(f"{path}: git rev-parse HEAD failed: {head.stderr.decode().strip()}")
    commit = head.stdout.decode().strip()
    diff = probe(path, "diff", "HEAD", "--binary").stdout
    untracked = probe(path, "ls-files", "--others", "--exclude-standard", "-z").stdout.split(b"\0")
    h = hashlib.sha256(diff)
    for name in sorted(n for n in untracked if n):
        h.update(name + b"\0")
        try:
            h.update(hashlib.sha256((path / name.decode()).read_bytes()).digest())
        except OSError:
            pass
    if not diff and not any(untracked):
        return f"git:{commit}"
    return f"git:{commit}+dirty:{h.hexdigest()[:16]}"


def content_identity(path: Path) -> str:
    """``tree:<hash>`` of every file's relative path and content (``.git`` excluded).

    File hashes are remembered per (size, mtime_ns, inode) in the cache, so only changed files are
    re-read on later calls.
    """
    memo_path = cache.cache_root() / "treehash" / f"{cache.stable_hash(str(path.resolve()))}.json"
    memo: dict[str, list] = cache.read_json(memo_path) or {}
    fresh: dict[str, list] = {}
    total = hashlib.sha256()
    for dirpath, dirnames, filenames in os.walk(path):
        dirnames[:] = sorted(d for d in dirnames if d != ".git")
        for name in sorted(filenames):
            full = os.path.join(dirpath, name)
            rel = os.path.relpath(full, path)
            st = os.lstat(full)
            key = [st.st_size, st.st_mtime_ns, st.st_ino]
            old = memo.get(rel)
            if old and old[:3] == key:
                digest = old[3]
            elif os.path.islink(full):
                digest = hashlib.sha256(os.readlink(full).encode()).hexdigest()
            else:
                with open(full, "rb") as fh:
                    digest = hashlib.file_digest(fh, "sha256").hexdigest()
            fresh[rel] = [*key, digest]
            total.update(f"{rel}\0{digest}\n".encode())
    cache.write_json(memo_path, fresh)
    return f"tree:{total.hexdigest()[:16]}"


def tree_from_path(path: Path) -> KernelTree:
    """A user-named tree (``--tree PATH``), checked and identified."""
    path = path.expanduser().resolve()
    check_kernel_tree(path)
    with progress.step(f"identifying kernel tree {path}"):
        ident = git_identity(path) if is_git_tree(path) else content_identity(path)
    return KernelTree(path=path, identity=ident, label=str(path))


def _extract_deb_source(deb: Path, dest: Path) -> None:
    """Unpack /usr/src/linux-source-X.tar.xz from a linux-source .deb into ``dest`` (top dir stripped)."""
    dest.mkdir(parents=True, exist_ok=True)
    script = (
        'set -o pipefail; dpkg-deb --fsys-tarfile "$1" | tar -xO --wildcards "./usr/src/linux-source-*.tar.*" '
        '| tar -xJ -C "$2" --strip-components=1'
    )
    proc = subprocess.run(["bash", "-c", script, "extract", str(deb), str(dest)], capture_output=True, text=True)
    if proc.returncode != 0:
        raise HarnessError(f"unpacking {deb.name} failed: {proc.stderr.strip()[-300:]}")


def looks_like_name(spec: str) -> bool:
    """True for a KERNEL argument that reads as a name (``debian-9.9``, ``6.12``), not as a path: a
    word without ``/`` that names nothing on disk. Such a typo is an unknown *name*, not a missing tree."""
    return "/" not in spec and not spec.startswith(("~", ".")) and not Path(spec).exists()


def unknown_kernel(spec: str, option: str = "kernel") -> HarnessError:
    return HarnessError(f"{option} {spec!r}: unknown kernel name (and no such path)",
                        f"known kernels: {', '.join(DEBIAN_KERNELS)}; or pass a kernel tree path, or PATH@REV")


def fetch_debian(name: str, refresh: bool = False) -> KernelTree:
    """Fetch (or reuse) Debian's source for kernel ``name`` into the cache and return the tree."""
    if name not in DEBIAN_KERNELS:
        raise unknown_kernel(name)
    spec = DEBIAN_KERNELS[name]
    root = cache.cache_root() / "sources"
    record_path = root / f"{name}.json"
    with cache.locked(root / f"{name}.lock"):
        record = cache.read_json(record_path)
        if record and not refresh and Path(record["path"]).is_dir():
            tree = Path(record["path"])
            return KernelTree(path=tree, identity=record["identity"], label=f"{name} ({record['version']})")
        stanzas = apt.read_machine_sources()
        uri, keyring = apt.debian_archive_uri(stanzas)
        wanted = [apt.Stanza(uri, spec.suites, ("main",), keyring)]
        if spec.with_security:
            sec_uri, sec_key = apt.debian_archive_uri(stanzas, security=True)
            wanted.append(apt.Stanza(sec_uri, (f"{spec.suites[0]}-security",), ("main",), sec_key))
        private = apt.PrivateApt(cache.cache_root() / "apt" / name, wanted)
        with progress.step(f"apt-get update for {name} ({' '.join(spec.suites)})"):
            private.update()
        version = private.candidate_version(spec.package)
        if not version:
            raise HarnessError(f"{spec.package} is not available from suites {', '.join(spec.suites)}")
        deb = private.download(spec.package, root / "debs")
        deb_sha = cache.file_sha256(deb)
        final = root / f"{name}-{version}"
        with progress.step(f"unpacking {deb.name}"), cache.publishing(final) as tmp:
            _extract_deb_source(deb, tmp)
            check_kernel_tree(tmp)
        deb.unlink()
        identity = f"debian:{spec.package}={version}:sha256:{deb_sha[:16]}"
        cache.write_json(record_path, {"path": str(final), "version": version, "identity": identity,
                                       "deb_sha256": deb_sha})
        # The unpacked tree is treated as immutable; drop an older version's tree.
        if record and record.get("path") != str(final):
            shutil.rmtree(record["path"], ignore_errors=True)
        return KernelTree(path=final, identity=identity, label=f"{name} ({version})")


def _remove_stale_index_lock(worktree: Path) -> None:
    """A git killed mid-checkout (an interrupted hmmbench: Ctrl-C, SIGKILL, a lost machine) leaves
    ``index.lock`` behind and every later checkout fails. The worktree is hmmbench's own and the caller
    holds its lock, so no other git can be working in it: the lock is stale and goes, with a note."""
    git_dir = probe(worktree, "rev-parse", "--absolute-git-dir")
    if git_dir.returncode != 0:
        return
    lock = Path(git_dir.stdout.decode().strip()) / "index.lock"
    if lock.exists():
        progress.say(f"removing {lock} left by an interrupted git (this worktree is hmmbench's, and locked)")
        lock.unlink(missing_ok=True)


def tree_at_rev(repo: Path, rev: str) -> KernelTree:
    """``PATH@REV``: the commit REV of git repo PATH, checked out in a worktree that hmmbench owns.

    The user's checkout is never touched. One worktree per repository is reused for every revision,
    so a walk over a series (or a bisection) only changes the files that differ between commits and
    the build directory keyed by the worktree's path rebuilds incrementally.
    """
    repo = repo.expanduser().resolve()
    if probe(repo, "rev-parse", "--git-dir").returncode != 0:
        raise HarnessError(f"{repo} is not a git repository", "PATH@REV needs a git checkout; or pass a plain --tree")
    proc = probe(repo, "rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}")
    if proc.returncode != 0:
        raise HarnessError(f"{repo}: no commit {rev!r}", f"check with: git -C {repo} log --oneline {rev}")
    commit = proc.stdout.decode().strip()
    worktree = cache.cache_root() / "worktrees" / cache.stable_hash(str(repo))
    with cache.locked(worktree.with_suffix(".lock")):
        if not (worktree / ".git").exists():
            probe(repo, "worktree", "prune")
            with progress.step(f"creating worktree {worktree} for {repo}"):
                add = probe(repo, "worktree", "add", "--detach", "--force", str(worktree), commit)
                if add.returncode != 0:
                    raise HarnessError(f"git worktree add failed: {add.stderr.decode().strip()[-300:]}")
        else:
            _remove_stale_index_lock(worktree)
            co = probe(worktree, "checkout", "--detach", "--force", "--quiet", commit)
            if co.returncode != 0:
                raise HarnessError(f"git checkout {commit[:12]} failed: {co.stderr.decode().strip()[-300:]}")
            probe(worktree, "clean", "-fdq", "-e", "/.hmmbench-build-*")
    check_kernel_tree(worktree)
    return KernelTree(path=worktree, identity=f"git:{commit}", label=f"{repo}@{rev} ({commit[:12]})")


def resolve_spec(spec: str) -> KernelTree:
    """A KERNEL argument: ``debian-6.12``, ``debian-7.2``, a tree path, or ``PATH@REV``."""
    if spec in DEBIAN_KERNELS:
        return fetch_debian(spec)
    if "@" in spec and not Path(spec).exists():
        path, _, rev = spec.rpartition("@")
        return tree_at_rev(Path(path), rev)
    if looks_like_name(spec):
        raise unknown_kernel(spec)
    return tree_from_path(Path(spec))


def resolve_kernel(kernel: str | None, tree: str | None) -> KernelTree:
    """The tree for ``--kernel KERNEL`` or ``--tree PATH[@REV]`` (default: the embedded default kernel)."""
    return resolve_spec(tree or kernel or DEFAULT_KERNEL)
