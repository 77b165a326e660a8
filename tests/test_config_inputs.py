"""Configure is skipped only when nothing Kconfig reads has changed (kernel/config_inputs.py), and the
fixture repository holds source, not the Debian tree's build directory (kernel/fixture_history.py).
The trees here are fake: a handful of files laid out like a kernel tree, with real git."""

from __future__ import annotations

from pathlib import Path

import pytest

from hmmbench.kernel import config_inputs, fixture_history, sources
from hmmbench.kernel.build import BUILD_DIR_PREFIX

MAKE = ["make", "-C", "/t", "ARCH=x86_64"]


def fake_tree(root: Path) -> Path:
    files = {
        "Makefile": "VERSION = 6\nPATCHLEVEL = 12\nSUBLEVEL = 118\nEXTRAVERSION =\n",
        "Kconfig": 'source "mm/Kconfig"\n',
        "Kconfig.debug": "config X\n",
        "arch/x86/Kconfig": "config X86_64\n\tdef_bool y\n",
        "mm/Kconfig": "config ZONE_DEVICE\n\tbool\n",
        "mm/memory.c": "int x;\n",
        "kernel/configs/tiny.config": "# CONFIG_KERNEL_GZIP is not set\n",
        "arch/x86/configs/tiny.config": "CONFIG_NOHIGHMEM=y\n",
        "scripts/cc-version.sh": "echo GCC 12\n",
        "scripts/kconfig/conf.c": "int main(void) { return 0; }\n",
        "scripts/checkpatch.pl": "1;\n",
    }
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    return root


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    return fake_tree(tmp_path / "linux")


def test_same_inputs_same_fingerprint(tree: Path):
    assert config_inputs.fingerprint(tree, "req", MAKE) == config_inputs.fingerprint(tree, "req", MAKE)


@pytest.mark.parametrize("rel", ["mm/Kconfig", "Kconfig.debug", "kernel/configs/tiny.config",
                                 "arch/x86/configs/tiny.config", "scripts/cc-version.sh",
                                 "scripts/kconfig/conf.c", "Makefile"])
def test_an_input_changed_changes_it(tree: Path, rel: str):
    before = config_inputs.fingerprint(tree, "req", MAKE)
    (tree / rel).write_text((tree / rel).read_text() + "# changed\n")
    assert config_inputs.fingerprint(tree, "req", MAKE) != before


def test_a_new_kconfig_file_changes_it(tree: Path):
    before = config_inputs.fingerprint(tree, "req", MAKE)
    (tree / "drivers").mkdir()
    (tree / "drivers" / "Kconfig").write_text("config NEW\n")
    assert config_inputs.fingerprint(tree, "req", MAKE) != before


def test_request_and_make_command_are_inputs(tree: Path):
    base = config_inputs.fingerprint(tree, "req", MAKE)
    assert config_inputs.fingerprint(tree, "other", MAKE) != base
    assert config_inputs.fingerprint(tree, "req", [*MAKE, "CC=ccache gcc"]) != base


def test_source_and_build_directories_are_not_inputs(tree: Path):
    before = config_inputs.fingerprint(tree, "req", MAKE)
    (tree / "mm" / "memory.c").write_text("int y;\n")
    (tree / "scripts" / "checkpatch.pl").write_text("2;\n")
    build = tree / f"{BUILD_DIR_PREFIX}abc"
    (build / "mm").mkdir(parents=True)
    (build / "mm" / "Kconfig").write_text("not the tree's\n")
    assert config_inputs.fingerprint(tree, "req", MAKE) == before


def test_stamp_holds_only_for_the_config_it_was_written_for(tmp_path: Path):
    work = tmp_path / "build"
    work.mkdir()
    (work / ".config").write_text("CONFIG_A=y\n")
    assert not config_inputs.still_valid(work, "f1")  # never configured
    config_inputs.record(work, "f1")
    assert config_inputs.still_valid(work, "f1")
    assert not config_inputs.still_valid(work, "f2")  # inputs changed
    (work / ".config").write_text("CONFIG_A=y\nCONFIG_B=y\n")  # edited by hand
    assert not config_inputs.still_valid(work, "f1")
    config_inputs.record(work, "f1")
    config_inputs.forget(work)  # a configure started again
    assert not config_inputs.still_valid(work, "f1")


def test_fixture_import_leaves_the_build_directory_out(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("HMMBENCH_CACHE", str(tmp_path / "cache"))
    tree = fake_tree(tmp_path / "src")
    build = tree / f"{BUILD_DIR_PREFIX}2db23c389f67"
    (build / "mm").mkdir(parents=True)
    (build / "mm" / "memory.o").write_bytes(b"\x7fELF")
    (tree / f"{BUILD_DIR_PREFIX}2db23c389f67.lock").write_text("")
    fake = sources.KernelTree(path=tree, identity="fake:1", label="fake tree")
    monkeypatch.setattr(sources, "fetch_debian", lambda name: fake)
    repo = fixture_history.ensure_repo("debian-6.12")
    names = fixture_history.git(repo, "ls-tree", "-r", "--name-only", fixture_history.BASE_BRANCH).splitlines()
    assert "mm/memory.c" in names and "Makefile" in names
    assert not [n for n in names if n.startswith(BUILD_DIR_PREFIX)]
