"""cli.main's exit-code contract and the one-line rendering of failures (in-process, fast)."""

from __future__ import annotations

from pathlib import Path

import pytest

from hmmbench import cli, failures, validate
from hmmbench.errors import ConfigDropped, HarnessError


@pytest.fixture(autouse=True)
def _cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    cache = tmp_path / "cache"
    monkeypatch.setenv("HMMBENCH_CACHE", str(cache))
    return cache


def test_config_dropped_keeps_the_blocking_dependency_in_the_line_and_all_of_it_in_a_file(_cache: Path) -> None:
    why_hmm = ("CONFIG_TEST_HMM=y (from 10-hmm.config) ended as <absent>: enclosing 'if RUNTIME_TESTING_MENU' "
               "(lib/Kconfig.debug:2167) is n (RUNTIME_TESTING_MENU=n)")
    why_dp = "CONFIG_DEVICE_PRIVATE=y (from 10-hmm.config) ended as n: 'depends on ZONE_DEVICE' (mm/Kconfig:1) is n"
    err = ConfigDropped("olddefconfig dropped 2 requested option(s): CONFIG_TEST_HMM, CONFIG_DEVICE_PRIVATE",
                        "fix the fragment (add the blocking dependency) and run again; nothing was compiled")
    err.detail = f"  {why_hmm}\n  {why_dp}"  # as kbuild sets it
    line = failures.harness_line(err)
    assert "\n" not in line
    assert line.startswith("hmmbench: error: olddefconfig dropped 2")
    assert "RUNTIME_TESTING_MENU" in line and "nothing was compiled" in line and "(+1 more)" in line
    saved = Path(line.rsplit("full text: ", 1)[1])
    assert saved.parent == _cache / "errors"
    assert why_hmm in saved.read_text() and why_dp in saved.read_text()


def test_one_short_detail_is_folded_into_the_line_without_a_file(_cache: Path) -> None:
    line = failures.harness_line(HarnessError("olddefconfig dropped 1 option", "fix it", detail="  X=y ended as n"))
    assert line == "hmmbench: error: olddefconfig dropped 1 option: X=y ended as n; next: fix it"
    assert not (_cache / "errors").exists()


def test_a_multi_line_reason_becomes_first_and_last_line_with_the_whole_in_a_file() -> None:
    err = HarnessError("guest exited before SSH answered: console tail:\n[ 1.0] booting\n[ 2.0] Kernel panic - "
                       "not syncing: Out of memory\n(full console: /r/boot1-console.log)")
    line = failures.harness_line(err)
    assert "\n" not in line
    assert line.startswith("hmmbench: error: guest exited before SSH answered: console tail: [...] (full console:")
    assert "Kernel panic" in Path(line.rsplit("full text: ", 1)[1]).read_text()


def test_a_bug_is_one_line_exit_2_and_its_traceback_goes_to_a_file(
        _cache: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    def broken_check(_args: object) -> None:
        {}["missing key"]  # noqa: B018 - the bug

    monkeypatch.setattr(validate, "check_judge", broken_check)
    assert cli.main(["judge", "results.json"]) == 2
    out = capsys.readouterr()
    assert out.out == ""
    lines = out.err.splitlines()
    assert len(lines) == 1 and "Traceback" not in out.err
    assert lines[0].startswith("hmmbench: error: internal error (a bug in hmmbench): KeyError: 'missing key'")
    saved = Path(lines[0].rsplit("the traceback is in ", 1)[1])
    assert saved.parent == _cache / "tracebacks"
    text = saved.read_text()
    assert "Traceback" in text and "broken_check" in text and "hmmbench judge results.json" in text


def test_a_harness_error_in_a_handler_is_exit_2(monkeypatch: pytest.MonkeyPatch,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    def failing(_args: object) -> int:
        raise HarnessError("qemu-system-x86_64 not found", "apt-get install qemu-system-x86")

    monkeypatch.setattr(cli, "_cases", failing)
    assert cli.main(["cases"]) == 2
    assert capsys.readouterr().err == ("hmmbench: error: qemu-system-x86_64 not found; "
                                       "next: apt-get install qemu-system-x86\n")


def test_ctrl_c_is_130(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    def interrupted(_args: object) -> int:
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "_cases", interrupted)
    assert cli.main(["cases"]) == 130
    assert capsys.readouterr().err.count("\n") == 1


def test_verdicts_pass_through_as_0_and_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = Path(__file__).parent / "data" / "run_6.12.json"
    assert cli.main(["judge", str(data)]) == 1  # the recorded 6.12 run has FAILs: a verdict, not a harness error
    assert capsys.readouterr().err == ""
    assert cli.main(["cases"]) == 0


def test_usage_errors_are_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        cli.main(["run", "--cpus", "two"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err == "hmmbench: error: argument --cpus: invalid int value: 'two'; next: see hmmbench run --help\n"
