"""The guest agent: observes for the host; never judges.

The host starts it once per boot as a server (``python3 -m hmmbench_guest.agent serve``) that has done
its imports and cffi's cdef parse. Each request is one JSON line; each case runs in a process forked
from the server (its own address space: one case's mappings, device state and signal dispositions never
leak into the next). While the case process runs, the server streams *events* (the kernel messages it
causes, and once a second the case's tasks that sleep uninterruptibly, with their kernel stacks) so the
host can end a case that a kernel BUG or a hang has wedged; the final line is the case's record. The
kernel-message window closes only after the case process has exited and been reaped, so what its exit
does (unmapping device-exclusive entries, closing the mirror) is attributed to that case.

``agent case NAME`` and ``agent info`` still run one request in this process and print one JSON object
(the bench compares that against the server). Anything a case says for humans goes to stderr.
"""

from __future__ import annotations

import argparse
import functools
import gc
import glob
import gzip
import importlib
import json
import os
import resource
import select
import sys
import time
import traceback

from . import kmsg, memops, pagemap, tasks, uapi
from .skip import Skip


class CaseContext:
    """What a case uses to reach the kernel: libc, the dmirror devices, page-state readers."""

    def __init__(self, release: str, uapi_spec: dict | None = None) -> None:
        self.release = release
        self.page_size = os.sysconf("SC_PAGE_SIZE")
        self.libc = uapi.libc_for(uapi_spec)
        self.ffi = self.libc.ffi
        try:
            self.numbers = uapi.numbers_for(release, uapi_spec)
        except uapi.UnknownUapi as exc:
            raise Skip(str(exc)) from exc
        self._open: list[uapi.Dmirror] = []
        # Every page-state read of the case in order: the before/after record of each page touched.
        self.page_log: list[dict] = []

    def device(self, index: int = 0) -> uapi.Dmirror:
        path = f"/dev/hmm_dmirror{index}"
        if not os.path.exists(path):
            raise Skip(f"{path} missing (kernel without CONFIG_TEST_HMM, or test_hmm not loaded)")
        if "EXCLUSIVE" not in self.numbers:
            raise Skip(f"test_hmm of {self.release} has no HMM_DMIRROR_EXCLUSIVE (added in 5.14)")
        dev = uapi.Dmirror(self.libc, path, self.numbers)
        self._open.append(dev)
        return dev

    def mmap_anon(self, npages: int, prot: int = uapi.PROT_READ | uapi.PROT_WRITE, flags: int = 0):
        return self.libc.mmap(npages * self.page_size, prot, uapi.MAP_PRIVATE | uapi.MAP_ANONYMOUS | flags)

    def base_pages(self, npages: int, seed: int = 0):
        """``npages`` of private anonymous RW memory filled with the pattern, on base pages
        (MADV_NOHUGEPAGE: THP is exclusive_thp's business); returns (pointer, the bytes written)."""
        size = npages * self.page_size
        p = self.mmap_anon(npages)
        self.libc.call("madvise", p, size, uapi.MADV_NOHUGEPAGE)
        data = memops.pattern(npages, self.page_size, seed)
        self.ffi.memmove(p, data, size)
        return p, data

    def pagemap(self, ptr, npages: int) -> list[int]:
        """Raw pagemap entries; every read is also logged with the kpageflags and kpagecount of each PFN."""
        return self.page_state(ptr, npages)["pagemap"]

    def page_state(self, ptr, npages: int) -> dict:
        """Raw pagemap of each page, plus kpageflags and kpagecount of the PFN each one names."""
        addr = self.libc.addr(ptr)
        entries = pagemap.read_pagemap(addr, npages, self.page_size)
        pfns = pagemap.pfns_of(entries)
        state = {
            "pagemap": entries,
            "kpageflags": pagemap.read_kpageflags(pfns),
            "kpagecount": pagemap.read_kpagecount(pfns),
        }
        self.page_log.append({"addr": addr, **state})
        return state

    def control_write_faults(self, npages: int) -> int:
        """Minor faults of the one-write-per-page loop on an ordinary, already-written buffer: the
        noise floor a case subtracts before saying a write took (or took no) fault of its own."""
        ctrl, _ = self.base_pages(npages, 9000)
        memops.touch_write(ctrl, npages, self.page_size)
        f0 = self.minflt()
        memops.touch_write(ctrl, npages, self.page_size)
        return self.minflt() - f0

    @staticmethod
    def minflt() -> int:
        return resource.getrusage(resource.RUSAGE_SELF).ru_minflt

    def close(self) -> None:
        for dev in self._open:
            dev.close()


def _config() -> dict[str, str] | None:
    try:
        with gzip.open("/proc/config.gz", "rt") as fh:
            text = fh.read()
    except OSError:
        return None
    out = {}
    for line in text.splitlines():
        if line.startswith("CONFIG_") and "=" in line:
            k, _, v = line.partition("=")
            out[k] = v
    return out


def _read(path: str) -> str | None:
    try:
        with open(path) as fh:
            return fh.read().strip()
    except OSError:
        return None


def info(uapi_spec: dict | None = None) -> dict:
    """Facts about the target the host needs before running cases (and puts in the results)."""
    u = os.uname()
    try:
        import cffi

        cffi_version = cffi.__version__
    except ImportError:
        cffi_version = None
    try:
        ioctls = sorted(uapi.numbers_for(u.release, uapi_spec))
        ioctl_error = None
    except (uapi.UnknownUapi, ValueError) as exc:
        ioctls, ioctl_error = [], str(exc)
    try:
        with open("/proc/kpageflags", "rb") as fh:
            kpageflags_readable = len(fh.read(8)) == 8
    except OSError:
        kpageflags_readable = False
    meminfo = _read("/proc/meminfo") or ""
    return {
        "release": u.release,
        "uts_version": u.version,
        "proc_version": _read("/proc/version"),
        "machine": u.machine,
        "hostname": u.nodename,
        "euid": os.geteuid(),
        "nproc": os.cpu_count(),
        "python": sys.version.split()[0],
        "cffi": cffi_version,
        "devices": sorted(glob.glob("/dev/hmm_dmirror*")),
        "numa_nodes": len(glob.glob("/sys/devices/system/node/node[0-9]*")),
        "thp_enabled": _read("/sys/kernel/mm/transparent_hugepage/enabled"),
        "mem_total_kb": next((int(line.split()[1]) for line in meminfo.splitlines()
                              if line.startswith("MemTotal:")), None),
        "kpageflags_readable": kpageflags_readable,
        "ioctls": ioctls,
        "ioctl_error": ioctl_error,
        "uapi_source": (uapi_spec or {}).get("source") or "version table",
        "tainted": kmsg.tainted(),
        "cmdline": _read("/proc/cmdline"),
        "config": _config(),
    }


def user_observer(name: str, source: str):
    """A guest observer a user wrote in their own test file (hmmbench's pytest plugin sends its source).

    It runs here like a case's ``observe``: standard library and ``hmmbench_guest`` only, imported in the
    function's own body (the test file's other imports are the host's)."""
    namespace: dict = {"__name__": f"{__package__}.user_observers", "__builtins__": __builtins__}
    exec(compile(source, f"<observer {name}>", "exec"), namespace)  # noqa: S102 - the user's own observer
    return namespace[name]


def observe_case(name: str, params: dict, uapi_spec: dict | None = None, source: str | None = None) -> dict:
    """Run case ``name`` (or the user's observer ``name`` given by its ``source``) in this process: its
    observations (or skip/error) and its page log."""
    record: dict = {"case": name, "params": params}
    start = time.monotonic()
    ctx = None
    try:
        if source is None:
            observe = importlib.import_module(f"{__package__}.cases.{name}").observe
        else:
            observe = user_observer(name, source)
        ctx = CaseContext(os.uname().release, uapi_spec)
        record["observations"] = observe(ctx, params)
        record["status"] = "observed"
    except Skip as exc:
        record["status"] = "skip"
        record["reason"] = str(exc)
    except Exception as exc:  # the case's own failure is a result, reported with its traceback
        record["status"] = "error"
        record["reason"] = f"{type(exc).__name__}: {exc}"
        record["traceback"] = traceback.format_exc()
    finally:
        if ctx is not None:
            record["page_log"] = ctx.page_log
            ctx.close()
    record["seconds"] = round(time.monotonic() - start, 3)
    return record


class MessageWindow:
    """The kernel messages and taint flags of one case: opened before it starts, closed after it ended."""

    def __init__(self) -> None:
        self.records: list[dict] = []
        self.error: str | None = None
        self.cursor: kmsg.KmsgCursor | None = None
        try:
            self.cursor = kmsg.KmsgCursor()
        except OSError as exc:
            self.error = str(exc)
        self.tainted_before = kmsg.tainted()

    def read_new(self) -> list[dict]:
        new = self.cursor.read_new() if self.cursor is not None else []
        self.records += new
        return new

    def close_into(self, record: dict) -> dict:
        self.read_new()
        record["tainted_before"] = self.tainted_before
        record["tainted_after"] = kmsg.tainted()
        if self.cursor is not None:
            record["kmsg"] = self.records
            record["kmsg_lost"] = self.cursor.lost
            self.cursor.close()
        else:
            record["kmsg_error"] = self.error
        return record


def run_case(name: str, params: dict, uapi_spec: dict | None = None) -> dict:
    """One case in this process with its message window (the one-shot ``agent case``)."""
    window = MessageWindow()
    return window.close_into(observe_case(name, params, uapi_spec))


def _fork(work) -> tuple[int, int]:
    """Start ``work()`` in a forked child that writes its JSON answer to a pipe: (pid, read end).

    Why fork: every case gets a fresh process (its own mappings, no state left by the case before), while
    the interpreter start, the imports and cffi's cdef parsing, most of a short case's cost under TCG,
    are paid once by the server. The server is single-threaded, so forking it is safe.
    """
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the case process
        try:
            os.close(r)
            for fd in _SERVER_FDS:
                os.close(fd)
            null = os.open(os.devnull, os.O_RDONLY)
            os.dup2(null, 0)  # the request stream is the server's, not the case's
            os.dup2(2, 1)  # a stray print must not corrupt the reply stream
            sys.stdout = sys.stderr
            data = json.dumps(work()).encode()
        except BaseException as exc:  # noqa: BLE001 - reported as the answer
            data = json.dumps({"agent_error": f"{type(exc).__name__}: {exc}",
                               "traceback": traceback.format_exc()}).encode()
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(w, view):]
        finally:
            os._exit(0)
    os.close(w)
    return pid, r


def _answer(chunks: list[bytes], status: int) -> dict:
    if not chunks:
        code = os.waitstatus_to_exitcode(status)
        how = f"killed by signal {-code}" if code < 0 else f"exited {code}"
        return {"agent_error": f"case process {how} without an answer"}
    return json.loads(b"".join(chunks))


def _in_child(work) -> dict:
    """Run ``work()`` in a forked child and return its JSON answer (no events: for ``info``)."""
    pid, r = _fork(work)
    chunks = []
    while chunk := os.read(r, 1 << 16):
        chunks.append(chunk)
    os.close(r)
    _, status = os.waitpid(pid, 0)
    return _answer(chunks, status)


SAMPLE_EVERY = 1.0  # seconds between samples of the case's D-state tasks (and heartbeats to the host)


def _watched_case(work, emit, window: MessageWindow, sample_every: float = SAMPLE_EVERY) -> dict:
    """Run ``work()`` in a forked child; while it runs, ``emit`` events: new kernel messages as they
    come, and a heartbeat with the case's uninterruptible tasks every ``sample_every`` seconds. Returns
    the child's answer once the child has exited *and been reaped*: its exit is part of the case."""
    pid, r = _fork(work)
    chunks: list[bytes] = []
    eof, status = False, None
    next_sample = time.monotonic() + sample_every
    while status is None:
        if not eof:
            ready, _, _ = select.select([r], [], [], 0.2)
            if ready:
                chunk = os.read(r, 1 << 16)
                if chunk:
                    chunks.append(chunk)
                else:
                    eof = True
                    os.close(r)
        else:
            time.sleep(0.05)
        if eof:
            done, st = os.waitpid(pid, os.WNOHANG)
            if done:
                status = st
        new = window.read_new()
        if new:
            emit({"event": "kmsg", "records": new})
        if time.monotonic() >= next_sample:
            next_sample = time.monotonic() + sample_every
            emit({"event": "tick", "pid": pid, "uninterruptible": tasks.uninterruptible(pid)})
    return _answer(chunks, status)


def case_request(req: dict, emit) -> dict:
    """A ``case`` request: the case in a watched child, its message window closed after the reap."""
    window = MessageWindow()
    spec = req.get("uapi")
    work = functools.partial(observe_case, req["name"], req.get("params", {}), spec, req.get("source"))
    reply = _watched_case(work, emit, window, float(req.get("sample_every", SAMPLE_EVERY)))
    if "agent_error" in reply:
        return reply
    return window.close_into(reply)


def _warm_up() -> None:
    """What the server pays once so that each case need not: every case module imported, cffi's cdef
    parsed, and the heap frozen (a collection in a case process would write to every inherited object,
    and so add page faults to what the cases count)."""
    from . import cases

    for mod in sorted(glob.glob(os.path.join(os.path.dirname(cases.__file__), "*.py"))):
        name = os.path.basename(mod)[:-3]
        if name != "__init__":
            importlib.import_module(f"{__package__}.cases.{name}")
    uapi.shared_libc()
    gc.freeze()


# File descriptors a forked case process must not keep: a connection to the host held open by a case
# process would hide the host's hang-up from the server.
_SERVER_FDS: list[int] = []


def _answer_requests(lines, emit) -> None:
    """One JSON request per line; event lines (``{"event": ...}``) then one reply line per request."""
    emit({"ready": True, "pid": os.getpid()})
    for line in lines:
        req = json.loads(line)
        if req["cmd"] == "case":
            reply = case_request(req, emit)
        elif req["cmd"] == "info":
            reply = _in_child(functools.partial(info, req.get("uapi")))
        else:
            reply = {"agent_error": f"unknown request {req['cmd']!r}"}
        emit(reply)


def serve() -> int:
    """The server on stdin/stdout: started over SSH (a machine hmmbench did not boot)."""
    _warm_up()
    out = sys.stdout

    def emit(obj: dict) -> None:
        out.write(json.dumps(obj) + "\n")
        out.flush()

    _answer_requests(sys.stdin, emit)
    return 0


def serve_listening(address: str) -> int:
    """The server on a TCP port of the guest's loopback, started by the guest's init at boot.

    Why: a QEMU guest that hmmbench boots gets the agent on a disk of its own and starts it while sshd
    starts, so the interpreter's start-up and the imports (two seconds under TCG) overlap the boot
    instead of following it; the host reaches it through its SSH connection (a direct-tcpip channel),
    one connection at a time, and a new connection gets a new conversation.
    """
    import socket

    host, _, port = address.rpartition(":")
    _warm_up()
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((host or "127.0.0.1", int(port)))
    listener.listen(1)
    _SERVER_FDS.append(listener.fileno())
    while True:
        conn, _ = listener.accept()
        _SERVER_FDS.append(conn.fileno())
        stream = conn.makefile("rw", buffering=1, encoding="utf-8", newline="\n")

        def emit(obj: dict, stream=stream) -> None:
            stream.write(json.dumps(obj) + "\n")
            stream.flush()

        try:
            _answer_requests(stream, emit)
        except (OSError, ValueError):  # the host went away mid-conversation: wait for the next one
            pass
        finally:
            _SERVER_FDS.remove(conn.fileno())
            stream.close()
            conn.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="hmmbench-agent")
    sub = parser.add_subparsers(dest="cmd", required=True)
    sub.add_parser("info")
    case = sub.add_parser("case")
    case.add_argument("name")
    case.add_argument("--params", default="{}")
    case.add_argument("--uapi", default="null", help="the host's uapi spec (JSON), from the kernel tree's header")
    loop = sub.add_parser("bench-loop")
    loop.add_argument("--uapi", default="null", help="the host's uapi spec (JSON), from the kernel tree's header")
    loop.add_argument("iterations", type=int)
    srv = sub.add_parser("serve", help="answer requests on stdin, each case in a forked child")
    srv.add_argument("--listen", metavar="HOST:PORT", help="answer connections on this TCP address instead")
    args = parser.parse_args(argv)
    if args.cmd == "serve":
        return serve_listening(args.listen) if args.listen else serve()
    if args.cmd == "info":
        out = info()
    elif args.cmd == "bench-loop":
        from . import bench_loop

        out = bench_loop.run(args.iterations, json.loads(args.uapi))
    else:
        out = run_case(args.name, json.loads(args.params), json.loads(args.uapi))
    sys.stdout.write(json.dumps(out) + "\n")
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
