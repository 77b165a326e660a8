"""The input checks accept what is right (a check that refuses good input is as bad as none) and draw
their lines where QEMU, kconfig and git draw them."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from hmmbench import cli, validate
from hmmbench.errors import InputError
from hmmbench.kernel import build as kbuild

DATA = Path(__file__).parent / "data"


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t", *args],
                          check=True, capture_output=True, text=True).stdout.strip()


@pytest.fixture
def kernel_repo(tmp_path: Path) -> Path:
    repo = tmp_path / "linux"
    repo.mkdir()
    _git(repo, "init", "-q")
    for name in ("Makefile", "Kconfig", "arch/x86/Kconfig", "mm/Kconfig"):
        (repo / name).parent.mkdir(parents=True, exist_ok=True)
        (repo / name).write_text("# fake\n")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "-m", "one")
    (repo / "mm" / "Kconfig").write_text("# two\n")
    _git(repo, "commit", "-q", "-am", "two")
    return repo


def _check(argv: list[str]) -> None:
    args = cli.build_parser().parse_args(argv)
    args.check(args)


@pytest.mark.parametrize("argv", [
    ["run"], ["gate"], ["kernel", "build"], ["kernel", "fetch", "debian-7.2"], ["image", "build"], ["bench"],
    ["guest"], ["selftest"], ["cases"], ["judge", str(DATA / "run_6.12.json")],
    ["run", "--kernel", "debian-7.2", "--case", "exclusive_thp", "--case", "exclusive_basic", "--memory", "576",
     "--cpus", "8", "--numa-nodes", "8", "--timeout", "30", "--jobs", "2"],
    ["run", "--memory", "1536", "--numa-nodes", "3", "--cpus", "3"],
    ["run", "--fragment", str(kbuild.DEFAULT_FRAGMENT_DIR / "10-hmm.config"), "--cpus", "64"],  # no NR_CPUS there
    ["run", "--target", "ssh://tester@lab-a:2222", "--accept-new-host-key", "--known-hosts", "/nonexistent/kh"],
    ["run", "--target", "ssh://lab-a", "--kexec", "debian-7.2"],
    ["gate", "--base", "debian-7.2", "--patched", "debian-6.12", "--jobs", "2", "--case", "exclusive_ksm"],
    ["guest", "--for", "0.5"],
], ids=" ".join)
def test_good_inputs_pass(argv: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    _check(argv)


@pytest.mark.skipif(os.geteuid() != 0 or not os.path.exists("/dev/net/tun"), reason="--net tap needs root and tun")
def test_tap_guests_pass_where_they_can_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    _check(["guest", "--net", "tap", "--count", "3"])
    _check(["run", "--net", "tap", "--jobs", "2"])


def test_git_inputs_that_resolve_pass(kernel_repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    _check(["run", "--kernel", f"{kernel_repo}@HEAD~1"])
    _check(["run", "--tree", f"{kernel_repo}@HEAD"])
    _check(["run", "--tree", str(kernel_repo)])
    _check(["gate", "--base", f"{kernel_repo}@HEAD~1", "--patched", str(kernel_repo)])
    _check(["series", "--tree", str(kernel_repo), "--base", "HEAD~1"])
    _check(["bisect", "--tree", str(kernel_repo), "--good", "HEAD~1", "--bad", "HEAD", "--case", "exclusive_thp"])
    mbox = tmp_path / "0001-x.patch"
    mbox.write_text("From 1234 Mon Sep 17 00:00:00 2001\nFrom: t <t@t>\nSubject: [PATCH] x\n\n---\n")
    _check(["series", "--tree", str(kernel_repo), "--base", "HEAD", "--patches", str(mbox)])
    _check(["series", "--tree", str(kernel_repo), "--base", "HEAD", "--patches", str(tmp_path)])
    bare = tmp_path / "linux.git"  # the e2e tests' history (gitrepo) is a bare repository
    subprocess.run(["git", "clone", "-q", "--bare", str(kernel_repo), str(bare)], check=True)
    _check(["gate", "--base", f"{bare}@HEAD~1", "--patched", f"{bare}@HEAD"])
    _check(["bisect", "--tree", str(bare), "--good", "HEAD~1", "--bad", "HEAD", "--case", "exclusive_basic"])


def test_kernel_spec_forms(kernel_repo: Path) -> None:
    assert validate.kernel_spec("debian-6.12", "--kernel").kind == "debian"
    spec = validate.kernel_spec(f"{kernel_repo}@HEAD~1", "--kernel")
    assert (spec.kind, spec.path, spec.commit) == ("git", kernel_repo, _git(kernel_repo, "rev-parse", "HEAD~1"))
    assert validate.kernel_spec(str(kernel_repo), "--kernel").kind == "tree"
    with pytest.raises(InputError, match="no such file or directory"):
        validate.kernel_spec("debian-6.12", "--tree", names=False)  # --tree takes paths, not names
    with pytest.raises(InputError, match="unknown kernel name"):
        validate.kernel_spec("6.12", "--kernel")


def test_a_bzimage_is_a_kernel_only_where_it_can_be_kexecd(tmp_path: Path) -> None:
    image = tmp_path / "bzImage"
    image.write_bytes(b"\0" * 0x202 + b"HdrS" + b"\0" * 64)
    assert validate.kernel_spec(str(image), "--kexec", bzimage=True).kind == "bzimage"
    with pytest.raises(InputError, match="not a directory"):
        validate.kernel_spec(str(image), "--kernel")


def test_commit_range_refuses_the_same_commit_and_a_wrong_order(kernel_repo: Path) -> None:
    head = _git(kernel_repo, "rev-parse", "HEAD")
    assert validate.commit_range(kernel_repo, "HEAD~1", "HEAD", ("--good", "--bad"))[1] == head
    with pytest.raises(InputError, match="same commit"):
        validate.commit_range(kernel_repo, "HEAD", head, ("--good", "--bad"))
    with pytest.raises(InputError, match="--bad HEAD~1 is not a descendant of --good HEAD"):
        validate.commit_range(kernel_repo, "HEAD", "HEAD~1", ("--good", "--bad"))
    with pytest.raises(InputError, match="not a revision"):
        validate.git_commit(kernel_repo, "--all", "--good")  # never passed to git as an option


def test_fragment_and_config_lines(tmp_path: Path) -> None:
    for fragment in kbuild.default_fragments():  # the project's own fragments
        assert validate.config_lines(fragment, "--fragment", "Kconfig fragment")
    config = tmp_path / ".config"
    config.write_text('#\n# Automatically generated file; DO NOT EDIT.\n#\n'
                      'CONFIG_CC_VERSION_TEXT="gcc (Debian 12.2.0-14) 12.2.0"\nCONFIG_LOCALVERSION=""\n'
                      "CONFIG_PHYSICAL_START=0x1000000\nCONFIG_NR_CPUS=8\n# CONFIG_IPV6 is not set\n"
                      "# CONFIG_FOO=y (commented out)\nCONFIG_TEST_HMM=m\n")
    assert validate.config_lines(config, "--base", "kernel .config")["CONFIG_IPV6"] == "n"
    for text, words in (("CONFIG_A=y\nCONFIG_B=on\n", ":2: value 'on'"), ("CONFIG_A=\n", ":1: value ''"),
                        ("CONFIG_A=y # why\n", ":1: value 'y # why'"), ("# only a comment\n", "no CONFIG_ option"),
                        ("TEST_HMM=y\n", ":1: 'TEST_HMM=y' is not a Kconfig line")):
        config.write_text(text)
        with pytest.raises(InputError, match=words.replace("(", r"\(")):
            validate.config_lines(config, "--base", "kernel .config")


def test_guest_shape_limits(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(validate, "host_memory_mib", lambda: 4096)
    validate.guest_shape(576, 8, 2, 1, None)
    validate.guest_shape(2048, 2, 2, 2, None)  # two guests of 2 GiB fit in 4 GiB
    with pytest.raises(InputError, match="at least 576"):
        validate.guest_shape(512, 2, 2, 1, None)  # boots, but with THP off: exclusive_thp would SKIP
    with pytest.raises(InputError, match=r"--memory 2048 x 3 guests: more than this host has \(4096 MiB\)"):
        validate.guest_shape(2048, 2, 2, 3, None)
    with pytest.raises(InputError, match="CONFIG_NR_CPUS=8"):
        validate.guest_shape(2048, 9, 2, 1, None)
    uni = tmp_path / "up.config"
    uni.write_text("# CONFIG_SMP is not set\n")
    assert validate.max_guest_cpus([uni]) == (1, "CONFIG_SMP is off in the kernel fragments")
    assert validate.max_guest_cpus([kbuild.DEFAULT_FRAGMENT_DIR / "10-hmm.config"])[0] == validate.QEMU_MAX_CPUS


def test_inventory_files_must_exist_unless_the_host_key_is_to_be_pinned(tmp_path: Path) -> None:
    key = tmp_path / "key"
    key.write_text("k")
    inv = tmp_path / "inv.toml"
    inv.write_text(f"[[target]]\nurl = 'ssh://a'\nidentity = '{key}'\nknown_hosts = '{tmp_path / 'new'}'\n"
                   "accept_new_host_key = true\n")
    validate.inventory_file(inv)
    inv.write_text(f"[[target]]\nurl = 'ssh://a'\nknown_hosts = '{tmp_path / 'new'}'\n")
    with pytest.raises(InputError, match="known_hosts.*no such file"):
        validate.inventory_file(inv)


def test_output_paths(tmp_path: Path) -> None:
    validate.output_dir(tmp_path / "new" / "deeper")
    validate.output_file(tmp_path / "new" / "r.json", "--json")
    (tmp_path / "f").write_text("")
    with pytest.raises(InputError, match="is a file, not a directory"):
        validate.output_file(tmp_path / "f" / "r.json", "--json")
