"""An index.lock left by a killed git in hmmbench's own worktree does not stop the next checkout."""

from __future__ import annotations

import subprocess
from pathlib import Path

from hmmbench.kernel.sources import _remove_stale_index_lock


def test_a_stale_index_lock_is_removed_and_checkout_works_again(tmp_path: Path) -> None:
    def git(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(["git", "-C", str(tmp_path), "-c", "user.name=t", "-c", "user.email=t@t", *args],
                              capture_output=True, text=True)

    git("init", "-q")
    (tmp_path / "f").write_text("1")
    git("add", "f")
    git("commit", "-qm", "one")
    (tmp_path / ".git" / "index.lock").write_text("")  # what a SIGKILLed `git checkout` leaves
    assert git("checkout", "--detach", "--quiet", "HEAD").returncode != 0
    _remove_stale_index_lock(tmp_path)
    assert not (tmp_path / ".git" / "index.lock").exists()
    assert git("checkout", "--detach", "--quiet", "HEAD").returncode == 0
    _remove_stale_index_lock(tmp_path)  # nothing to remove: nothing happens
