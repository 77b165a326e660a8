"""A git history on top of a fetched Debian tree: for patched kernels in tests and benchmarks.

The repository is made once per machine under the hmmbench cache (the fetched tree is its work tree
for the first commit; no copy), and commits are written with git plumbing (no checkout) with fixed
author/committer dates, so the same change always yields the same commit hash and therefore the same
cached kernel build next time.
"""

from __future__ import annotations

import os
from pathlib import Path

from hmmbench import cache
from hmmbench.kernel import sources
from hmmbench.kernel.build import BUILD_DIR_PREFIX
from hmmbench.kernel.git import git_bytes

FIXED_DATE = "2026-01-01T00:00:00+0000"
BASE_BRANCH = "debian-base"
# Part of the repository's name: bumped when the import changes what the base commit holds (2: without
# the tree's .hmmbench-build-* directories, which version 1 committed).
IMPORT_VERSION = 2

# An edit (for commit_change) that breaks exclusive_basic on purpose: CHECK_EXCLUSIVE then reports "no
# atomic entries" even while the device holds the pages. Tests and the bench bisect towards it.
_CHECK_ATOMIC = ("static int dmirror_check_atomic(struct dmirror *dmirror, unsigned long start,\n"
                 "\t\t\t     unsigned long end)\n{")
BREAK_EXCLUSIVE_BASIC = {"lib/test_hmm.c": (_CHECK_ATOMIC,
                                            _CHECK_ATOMIC + "\n\treturn 0; /* hmmbench test: breaks a case */")}


def _env(index: Path | None = None) -> dict[str, str]:
    env = {
        "GIT_AUTHOR_NAME": "hmmbench tests", "GIT_AUTHOR_EMAIL": "tests@hmmbench.invalid",
        "GIT_COMMITTER_NAME": "hmmbench tests", "GIT_COMMITTER_EMAIL": "tests@hmmbench.invalid",
        "GIT_AUTHOR_DATE": FIXED_DATE, "GIT_COMMITTER_DATE": FIXED_DATE,
    }
    if index is not None:
        env["GIT_INDEX_FILE"] = str(index)
    return env


def git_raw(repo: Path, *args: str, index: Path | None = None, input: bytes | None = None) -> bytes:
    """git in the bare fixture repository, with the fixed identity and dates (and an index of its own)."""
    return git_bytes(repo, *args, bare=True, input=input, env=_env(index))


def git(repo: Path, *args: str, index: Path | None = None, input: bytes | None = None) -> str:
    return git_raw(repo, *args, index=index, input=input).decode().strip()


def ensure_repo(kernel: str = "debian-6.12") -> Path:
    """The bare repository holding the fetched Debian tree ``kernel`` as branch ``debian-base`` (made once)."""
    tree = sources.fetch_debian(kernel)
    repo = cache.cache_root() / "testrepos" / f"{cache.stable_hash(tree.identity, IMPORT_VERSION)}.git"
    with cache.locked(repo.with_suffix(".lock")):
        if (repo / "refs" / "heads" / BASE_BRANCH).exists():
            return repo
        repo.mkdir(parents=True, exist_ok=True)
        git_bytes(repo, "init", "-q", "--bare", bare=True)
        index = repo / "import-index"
        work = ["--work-tree", str(tree.path)]
        # --force: Debian's linux-source .gitignore ends with "/*" (everything is ignored). The tree's
        # own build directories (and their locks) are not source: committed, every checkout in the
        # worktree put the Debian build's objects back over the worktree's, with new times.
        git_bytes(repo, *work, "add", "-A", "--force", "--", ".", f":(exclude){BUILD_DIR_PREFIX}*",
                  bare=True, env=_env(index), cwd=tree.path)
        tree_sha = git(repo, "write-tree", index=index)
        top = git(repo, "ls-tree", "--name-only", tree_sha).splitlines()
        if "Makefile" not in top:
            raise RuntimeError(f"importing {tree.path} into {repo} produced an empty tree")
        if any(name.startswith(BUILD_DIR_PREFIX) for name in top):
            raise RuntimeError(f"importing {tree.path} into {repo} took a build directory in")
        commit = git(repo, "commit-tree", tree_sha, "-m", f"Debian {tree.label}")
        git(repo, "update-ref", f"refs/heads/{BASE_BRANCH}", commit)
        index.unlink()
    return repo


Edit = tuple[str, str]  # (old, new): the first ``old`` in a file becomes ``new``


def commit_change(repo: Path, parent: str, message: str, edits: dict[str, Edit | list[Edit]]) -> str:
    """A commit on ``parent`` replacing, in each file, the first ``old`` by ``new`` (one edit or a list of
    them, applied in order); returns its hash."""
    index = repo / f"tmp-index-{os.getpid()}"
    try:
        git(repo, "read-tree", parent, index=index)
        for path, file_edits in edits.items():
            text = git_raw(repo, "show", f"{parent}:{path}").decode()
            for old, new in [file_edits] if isinstance(file_edits, tuple) else file_edits:
                if old not in text:
                    raise RuntimeError(f"{path}: text to replace not found: {old[:60]!r}")
                text = text.replace(old, new, 1)
            blob = git(repo, "hash-object", "-w", "--stdin", input=text.encode())
            git(repo, "update-index", "--cacheinfo", f"100644,{blob},{path}", index=index)
        tree_sha = git(repo, "write-tree", index=index)
    finally:
        index.unlink(missing_ok=True)
    return git(repo, "commit-tree", tree_sha, "-p", parent, "-m", message)


def branch(repo: Path, name: str, commit: str) -> str:
    git(repo, "update-ref", f"refs/heads/{name}", commit)
    return commit
