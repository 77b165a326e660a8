"""Kernel tree checks and identities (git and plain directories), and the cache helpers they use."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from hmmbench import cache
from hmmbench.errors import HarnessError
from hmmbench.kernel import sources
from hmmbench.kernel.sources import KernelTree, check_kernel_tree, content_identity, git_identity

MAKEFILE = """\
# SPDX-License-Identifier: GPL-2.0
VERSION = 6
PATCHLEVEL = 12
SUBLEVEL = 117
EXTRAVERSION =
NAME = Baby Opossum Posse

# SUBLEVEL = 999 further down must not win
"""


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The cache (content_identity's memo) and git's configuration stay inside the test."""
    root = tmp_path / "cache"
    monkeypatch.setenv("HMMBENCH_CACHE", str(root))
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", os.devnull)
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    return root


def fake_tree(root: Path) -> Path:
    for rel, text in {"Makefile": MAKEFILE, "Kconfig": 'source "mm/Kconfig"\n', "arch/x86/Kconfig": "config X86\n",
                      "mm/Kconfig": "config MMU\n\tdef_bool y\n", "mm/memory.c": "int x;\n"}.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    return root


# ------------------------------------------------------------------ check_kernel_tree


def test_check_kernel_tree_accepts_a_tree(tmp_path: Path) -> None:
    check_kernel_tree(fake_tree(tmp_path / "linux"))


def test_check_kernel_tree_names_the_missing_makefile(tmp_path: Path) -> None:
    tree = fake_tree(tmp_path / "linux")
    (tree / "Makefile").unlink()
    with pytest.raises(HarnessError) as exc:
        check_kernel_tree(tree)
    assert "Makefile is missing" in exc.value.reason
    assert str(tree) in exc.value.reason
    assert exc.value.hint and "--tree" in exc.value.hint


def test_check_kernel_tree_names_the_missing_arch_kconfig(tmp_path: Path) -> None:
    tree = fake_tree(tmp_path / "linux")
    (tree / "arch/x86/Kconfig").unlink()
    with pytest.raises(HarnessError, match="arch/x86/Kconfig is missing"):
        check_kernel_tree(tree)


def test_check_kernel_tree_refuses_a_missing_dir(tmp_path: Path) -> None:
    with pytest.raises(HarnessError, match="does not exist"):
        check_kernel_tree(tmp_path / "nope")
    (tmp_path / "file").write_text("x")
    with pytest.raises(HarnessError, match="not a directory"):
        check_kernel_tree(tmp_path / "file")


# ------------------------------------------------------------------ kernelversion


def test_kernelversion(tmp_path: Path) -> None:
    tree = fake_tree(tmp_path / "linux")
    assert KernelTree(tree, "x", "x").kernelversion() == "6.12.117"


def test_kernelversion_rc_and_sublevel_zero(tmp_path: Path) -> None:
    (tmp_path / "Makefile").write_text("VERSION = 7\nPATCHLEVEL = 2\nSUBLEVEL = 0\nEXTRAVERSION = -rc3\n")
    # As `make kernelversion` (KERNELVERSION in the Makefile) and uname -r: 7.2.0-rc3.
    assert KernelTree(tmp_path, "x", "x").kernelversion() == "7.2.0-rc3"


# ------------------------------------------------------------------ content_identity


def test_content_identity_stable_and_sensitive(tmp_path: Path, isolated: Path) -> None:
    tree = fake_tree(tmp_path / "linux")
    first = content_identity(tree)
    assert first.startswith("tree:") and len(first) == len("tree:") + 16
    assert content_identity(tree) == first
    memo = list((isolated / "treehash").glob("*.json"))
    assert len(memo) == 1 and "mm/memory.c" in memo[0].read_text()

    (tree / "mm/memory.c").write_text("int x = 1;\n")
    changed = content_identity(tree)
    assert changed != first
    assert content_identity(tree) == changed

    (tree / "mm/memory.c").write_text("int x;\n")
    assert content_identity(tree) == first


def test_content_identity_same_size_edit(tmp_path: Path) -> None:
    tree = fake_tree(tmp_path / "linux")
    first = content_identity(tree)
    target = tree / "mm/memory.c"
    st = target.stat()
    target.write_text("int y;\n")  # same size, same inode
    # A distinct mtime, as any later edit has (a same-tick edit is the memo's known blind spot).
    os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    assert content_identity(tree) != first


def test_content_identity_sees_new_and_renamed_files_but_not_git(tmp_path: Path) -> None:
    tree = fake_tree(tmp_path / "linux")
    first = content_identity(tree)
    (tree / ".git").mkdir()
    (tree / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    assert content_identity(tree) == first
    (tree / "mm/memory.c").rename(tree / "mm/memory2.c")
    renamed = content_identity(tree)
    assert renamed != first
    (tree / "mm/memory2.c").rename(tree / "mm/memory.c")
    (tree / "new.txt").write_text("")
    assert content_identity(tree) not in (first, renamed)


def test_content_identity_differs_between_trees(tmp_path: Path) -> None:
    a = fake_tree(tmp_path / "a")
    b = fake_tree(tmp_path / "b")
    assert content_identity(a) == content_identity(b)  # same content, same identity
    (b / "Kconfig").write_text("# changed\n")
    assert content_identity(a) != content_identity(b)


# ------------------------------------------------------------------ git_identity


def git(repo: Path, *args: str) -> str:
    proc = subprocess.run(["git", "-C", str(repo), "-c", "user.name=Test", "-c", "user.email=test@example.org",
                           "-c", "commit.gpgsign=false", "-c", "init.defaultBranch=main", *args],
                          capture_output=True, text=True, check=True)
    return proc.stdout.strip()


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    tree = fake_tree(tmp_path / "linux")
    git(tree, "init", "-q")
    git(tree, "add", "-A")
    git(tree, "commit", "-q", "-m", "v6.12.117")
    return tree


def test_git_identity_clean(repo: Path) -> None:
    head = git(repo, "rev-parse", "HEAD")
    assert git_identity(repo) == f"git:{head}"
    assert sources.is_git_tree(repo)
    assert not sources.is_git_tree(repo / "mm")  # a subdirectory is not the top of the repository


def test_git_identity_dirty(repo: Path) -> None:
    head = git(repo, "rev-parse", "HEAD")
    (repo / "mm/memory.c").write_text("int x = 2;\n")
    dirty = git_identity(repo)
    assert dirty.startswith(f"git:{head}+dirty:")
    assert git_identity(repo) == dirty  # deterministic
    (repo / "mm/memory.c").write_text("int x = 3;\n")
    assert git_identity(repo) not in (dirty, f"git:{head}")
    (repo / "mm/memory.c").write_text("int x;\n")
    assert git_identity(repo) == f"git:{head}"


def test_git_identity_untracked_files(repo: Path) -> None:
    head = git(repo, "rev-parse", "HEAD")
    (repo / "mm/new.c").write_text("int y;\n")
    one = git_identity(repo)
    assert one.startswith(f"git:{head}+dirty:")
    (repo / "mm/new.c").write_text("int z;\n")
    assert git_identity(repo) != one  # the untracked file's content counts, not just its name
    (repo / ".gitignore").write_text("*.o\n")
    git(repo, "add", ".gitignore")
    git(repo, "commit", "-q", "-m", "ignore objects")
    (repo / "mm/new.c").unlink()
    (repo / "mm/memory.o").write_bytes(b"\x7fELF")
    assert git_identity(repo) == f"git:{git(repo, 'rev-parse', 'HEAD')}"  # ignored files do not count


def test_git_identity_outside_a_repo(tmp_path: Path) -> None:
    plain = fake_tree(tmp_path / "plain")
    with pytest.raises(HarnessError, match="rev-parse"):
        git_identity(plain)


def test_tree_from_path_uses_the_right_identity(tmp_path: Path, repo: Path) -> None:
    assert sources.tree_from_path(repo).identity.startswith("git:")
    plain = sources.tree_from_path(fake_tree(tmp_path / "plain"))
    assert plain.identity.startswith("tree:")
    assert plain.path == (tmp_path / "plain").resolve()


# ------------------------------------------------------------------ cache helpers


def test_cache_root_from_env(isolated: Path) -> None:
    assert cache.cache_root() == isolated.resolve()


def test_stable_hash() -> None:
    a = cache.stable_hash("kernel", {"b": 2, "a": 1}, [1, 2])
    assert a == cache.stable_hash("kernel", {"a": 1, "b": 2}, [1, 2])  # key order does not matter
    assert len(a) == 16 and int(a, 16) >= 0
    assert a != cache.stable_hash("kernel", {"a": 1, "b": 3}, [1, 2])
    assert a != cache.stable_hash("kernel", {"a": 1, "b": 2}, [2, 1])  # list order does
    assert cache.stable_hash("x", length=8) == cache.stable_hash("x")[:8]
    # Pinned (sha256 of the JSON text '["x"]'): a key that changed between versions would silently orphan
    # every cache entry.
    assert cache.stable_hash("x") == "cd65ea2c2ad99e94"


def test_publishing_success_and_replace(tmp_path: Path) -> None:
    final = tmp_path / "builds" / "k1"
    with cache.publishing(final) as tmp:
        assert tmp.parent == final.parent and tmp != final
        (tmp / "bzImage").write_text("v1")
        assert not final.exists()  # nothing visible until the block succeeds
    assert (final / "bzImage").read_text() == "v1"
    with cache.publishing(final) as tmp:
        (tmp / "bzImage").write_text("v2")
    assert (final / "bzImage").read_text() == "v2"
    assert [p.name for p in final.parent.iterdir()] == ["k1"]


def test_publishing_failure_leaves_nothing(tmp_path: Path) -> None:
    final = tmp_path / "builds" / "k1"
    with pytest.raises(RuntimeError), cache.publishing(final) as tmp:
        (tmp / "half").write_text("x")
        raise RuntimeError("build failed")
    assert not final.exists()
    assert list(final.parent.iterdir()) == []


def test_publishing_failure_keeps_the_old_entry(tmp_path: Path) -> None:
    final = tmp_path / "k"
    with cache.publishing(final) as tmp:
        (tmp / "ok").write_text("old")
    with pytest.raises(KeyboardInterrupt), cache.publishing(final) as tmp:
        raise KeyboardInterrupt
    assert (final / "ok").read_text() == "old"


def test_read_write_json(tmp_path: Path) -> None:
    p = tmp_path / "d" / "x.json"
    assert cache.read_json(p) is None
    cache.write_json(p, {"b": 1, "a": [1, 2]})
    assert cache.read_json(p) == {"a": [1, 2], "b": 1}
    p.write_text("{broken")
    assert cache.read_json(p) is None
