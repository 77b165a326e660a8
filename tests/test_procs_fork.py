"""A forked child that inherits hmmbench's SIGTERM handler must not unwind the parent's stack.

pyroute2 forks helper children and stops them with SIGTERM. When the handler raised SystemExit in such a
child, the child ran the parent's ``with`` blocks on its way out and removed the run's network namespace
under a live guest (the intermittent --net tap hang). These tests fork for real.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

from hmmbench import procs


class _Marker:
    """A context manager whose __exit__ leaves a file behind: proof that a stack was unwound."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __enter__(self) -> _Marker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.path.write_text(str(os.getpid()))


def test_sigterm_in_a_forked_child_exits_without_unwinding(tmp_path: Path) -> None:
    old = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGHUP)}
    marker = tmp_path / "unwound"
    try:
        procs.install_signal_handlers()
        with _Marker(tmp_path / "parent-exit"):
            r, w = os.pipe()
            pid = os.fork()
            if pid == 0:  # the child: inside the parent's `with`, like pyroute2's helper
                os.close(r)
                try:
                    with _Marker(marker):
                        os.write(w, b"x")
                        time.sleep(30)
                finally:
                    os._exit(3)  # reached only if the handler raised instead of leaving at once
            os.close(w)
            os.read(r, 1)
            os.kill(pid, signal.SIGTERM)
            _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 128 + signal.SIGTERM
        assert not marker.exists(), "the child unwound the parent's stack"
    finally:
        for s, h in old.items():
            signal.signal(s, h)


def test_sigterm_in_hmmbench_itself_unwinds(tmp_path: Path) -> None:
    old = signal.getsignal(signal.SIGTERM)
    try:
        procs.install_signal_handlers()
        try:
            with _Marker(tmp_path / "unwound"):
                os.kill(os.getpid(), signal.SIGTERM)
                time.sleep(5)
        except SystemExit as exc:
            assert exc.code == 128 + signal.SIGTERM
        assert (tmp_path / "unwound").exists()
    finally:
        signal.signal(signal.SIGTERM, old)
        signal.signal(signal.SIGHUP, signal.SIG_DFL)


def test_is_owner() -> None:
    assert procs.is_owner(os.getpid()) and not procs.is_owner(os.getpid() + 1)
