"""Bad inputs through the real CLI: exit 2, exactly one line on stderr, no traceback, no work done.

Each row is what a user might type and the words the one error line must contain. Every row runs
``python -m hmmbench`` in a subprocess of its own, with an empty ``HMMBENCH_CACHE``, its own working
directory, and tripwires on PATH for the programs that doing work would start (QEMU, qemu-img, make,
mmdebstrap, apt-get, ssh, kexec): each records that it was called. "No work done" means the cache
directory, the working directory and the tripwire log are all still empty afterwards.

The rows run in a thread pool (each is a separate process), so the table costs a few seconds.
"""

from __future__ import annotations

import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

TRIPWIRES = ("qemu-system-x86_64", "qemu-img", "make", "mmdebstrap", "apt-get", "ssh", "kexec")


@dataclass(frozen=True)
class Bad:
    """One bad input: the arguments (``{name}`` is a path from the ``world`` fixture) and the words the
    error line must contain."""

    argv: str
    words: tuple[str, ...]

    @property
    def id(self) -> str:
        return self.argv


def bad(argv: str, *words: str) -> Bad:
    return Bad(argv, words)


BAD_INPUTS = [
    # judge: the results file
    bad("judge {missing}/results.json", "not found", "results.json"),
    bad("judge {truncated}", "truncated", "next:"),
    bad("judge {gate_json}", "gate report", "hmmbench.results/2"),
    bad("judge {json_list}", "not a results object"),
    bad("judge {plain_dir}", "is a directory"),
    bad("judge {no_cases}", "no list of cases"),
    # kernels
    bad("run --kernel debian-9.9", "unknown kernel name", "debian-6.12", "debian-7.2"),
    bad("kernel build --kernel debian-9.9", "unknown kernel name", "debian-6.12"),
    bad("run --kernel {missing}/linux", "no such file or directory", "PATH@REV"),
    bad("run --tree {missing}/linux", "--tree", "no such file or directory"),
    bad("run --kernel {plain_dir}", "not a Linux kernel tree", "Makefile is missing"),
    bad("run --kernel {plain_dir}@HEAD", "not a git repository"),
    bad("run --kernel {kernel_repo}@nope", "no such commit", "nope"),
    bad("run --kernel {plain_repo}@HEAD", "not a Linux kernel tree", "Makefile is missing"),
    bad("gate --patched {missing}/linux", "--patched", "no such file or directory"),
    bad("gate --base debian-9.9", "--base", "unknown kernel name"),
    # config
    bad("kernel build --fragment {missing}/hmm.config", "--fragment", "no such file"),
    bad("kernel build --fragment {bad_fragment}", "bad.config:3", "not a Kconfig line"),
    bad("kernel build --fragment {bad_value}", "value", "not y, m, n"),
    bad("kernel build --fragment {plain_dir}", "is a directory"),
    bad("kernel build --base {missing}/my.config", "--config-base", "nor an existing config file"),
    bad("kernel build --config-base {missing}/my.config", "--config-base", "nor an existing config file"),
    bad("gate --config-base {bad_fragment}", "--config-base", "not a Kconfig line"),
    # guest shape and counts
    bad("run --memory 10", "--memory 10", "at least 576"),
    bad("run --memory 100000000", "more than this host has"),
    bad("run --memory 2049", "not divisible into 2 equal NUMA nodes"),
    bad("run --cpus 9", "--cpus 9", "CONFIG_NR_CPUS=8"),
    bad("run --cpus 0", "--cpus 0", "at least 1"),
    bad("run --cpus 2 --numa-nodes 3", "more nodes than CPUs"),
    bad("run --jobs 0", "--jobs 0", "at least 1"),
    bad("run --timeout 0", "--timeout", "positive"),
    bad("run --timeout nan", "--timeout", "positive"),
    bad("bench --repeat 0", "--repeat 0"),
    bad("guest --count 2", "--count 2 needs --net tap"),
    # cases
    bad("run --case nope", "--case nope", "unknown case", "exclusive_basic"),
    bad("run --case exclusive_thpp", "did you mean exclusive_thp?"),
    bad("gate --case nope", "unknown case"),
    # targets and inventories
    bad("run --target http://lab-a", "expected ssh://[user@]host[:port]"),
    bad("run --target ssh://lab-a:0", "port 0"),
    bad("run --target ssh://lab-a:99999", "bad port"),
    bad("run --target ssh://lab-a --identity {missing}/key", "--identity", "no such file"),
    bad("run --identity {bad_fragment}", "--identity is for --target"),
    bad("run --kexec debian-6.12", "--kexec needs --target"),
    bad("run --target ssh://lab-a --kexec {bad_fragment}", "--kexec", "not a bzImage"),
    bad("run --target ssh://lab-a --kernel debian-7.2", "runs its own kernel", "--kexec"),
    bad("run --target ssh://lab-a --inventory {inv_url_number}", "both given"),
    bad("run --inventory {inv_url_number}", "url = 5 is an integer", "quoted string"),
    bad("run --inventory {missing}/inv.toml", "inventory", "not found"),
    bad("run --inventory {inv_not_toml}", "not valid TOML"),
    bad("run --inventory {inv_single_table}", "write [[target]]"),
    bad("run --inventory {inv_bad_bool}", "accept_new_host_key", "true or false"),
    bad("run --inventory {inv_missing_key}", "identity", "no such file"),
    # series and bisect
    bad("series --tree {plain_dir} --base HEAD", "--tree", "not a git repository"),
    bad("series --tree {kernel_repo} --base nope", "--base-rev nope", "no such commit"),
    bad("series --tree {kernel_repo} --base-rev nope", "--base-rev nope", "no such commit"),
    bad("series --tree {kernel_repo} --base HEAD~1 --tip HEAD~1", "same commit"),
    bad("series --tree {kernel_repo} --base HEAD --patches {empty_dir}", "no *.patch files"),
    bad("series --tree {kernel_repo} --base HEAD --patches {plain_diff}", "a plain diff, not a mail"),
    bad("series --tree {kernel_repo} --base HEAD --patches {missing}/p", "no such file or directory"),
    bad("bisect --tree {kernel_repo} --good HEAD --bad HEAD~1 --case exclusive_thp", "not a descendant"),
    bad("bisect --tree {kernel_repo} --good HEAD~1 --bad nope --case exclusive_thp", "--bad nope", "no such commit"),
    bad("bisect --tree {kernel_repo} --good HEAD~1 --bad HEAD --case nope", "unknown case"),
    bad("bisect --tree {kernel_repo} --good HEAD~1 --bad HEAD --case exclusive_thp --repeat 0", "--repeat 0"),
    # outputs, recipes
    bad("run --out {bad_fragment}", "--out", "not a directory"),
    bad("run --json {plain_dir}", "--json", "is a directory"),
    bad("image build --recipe nope", "no such image recipe", "debian-bookworm"),
    # argparse's own usage errors, as one line
    bad("run --memory lots", "invalid int value", "hmmbench run --help"),
    bad("frobnicate", "invalid choice"),
    bad("run --frobnicate", "unrecognized arguments"),
    bad("bisect --tree x", "the following arguments are required"),
]


def _git(repo: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t", *args], check=True,
                   capture_output=True)


def _repo(path: Path, kernel: bool) -> Path:
    """A git repository with two commits; with ``kernel`` its files make it look like a Linux tree."""
    path.mkdir()
    _git(path, "init", "-q")
    if kernel:
        for name in ("Makefile", "Kconfig", "arch/x86/Kconfig", "mm/Kconfig"):
            (path / name).parent.mkdir(parents=True, exist_ok=True)
            (path / name).write_text("# fake\n")
    (path / "file").write_text("1\n")
    _git(path, "add", "-A")
    _git(path, "commit", "-q", "-m", "one")
    (path / "file").write_text("2\n")
    _git(path, "commit", "-q", "-am", "two")
    return path


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The files the bad inputs name (made once for the whole table)."""
    root = tmp_path_factory.mktemp("world")
    w: dict[str, Path] = {"missing": root / "missing"}

    def write(name: str, filename: str, text: str) -> None:
        w[name] = root / filename
        w[name].write_text(text)

    write("truncated", "truncated.json", '{"schema": "hmmbench.results/1", "cases": [{"id": "exclusive_ba')
    write("gate_json", "gate.json", '{"schema": "hmmbench.gate/1", "cases": []}\n')
    write("json_list", "list.json", "[1, 2]\n")
    write("no_cases", "nocases.json", '{"schema": "hmmbench.results/1"}\n')
    write("bad_fragment", "bad.config", "# HMM\nCONFIG_TEST_HMM=y\nTEST_HMM y\n")
    write("bad_value", "value.config", "CONFIG_TEST_HMM=yes\n")
    write("inv_url_number", "url.toml", "[[target]]\nurl = 5\n")
    write("inv_not_toml", "bad.toml", "[[target]\nurl = 'ssh://a'\n")
    write("inv_single_table", "table.toml", "[target]\nurl = 'ssh://a'\n")
    write("inv_bad_bool", "bool.toml", "[[target]]\nurl = 'ssh://a'\naccept_new_host_key = 'yes'\n")
    write("inv_missing_key", "key.toml", f"[[target]]\nurl = 'ssh://a'\nidentity = '{root / 'nokey'}'\n")
    write("plain_diff", "change.diff", "diff --git a/file b/file\n--- a/file\n+++ b/file\n")
    w["plain_dir"] = root / "plain"
    w["plain_dir"].mkdir()
    w["empty_dir"] = root / "empty"
    w["empty_dir"].mkdir()
    w["kernel_repo"] = _repo(root / "linux", kernel=True)
    w["plain_repo"] = _repo(root / "notlinux", kernel=False)
    return w


@dataclass(frozen=True)
class Outcome:
    code: int
    stdout: str
    stderr: str
    cache_entries: list[str]
    cwd_entries: list[str]
    tripped: str


def _run_one(argv: list[str], place: Path) -> Outcome:
    cache, cwd, bin_dir = place / "cache", place / "cwd", place / "bin"
    for d in (cache, cwd, bin_dir):
        d.mkdir(parents=True)
    log = place / "tripwires.log"
    for name in TRIPWIRES:
        tool = bin_dir / name
        tool.write_text(f'#!/bin/sh\necho "{name} $*" >> "{log}"\nexit 1\n')
        tool.chmod(0o755)
    env = {**os.environ, "HMMBENCH_CACHE": str(cache), "PATH": f"{bin_dir}:{os.environ.get('PATH', '')}"}
    proc = subprocess.run([sys.executable, "-m", "hmmbench", *argv], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=60)
    return Outcome(proc.returncode, proc.stdout, proc.stderr, sorted(os.listdir(cache)), sorted(os.listdir(cwd)),
                   log.read_text() if log.exists() else "")


@pytest.fixture(scope="module")
def outcomes(world: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Outcome]:
    places = tmp_path_factory.mktemp("runs")
    names = {k: str(v) for k, v in world.items()}
    with ThreadPoolExecutor(max_workers=4) as pool:
        futures = {b.id: pool.submit(_run_one, b.argv.format(**names).split(), places / str(n))
                   for n, b in enumerate(BAD_INPUTS)}
        return {key: f.result() for key, f in futures.items()}


def test_the_table_is_big_enough() -> None:
    assert len(BAD_INPUTS) >= 25
    assert len({b.id for b in BAD_INPUTS}) == len(BAD_INPUTS)


@pytest.mark.parametrize("case", BAD_INPUTS, ids=lambda b: b.id)
def test_bad_input_is_one_line_exit_2_and_no_work(case: Bad, outcomes: dict[str, Outcome]) -> None:
    out = outcomes[case.id]
    assert "Traceback" not in out.stderr + out.stdout
    lines = out.stderr.splitlines()
    assert len(lines) == 1, out.stderr
    line = lines[0]
    assert line.startswith("hmmbench: error: "), line
    assert out.code == 2, line
    for word in case.words:
        assert word in line, f"{word!r} not in {line!r}"
    assert out.stdout == ""
    assert out.cache_entries == [], f"the cache gained {out.cache_entries}"
    assert out.cwd_entries == [], f"the working directory gained {out.cwd_entries}"
    assert out.tripped == "", f"work was started: {out.tripped}"


def test_bisect_step_harness_failure_stops_git_bisect(world: dict[str, Path], tmp_path: Path) -> None:
    """git bisect run takes exit 2 as "bad": a harness failure in bisect-step must be 128 (stop)."""
    for argv in (["bisect-step", "--tree", str(world["plain_dir"]), "--case", "exclusive_thp"],
                 ["bisect-step", "--tree", str(world["kernel_repo"]), "--case", "nope"],
                 ["bisect-step", "--tree", str(world["kernel_repo"])]):
        out = _run_one(argv, tmp_path / str(len(list(tmp_path.iterdir()))))
        assert out.code == 128, out.stderr
        assert len(out.stderr.splitlines()) == 1 and out.stderr.startswith("hmmbench: error: ")
        assert "Traceback" not in out.stderr and out.tripped == "" and out.cache_entries == []
