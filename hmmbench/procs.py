"""Child processes that must never outlive hmmbench (QEMU above all).

Every long-lived child is started with PR_SET_PDEATHSIG(SIGKILL), so even a SIGKILL of hmmbench
takes its guests down; in addition each is registered here, and the CLI's signal handlers and an
atexit hook stop whatever is still registered, gracefully first.
"""

from __future__ import annotations

import atexit
import ctypes
import os
import signal
import subprocess
import threading
from collections.abc import Callable

PR_SET_PDEATHSIG = 1
CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)
_cleanups: dict[int, tuple[int, Callable[[], None]]] = {}  # token -> (owning pid, cleanup)
_lock = threading.Lock()


def _die_with_parent() -> None:  # runs in the child between fork and exec
    _libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def setns_net(fd: int) -> int:
    """setns(fd, CLONE_NEWNET) for the calling thread; 0 on success (errno in ctypes.get_errno())."""
    return _libc.setns(fd, CLONE_NEWNET)


def spawn(cmd: list[str], netns: str | None = None, **kwargs) -> subprocess.Popen:
    """Popen in its own session (Ctrl-C reaches hmmbench, which then stops the child in order)
    that is killed by the kernel if hmmbench dies; optionally inside network namespace ``netns``."""

    # The namespace is opened here, in the parent: between fork and exec only async-signal-safe work is
    # sound in a process that has threads (paramiko's), so the child makes one setns() call on an open
    # fd and imports, allocates and dlopens nothing.
    ns_fd = os.open(f"/run/netns/{netns}", os.O_RDONLY | os.O_CLOEXEC) if netns else -1

    def prepare() -> None:
        _die_with_parent()
        if ns_fd >= 0 and setns_net(ns_fd) != 0:
            os._exit(127)

    try:
        return subprocess.Popen(cmd, preexec_fn=prepare, start_new_session=True, **kwargs)
    finally:
        if ns_fd >= 0:
            os.close(ns_fd)


def register(token: int, cleanup: Callable[[], None]) -> None:
    with _lock:
        _cleanups[token] = (os.getpid(), cleanup)


def unregister(token: int) -> None:
    with _lock:
        _cleanups.pop(token, None)


def cleanup_all() -> None:
    """Stop what this process started. A forked child (pyroute2 forks to open sockets inside a
    namespace) inherits the registry and runs atexit hooks when it exits: it must not tear down its
    parent's guests and namespaces, so only entries registered by this very process are run."""
    me = os.getpid()
    with _lock:
        pending = [fn for pid, fn in _cleanups.values() if pid == me]
        if pending:
            _cleanups.clear()
    for fn in pending:
        try:
            fn()
        except Exception:  # noqa: BLE001 - best effort on the way out
            pass


_handler_owner = 0  # the pid that installed the signal handlers


def _raise_exit(signum: int, _frame: object) -> None:
    """In hmmbench itself: unwind (every ``with`` stops its guest). In a forked child that inherited the
    handler (pyroute2 forks helpers and stops them with SIGTERM): leave at once. Unwinding there would run
    the parent's ``with`` blocks in the child: that removed the run's network namespace under a live guest."""
    if os.getpid() != _handler_owner:
        os._exit(128 + signum)
    raise SystemExit(128 + signum)


def install_signal_handlers() -> None:
    """SIGTERM/SIGHUP unwind like Ctrl-C does, so every ``with`` block stops its guest."""
    global _handler_owner
    _handler_owner = os.getpid()
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _raise_exit)


_signalled: int | None = None  # the signal a pytest run was interrupted by, if one was


def _raise_interrupt(signum: int, _frame: object) -> None:
    global _signalled
    if os.getpid() != _handler_owner:
        os._exit(128 + signum)
    _signalled = signum
    raise KeyboardInterrupt


def signals_interrupt() -> Callable[[], None]:
    """Inside pytest, SIGTERM/SIGHUP act as Ctrl-C: pytest reports a SystemExit raised in a test as that
    test's failure and goes on with the next, but ends the run on a KeyboardInterrupt (its sessionfinish
    still runs, so every guest is stopped and the results so far are written). Returns the undo."""
    global _handler_owner, _signalled
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    _handler_owner, _signalled = os.getpid(), None
    old = {sig: signal.signal(sig, _raise_interrupt) for sig in (signal.SIGTERM, signal.SIGHUP)}

    def undo() -> None:
        for sig, handler in old.items():
            signal.signal(sig, handler)
    return undo


def interrupted_by() -> int | None:
    """The signal that interrupted the last pytest run (None for Ctrl-C or no interruption)."""
    return _signalled


def is_owner(pid: int) -> bool:
    """True in the process ``pid`` itself, False in a forked child that inherited an object of it."""
    return os.getpid() == pid


atexit.register(cleanup_all)
