"""Samples of the case's tasks that sleep uninterruptibly (state D), with their kernel stacks.

Why: a task looping in an uninterruptible sleep (woken now and then, so its switch count moves) never
trips the kernel's hung-task detector, and a case whose ioctl hangs that way would otherwise cost the
whole case timeout. The agent only *observes*: which tasks of the case are in D and where they sleep
(``/proc/PID/task/TID/stack``, ``wchan``); the host decides when "the same stack for long enough" is a
hang. Standard library only (this runs on the target).
"""

from __future__ import annotations

import os


def _read(path: str) -> str | None:
    try:
        with open(path) as fh:
            return fh.read()
    except OSError:
        return None


def _stat_fields(text: str) -> tuple[str, str, int] | None:
    """(comm, state, ppid) from a /proc/.../stat line (comm may hold spaces and parentheses)."""
    try:
        left, right = text.index("("), text.rindex(")")
        rest = text[right + 2:].split()
        return text[left + 1:right], rest[0], int(rest[1])
    except (ValueError, IndexError):
        return None


def descendants(root: int) -> list[int]:
    """``root`` and every process below it (a case may fork), from one pass over /proc."""
    children: dict[int, list[int]] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        text = _read(f"/proc/{name}/stat")
        fields = _stat_fields(text) if text else None
        if fields:
            children.setdefault(fields[2], []).append(int(name))
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(children.get(pid, []))
    return out


def _stack(pid: int, tid: int) -> list[str]:
    """Function names of the task's kernel stack (``[<0>] dmirror_exclusive+0x1a/0x200``), outermost last."""
    text = _read(f"/proc/{pid}/task/{tid}/stack") or ""
    frames = []
    for line in text.splitlines():
        sym = line.split("] ", 1)[-1].strip()
        if sym:
            # dmirror_exclusive.constprop.0, f.isra.0, f.part.0, f.cold: the function's own name.
            frames.append(sym.split("+", 1)[0].split(".", 1)[0])
    return frames


def uninterruptible(root: int) -> list[dict]:
    """Every task of ``root``'s process tree now in state D: pid, tid, comm, wchan and kernel stack."""
    found = []
    for pid in descendants(root):
        try:
            tids = os.listdir(f"/proc/{pid}/task")
        except OSError:
            continue
        for name in tids:
            tid = int(name)
            text = _read(f"/proc/{pid}/task/{tid}/stat")
            fields = _stat_fields(text) if text else None
            if not fields or fields[1] != "D":
                continue
            wchan = (_read(f"/proc/{pid}/task/{tid}/wchan") or "").strip()
            found.append({"pid": pid, "tid": tid, "comm": fields[0], "wchan": wchan if wchan != "0" else "",
                          "stack": _stack(pid, tid)})
    return found
